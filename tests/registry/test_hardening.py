"""What an attack on the registry found, kept fixed: clear refusals, nothing half-stored."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from governance.choices import Role
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.models import BoardMembership, ReviewBoard
from registry import services
from registry.models import CostTierApproval, RegistrationRequirement
from tests.factories import UserFactory
from tests.registry.conftest import POINTS, assess, capgov_benchmark, make_deployable, upload


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def point(**metrics):
    return {"label": "c8", "concurrency": 8, "completed": 10, "metrics": metrics}


def capgov(*points, **extra) -> bytes:
    return json.dumps({"capgov_benchmark": 1, "points": list(points), **extra}).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (capgov(point(requests_per_s=1e16, latency_p95_ms=10)), "too large"),
        (capgov(point(requests_per_s=0, latency_p95_ms=10)), "served nothing"),
        (capgov(point(requests_per_s=12, latency_p95_ms=1e-12)), "below 0.000000001"),
        (
            b'{"capgov_benchmark": 1, "points": [{"label": "c", "concurrency": 1e999999999, '
            b'"metrics": {"requests_per_s": 1, "latency_p95_ms": 1}}]}',
            "concurrency",
        ),
        (
            b'{"capgov_benchmark": 1, "points": [{"label": "c", "metrics": '
            b'{"requests_per_s": 1e1000000, "latency_p95_ms": 1}}]}',
            "too large",
        ),
        (
            capgov(
                *[
                    {**point(requests_per_s=1, latency_p95_ms=1), "label": f"p{i}"}
                    for i in range(1001)
                ]
            ),
            "limit is 1,000",
        ),
    ],
)
def test_benchmark_upload_refuses_values_the_database_cannot_hold(
    registry, settings, data, message
):
    with pytest.raises(services.BenchmarkRejectedError, match=message):
        upload(registry, data)
    assert registry.version.benchmarks.count() == 0
    media = settings.MEDIA_ROOT
    assert not media.exists() or not any(media.rglob("*"))


def test_huge_exponents_in_settings_are_kept_short(registry):
    data = capgov(point(requests_per_s=12, latency_p95_ms=400), settings={"x": 1e999999})
    data = data.replace(b"Infinity", b"1e999999")
    benchmark = upload(registry, data)
    assert len(json.dumps(benchmark.run_settings)) < 100


def test_file_date_wins_over_a_conflicting_form_date(registry):
    data = capgov_benchmark(measured_at="2026-01-01T00:00:00+00:00")
    with pytest.raises(services.BenchmarkRejectedError, match="the file's own date counts"):
        upload(registry, data, measured_at=timezone.now())


def test_assessment_refuses_absurd_traffic_and_other_hardware(registry):
    benchmark = upload(registry)
    with pytest.raises(DomainError, match="more than any pool holds"):
        assess(registry, benchmark, peak_rps="10000000")
    other = upload(registry, hardware_profile=registry.a100)
    with pytest.raises(DomainError, match="the hardware it deploys on"):
        assess(registry, other, pool=None)


def test_api_bounds_answer_400(registry):
    ci = client_for(registry.org.researcher)
    vid = registry.version.pk
    response = ci.patch(f"/api/v1/model-versions/{vid}/", {"parameter_count": 2**64}, format="json")
    assert response.status_code == 400
    renamed = ci.patch(f"/api/v1/model-versions/{vid}/", {"version": "renamed"}, format="json")
    assert renamed.status_code == 200
    assert renamed.json()["version"] == "2.1-int8"
    surrogate = ci.post(
        "/api/v1/models/",
        b'{"name": "\\ud800", "business_unit": "RES", "task": "embedding", "source": "in-house"}',
        content_type="application/json",
    )
    assert surrogate.status_code == 400
    assert "surrogate" in surrogate.json()["detail"]
    benchmark = upload(registry)
    filed = ci.post(
        "/api/v1/assessments/",
        {
            "version": vid,
            "benchmark": benchmark.pk,
            "peak_rps": "100",
            "daily_requests": 10**19,
            "slo_threshold_ms": "500",
            "headroom_pct": "30",
        },
        format="json",
    )
    assert filed.status_code == 400
    assert "daily_requests" in filed.json()


def test_board_member_of_the_unit_cannot_waive_its_requirements(registry):
    dual = UserFactory(roles=[Role.BOARD_ML, Role.ML_ENGINEER], units=[registry.org.research])
    services.version_transition(version=registry.version, action="submit", by=dual)
    with pytest.raises(PermissionDeniedError, match="registered, submitted or own"):
        services.waiver_grant(
            version=registry.version,
            requirement="assessment",
            reason="mine",
            expires_at=timezone.now() + timedelta(days=5),
            by=dual,
        )


def test_waiver_needs_the_boards_quorum_when_a_board_sits(registry):
    board = ReviewBoard.objects.create(name="Board", quorum_rule="n_of_m", quorum_n=2)
    BoardMembership.objects.create(board=board, user=registry.board_infra, function="infra")
    BoardMembership.objects.create(board=board, user=registry.board_ml, function="ml")
    waiver = services.waiver_grant(
        version=registry.version,
        requirement="assessment",
        reason="Drop-in replacement",
        expires_at=timezone.now() + timedelta(days=5),
        by=registry.board_infra,
    )
    assert waiver.status == "proposed"
    assert "assessment" in [u.code for u in services.deployment_gate(registry.version).unmet]
    with pytest.raises(ConflictError, match="already before the board"):
        services.waiver_grant(
            version=registry.version,
            requirement="assessment",
            reason="again",
            expires_at=timezone.now() + timedelta(days=5),
            by=registry.board_ml,
        )
    waiver = services.waiver_vote(waiver=waiver, by=registry.board_ml, approve=True, rationale="ok")
    assert waiver.status == "granted"
    assert "assessment" not in [u.code for u in services.deployment_gate(registry.version).unmet]


def test_deployment_approvals_are_asked_for_and_bound_to_the_cost(registry):
    rule = RegistrationRequirement.objects.create(name="Costly")
    CostTierApproval.objects.create(
        requirement=rule, min_monthly_cost=Decimal(10000), role=Role.APPROVER
    )
    finance_approver = UserFactory(roles=[Role.FINANCE, Role.APPROVER])
    make_deployable(registry)
    with pytest.raises(DomainError, match="does not ask for Finance"):
        services.deployment_approve(
            version=registry.version, by=finance_approver, role=Role.FINANCE, rationale="x"
        )
    services.deployment_approve(
        version=registry.version, by=registry.approver, role=Role.APPROVER, rationale="ok"
    )
    with pytest.raises(ConflictError, match="already given for this cost"):
        services.deployment_approve(
            version=registry.version, by=registry.approver, role=Role.APPROVER, rationale="ok"
        )
    assert services.deployment_gate(registry.version).open
    # A new assessment is a new cost: the old approval no longer counts.
    assess(registry, registry.version.benchmarks.get(), peak_rps="200")
    codes = [u.code for u in services.deployment_gate(registry.version).unmet]
    assert codes == ["assessment", "approvals"]


def test_submitter_with_the_approver_role_cannot_approve_the_deployment(registry):
    rule = RegistrationRequirement.objects.create(name="Costly")
    CostTierApproval.objects.create(requirement=rule, min_monthly_cost=0, role=Role.APPROVER)
    submitter = UserFactory(roles=[Role.ML_ENGINEER, Role.APPROVER], units=[registry.org.research])
    services.version_transition(version=registry.version, action="submit", by=submitter)
    assess(registry, upload(registry))
    with pytest.raises(PermissionDeniedError, match="registered or submitted"):
        services.deployment_approve(
            version=registry.version, by=submitter, role=Role.APPROVER, rationale="x"
        )


def test_role_is_checked_before_state(registry):
    client = client_for(registry.org.finance)
    response = client.post(f"/api/v1/model-versions/{registry.version.pk}/deploy/")
    assert response.status_code == 403


def test_superseded_protocol_is_named_by_the_gate(registry):
    upload(registry)
    newer = services.protocol_create(
        by=registry.board_infra,
        name="Online serving",
        workload={"input_tokens": {"distribution": "fixed", "value": 512}},
        concurrency_levels=[8],
        required_metrics=["latency_p95_ms"],
    )
    services.protocol_approve(protocol=newer, by=registry.board_ml, rationale="v2")
    [unmet] = [u for u in services.deployment_gate(registry.version).unmet if u.code == "benchmark"]
    assert "Online serving v1" in unmet.message
    assert "re-run under the approved one" in unmet.message


def test_api_upload_size_checked_before_reading(registry, monkeypatch):
    monkeypatch.setattr(services, "MAX_BENCHMARK_BYTES", 10)
    response = client_for(registry.org.researcher).post(
        f"/api/v1/model-versions/{registry.version.pk}/benchmarks/",
        {
            "file": SimpleUploadedFile("b.json", capgov_benchmark(POINTS)),
            "protocol": registry.protocol.pk,
        },
        format="multipart",
    )
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]


def test_owner_asks_the_approvers_a_cost_tier_needs(
    registry, client, django_capture_on_commit_callbacks
):
    from django.core import mail
    from django.urls import reverse

    from tests.factories import PASSWORD

    rule = RegistrationRequirement.objects.create(name="Costly")
    CostTierApproval.objects.create(
        requirement=rule, min_monthly_cost=Decimal(10000), role=Role.APPROVER
    )
    make_deployable(registry)
    mail.outbox.clear()
    client.login(username=registry.org.researcher.username, password=PASSWORD)
    page = client.get(registry.version.get_absolute_url()).content.decode()
    assert "Ask the approvers by e-mail" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("registry:deployment-approvers-ask", args=[registry.version.pk])
        )
    assert response.status_code == 302
    [message] = mail.outbox
    assert message.to == [registry.approver.email]
    assert "32,923.00 USD" in message.body
    assert registry.version.get_absolute_url() in message.body
    services.deployment_approve(
        version=registry.version, by=registry.approver, role=Role.APPROVER, rationale="ok"
    )
    with pytest.raises(ConflictError, match="does not ask"):
        services.deployment_approvers_ask(version=registry.version, by=registry.org.researcher)


def test_the_page_offers_only_what_the_services_allow(registry, client):
    from tests.factories import PASSWORD

    both = UserFactory(
        username="both", roles=[Role.ML_ENGINEER, Role.BOARD_ML], units=[registry.org.research]
    )
    services.version_transition(version=registry.version, action="submit", by=both)
    client.login(username="both", password=PASSWORD)
    page = client.get(registry.version.get_absolute_url()).content.decode()
    assert 'value="approve"' not in page  # they submitted it
    assert "Grant a waiver" not in page  # they work in its unit
    client.login(username=registry.board_ml.username, password=PASSWORD)
    page = client.get(registry.version.get_absolute_url()).content.decode()
    assert 'value="approve"' in page
    assert "Grant a waiver" in page
