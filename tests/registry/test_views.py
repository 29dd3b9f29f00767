"""The registry's pages: who sees what, what each form answers, and query counts."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from governance.choices import Role
from registry import services
from registry.choices import AssessmentStatus, LifecycleState, ProtocolStatus
from registry.models import (
    BenchmarkProtocol,
    CapacityAssessment,
    CostTierApproval,
    EfficiencyBenchmark,
    ModelVersion,
    RegisteredModel,
    RegistrationRequirement,
)
from tests.conftest import SHARED_DATA
from tests.factories import PASSWORD, UserFactory
from tests.registry.conftest import assess, capgov_benchmark, make_deployable, upload

BENCHMARK_SAMPLES = SHARED_DATA / "benchmarks"
NO_P95 = [
    {"concurrency": c, "requests_per_s": rps, "latency_p95_ms": 0, "latency_p99_ms": p99}
    for c, rps, p99 in ((4, 6.5, 260), (8, 12, 610))
]


def no_p95_file() -> bytes:
    """A Capgov file whose points report p50 and p99 but not p95."""
    import json

    body = json.loads(capgov_benchmark(NO_P95))
    for point in body["points"]:
        del point["metrics"]["latency_p95_ms"]
    return json.dumps(body).encode()


@pytest.fixture
def signed_in(client):
    def sign_in(user):
        client.logout()
        assert client.login(username=user.username, password=PASSWORD)
        return client

    return sign_in


def url(name: str, *args) -> str:
    return reverse(f"registry:{name}", args=args)


def text(response) -> str:
    return response.content.decode()


# --- pages render for the people allowed to read them --------------------------------------


def test_every_registry_page_renders_for_the_owner(registry, signed_in):
    benchmark = upload(registry)
    assessment = assess(registry, benchmark)
    client = signed_in(registry.org.researcher)
    pages = [
        url("model-list"),
        url("model-create"),
        url("model-detail", registry.model.pk),
        url("version-create", registry.model.pk),
        url("version-detail", registry.version.pk),
        url("benchmark-detail", benchmark.pk),
        url("assessment-detail", assessment.pk),
        url("model-compare", registry.model.pk),
        url("protocol-list"),
        url("protocol-detail", registry.protocol.pk),
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        assert "breadcrumb" in text(response), page


def test_board_pages_render_for_a_board_member(registry, signed_in):
    services.version_transition(
        version=registry.version, action="submit", by=registry.org.researcher
    )
    assessment = assess(registry, upload(registry))
    client = signed_in(registry.board_infra)
    for page in (
        url("review-queue"),
        url("protocol-create"),
        url("version-detail", registry.version.pk),
        url("assessment-detail", assessment.pk),
    ):
        assert client.get(page).status_code == 200, page


def test_model_list_shows_versions_newest_state_and_the_register_button(registry, signed_in):
    page = text(signed_in(registry.org.researcher).get(url("model-list")))
    assert "ranker" in page
    assert "2.1-int8" in page
    assert "Draft" in page
    assert "Register a model" in page
    # Finance reads the registry but does not register models.
    assert "Register a model" not in text(signed_in(registry.org.finance).get(url("model-list")))


def test_model_list_filters_and_says_when_nothing_matches(registry, signed_in):
    client = signed_in(registry.org.researcher)
    assert "ranker" in text(client.get(url("model-list"), {"task": "ranking", "q": "rank"}))
    page = text(client.get(url("model-list"), {"task": "vision"}))
    assert "No models match these filters" in page


def test_model_list_empty_state_says_what_to_do(org, signed_in):
    page = text(signed_in(org.researcher).get(url("model-list")))
    assert "No models registered yet" in page
    assert "register a model" in page


def test_version_page_empty_states_say_what_to_do(registry, signed_in):
    page = text(signed_in(registry.org.researcher).get(url("version-detail", registry.version.pk)))
    assert "No benchmarks yet — upload a vLLM, Triton, GenAI-Perf or Capgov JSON result" in page
    assert "No assessment yet" in page


# --- scoping ----------------------------------------------------------------------------------


def test_another_units_engineer_gets_404_on_research_pages(registry, signed_in):
    benchmark = upload(registry)
    assessment = assess(registry, benchmark)
    client = signed_in(registry.org.ads_engineer)
    for page in (
        url("model-detail", registry.model.pk),
        url("version-detail", registry.version.pk),
        url("model-compare", registry.model.pk),
        url("benchmark-detail", benchmark.pk),
        url("benchmark-raw", benchmark.pk),
        url("assessment-detail", assessment.pk),
    ):
        assert client.get(page).status_code == 404, page
    response = client.post(url("version-transition", registry.version.pk), {"action": "submit"})
    assert response.status_code == 404
    assert "ranker" not in text(client.get(url("model-list")))


def test_finance_reads_the_version_but_sees_no_owner_or_board_buttons(registry, signed_in):
    upload(registry)
    response = signed_in(registry.org.finance).get(url("version-detail", registry.version.pk))
    assert response.status_code == 200
    page = text(response)
    assert "2.1-int8" in page
    assert "Submit for review" not in page
    assert "Upload a benchmark result" not in page
    assert "File a capacity impact assessment" not in page
    assert "Grant a waiver" not in page
    assert url("version-transition", registry.version.pk) not in page


def test_finance_posting_a_move_gets_the_services_refusal(registry, signed_in):
    response = signed_in(registry.org.finance).post(
        url("version-transition", registry.version.pk), {"action": "submit"}
    )
    assert response.status_code == 403
    assert "Only ML engineers of Research" in text(response)
    registry.version.refresh_from_db()
    assert registry.version.state == LifecycleState.DRAFT


def test_review_queue_is_for_the_board_only(registry, signed_in):
    assert signed_in(registry.org.researcher).get(url("review-queue")).status_code == 403
    assert signed_in(registry.board_ml).get(url("review-queue")).status_code == 200


def test_review_queue_lists_versions_and_assessments_with_numbers(registry, signed_in):
    services.version_transition(
        version=registry.version, action="submit", by=registry.org.researcher
    )
    assess(registry, upload(registry))
    page = text(signed_in(registry.board_infra).get(url("review-queue")))
    assert "ranker 2.1-int8" in page
    assert "Assessment" in page
    assert "11 replicas" in page
    assert "32,923.00 USD" in page
    assert "13.75 % of Shared H100 pool" in page
    assert "The version is waiting for the review board, which must approve it." in page


def test_protocol_create_is_for_the_board_or_admins(registry, signed_in):
    assert signed_in(registry.org.researcher).get(url("protocol-create")).status_code == 403


def test_writes_need_post(registry, signed_in):
    client = signed_in(registry.org.researcher)
    for page in (
        url("version-transition", registry.version.pk),
        url("benchmark-upload", registry.version.pk),
        url("assessment-create", registry.version.pk),
        url("waiver-create", registry.version.pk),
        url("deployment-approve", registry.version.pk),
        url("protocol-approve", registry.protocol.pk),
    ):
        assert client.get(page).status_code == 405, page


# --- models and versions ----------------------------------------------------------------------


def test_register_a_model_and_a_version_through_the_forms(registry, signed_in):
    client = signed_in(registry.org.researcher)
    form = text(client.get(url("model-create")))
    assert "Research" in form
    assert "Ads Ranking" not in form  # only the units rhea works in
    response = client.post(
        url("model-create"),
        {
            "name": "summariser",
            "business_unit": registry.org.research.pk,
            "task": "text-generation",
            "source": "in-house",
            "risk_tier": "high",
        },
    )
    model = RegisteredModel.objects.get(name="summariser")
    assert response.status_code == 302
    assert response.url == url("model-detail", model.pk)
    response = client.post(
        url("version-create", model.pk),
        {
            "version": "1.0-fp16",
            "artifact_uri": "s3://models/summariser/1.0/",
            "framework": "PyTorch",
            "precision": "fp16",
            "serving_runtime": "vLLM 0.8",
            "hardware_profile": registry.h100.pk,
        },
    )
    version = ModelVersion.objects.get(model=model)
    assert response.url == url("version-detail", version.pk)
    page = text(client.get(response.url))
    assert "is registered as a draft" in page
    assert "Registered." in page  # the first history row


def test_register_shows_the_services_message(registry, signed_in):
    response = signed_in(registry.org.researcher).post(
        url("model-create"),
        {
            "name": "Ranker",
            "business_unit": registry.org.research.pk,
            "task": "ranking",
            "source": "in-house",
            "risk_tier": "low",
        },
    )
    assert response.status_code == 409
    assert "A model named &#x27;Ranker&#x27; is already registered." in text(response)


def test_version_create_is_for_owners(registry, signed_in):
    assert (
        signed_in(registry.org.finance).get(url("version-create", registry.model.pk)).status_code
        == 403
    )


def test_model_detail_lists_versions_with_best_throughput_and_cost(registry, signed_in):
    upload(registry)
    page = text(signed_in(registry.org.researcher).get(url("model-detail", registry.model.pk)))
    assert "15.2" in page  # the highest throughput of the benchmark
    assert "0.0749 USD" in page  # 4.10 / (15.2 x 3.6)
    assert "Add version" in page


# --- transitions and the gate --------------------------------------------------------------------


def test_transition_refuses_an_illegal_move_with_the_services_message(registry, signed_in):
    response = signed_in(registry.org.researcher).post(
        url("version-transition", registry.version.pk), {"action": "deploy"}
    )
    assert response.status_code == 409
    assert "The gate lists what is missing" in text(response)


def test_only_the_moves_that_apply_are_offered(registry, signed_in):
    page = text(signed_in(registry.org.researcher).get(url("version-detail", registry.version.pk)))
    assert 'value="submit"' in page
    assert 'value="deploy"' not in page
    assert 'value="approve"' not in page
    services.version_transition(
        version=registry.version, action="submit", by=registry.org.researcher
    )
    board_page = text(signed_in(registry.board_ml).get(url("version-detail", registry.version.pk)))
    assert 'value="approve"' in board_page
    assert 'value="withdraw"' not in board_page


def test_submit_through_the_page_redirects_with_a_message(registry, signed_in):
    client = signed_in(registry.org.researcher)
    response = client.post(
        url("version-transition", registry.version.pk), {"action": "submit", "comment": "Ready."}
    )
    assert response.status_code == 302
    page = text(client.get(response.url))
    assert "now Submitted" in page
    assert "Ready." in page


def test_board_approve_needs_a_rationale(registry, signed_in):
    services.version_transition(
        version=registry.version, action="submit", by=registry.org.researcher
    )
    response = signed_in(registry.board_ml).post(
        url("version-transition", registry.version.pk), {"action": "approve", "comment": ""}
    )
    assert response.status_code == 400
    assert "Say why you approve it" in text(response)


def test_deploy_with_the_gate_closed_shows_the_unmet_list(registry, signed_in):
    services.version_transition(
        version=registry.version, action="submit", by=registry.org.researcher
    )
    upload(registry)
    services.version_transition(
        version=registry.version, action="approve", by=registry.board_ml, comment="Fine."
    )
    client = signed_in(registry.org.researcher)
    page = text(client.get(url("version-detail", registry.version.pk)))
    assert "Not ready to deploy" in page
    response = client.post(url("version-transition", registry.version.pk), {"action": "deploy"})
    assert response.status_code == 409
    page = text(response)
    assert "This version cannot deploy yet" in page
    assert "No capacity impact assessment has been filed." in page
    registry.version.refresh_from_db()
    assert registry.version.state == LifecycleState.APPROVED


def test_a_deployable_version_says_ready_and_deploys(registry, signed_in):
    make_deployable(registry)
    client = signed_in(registry.org.researcher)
    page = text(client.get(url("version-detail", registry.version.pk)))
    assert "Ready to deploy" in page
    assert f"/api/v1/model-versions/{registry.version.pk}/gate/" in page
    response = client.post(url("version-transition", registry.version.pk), {"action": "deploy"})
    assert response.status_code == 302
    page = text(client.get(response.url))
    assert "now Deployed" in page
    for step in ("Draft → Submitted", "Submitted → Approved", "Approved → Deployed"):
        assert step in page


# --- benchmarks -----------------------------------------------------------------------------------


def _upload_post(client, registry, data: bytes, name: str = "bench.json", **extra):
    return client.post(
        url("benchmark-upload", registry.version.pk),
        {
            "file": SimpleUploadedFile(name, data),
            "protocol": registry.protocol.pk,
            "hardware_profile": registry.h100.pk,
            **extra,
        },
    )


def test_upload_through_the_page_shows_points_and_costs(registry, signed_in):
    client = signed_in(registry.org.researcher)
    response = _upload_post(client, registry, capgov_benchmark(), peak_memory_gb="61.5")
    assert response.status_code == 302
    assert response.url.endswith("#benchmarks")
    page = text(client.get(response.url))
    assert "bench.json imported" in page
    assert "concurrency 8" in page
    assert "0.0949 USD" in page  # 4.10 / (12 x 3.6) per 1k requests at 12 req/s
    assert "61.5" in page
    assert EfficiencyBenchmark.objects.filter(version=registry.version).count() == 1


def test_upload_form_lists_the_missing_metrics_next_to_the_file(registry, signed_in):
    response = _upload_post(signed_in(registry.org.researcher), registry, no_p95_file())
    assert response.status_code == 400
    page = text(response)
    assert "lacks metrics that Online serving v1 requires" in page
    assert "Missing metrics the protocol requires" in page
    assert "<code>latency_p95_ms</code>" in page
    assert "End-to-end request latency, p95" in page
    assert not EfficiencyBenchmark.objects.exists()


def test_upload_of_a_real_vllm_file_without_p95_lists_it(registry, signed_in):
    sample = (
        BENCHMARK_SAMPLES / "vllm_benchmark_serving_v0.5-era_lambdalabs_llama3.1-8b-fp8_h100.json"
    )
    if not sample.exists():
        pytest.skip(f"shared benchmark samples not found at {BENCHMARK_SAMPLES}")
    response = _upload_post(
        signed_in(registry.org.researcher), registry, sample.read_bytes(), name=sample.name
    )
    assert response.status_code == 400
    assert "<code>latency_p95_ms</code>" in text(response)


def test_upload_refuses_a_draft_protocol_in_the_form(registry, signed_in):
    draft = services.protocol_create(
        by=registry.board_infra,
        name="Batch",
        workload={"input_tokens": {"distribution": "fixed", "value": 128}},
        concurrency_levels=[1],
        required_metrics=["requests_per_s"],
    )
    client = signed_in(registry.org.researcher)
    assert "Batch v1" not in text(client.get(url("version-detail", registry.version.pk)))
    response = client.post(
        url("benchmark-upload", registry.version.pk),
        {
            "file": SimpleUploadedFile("b.json", capgov_benchmark()),
            "protocol": draft.pk,
            "hardware_profile": registry.h100.pk,
        },
    )
    assert response.status_code == 400
    assert "Select a valid choice" in text(response)


def test_benchmark_detail_shows_every_metric(registry, signed_in):
    benchmark = upload(registry)
    page = text(signed_in(registry.org.researcher).get(url("benchmark-detail", benchmark.pk)))
    assert "End-to-end request latency, median (p50)" in page
    assert "Peak accelerator memory used" in page
    assert "Capgov" in page or benchmark.tool_label in page


def test_raw_file_downloads_as_an_attachment(registry, signed_in):
    data = capgov_benchmark()
    benchmark = upload(registry, data)
    response = signed_in(registry.board_infra).get(url("benchmark-raw", benchmark.pk))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert "bench.json" in response["Content-Disposition"]
    assert b"".join(response.streaming_content) == data


# --- assessments, decisions, waivers, approvals ---------------------------------------------------


def test_file_an_assessment_through_the_page(registry, signed_in):
    benchmark = upload(registry)
    client = signed_in(registry.org.researcher)
    response = client.post(
        url("assessment-create", registry.version.pk),
        {
            "benchmark": benchmark.pk,
            "pool": registry.pool.pk,
            "peak_rps": "100",
            "daily_requests": "4000000",
            "slo_metric": "latency_p95_ms",
            "slo_threshold_ms": "500",
            "headroom_pct": "30",
        },
    )
    assert response.status_code == 302
    page = text(client.get(response.url))
    assert "Assessment filed: 11 replicas, 11 accelerators" in page
    assert "32,923.00 USD" in page
    assert "13.75 %" in page


def test_assessment_that_no_point_meets_shows_why(registry, signed_in):
    benchmark = upload(registry)
    response = signed_in(registry.org.researcher).post(
        url("assessment-create", registry.version.pk),
        {
            "benchmark": benchmark.pk,
            "peak_rps": "100",
            "daily_requests": "1000",
            "slo_metric": "latency_p95_ms",
            "slo_threshold_ms": "100",
            "headroom_pct": "30",
        },
    )
    assert response.status_code == 400
    assert "No benchmarked point meets latency_p95_ms" in text(response)


def test_board_decides_an_assessment_and_the_owner_cannot(registry, signed_in):
    assessment = assess(registry, upload(registry))
    owner = signed_in(registry.org.researcher)
    refused = owner.post(
        url("assessment-decide", assessment.pk), {"decision": "approve", "rationale": "Mine."}
    )
    assert refused.status_code == 403
    assert "Only members of the capacity review board" in text(refused)
    board = signed_in(registry.board_infra)
    response = board.post(
        url("assessment-decide", assessment.pk),
        {"decision": "approve", "rationale": "Fits the pool.", "alternatives": "FP16 on A100."},
    )
    assert response.status_code == 302
    assessment.refresh_from_db()
    assert assessment.status == AssessmentStatus.APPROVED
    page = text(board.get(response.url))
    assert "Fits the pool." in page
    assert "FP16 on A100." in page


def test_board_grants_a_waiver_and_the_gate_relies_on_it(registry, signed_in):
    services.version_transition(
        version=registry.version, action="submit", by=registry.org.researcher
    )
    upload(registry)
    services.version_transition(
        version=registry.version, action="approve", by=registry.board_ml, comment="Fine."
    )
    board = signed_in(registry.board_infra)
    expires = (timezone.now() + timedelta(days=14)).strftime("%Y-%m-%dT%H:%M")
    response = board.post(
        url("waiver-create", registry.version.pk),
        {"requirement": "assessment", "reason": "Pilot at 1 % traffic.", "expires_at": expires},
    )
    assert response.status_code == 302
    page = text(board.get(response.url))
    assert "Ready to deploy" in page
    assert "Relying on waivers" in page
    assert "Pilot at 1 % traffic." in page


def test_waiver_refused_for_a_past_date(registry, signed_in):
    response = signed_in(registry.board_infra).post(
        url("waiver-create", registry.version.pk),
        {"requirement": "benchmark", "reason": "x", "expires_at": "2001-01-01T00:00"},
    )
    assert response.status_code == 400
    assert "A waiver must expire in the future." in text(response)


def test_cost_tier_approval_through_the_page(registry, signed_in):
    requirement = RegistrationRequirement.objects.create(name="Costly models")
    CostTierApproval.objects.create(
        requirement=requirement, min_monthly_cost=Decimal("10000"), role=Role.APPROVER
    )
    make_deployable(registry)
    owner_page = text(
        signed_in(registry.org.researcher).get(url("version-detail", registry.version.pk))
    )
    assert "Needs deployment approval from: Approver" in owner_page
    assert "Approve the deployment" not in owner_page
    client = signed_in(registry.approver)
    page = text(client.get(url("version-detail", registry.version.pk)))
    assert "Approve the deployment (cost tier)" in page
    response = client.post(
        url("deployment-approve", registry.version.pk),
        {"role": Role.APPROVER, "rationale": "Within the Q3 budget."},
    )
    assert response.status_code == 302
    page = text(client.get(response.url))
    assert "Ready to deploy" in page
    assert "Within the Q3 budget." in page


# --- comparison and protocols -------------------------------------------------------------------


def test_compare_versions_side_by_side_with_charts(registry, signed_in):
    upload(registry)
    fp16 = services.version_create(
        by=registry.org.researcher,
        model=registry.model,
        version="2.0-fp16",
        artifact_uri="s3://models/ranker/2.0/",
        framework="PyTorch",
        precision="fp16",
        serving_runtime="vLLM 0.8",
        hardware_profile=registry.h100,
    )
    upload(
        registry,
        capgov_benchmark(
            [{"concurrency": 8, "requests_per_s": 7, "latency_p95_ms": 450, "latency_p99_ms": 600}]
        ),
        version=fp16,
    )
    client = signed_in(registry.board_ml)
    response = client.get(
        url("model-compare", registry.model.pk),
        {"versions": [registry.version.pk, fp16.pk]},
    )
    assert response.status_code == 200
    page = text(response)
    assert "2.0-fp16" in page
    assert "2.1-int8" in page
    assert 'data-chart="compare-throughput"' in page
    assert 'id="compare-cost-USD"' in page
    assert "Throughput (req/s)" in page
    assert "<script>" not in page.replace('<script src="', "")  # no inline scripts
    only = text(client.get(url("model-compare", registry.model.pk), {"versions": [fp16.pk]}))
    assert "2.1-int8</a>" not in only


def test_protocol_create_and_approve_through_the_pages(registry, signed_in):
    client = signed_in(registry.org.admin)
    response = client.post(
        url("protocol-create"),
        {
            "name": "Embedding batch",
            "workload": '{"input_tokens": {"distribution": "fixed", "value": 256}}',
            "concurrency_levels": "1, 4, 16",
            "warmup_s": "30",
            "measurement_s": "120",
            "required_metrics": ["requests_per_s", "latency_p99_ms"],
        },
    )
    assert response.status_code == 302
    protocol = BenchmarkProtocol.objects.get(name="Embedding batch")
    assert protocol.concurrency_levels == [1, 4, 16]
    assert protocol.status == ProtocolStatus.DRAFT
    board = signed_in(registry.board_infra)
    page = text(board.get(url("protocol-detail", protocol.pk)))
    assert "End-to-end request latency, p99" in page
    response = board.post(url("protocol-approve", protocol.pk), {"rationale": "Standard."})
    assert response.status_code == 302
    protocol.refresh_from_db()
    assert protocol.status == ProtocolStatus.APPROVED


def test_protocol_form_explains_bad_json(registry, signed_in):
    response = signed_in(registry.board_infra).post(
        url("protocol-create"),
        {
            "name": "Broken",
            "workload": "{input_tokens: 3}",
            "concurrency_levels": "4, eight",
            "warmup_s": "30",
            "measurement_s": "120",
            "required_metrics": ["requests_per_s"],
        },
    )
    assert response.status_code == 400
    page = text(response)
    assert "Not valid JSON" in page
    assert "Whole numbers separated by commas" in page


def test_protocol_approve_is_for_the_board(registry, signed_in):
    draft = services.protocol_create(
        by=registry.org.admin,
        name="Batch",
        workload={"input_tokens": {"distribution": "fixed", "value": 128}},
        concurrency_levels=[1],
        required_metrics=["requests_per_s"],
    )
    response = signed_in(registry.org.admin).post(
        url("protocol-approve", draft.pk), {"rationale": "Looks fine."}
    )
    assert response.status_code == 403
    assert "Only members of the capacity review board can approve" in text(response)


# --- query counts -------------------------------------------------------------------------------


def _populate(registry, *, models: int, versions: int, start: int = 0) -> ModelVersion:
    """``models`` models of ``versions`` versions each, submitted, benchmarked and assessed."""
    owner = registry.org.researcher
    last = None
    for m in range(start, start + models):
        model = services.model_register(
            by=owner,
            name=f"model-{m}",
            business_unit=registry.org.research,
            task="ranking",
            source="in-house",
            risk_tier="medium",
        )
        for v in range(versions):
            version = services.version_create(
                by=owner,
                model=model,
                version=f"{v}.0",
                artifact_uri=f"s3://m/{m}/{v}/",
                framework="PyTorch",
                precision="int8",
                serving_runtime="vLLM",
                hardware_profile=registry.h100,
            )
            services.version_transition(version=version, action="submit", by=owner)
            benchmark = upload(registry, version=version)
            assess(registry, benchmark, version=version)
            last = version
    # The sample version gets more of everything its page lists.
    for _ in range(2):
        assess(registry, upload(registry, version=last), version=last)
    services.waiver_grant(
        version=last,
        requirement="benchmark_age",
        reason="Re-run next week.",
        expires_at=timezone.now() + timedelta(days=7),
        by=registry.board_infra,
    )
    for n in range(models):
        services.protocol_create(
            by=registry.board_infra,
            name=f"Protocol {start + n}",
            workload={"input_tokens": {"distribution": "fixed", "value": 64}},
            concurrency_levels=[1, 2],
            required_metrics=["requests_per_s"],
        )
    return last


def _queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(path).status_code == 200
    return len(ctx.captured_queries)


# page -> (path for a sample version, who looks, the most queries it may take)
PAGES = {
    "model-list": (lambda version: url("model-list"), "owner", 7),
    "model-detail": (lambda version: url("model-detail", version.model_id), "owner", 9),
    "version-detail (owner)": (lambda version: url("version-detail", version.pk), "owner", 28),
    "version-detail (board)": (lambda version: url("version-detail", version.pk), "board", 21),
    "review-queue": (lambda version: url("review-queue"), "board", 19),
    "protocol-list": (lambda version: url("protocol-list"), "owner", 5),
}


def _viewer(registry, who: str):
    return registry.org.researcher if who == "owner" else registry.board_infra


@pytest.mark.parametrize("page", list(PAGES))
def test_pages_have_no_n_plus_one(registry, signed_in, page, django_assert_max_num_queries):
    """5 models x 3 versions, each benchmarked and assessed: a fixed number of queries."""
    path_for, who, bound = PAGES[page]
    version = _populate(registry, models=5, versions=3)
    client = signed_in(_viewer(registry, who))
    with django_assert_max_num_queries(bound):
        assert client.get(path_for(version)).status_code == 200


def test_more_rows_do_not_change_the_query_count(registry, signed_in):
    """The same pages with one model of one version, then with 5 x 3 more: the same count."""
    first = _populate(registry, models=1, versions=1)

    def counts(version) -> dict[str, int]:
        result = {}
        for page, (path_for, who, _) in PAGES.items():
            client = signed_in(_viewer(registry, who))
            result[page] = _queries(client, path_for(version))
        return result

    before = counts(first)
    last = _populate(registry, models=5, versions=3, start=1)
    assert counts(last) == before


def test_assessment_status_and_superseded_rows_show(registry, signed_in):
    benchmark = upload(registry)
    assess(registry, benchmark)
    assess(registry, benchmark, peak_rps="50")
    assert CapacityAssessment.objects.filter(status=AssessmentStatus.SUPERSEDED).count() == 1
    page = text(signed_in(registry.org.researcher).get(url("version-detail", registry.version.pk)))
    assert "Superseded" in page
    assert "Waiting for the board" in page


def test_an_admin_registers_for_any_unit(registry, signed_in):
    page = text(signed_in(registry.org.admin).get(url("model-create")))
    assert "Ads Ranking" in page
    assert "Research" in page


def test_a_person_without_roles_cannot_open_the_model_form(db, signed_in):
    nobody = UserFactory(username="nora")
    assert signed_in(nobody).get(url("model-create")).status_code == 403


def test_model_list_is_paginated(registry, signed_in):
    for n in range(30):
        services.model_register(
            by=registry.org.researcher,
            name=f"m-{n:02d}",
            business_unit=registry.org.research,
            task="embedding",
            source="in-house",
            risk_tier="low",
        )
    client = signed_in(registry.org.researcher)
    first = text(client.get(url("model-list"), {"task": "embedding"}))
    assert "Page 1 of 2" in first
    assert "m-00" in first
    second = text(client.get(url("model-list"), {"task": "embedding", "page": 2}))
    assert "m-29" in second
    assert "task=embedding" in second  # the page links keep the filter


def test_raw_file_gone_from_storage_is_a_404(registry, signed_in):
    benchmark = upload(registry)
    benchmark.raw_file.delete(save=False)
    response = signed_in(registry.org.researcher).get(url("benchmark-raw", benchmark.pk))
    assert response.status_code == 404


def test_a_real_genai_perf_export_imports_through_the_page(registry, signed_in):
    sample = BENCHMARK_SAMPLES / "genai_perf_profile_export_genai_perf_gpt-oss-20b_v1.json"
    if not sample.exists():
        pytest.skip(f"shared benchmark samples not found at {BENCHMARK_SAMPLES}")
    client = signed_in(registry.org.researcher)
    response = _upload_post(client, registry, sample.read_bytes(), name=sample.name)
    assert response.status_code == 302, text(response)
    benchmark = EfficiencyBenchmark.objects.get(version=registry.version)
    page = text(client.get(url("benchmark-detail", benchmark.pk)))
    assert "Time to first token" in page
    assert sample.name in page
