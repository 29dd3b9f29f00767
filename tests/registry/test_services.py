from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from governance.choices import DecisionKind, Role
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.models import Decision
from governance.services import freeze_lift, freeze_start
from registry import services
from registry.models import CostTierApproval, RegistrationRequirement
from tests.factories import UserFactory
from tests.registry.conftest import POINTS, assess, capgov_benchmark, make_deployable, upload


def codes(verdict):
    return [u.code for u in verdict.unmet]


def test_version_transition_refuses_an_illegal_move_with_the_reason(registry):
    with pytest.raises(ConflictError, match="still a draft: submit it"):
        services.version_transition(
            version=registry.version, action="deploy", by=registry.org.researcher
        )


def test_version_transition_keeps_who_when_from_to_and_why(registry):
    services.version_transition(
        version=registry.version, action="submit", by=registry.org.researcher, comment="Ready."
    )
    services.version_transition(
        version=registry.version, action="start_review", by=registry.board_ml
    )
    history = list(
        registry.version.transitions.values_list(
            "from_state", "to_state", "by__username", "comment"
        )
    )
    assert history == [
        ("", "draft", "rhea", "Registered."),
        ("draft", "submitted", "rhea", "Ready."),
        ("submitted", "under_review", "mark", ""),
    ]


def test_version_submit_refused_to_an_engineer_of_another_unit(registry):
    with pytest.raises(PermissionDeniedError, match="Only ML engineers of Research"):
        services.version_transition(
            version=registry.version, action="submit", by=registry.org.ads_engineer
        )


def test_version_approve_only_by_the_board_and_with_a_rationale(registry):
    services.version_transition(
        version=registry.version, action="submit", by=registry.org.researcher
    )
    with pytest.raises(PermissionDeniedError, match="review board"):
        services.version_transition(
            version=registry.version, action="approve", by=registry.org.admin, comment="ok"
        )
    with pytest.raises(DomainError, match="rationale"):
        services.version_transition(
            version=registry.version, action="approve", by=registry.board_ml
        )
    version = services.version_transition(
        version=registry.version, action="approve", by=registry.board_ml, comment="Fits."
    )
    assert version.state == "approved"
    decision = Decision.objects.get(kind=DecisionKind.VERSION_REVIEW)
    assert (decision.decided_by, decision.decided_as, decision.rationale) == (
        registry.board_ml,
        Role.BOARD_ML,
        "Fits.",
    )
    assert decision.subject == version
    assert "unmet" in decision.evidence["gate"]


def test_board_member_cannot_review_a_version_they_submitted(registry):
    both = UserFactory(roles=[Role.ML_ENGINEER, Role.BOARD_ML], units=[registry.org.research])
    services.version_transition(version=registry.version, action="submit", by=both)
    with pytest.raises(PermissionDeniedError, match="Nobody reviews"):
        services.version_transition(
            version=registry.version, action="approve", by=both, comment="x"
        )


def test_version_update_only_while_draft(registry):
    services.version_update(version=registry.version, by=registry.org.researcher, notes="AWQ")
    services.version_transition(
        version=registry.version, action="submit", by=registry.org.researcher
    )
    with pytest.raises(ConflictError, match="Only a draft can be edited"):
        services.version_update(version=registry.version, by=registry.org.researcher, notes="x")


def test_gate_without_a_benchmark_lists_every_unmet_requirement(registry):
    verdict = services.deployment_gate(registry.version)
    assert codes(verdict) == ["state", "benchmark", "assessment"]
    assert not verdict.open


def test_gate_opens_after_a_benchmark_an_approved_assessment_and_approval(registry):
    make_deployable(registry)
    assert services.deployment_gate(registry.version).open
    version = services.version_transition(
        version=registry.version, action="deploy", by=registry.org.researcher
    )
    assert version.state == "deployed"


def test_deploy_refused_by_the_gate_carries_the_unmet_list(registry):
    services.version_transition(
        version=registry.version, action="submit", by=registry.org.researcher
    )
    services.version_transition(
        version=registry.version, action="approve", by=registry.board_ml, comment="ok"
    )
    with pytest.raises(services.GateClosedError) as refused:
        services.version_transition(
            version=registry.version, action="deploy", by=registry.org.researcher
        )
    assert [u["code"] for u in refused.value.payload()["unmet"]] == ["benchmark", "assessment"]
    registry.version.refresh_from_db()
    assert registry.version.state == "approved"


def test_gate_requires_a_benchmark_on_the_version_hardware(registry):
    upload(registry, hardware_profile=registry.a100)
    [unmet] = [u for u in services.deployment_gate(registry.version).unmet if u.code == "benchmark"]
    assert "No benchmark on 1 x H100 80GB" in unmet.message
    assert "1 x A100 40GB" in unmet.message


def test_gate_stale_benchmark_and_mandatory_metrics(registry):
    RegistrationRequirement.objects.create(
        name="Research rules",
        business_unit=registry.org.research,
        mandatory_metrics=["requests_per_s", "latency_p95_ms", "peak_memory_gb", "cold_start_s"],
        max_benchmark_age_days=30,
    )
    upload(registry, measured_at=timezone.now() - timedelta(days=45))
    verdict = services.deployment_gate(registry.version)
    assert "benchmark_age" in codes(verdict)
    [metrics] = [u for u in verdict.unmet if u.code == "metrics"]
    assert "cold start time" in metrics.message
    assert verdict.policy == "Research rules"


def test_requirement_for_picks_the_most_specific_rule(registry):
    RegistrationRequirement.objects.create(name="Everyone", assessment_required=True)
    RegistrationRequirement.objects.create(
        name="Low risk", risk_tier="low", assessment_required=False
    )
    RegistrationRequirement.objects.create(name="Research", business_unit=registry.org.research)
    RegistrationRequirement.objects.create(
        name="Research medium", business_unit=registry.org.research, risk_tier="medium"
    )
    assert services.requirement_for(registry.version).name == "Research medium"
    registry.model.risk_tier = "low"
    assert services.requirement_for(registry.version).name == "Research"


def test_cost_tier_asks_for_approvals_by_role(registry):
    rule = RegistrationRequirement.objects.create(name="Costly")
    CostTierApproval.objects.create(
        requirement=rule, min_monthly_cost=Decimal(10000), role=Role.APPROVER
    )
    CostTierApproval.objects.create(
        requirement=rule, min_monthly_cost=Decimal(50000), role=Role.PLATFORM_ADMIN
    )
    make_deployable(registry)
    [unmet] = services.deployment_gate(registry.version).unmet
    assert unmet.code == "approvals"
    assert unmet.message == (
        "Needs deployment approval from: Approver (monthly cost 32,923.00 USD ≥ 10,000.00 USD)."
    )
    with pytest.raises(PermissionDeniedError):
        services.deployment_approve(
            version=registry.version, by=registry.board_ml, role=Role.APPROVER, rationale="x"
        )
    services.deployment_approve(
        version=registry.version, by=registry.approver, role=Role.APPROVER, rationale="Budgeted."
    )
    assert services.deployment_gate(registry.version).open


def test_freeze_closes_the_gate_and_lifting_it_reopens(registry):
    make_deployable(registry)
    freeze = freeze_start(business_unit=registry.org.research, reason="Budget 100 % spent")
    [unmet] = services.deployment_gate(registry.version).unmet
    assert unmet.code == "freeze"
    assert unmet.message.startswith("Research is under a deployment freeze since ")
    assert unmet.message.endswith("Budget 100 % spent")
    with pytest.raises(services.GateClosedError):
        services.version_transition(
            version=registry.version, action="deploy", by=registry.org.researcher
        )
    freeze_lift(freeze=freeze, by=registry.org.admin, reason="Exception approved")
    assert services.deployment_gate(registry.version).open


def test_waiver_counts_until_it_expires_and_the_gate_names_it(registry):
    services.version_transition(
        version=registry.version, action="submit", by=registry.org.researcher
    )
    services.version_transition(
        version=registry.version, action="approve", by=registry.board_ml, comment="ok"
    )
    upload(registry)
    services.waiver_grant(
        version=registry.version,
        requirement="assessment",
        reason="Replaces 2.0 one for one",
        expires_at=timezone.now() + timedelta(days=7),
        by=registry.board_infra,
    )
    verdict = services.deployment_gate(registry.version)
    assert verdict.open
    assert [w.requirement for w in verdict.waivers_used] == ["assessment"]
    assert verdict.as_dict()["waivers_used"][0]["reason"] == "Replaces 2.0 one for one"
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        assert codes(services.deployment_gate(registry.version)) == ["assessment"]


def test_waiver_rules(registry):
    soon = timezone.now() + timedelta(days=3)
    with pytest.raises(PermissionDeniedError):
        services.waiver_grant(
            version=registry.version,
            requirement="assessment",
            reason="x",
            expires_at=soon,
            by=registry.org.researcher,
        )
    with pytest.raises(DomainError, match="cannot be waived"):
        services.waiver_grant(
            version=registry.version,
            requirement="freeze",
            reason="x",
            expires_at=soon,
            by=registry.board_ml,
        )
    with pytest.raises(DomainError, match="at most 180 days"):
        services.waiver_grant(
            version=registry.version,
            requirement="assessment",
            reason="x",
            expires_at=timezone.now() + timedelta(days=400),
            by=registry.board_ml,
        )


def test_benchmark_upload_refuses_a_file_without_a_required_metric(registry):
    data = capgov_benchmark([{**p, "latency_p95_ms": None} for p in POINTS])
    with pytest.raises(services.BenchmarkRejectedError) as refused:
        upload(registry, data)
    assert refused.value.missing == ["latency_p95_ms"]
    assert registry.version.benchmarks.count() == 0


def test_benchmark_upload_keeps_the_raw_file_and_points(registry):
    data = capgov_benchmark()
    benchmark = upload(registry, data)
    assert benchmark.raw_file.read() == data
    assert [p.requests_per_s for p in benchmark.points.all()] == [
        Decimal("6.5"),
        Decimal(12),
        Decimal("15.2"),
    ]
    assert benchmark.tool == "capgov"


def test_benchmark_upload_under_a_draft_protocol_is_refused(registry):
    draft = services.protocol_create(
        by=registry.board_ml,
        name="Online serving",
        workload={"output_tokens": {"distribution": "fixed", "value": 256}},
        concurrency_levels=[1],
        required_metrics=[],
    )
    assert draft.revision == 2
    with pytest.raises(services.BenchmarkRejectedError, match="draft"):
        upload(registry, protocol=draft)


def test_benchmark_upload_supplements_add_cold_start(registry):
    benchmark = upload(registry, cold_start_s=Decimal("42.5"))
    assert {p.cold_start_s for p in benchmark.points.all()} == {Decimal("42.5")}


def test_assessment_file_computes_the_worked_example(registry):
    assessment = assess(registry, upload(registry))
    assert (assessment.replicas, assessment.accelerators) == (11, 11)
    assert assessment.point_throughput_rps == Decimal(12)
    assert assessment.monthly_cost == Decimal("32923.00")
    assert assessment.currency == "USD"
    assert assessment.pool_share_pct == Decimal("13.75")
    assert assessment.status == "submitted"


def test_assessment_refiled_supersedes_the_earlier_one(registry):
    benchmark = upload(registry)
    first = assess(registry, benchmark)
    second = assess(registry, benchmark, peak_rps="50")
    first.refresh_from_db()
    assert first.status == "superseded"
    assert second.replicas == 6


def test_assessment_without_a_price_says_where_to_add_one(registry):
    registry.h100.prices.all().delete()
    with pytest.raises(DomainError, match="No hourly price for 1 x H100 80GB at AWS"):
        assess(registry, upload(registry))


def test_assessment_decided_only_by_the_board_not_the_filer(registry):
    assessment = assess(registry, upload(registry))
    with pytest.raises(PermissionDeniedError, match="review board"):
        services.assessment_decide(
            assessment=assessment, by=registry.org.admin, approve=True, rationale="x"
        )
    decision = services.assessment_decide(
        assessment=assessment,
        by=registry.board_infra,
        approve=False,
        rationale="Too big",
        alternatives="INT4",
    ).decision
    assert decision.evidence["replicas"] == 11
    assert decision.evidence["monthly_cost"] == "32923.00"
    with pytest.raises(ConflictError, match="already rejected"):
        services.assessment_decide(
            assessment=assessment, by=registry.board_ml, approve=True, rationale="x"
        )
    assert (
        "rejected the capacity impact assessment"
        in services.deployment_gate(registry.version).unmet[-1].message
    )


def test_model_register_only_for_own_unit(registry):
    with pytest.raises(PermissionDeniedError):
        services.model_register(
            by=registry.org.ads_engineer,
            name="spam",
            business_unit=registry.org.research,
            task="classification",
            source="in-house",
            risk_tier="low",
        )
    with pytest.raises(DomainError, match="Name the vendor"):
        services.model_register(
            by=registry.org.researcher,
            name="llama",
            business_unit=registry.org.research,
            task="text-generation",
            source="open-weights",
            risk_tier="low",
        )
    with pytest.raises(ConflictError, match="already registered"):
        services.model_register(
            by=registry.org.researcher,
            name="Ranker",
            business_unit=registry.org.research,
            task="ranking",
            source="in-house",
            risk_tier="low",
        )


def test_gate_providers_from_higher_apps_add_requirements(registry):
    from registry import gate

    def provider(versions, now):
        return {
            v.pk: [gate.Unmet("incidents.prevent", "Open prevent action item PM-7")]
            for v in versions
        }

    gate.register_requirement_provider(provider)
    try:
        assert "incidents.prevent" in codes(services.deployment_gate(registry.version))
    finally:
        gate._providers.remove(provider)


def test_deployment_gates_query_count_does_not_grow(registry, django_assert_max_num_queries):
    from registry.models import ModelVersion

    for n in range(5):
        services.version_create(
            by=registry.org.researcher,
            model=registry.model,
            version=f"3.{n}",
            artifact_uri="s3://x",
            framework="PyTorch",
            precision="fp16",
            serving_runtime="vLLM",
            hardware_profile=registry.h100,
        )
    versions = list(ModelVersion.objects.select_related("model", "hardware_profile"))
    with django_assert_max_num_queries(8):
        verdicts = services.deployment_gates(versions)
    assert len(verdicts) == 6
