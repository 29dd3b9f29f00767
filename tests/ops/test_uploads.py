"""Every door that takes a file refuses one that is too large (413) or of the wrong type (400)
with what, where and how to fix it, and keeps nothing of it.

Doors: the billing import page and API, the benchmark upload page and API, SLO measurement
and pool-usage CSV posts, the OpenSLO import; and any request body over the limit.
"""

from __future__ import annotations

import gzip
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from costs.models import BillingImport
from governance.api import rows
from governance.models import ServiceLevelObjective, SloMeasurement
from governance.uploads import TEXT, UploadKind, sniff, upload_problem
from registry import services as registry_services
from registry.models import EfficiencyBenchmark, PoolUsage
from tests.factories import focus_line, write_focus
from tests.registry.conftest import capgov_benchmark, registry  # noqa: F401 (a fixture)

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 32
XLSX = b"PK\x03\x04\x14\x00\x06\x00\x08\x00" + b"\x00" * 32
MIB = 1024 * 1024


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def media_files(settings) -> list:
    root = settings.MEDIA_ROOT
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


# --- the checks on their own ------------------------------------------------------------------

KIND = UploadKind(
    label="test file",
    extensions={".csv": TEXT},
    described="CSV",
    fix="Fix it.",
    too_large="Make it smaller.",
)


@pytest.mark.parametrize(
    ("head", "found"),
    [
        (b"a,b\n1,2\n", "text"),
        ("día,coût\n".encode(), "text"),
        ("día".encode()[:2], "text"),  # a character cut in two at the end of the head
        (b"PAR1\x15\x04", "parquet"),
        (b"\x1f\x8b\x08\x00", "gzip"),
        (PDF, "a PDF document"),
        (PNG, "a PNG image"),
        (XLSX, "a ZIP archive (an Excel .xlsx workbook is one too)"),
        (b"MZ\x90\x00", "a Windows program"),
        ("a,b".encode("utf-16"), "UTF-16 text (save it as UTF-8)"),
        (b"a,b\x00c", "binary data"),
        (b"caf\xe9,1\n", "text that is not UTF-8 (byte 0xe9 at offset 3)"),
    ],
)
def test_sniff_tells_formats_from_their_first_bytes(head, found):
    assert sniff(head) == found


def test_upload_problem_names_the_file_the_limit_and_the_fix():
    assert upload_problem(name="a.csv", size=10, head=b"a,b", kind=KIND, max_bytes=10) is None
    assert upload_problem(name="a.csv", size=11, head=b"a,b", kind=KIND, max_bytes=10) == (
        413,
        "a.csv is 11 bytes, larger than the 10 bytes limit for a test file. Make it smaller.",
    )
    assert upload_problem(name="A.CSV", size=3, head=b"a,b", kind=KIND, max_bytes=10) is None
    assert upload_problem(name="a.pdf", size=3, head=PDF, kind=KIND, max_bytes=10) == (
        400,
        "a.pdf (.pdf) is not a file Capgov takes as a test file: it takes CSV. Fix it.",
    )
    assert upload_problem(name="a", size=3, head=b"a", kind=KIND, max_bytes=10)[1].startswith(
        "a (no extension) is not a file"
    )
    assert upload_problem(name="a.csv", size=3, head=PNG, kind=KIND, max_bytes=10) == (
        400,
        "a.csv is named .csv but holds a PNG image, not UTF-8 text. Fix it.",
    )


# --- billing imports: page and API --------------------------------------------------------------


@pytest.fixture
def focus_csv(tmp_path):
    return write_focus(tmp_path / "oct.csv", [focus_line(cost="12.50")]).read_bytes()


def test_billing_page_refuses_an_oversized_file_with_413(org, settings, focus_csv):
    settings.CAPGOV_MAX_UPLOAD_MB = 1
    big = focus_csv + b"\n" * (MIB + 10)
    response = signed_in(org.finance).post(
        "/costs/imports/", {"file": SimpleUploadedFile("october.csv", big), "format": "auto"}
    )
    assert response.status_code == 413
    page = response.content.decode()
    size = f"{len(big):,} bytes"
    assert f"october.csv is {size}, larger than the 1,048,576 bytes limit for a billing" in page
    assert "manage.py import_billing" in page
    assert not BillingImport.objects.exists()
    assert media_files(settings) == []


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("october.pdf", PDF, "october.pdf (.pdf) is not a file Capgov takes as a billing export"),
        ("october.xlsx", XLSX, "october.xlsx (.xlsx) is not a file Capgov takes"),
        ("october.csv", PNG, "october.csv is named .csv but holds a PNG image, not UTF-8 text"),
        ("october.parquet", b"a,b\n1,2\n", "is named .parquet but holds UTF-8 text, not Parquet"),
        ("october.csv.gz", b"a,b\n", "is named .gz but holds UTF-8 text, not gzip-compressed"),
    ],
)
def test_billing_page_refuses_a_file_of_the_wrong_type_with_400(org, settings, name, data, message):
    response = signed_in(org.finance).post(
        "/costs/imports/", {"file": SimpleUploadedFile(name, data), "format": "auto"}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page
    assert "save a spreadsheet as CSV UTF-8 first" in page
    assert not BillingImport.objects.exists()
    assert media_files(settings) == []


def test_billing_page_takes_a_gzipped_csv(org, focus_csv, django_capture_on_commit_callbacks):
    upload = SimpleUploadedFile("october.csv.gz", gzip.compress(focus_csv))
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(org.finance).post("/costs/imports/", {"file": upload})
    assert response.status_code == 302
    assert BillingImport.objects.get().status == "succeeded"


def test_billing_api_refuses_oversized_and_wrong_type_files(org, settings, focus_csv):
    settings.CAPGOV_MAX_UPLOAD_MB = 1
    api = api_for(org.finance)
    big = SimpleUploadedFile("october.csv", focus_csv + b"\n" * (MIB + 10))
    response = api.post("/api/v1/imports/", {"file": big}, format="multipart")
    assert response.status_code == 413
    assert response.json()["field"] == "file"
    detail = response.json()["detail"]
    assert "larger than the 1,048,576 bytes limit for a billing export" in detail
    wrong = SimpleUploadedFile("october.pdf", PDF)
    response = api.post("/api/v1/imports/", {"file": wrong}, format="multipart")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "october.pdf (.pdf) is not a file Capgov takes as a billing export: it takes "
        "CSV, .csv.gz, Parquet or JSON lines (.jsonl, .json, .jsonl.gz). Upload the export "
        "file exactly as the cloud wrote it (FOCUS, AWS CUR, GCP BigQuery or Azure cost "
        "export); save a spreadsheet as CSV UTF-8 first.",
        "field": "file",
    }
    assert not BillingImport.objects.exists()
    assert media_files(settings) == []


def test_billing_api_still_refuses_people_without_a_cost_role_first(org):
    wrong = SimpleUploadedFile("october.pdf", PDF)
    response = api_for(org.researcher).post("/api/v1/imports/", {"file": wrong})
    assert response.status_code == 403


# --- benchmarks: page and API -------------------------------------------------------------------


def benchmark_page_post(registry, name: str, data: bytes):  # noqa: F811
    return signed_in(registry.org.researcher).post(
        f"/registry/versions/{registry.version.pk}/benchmarks/",
        {
            "file": SimpleUploadedFile(name, data),
            "protocol": registry.protocol.pk,
            "hardware_profile": registry.h100.pk,
        },
    )


def benchmark_api_post(registry, name: str, data: bytes):  # noqa: F811
    return api_for(registry.org.researcher).post(
        f"/api/v1/model-versions/{registry.version.pk}/benchmarks/",
        {"file": SimpleUploadedFile(name, data), "protocol": registry.protocol.pk},
        format="multipart",
    )


def test_benchmark_page_refuses_oversized_and_wrong_type_files(registry, monkeypatch):  # noqa: F811
    monkeypatch.setattr(registry_services, "MAX_BENCHMARK_BYTES", 100)
    response = benchmark_page_post(registry, "run.json", capgov_benchmark())
    assert response.status_code == 413
    page = response.content.decode()
    assert "larger than the 100 bytes limit for a benchmark result" in page
    assert "Upload the summary file, not the traces." in page

    monkeypatch.setattr(registry_services, "MAX_BENCHMARK_BYTES", 20 * MIB)
    response = benchmark_page_post(registry, "run.xlsx", XLSX)
    assert response.status_code == 400
    assert "run.xlsx (.xlsx) is not a file Capgov takes as a benchmark result" in (
        response.content.decode()
    )
    response = benchmark_page_post(registry, "run.json", PDF)
    assert response.status_code == 400
    assert "run.json is named .json but holds a PDF document" in response.content.decode()
    assert not EfficiencyBenchmark.objects.exists()
    assert benchmark_page_post(registry, "run.json", capgov_benchmark()).status_code == 302


def test_benchmark_api_refuses_oversized_and_wrong_type_files(registry, monkeypatch):  # noqa: F811
    monkeypatch.setattr(registry_services, "MAX_BENCHMARK_BYTES", 100)
    response = benchmark_api_post(registry, "run.json", capgov_benchmark())
    assert response.status_code == 413
    assert "larger than the 100 bytes limit for a benchmark result" in response.json()["detail"]
    monkeypatch.setattr(registry_services, "MAX_BENCHMARK_BYTES", 20 * MIB)
    response = benchmark_api_post(registry, "run.csv", b"\x7fELF\x02\x01\x01")
    assert response.status_code == 400
    assert response.json()["detail"].startswith(
        "run.csv is named .csv but holds a Linux program, not UTF-8 text."
    )
    assert not EfficiencyBenchmark.objects.exists()
    assert benchmark_api_post(registry, "run.json", capgov_benchmark()).status_code == 201


# --- SLO measurements, pool usage and OpenSLO (API) ------------------------------------------


@pytest.fixture
def slo(db):
    return ServiceLevelObjective.objects.create(
        name="ranker-latency", service="ranker", indicator="latency_p95", target=Decimal(500)
    )


def test_slo_measurement_csv_refuses_oversized_and_wrong_type_files(org, slo, monkeypatch):
    api = api_for(org.finance)
    good = b"ranker-latency,2026-10-05,412.5\n"
    monkeypatch.setattr(rows, "MAX_CSV_BYTES", 10)
    response = api.post(
        "/api/v1/slo-measurements/",
        {"file": SimpleUploadedFile("slo.csv", good)},
        format="multipart",
    )
    assert response.status_code == 413
    assert "Split it by month" in response.json()["detail"]
    monkeypatch.setattr(rows, "MAX_CSV_BYTES", 20 * MIB)
    response = api.post(
        "/api/v1/slo-measurements/",
        {"file": SimpleUploadedFile("slo.xlsx", XLSX)},
        format="multipart",
    )
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "slo.xlsx (.xlsx) is not a file Capgov takes as a CSV of daily rows" in detail
    assert not SloMeasurement.objects.exists()
    response = api.post(
        "/api/v1/slo-measurements/", {"file": SimpleUploadedFile("slo.csv", good)}, "multipart"
    )
    assert response.json() == {"stored": 1}


def test_pool_usage_csv_refuses_oversized_and_wrong_type_files(registry, monkeypatch):  # noqa: F811
    api = api_for(registry.org.finance)
    monkeypatch.setattr(rows, "MAX_CSV_BYTES", 10)
    big = SimpleUploadedFile("usage.csv", b"h100-shared,RES,2026-10-05,1\n")
    response = api.post("/api/v1/pool-usage/", {"file": big}, format="multipart")
    assert response.status_code == 413
    monkeypatch.setattr(rows, "MAX_CSV_BYTES", 20 * MIB)
    binary = SimpleUploadedFile("usage.csv", b"h100\x00\x01\x02")
    response = api.post("/api/v1/pool-usage/", {"file": binary}, format="multipart")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "usage.csv is named .csv but holds binary data, not UTF-8 text" in detail
    assert not PoolUsage.objects.exists()


def test_openslo_import_refuses_oversized_and_wrong_type_files(org, monkeypatch):
    from governance.api import views

    api = api_for(org.admin)
    monkeypatch.setattr(views, "MAX_OPENSLO_BYTES", 10)
    response = api.post(
        "/api/v1/slos/openslo/",
        {"file": SimpleUploadedFile("slos.yaml", b"apiVersion: openslo/v1\n")},
        format="multipart",
    )
    assert response.status_code == 413
    monkeypatch.setattr(views, "MAX_OPENSLO_BYTES", MIB)
    response = api.post(
        "/api/v1/slos/openslo/",
        {"file": SimpleUploadedFile("slos.json", b"{}")},
        format="multipart",
    )
    assert response.status_code == 400
    assert "it takes OpenSLO v1 YAML (.yaml, .yml)" in response.json()["detail"]
    assert not ServiceLevelObjective.objects.exists()


# --- any request over the limit ------------------------------------------------------------------


def test_a_body_over_the_json_limit_is_refused_before_it_is_read(org, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = "[" + ",".join(['{"slo": "x"}'] * 200) + "]"
    response = api_for(org.finance).post(
        "/api/v1/slo-measurements/", body, content_type="application/json"
    )
    assert response.status_code == 413
    assert "over the 1,000 bytes Capgov accepts in one request" in response.json()["detail"]


def test_a_multipart_body_over_the_upload_limit_gets_a_413_page(org, settings, focus_csv):
    settings.CAPGOV_MAX_UPLOAD_MB = 1
    huge = SimpleUploadedFile("october.csv", focus_csv + b"\n" * (3 * MIB))
    response = signed_in(org.finance).post("/costs/imports/", {"file": huge})
    assert response.status_code == 413
    page = response.content.decode()
    assert "Upload too large" in page
    assert "over the 2.0 MB Capgov accepts in one request" in page
    assert not BillingImport.objects.exists()
