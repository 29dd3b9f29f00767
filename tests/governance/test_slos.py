"""SLO definitions round-trip through OpenSLO YAML."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from governance.exceptions import DomainError, PermissionDeniedError
from governance.models import ServiceLevelObjective
from governance.services.slos import slos_export, slos_import

OPENSLO = """\
apiVersion: openslo/v1
kind: SLO
metadata:
  name: ranker-availability
  displayName: Ranker availability
  labels:
    capgov/provider: plat
spec:
  description: Ranker answers.
  service: ranker-endpoint
  indicator:
    metadata: {name: ranker-availability-sli}
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: prometheus, spec: {query: ok}}}
        total: {metricSource: {type: prometheus, spec: {query: all}}}
  timeWindow: [{duration: 30d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{displayName: three nines, target: 0.999}]
---
apiVersion: openslo/v1
kind: Service
metadata: {name: ranker-endpoint}
spec: {description: not an SLO, ignored}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: ranker-latency}
spec:
  service: ranker-endpoint
  indicator:
    metadata: {name: ranker-latency-sli}
    spec:
      thresholdMetric: {metricSource: {type: prometheus, spec: {query: p95}}}
  timeWindow: [{duration: 7d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{op: lte, value: 500, target: 0.95}]
"""


@pytest.fixture
def plat(db):
    from tests.factories import BusinessUnitFactory

    return BusinessUnitFactory(code="PLAT", name="Platform")


def test_slos_import_reads_availability_and_latency(plat):
    assert slos_import(text=OPENSLO) == (2, 0)
    availability = ServiceLevelObjective.objects.get(name="ranker-availability")
    assert (availability.indicator, availability.target) == ("availability", Decimal("99.9"))
    assert availability.provider == plat
    assert availability.window_days == 30
    latency = ServiceLevelObjective.objects.get(name="ranker-latency")
    assert (latency.indicator, latency.target, latency.window_days) == (
        "latency_p95",
        Decimal(500),
        7,
    )
    assert slos_import(text=OPENSLO) == (0, 2)


def test_slos_export_round_trips(plat):
    slos_import(text=OPENSLO)
    exported = slos_export(ServiceLevelObjective.objects.all())
    ServiceLevelObjective.objects.all().delete()
    assert slos_import(text=exported) == (2, 0)
    assert ServiceLevelObjective.objects.get(name="ranker-availability").target == Decimal("99.9")
    assert "capgov/provider: PLAT" in exported


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("apiVersion: openslo/v1\nkind: SLO\nmetadata: {name: x}\nspec: {}\n", "exactly one"),
        ("a: [b\n", "Not valid YAML"),
        ("apiVersion: openslo/v2\nkind: SLO\nmetadata: {name: x}\n", "apiVersion"),
        (OPENSLO.replace("target: 0.95", "target: 0.99"), "target: 0.95"),
        (OPENSLO.replace("plat", "nowhere"), "not a business unit"),
        (OPENSLO.replace("duration: 30d", "duration: 1w"), "whole days"),
    ],
)
def test_slos_import_refuses_bad_files_and_keeps_nothing(plat, bad, message):
    with pytest.raises(DomainError, match=message):
        slos_import(text=bad)
    assert not ServiceLevelObjective.objects.exists()


def test_slos_import_is_for_platform_admins(org):
    with pytest.raises(PermissionDeniedError):
        slos_import(text=OPENSLO, by=org.finance)


def test_slos_command_imports_and_exports(plat, tmp_path, capsys):
    source = tmp_path / "slos.yaml"
    source.write_text(OPENSLO)
    call_command("slos", "import", str(source))
    call_command("slos", "export")
    assert "ranker-latency" in capsys.readouterr().out
    source.write_text(OPENSLO.replace("duration: 7d", "duration: 1h"))
    with pytest.raises(CommandError, match="whole days"):
        call_command("slos", "import", str(source))


def test_slos_api_lists_exports_and_imports(org, plat):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from rest_framework.test import APIClient

    admin, finance = APIClient(), APIClient()
    admin.force_authenticate(org.admin)
    finance.force_authenticate(org.finance)
    upload = SimpleUploadedFile("slos.yaml", OPENSLO.encode(), content_type="application/yaml")
    assert finance.post("/api/v1/slos/openslo/", {"file": upload}).status_code == 403
    upload.seek(0)
    response = admin.post("/api/v1/slos/openslo/", {"file": upload})
    assert response.json() == {"created": 2, "updated": 0}
    listed = finance.get("/api/v1/slos/?indicator=availability").json()["results"]
    assert [s["name"] for s in listed] == ["ranker-availability"]
    assert listed[0]["target"] == "99.9000"
    exported = finance.get("/api/v1/slos/openslo/")
    assert exported["Content-Type"].startswith("application/yaml")
    assert b"ranker-latency" in exported.content
    bad = SimpleUploadedFile("x.yaml", b"a: [b\n")
    assert admin.post("/api/v1/slos/openslo/", {"file": bad}).status_code == 400
