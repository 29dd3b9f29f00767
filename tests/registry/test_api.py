"""The registry API as a CI pipeline and a review board use it."""

from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from governance.choices import Role
from registry import services
from tests.factories import UserFactory
from tests.registry.conftest import POINTS, capgov_benchmark


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def bench_file(data: bytes | None = None, name: str = "bench.json") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data or capgov_benchmark(), content_type="application/json")


def test_ci_journey_409_until_benchmarked_assessed_and_approved(registry):
    ci = client_for(registry.org.researcher)
    board = client_for(registry.board_infra)
    vid = registry.version.pk

    refused = ci.post(f"/api/v1/model-versions/{vid}/deploy/")
    assert refused.status_code == 409
    assert "still a draft" in refused.json()["detail"]
    assert [u["code"] for u in refused.json()["unmet"]] == ["state", "benchmark", "assessment"]

    assert ci.post(f"/api/v1/model-versions/{vid}/submit/", {"comment": "CI"}).status_code == 200
    approved = board.post(f"/api/v1/model-versions/{vid}/approve/", {"comment": "Looks right"})
    assert approved.json()["state"] == "approved"

    refused = ci.post(f"/api/v1/model-versions/{vid}/deploy/")
    assert refused.status_code == 409
    body = refused.json()
    assert body["deployable"] is False
    assert [u["code"] for u in body["unmet"]] == ["benchmark", "assessment"]

    uploaded = ci.post(
        f"/api/v1/model-versions/{vid}/benchmarks/",
        {"file": bench_file(), "protocol": registry.protocol.pk},
        format="multipart",
    )
    assert uploaded.status_code == 201, uploaded.json()
    benchmark = uploaded.json()
    assert benchmark["tool"] == "capgov"
    assert [p["requests_per_s"] for p in benchmark["points"]][1] == "12.000000000"

    filed = ci.post(
        "/api/v1/assessments/",
        {
            "version": vid,
            "benchmark": benchmark["id"],
            "pool": "h100-shared",
            "peak_rps": "100",
            "daily_requests": 4000000,
            "slo_metric": "latency_p95_ms",
            "slo_threshold_ms": "500",
            "headroom_pct": "30",
        },
        format="json",
    )
    assert filed.status_code == 201, filed.json()
    assessment = filed.json()
    assert (assessment["replicas"], assessment["accelerators"]) == (11, 11)
    assert Decimal(assessment["monthly_cost"]) == Decimal("32923.00")
    assert assessment["pool_share_pct"] == "13.75"

    gate = ci.get(f"/api/v1/model-versions/{vid}/gate/").json()
    assert [u["code"] for u in gate["unmet"]] == ["assessment"]

    assert (
        ci.post(
            f"/api/v1/assessments/{assessment['id']}/approve/", {"rationale": "mine"}
        ).status_code
        == 403
    )
    decided = board.post(f"/api/v1/assessments/{assessment['id']}/approve/", {"rationale": "Fits"})
    assert decided.json()["status"] == "approved"
    assert decided.json()["decision"]["by"] == str(registry.board_infra)

    assert ci.get(f"/api/v1/model-versions/{vid}/gate/").json()["deployable"] is True
    deployed = ci.post(f"/api/v1/model-versions/{vid}/deploy/")
    assert deployed.status_code == 200
    assert deployed.json()["state"] == "deployed"

    history = ci.get(f"/api/v1/model-versions/{vid}/history/").json()
    assert [h["to_state"] for h in history] == ["draft", "submitted", "approved", "deployed"]


def test_benchmark_upload_missing_metrics_answer_400_with_the_list(registry):
    data = capgov_benchmark([{**p, "latency_p95_ms": None} for p in POINTS])
    response = client_for(registry.org.researcher).post(
        f"/api/v1/model-versions/{registry.version.pk}/benchmarks/",
        {"file": bench_file(data), "protocol": registry.protocol.pk},
        format="multipart",
    )
    assert response.status_code == 400
    assert response.json()["missing"] == ["latency_p95_ms"]
    assert registry.version.benchmarks.count() == 0


def test_engineer_of_another_unit_cannot_see_or_touch_the_version(registry):
    other = client_for(registry.org.ads_engineer)
    vid = registry.version.pk
    assert other.get(f"/api/v1/model-versions/{vid}/").status_code == 404
    assert other.post(f"/api/v1/model-versions/{vid}/submit/").status_code == 404
    assert other.post(f"/api/v1/model-versions/{vid}/deploy/").status_code == 404
    assert other.get("/api/v1/model-versions/").json()["count"] == 0


def test_engineer_who_sees_the_unit_without_the_role_cannot_submit(registry):
    product = UserFactory(roles=[Role.BOARD_PRODUCT], units=[registry.org.research])
    response = client_for(product).post(f"/api/v1/model-versions/{registry.version.pk}/submit/")
    assert response.status_code == 403


def test_only_the_board_approves_a_version(registry):
    services.version_transition(
        version=registry.version, action="submit", by=registry.org.researcher
    )
    admin = client_for(registry.org.admin)
    response = admin.post(
        f"/api/v1/model-versions/{registry.version.pk}/approve/", {"comment": "x"}
    )
    assert response.status_code == 403
    assert "review board" in response.json()["detail"]


def test_api_requires_authentication(registry):
    assert APIClient().get(f"/api/v1/model-versions/{registry.version.pk}/gate/").status_code in (
        401,
        403,
    )


def test_register_model_and_version_over_the_api(registry):
    ci = client_for(registry.org.researcher)
    model = ci.post(
        "/api/v1/models/",
        {"name": "embedder", "business_unit": "RES", "task": "embedding", "source": "in-house"},
        format="json",
    )
    assert model.status_code == 201, model.json()
    version = ci.post(
        "/api/v1/model-versions/",
        {
            "model": model.json()["id"],
            "version": "1.0",
            "artifact_uri": "s3://models/embedder/1.0",
            "framework": "ONNX",
            "precision": "fp16",
            "serving_runtime": "Triton 24.05",
            "hardware_profile": registry.h100.pk,
        },
        format="json",
    )
    assert version.status_code == 201, version.json()
    assert version.json()["state"] == "draft"
    bad = ci.post(
        "/api/v1/models/",
        {"name": "x", "business_unit": "ADS", "task": "embedding", "source": "in-house"},
        format="json",
    )
    assert bad.status_code == 403


def test_waiver_over_the_api(registry):
    response = client_for(registry.board_ml).post(
        "/api/v1/waivers/",
        {
            "version": registry.version.pk,
            "requirement": "assessment",
            "reason": "Drop-in replacement",
            "expires_at": "2099-01-01T00:00:00Z",
        },
        format="json",
    )
    assert response.status_code == 400
    assert "at most 180 days" in response.json()["detail"]


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/models/",
        "/api/v1/model-versions/",
        "/api/v1/benchmarks/",
        "/api/v1/assessments/",
        "/api/v1/benchmark-protocols/",
        "/api/v1/hardware-profiles/",
        "/api/v1/waivers/",
    ],
)
def test_registry_lists_have_no_n_plus_one(registry, url, django_assert_max_num_queries):
    from tests.registry.conftest import assess, upload

    for n in range(4):
        version = services.version_create(
            by=registry.org.researcher,
            model=registry.model,
            version=f"3.{n}",
            artifact_uri="s3://x",
            framework="PyTorch",
            precision="fp16",
            serving_runtime="vLLM",
            hardware_profile=registry.h100,
        )
        assess(registry, upload(registry, version=version), version=version)
    client = client_for(registry.board_ml)
    with django_assert_max_num_queries(8):
        response = client.get(url)
    assert response.status_code == 200


def test_openapi_schema_documents_the_gate_and_deploy(registry):
    client = client_for(registry.org.researcher)
    schema = client.get("/api/schema/?format=json").json()
    paths = schema["paths"]
    assert "409" in paths["/api/v1/model-versions/{id}/deploy/"]["post"]["responses"]
    assert "get" in paths["/api/v1/model-versions/{id}/gate/"]
    assert "/api/v1/model-versions/{id}/benchmarks/" in paths
