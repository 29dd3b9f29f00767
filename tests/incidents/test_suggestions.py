"""Linking incidents to what came before them: suggestions, accept / dismiss, the decision's
page, cost anomalies and the incident's extra cost."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal as D

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.template.loader import render_to_string
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from costs.models import BillingImport, CostAnomaly, CostRow, Forecast, ForecastExclusion, TagSet
from governance.choices import Role
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.models import ApprovalRequest, BusinessUnit, Decision, DeploymentFreeze, User
from incidents import suggestions
from incidents.models import (
    AffectedSubject,
    ContributingFactor,
    FactorStatus,
    Incident,
    PostMortem,
    PostMortemStatus,
)
from registry.models import (
    CapacityPool,
    Endpoint,
    HardwareProfile,
    ModelVersion,
    RegisteredModel,
    RequirementWaiver,
    RetirementCase,
    RetirementStep,
    VersionTransition,
)
from tests.factories import PASSWORD, Org, OrgFactory, UserFactory

T = dt.datetime(2026, 10, 8, 12, 0, tzinfo=dt.UTC)  # the incident starts
NOW = T + dt.timedelta(days=2)
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
TIMES = "\u00d7"


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(NOW, tick=False)
    return time_machine


def signed_in(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


# --- the world ---------------------------------------------------------------------------------


@dataclass
class World:
    org: Org
    author: User
    approver: User  # a named approver of the post-mortem
    alex: User  # approved the batch job
    stranger: User
    pool: CapacityPool
    version: ModelVersion  # V, serving on E
    endpoint: Endpoint  # E
    other_version: ModelVersion
    other_endpoint: Endpoint
    deployment: VersionTransition  # V deployed at T - 3 h
    other_deployment: VersionTransition
    batch: Decision  # the approval of a 64-GPU batch job at T - 1 day
    incident: Incident
    postmortem: PostMortem


def _model(org: Org, name: str, unit: BusinessUnit, hw: HardwareProfile, version: str):
    model = RegisteredModel.objects.create(
        name=name,
        business_unit=unit,
        task="ranking",
        source="in-house",
        created_by=org.researcher,
    )
    return ModelVersion.objects.create(
        model=model,
        version=version,
        artifact_uri=f"s3://models/{name}/{version}/",
        framework="PyTorch",
        precision="int8",
        serving_runtime="vLLM 0.8",
        hardware_profile=hw,
        state="deployed",
        created_by=org.researcher,
    )


def _deploy(version: ModelVersion, by: User, at: dt.datetime) -> VersionTransition:
    return VersionTransition.objects.create(
        version=version, from_state="approved", to_state="deployed", by=by, at=at
    )


def _decision(subject, *, unit, at, by, **kwargs) -> Decision:
    fields = {
        "kind": "approval_request",
        "outcome": "approved",
        "title": "Batch inference: rescore the catalogue",
        "rationale": "Needed before the launch.",
        "decided_as": Role.APPROVER,
        **kwargs,
    }
    return Decision.objects.create(
        **fields,
        decided_by=by,
        decided_at=at,
        business_unit=unit,
        subject_type=ContentType.objects.get_for_model(subject),
        subject_id=subject.pk,
    )


@pytest.fixture
def world(db, clock) -> World:
    org = OrgFactory.build_org()
    res = org.research
    author = UserFactory(username="sam", roles=[Role.ML_ENGINEER], units=[res])
    approver = UserFactory(username="petra", roles=[Role.PLATFORM_ADMIN])
    alex = UserFactory(username="alex", first_name="Alex", last_name="Approver", roles=["approver"])
    stranger = UserFactory(username="stan", roles=[Role.ML_ENGINEER], units=[org.ads])
    h100 = HardwareProfile.objects.create(name="1 x H100 80GB", accelerator="H100")
    pool = CapacityPool.objects.create(
        code="h100", name="Shared H100 pool", provider="aws", hardware_profile=h100,
        accelerator_count=80,
    )  # fmt: skip
    version = _model(org, "ranker", res, h100, "3.0")
    endpoint = Endpoint.objects.create(
        provider="aws", account_id="1", name="ranker-prod", resource_id="arn:e",
        business_unit=res, model_version=version,
    )  # fmt: skip
    # Another model of the same unit, deployed on another endpoint: unrelated.
    other_version = _model(org, "summariser", res, h100, "1.0")
    other_endpoint = Endpoint.objects.create(
        provider="aws", account_id="1", name="summariser-prod", resource_id="arn:s",
        business_unit=res, model_version=other_version,
    )  # fmt: skip
    deployment = _deploy(version, org.researcher, T - 3 * HOUR)
    other_deployment = _deploy(other_version, org.researcher, T - 2 * HOUR)
    job = ApprovalRequest.objects.create(
        kind="batch_inference",
        title="Rescore the catalogue",
        business_unit=res,
        requested_by=org.researcher,
        estimated_cost=D("40000.00"),
        accelerator="H100",
        accelerator_count=64,
        duration_hours=D("24"),
        status="approved",
    )
    batch = _decision(
        job,
        unit=res,
        at=T - DAY,
        by=alex,
        title="Batch inference: rescore the catalogue (64 x H100)",
        evidence={
            "estimated_cost": "40000.00",
            "currency": "USD",
            "accelerator": "H100",
            "accelerator_count": 64,
            "duration_hours": "24",
            "gpu_hours": "1536",
        },
    )
    job.decision = batch
    job.save(update_fields=["decision"])
    incident = Incident.objects.create(
        title="Ranker p95 latency over 2 s",
        severity="sev2",
        incident_type="latency",
        commander=author,
        created_by=author,
        started_at=T,
    )
    AffectedSubject.objects.create(
        incident=incident,
        subject_type=ContentType.objects.get_for_model(Endpoint),
        subject_id=endpoint.pk,
    )
    pm = PostMortem.objects.create(incident=incident)
    pm.authors.set([author])
    pm.approvers.set([approver])
    return World(
        org, author, approver, alex, stranger, pool, version, endpoint, other_version,
        other_endpoint, deployment, other_deployment, batch, incident, pm,
    )  # fmt: skip


def _factors(w: World) -> dict[tuple[str, object], ContributingFactor]:
    return {
        (f.kind, f.subject): f for f in suggestions.suggestions_refresh(postmortem=w.postmortem)
    }


def _subjects(w: World, kind: str) -> list:
    return [
        f.subject for f in ContributingFactor.objects.filter(postmortem=w.postmortem, kind=kind)
    ]


# --- Done when: the deployment and the approval are suggested -----------------------------------


def test_incident_on_endpoint_suggests_its_deployment_and_the_units_approval(world):
    found = _factors(world)
    deployment = found[("deployment", world.deployment)]
    assert deployment.status == FactorStatus.SUGGESTED
    assert deployment.occurred_at == T - 3 * HOUR
    assert deployment.summary.startswith(f"ranker 3.0 deployed by {world.org.researcher} on ")
    assert "2026-10-08 09:00 UTC" in deployment.summary
    assert "ranker-prod" in deployment.summary

    batch = found[("decision", world.batch)]
    assert batch.occurred_at == T - DAY
    # Who decided, and the numbers they saw.
    assert "Alex Approver (Approver)" in batch.summary
    assert "estimated 40,000.00 USD" in batch.summary
    assert f"64 {TIMES} H100, 1,536 GPU-hours" in batch.summary
    assert batch.detail["decided_by"] == "alex"

    # Same unit, another model on another endpoint: not a contributing deployment.
    assert ("deployment", world.other_deployment) not in found
    assert _subjects(world, "deployment") == [world.deployment]


def test_opening_the_postmortem_through_the_service_suggests(world):
    from incidents import services

    world.postmortem.delete()
    pm = services.postmortem_open(incident=world.incident, by=world.author)
    kinds = set(pm.factors.values_list("kind", flat=True))
    assert {"deployment", "decision"} <= kinds


def test_window_and_units_bound_the_suggestions(world):
    org = world.org
    # Outside the 7-day window, another unit's decision, and a decision about nothing of ours.
    old = _decision(world.version, unit=org.research, at=T - 8 * DAY, by=world.alex)
    ads_job = _decision(world.version, unit=org.ads, at=T - DAY, by=world.alex, title="ADS")
    ads_job.subject_id = world.other_version.pk  # about the other model, for another unit
    ads_job.save()
    after = _decision(world.version, unit=org.research, at=T + HOUR, by=world.alex)
    about_version = _decision(
        world.version, unit=None, at=T - 2 * DAY, by=world.alex, kind="version_review"
    )
    found = {f.subject for f in suggestions.suggestions_refresh(postmortem=world.postmortem)}
    assert about_version in found  # about V itself, no unit given
    assert world.batch in found
    assert not {old, ads_job, after} & found


def test_other_version_changes_of_the_served_model_are_suggested(world):
    older = ModelVersion.objects.create(
        model=world.version.model,
        version="2.9",
        artifact_uri="s3://x",
        framework="PyTorch",
        precision="int8",
        serving_runtime="vLLM",
        hardware_profile=world.version.hardware_profile,
        created_by=world.org.researcher,
    )
    change = VersionTransition.objects.create(
        version=older, from_state="deployed", to_state="deprecated", by=world.author, at=T - HOUR
    )
    factors = _factors(world)
    assert (
        "ranker 2.9 moved from deployed to deprecated"
        in factors[("version_change", change)].summary
    )


def test_versions_assessed_on_an_affected_pool_are_matched(world):
    from registry.models import (
        BenchmarkPoint,
        BenchmarkProtocol,
        CapacityAssessment,
        EfficiencyBenchmark,
    )

    protocol = BenchmarkProtocol.objects.create(name="p", created_by=world.author)
    bench = EfficiencyBenchmark.objects.create(
        version=world.other_version, protocol=protocol, hardware_profile=world.pool.hardware_profile,  # noqa: E501
        tool="locust", tool_label="Locust", measured_at=T - 30 * DAY, file_name="b.json",
        raw_sha256="0" * 64, uploaded_by=world.author,
    )  # fmt: skip
    point = BenchmarkPoint.objects.create(benchmark=bench, position=0, label="c8")
    CapacityAssessment.objects.create(
        version=world.other_version, benchmark=bench, pool=world.pool, peak_rps=1,
        daily_requests=1, slo_metric="latency_p95_ms", slo_threshold_ms=500, headroom_pct=30,
        point=point, point_throughput_rps=1, replicas=1, accelerators=8, hourly_price=1,
        currency="USD", price_source="x", monthly_cost=1, status="approved",
        submitted_by=world.author, submitted_at=T - 20 * DAY,
    )  # fmt: skip
    assert ("deployment", world.other_deployment) not in _factors(world)
    AffectedSubject.objects.create(
        incident=world.incident,
        subject_type=ContentType.objects.get_for_model(CapacityPool),
        subject_id=world.pool.pk,
    )
    # The summariser runs on the exhausted pool: its deployment now touches the incident.
    assert ("deployment", world.other_deployment) in _factors(world)


# --- waivers, freezes, retirement -------------------------------------------------------------


def test_waiver_in_force_freeze_and_retirement_step_are_suggested(world):
    org = world.org
    waiver = RequirementWaiver.objects.create(
        version=world.version, requirement="assessment", reason="Launch first, assess after.",
        expires_at=T + 30 * DAY, status="granted", granted_by=world.approver,
        granted_at=T - 20 * DAY,
    )  # fmt: skip
    RequirementWaiver.objects.create(  # expired before the incident
        version=world.version, requirement="benchmark_age", reason="x",
        expires_at=T - DAY, status="granted", granted_by=world.approver, granted_at=T - 9 * DAY,
    )  # fmt: skip
    RequirementWaiver.objects.create(  # revoked before the incident
        version=world.version, requirement="metrics", reason="x", expires_at=T + DAY,
        status="granted", granted_by=world.approver, granted_at=T - 9 * DAY,
        revoked_at=T - HOUR,
    )  # fmt: skip
    RequirementWaiver.objects.create(  # only proposed
        version=world.version, requirement="approvals", reason="x", expires_at=T + DAY,
        granted_by=world.approver, granted_at=T - 2 * DAY,
    )  # fmt: skip
    RequirementWaiver.objects.create(  # another model
        version=world.other_version, requirement="assessment", reason="x",
        expires_at=T + DAY, status="granted", granted_by=world.approver, granted_at=T - DAY,
    )  # fmt: skip
    freeze = DeploymentFreeze.objects.create(
        business_unit=org.research, reason="Budget exceeded", origin="budget",
        started_at=T - 12 * DAY,
    )  # fmt: skip
    lifted = DeploymentFreeze.objects.create(
        business_unit=org.research, reason="Quarter close", started_at=T - 20 * DAY,
        lifted_at=T - 2 * DAY, lifted_by=world.approver, lift_reason="Closed.",
    )  # fmt: skip
    DeploymentFreeze.objects.create(  # lifted before the window
        business_unit=org.research, reason="old", started_at=T - 30 * DAY, lifted_at=T - 9 * DAY
    )
    DeploymentFreeze.objects.create(business_unit=org.ads, reason="ads", started_at=T - DAY)
    case = RetirementCase.objects.create(endpoint=world.endpoint, opened_at=T - 3 * DAY)
    step = RetirementStep.objects.create(
        case=case, at=T - 2 * DAY, kind="scale_min", dry_run=True,
        text="Would scale ranker-prod to 1 instance.",
    )  # fmt: skip
    RetirementStep.objects.create(case=case, at=T - 9 * DAY, kind="opened")  # before the window
    other_case = RetirementCase.objects.create(endpoint=world.other_endpoint, opened_at=T - DAY)
    RetirementStep.objects.create(case=other_case, at=T - DAY, kind="scale_min")

    found = _factors(world)
    assert _subjects(world, "waiver") == [waiver]
    assert "Approved capacity impact assessment" in found[("waiver", waiver)].summary
    assert set(_subjects(world, "freeze")) == {freeze, lifted}
    assert "in force when the incident started" in found[("freeze", freeze)].summary
    assert found[("freeze", lifted)].occurred_at == T - 2 * DAY
    assert "lifted by" in found[("freeze", lifted)].summary
    assert _subjects(world, "retirement") == [step]
    assert "(dry run)" in found[("retirement", step)].summary


# --- accept, dismiss, refresh ----------------------------------------------------------------


def test_refresh_is_idempotent_and_keeps_decisions(world):
    first = suggestions.suggestions_refresh(postmortem=world.postmortem)
    again = suggestions.suggestions_refresh(postmortem=world.postmortem)
    assert [f.pk for f in first] == [f.pk for f in again]

    by_subject = {f.subject: f for f in again}
    suggestions.factor_accept(
        factor=by_subject[world.batch], by=world.author, note="The job took half the pool."
    )
    suggestions.factor_dismiss(factor=by_subject[world.deployment], by=world.approver)
    case = RetirementCase.objects.create(endpoint=world.endpoint, opened_at=T - 3 * DAY)
    step = RetirementStep.objects.create(case=case, at=T - 2 * DAY, kind="notified")
    assert step in {f.subject for f in suggestions.suggestions_refresh(postmortem=world.postmortem)}

    # A narrower window: the step of two days ago goes (still merely suggested); the
    # accepted decision of a day ago and the dismissed deployment stay as decided.
    world.postmortem.window_days = 1
    world.postmortem.save()
    factors = suggestions.suggestions_refresh(postmortem=world.postmortem)
    state = {f.subject: (f.status, f.note) for f in factors}
    assert step not in state
    assert state[world.batch] == (FactorStatus.ACCEPTED, "The job took half the pool.")
    assert state[world.deployment] == (FactorStatus.DISMISSED, "")

    # Dismissed and accepted factors survive even when the record drops out of the window.
    world.postmortem.window_days = 0
    world.postmortem.save()
    state = {
        f.subject: f.status for f in suggestions.suggestions_refresh(postmortem=world.postmortem)
    }
    assert state == {world.batch: FactorStatus.ACCEPTED, world.deployment: FactorStatus.DISMISSED}


def test_dismissed_stays_dismissed_after_a_refresh(world):
    factor = _factors(world)[("deployment", world.deployment)]
    suggestions.factor_dismiss(factor=factor, by=world.author, note="Rolled back before.")
    _factors(world)
    factor.refresh_from_db()
    assert (factor.status, factor.note, factor.decided_by) == (
        FactorStatus.DISMISSED,
        "Rolled back before.",
        world.author,
    )
    assert factor.decided_at == NOW


def test_accept_and_dismiss_permissions(world):
    factor = _factors(world)[("decision", world.batch)]
    with pytest.raises(PermissionDeniedError):
        suggestions.factor_accept(factor=factor, by=world.stranger, note="x")
    with pytest.raises(PermissionDeniedError):
        suggestions.factor_dismiss(factor=factor, by=world.alex)
    with pytest.raises(DomainError, match="note"):
        suggestions.factor_accept(factor=factor, by=world.author, note="  ")
    factor.refresh_from_db()
    assert factor.status == FactorStatus.SUGGESTED

    # A named approver may decide too.
    suggestions.factor_accept(factor=factor, by=world.approver, note="Took the capacity.")
    factor.refresh_from_db()
    assert (factor.status, factor.note) == (FactorStatus.ACCEPTED, "Took the capacity.")

    world.postmortem.status = PostMortemStatus.PUBLISHED
    world.postmortem.save()
    with pytest.raises(ConflictError, match="published"):
        suggestions.factor_dismiss(factor=factor, by=world.author)


def test_accept_and_dismiss_pages(world):
    factors = _factors(world)
    decision_factor = factors[("decision", world.batch)]
    deployment_factor = factors[("deployment", world.deployment)]
    accept = reverse("incidents:factor-accept", args=[decision_factor.pk])
    dismiss = reverse("incidents:factor-dismiss", args=[deployment_factor.pk])

    assert signed_in(world.author).get(accept).status_code == 405
    assert signed_in(world.stranger).post(accept, {"note": "x"}).status_code == 403
    response = signed_in(world.author).post(accept, {"note": "Half the pool went to the job."})
    assert response.status_code == 302
    assert response["Location"].startswith(world.postmortem.get_absolute_url())
    response = signed_in(world.author).post(dismiss, {"note": "Unrelated."})
    assert response.status_code == 302
    decision_factor.refresh_from_db()
    deployment_factor.refresh_from_db()
    assert decision_factor.status == FactorStatus.ACCEPTED
    assert decision_factor.note == "Half the pool went to the job."
    assert deployment_factor.status == FactorStatus.DISMISSED
    # Without a note nothing is accepted, and the page says why.
    response = signed_in(world.author).post(
        reverse("incidents:factor-accept", args=[deployment_factor.pk]), {"note": " "}
    )
    assert response.status_code == 302
    assert "a note is needed" in str(next(iter(response.wsgi_request._messages)))
    deployment_factor.refresh_from_db()
    assert deployment_factor.status == FactorStatus.DISMISSED


def test_postmortem_page_shows_the_factors_with_their_forms(world):
    found = _factors(world)
    page = reverse("incidents:postmortem", args=[world.incident.pk])
    body = signed_in(world.author).get(page).content.decode()
    assert found[("deployment", world.deployment)].summary.split(" on ")[0] in body
    assert reverse("incidents:factor-accept", args=[found[("decision", world.batch)].pk]) in body
    # A reader who may not edit the post-mortem sees the factors, not the forms.
    body = signed_in(world.stranger).get(page).content.decode()
    assert "ranker 3.0 deployed by" in body
    assert (
        reverse("incidents:factor-accept", args=[found[("decision", world.batch)].pk]) not in body
    )


def test_deciding_on_a_suggestion_that_went_away(world):
    factor = _factors(world)[("deployment", world.deployment)]
    ContributingFactor.objects.filter(pk=factor.pk).delete()
    with pytest.raises(ConflictError, match="gone"):
        suggestions.factor_dismiss(factor=factor, by=world.author)


# --- the decision's page -----------------------------------------------------------------------


def test_accepted_decision_shows_on_the_decisions_page(world):
    page = reverse("governance:decision-detail", args=[world.batch.pk])
    body = signed_in(world.alex).get(page).content.decode()
    assert world.incident.title not in body

    factor = _factors(world)[("decision", world.batch)]
    suggestions.factor_accept(factor=factor, by=world.author, note="It took the pool's headroom.")
    assert suggestions.incidents_for(world.batch) == [(world.incident, factor)]
    assert suggestions.incidents_for(world.deployment) == []

    response = signed_in(world.alex).get(page)
    assert response.status_code == 200
    body = response.content.decode()
    assert world.incident.title in body
    assert "It took the pool&#x27;s headroom." in body
    assert f'href="{world.incident.get_absolute_url()}"' in body
    # What the page shows of the decision itself.
    assert "Alex Approver" in body
    assert "40,000.00 USD" in body
    assert "Needed before the launch." in body
    assert f'href="{reverse("governance:request-detail", args=[world.batch.subject_id])}"' in body


def test_decision_page_is_scoped_like_the_list(world):
    page = reverse("governance:decision-detail", args=[world.batch.pk])
    assert signed_in(world.org.researcher).get(page).status_code == 200  # Research's own
    assert signed_in(world.org.ads_engineer).get(page).status_code == 404
    listing = signed_in(world.alex).get(reverse("governance:decision-list")).content.decode()
    assert f'href="{page}"' in listing


# --- the factors partial --------------------------------------------------------------------


def test_factors_partial_groups_and_offers_forms(world):
    found = _factors(world)
    suggestions.factor_accept(
        factor=found[("decision", world.batch)], by=world.author, note="Took the pool."
    )
    suggestions.factor_dismiss(factor=found[("deployment", world.deployment)], by=world.author)
    request = RequestFactory().get("/")
    request.user = world.author
    html = render_to_string(
        "incidents/_factors.html",
        {"factors": suggestions.factor_list(world.postmortem)},
        request=request,
    )
    assert "Accepted (1)" in html
    assert "Dismissed (1)" in html
    assert "Took the pool." in html
    assert f'href="{reverse("governance:decision-detail", args=[world.batch.pk])}"' in html
    assert f'href="{world.version.get_absolute_url()}"' in html
    assert reverse("incidents:factor-accept", args=[found[("deployment", world.deployment)].pk])
    readonly = render_to_string(
        "incidents/_factors.html",
        {"factors": suggestions.factor_list(world.postmortem), "factors_readonly": True},
        request=request,
    )
    assert "<form" not in readonly


def test_factor_list_queries_do_not_grow(world):
    def fill(n: int) -> None:
        for i in range(n):
            t = _deploy(world.version, world.author, T - (i + 1) * 10 * dt.timedelta(minutes=1))
            d = _decision(world.version, unit=world.org.research, at=T - HOUR, by=world.alex)
            case = RetirementCase.objects.create(kind="consolidation", opened_at=T)
            s = RetirementStep.objects.create(case=case, at=T - HOUR, kind="notified")
            f = DeploymentFreeze.objects.create(
                business_unit=world.org.research, reason="r", started_at=T - HOUR
            )
            for kind, subject in (("deployment", t), ("decision", d), ("retirement", s),
                                  ("freeze", f)):  # fmt: skip
                ContributingFactor.objects.create(
                    postmortem=world.postmortem, kind=kind, subject=subject, occurred_at=T,
                    summary=str(subject)[:100],
                )  # fmt: skip

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            factors = suggestions.factor_list(world.postmortem)
            for f in factors:
                _ = (f.subject_url, str(f.subject), f.decided_by)
        return len(ctx)

    fill(1)
    count()  # content types are cached from here on, as in a running server
    small = count()
    fill(5)
    assert count() == small
    assert small <= 5  # the factors, then one query per kind of record


# --- cost anomalies ----------------------------------------------------------------------------


@pytest.fixture
def bill(db):
    imported = BillingImport.objects.create(file_name="bill.csv", file_path="bill.csv")
    tag_sets: dict[int, TagSet] = {}

    def add(unit: BusinessUnit, day: dt.date, amount: str, currency: str = "USD") -> None:
        if unit.pk not in tag_sets:
            tag_sets[unit.pk] = TagSet.objects.create(
                digest=f"ts-{unit.pk}", tags={"team": unit.code}, business_unit=unit
            )
        CostRow.objects.create(
            billing_import=imported, source="focus", provider="AWS", billing_account_id="1",
            billing_period=day.replace(day=1), usage_date=day, charge_category="Usage",
            tag_set=tag_sets[unit.pk], currency=currency, billed_cost=D(amount),
            effective_cost=D(amount), list_cost=D(amount),
        )  # fmt: skip

    return add


def _anomaly(forecast: Forecast, day: dt.date, actual: str, *, upper: str = "130") -> CostAnomaly:
    return CostAnomaly.objects.create(
        forecast=forecast, day=day, actual=D(actual), expected=D("100"), lower=D("70"),
        upper=D(upper), size=D(actual) - D(upper), direction="above", detected_at=NOW,
    )  # fmt: skip


def _forecast(**subject) -> Forecast:
    kind = next(iter(subject)).replace("business_unit", "unit")
    measure = subject.pop("measure", "cost")
    return Forecast.objects.create(
        kind=kind, measure=measure, currency="USD" if measure == "cost" else "",
        generated_at=NOW, **subject,
    )  # fmt: skip


def test_recorded_cost_anomalies_of_what_the_incident_touched_are_suggested(world):
    res = _forecast(business_unit=world.org.research)
    ads = _forecast(business_unit=world.org.ads)
    endpoint = _forecast(endpoint=world.endpoint, measure="gpu_hours")
    pool = _forecast(pool=world.pool)  # the pool is not affected
    spike = _anomaly(res, dt.date(2026, 10, 5), "240")
    busy = _anomaly(endpoint, dt.date(2026, 10, 6), "192", upper="96")
    _anomaly(ads, dt.date(2026, 10, 5), "900")  # another unit's: not suggested
    _anomaly(pool, dt.date(2026, 10, 5), "900")
    _anomaly(res, dt.date(2026, 9, 1), "500")  # before the window

    anomalies = {f.subject: f for f in _factors(world).values() if f.kind == "cost_anomaly"}
    assert set(anomalies) == {spike, busy}
    factor = anomalies[spike]
    assert factor.summary == (
        "RES — Research spent 240.00 USD on 2026-10-05, above its forecast (expected 100.00 "
        "USD, up to 130.00 USD): 110.00 USD over"
    )
    assert factor.occurred_at == dt.datetime(2026, 10, 5, tzinfo=dt.UTC)
    assert factor.detail["business_unit"] == "RES"
    assert factor.detail["forecast_id"] == res.pk
    assert factor.detail["size"] == "110.0000000000"
    assert factor.subject_url == f"/costs/forecasts/{res.pk}/#anomaly-{spike.pk}"
    assert anomalies[busy].summary.startswith(
        "ranker-prod used 192 GPU-hours on 2026-10-06, above its forecast"
    )
    # Refreshing again finds the same anomaly, and an accepted one stays accepted.
    suggestions.factor_accept(factor=factor, by=world.author, note="The batch job.")
    again = [f for f in _factors(world).values() if f.kind == "cost_anomaly"]
    assert sorted((f.pk, f.status) for f in again) == sorted(
        [(factor.pk, FactorStatus.ACCEPTED), (anomalies[busy].pk, FactorStatus.SUGGESTED)]
    )
    # Another unit's people do not read Research's spend; its own people do.
    assert not [
        f for f in suggestions.factor_list(world.postmortem, world.stranger)
        if f.kind == "cost_anomaly"
    ]  # fmt: skip
    readable = suggestions.factor_list(world.postmortem, world.author)
    assert len([f for f in readable if f.kind == "cost_anomaly"]) == 2
    visible = ContributingFactor.objects.filter(suggestions.factors_visible_q(world.stranger))
    assert not visible.filter(kind="cost_anomaly").exists()


def test_the_incident_page_leaves_its_days_out_of_forecasts(world):
    url = reverse("incidents:incident-forecast-exclude", args=[world.incident.pk])
    assert signed_in(world.stranger).post(url).status_code == 403
    client = signed_in(world.author)  # the commander
    page = client.get(world.incident.get_absolute_url()).content.decode()
    assert "Leave these days out of forecasts" in page

    response = client.post(url)
    assert response.status_code == 302
    rows = ForecastExclusion.objects.order_by("pk")
    # The endpoint and its unit, over the incident's days (started 8 Oct, unresolved: to today).
    assert {(r.business_unit, r.endpoint) for r in rows} == {
        (world.org.research, None),
        (None, world.endpoint),
    }
    assert {(r.starts_on, r.ends_on) for r in rows} == {
        (dt.date(2026, 10, 8), dt.date(2026, 10, 10))
    }
    assert {r.source for r in rows} == {f"incident:{world.incident.pk}"}
    assert all(r.created_by == world.author for r in rows)
    client.post(url)
    assert ForecastExclusion.objects.count() == 2  # the same span is stored once
    page = client.get(world.incident.get_absolute_url()).content.decode()
    assert "Left out of the forecasts of RES (08 Oct to 10 Oct 2026)" in page

    nothing = Incident.objects.create(
        title="Unscoped", severity="sev3", incident_type="latency", commander=world.author,
        created_by=world.author, started_at=T,
    )  # fmt: skip
    with pytest.raises(DomainError, match="names no business unit"):
        suggestions.incident_forecast_exclude(incident=nothing, by=world.author)


# --- the incident's cost ---------------------------------------------------------------------


def test_incident_extra_cost_is_spend_over_the_baseline(world, bill):
    res, ads = world.org.research, world.org.ads
    for i, amount in enumerate(["100", "100", "100", "100", "100", "100", "101"]):
        bill(res, dt.date(2026, 10, 1) + dt.timedelta(days=i), amount)  # Oct 1-7: 701
    bill(res, dt.date(2026, 9, 30), "5000")  # before the baseline
    bill(res, dt.date(2026, 10, 8), "350.50")
    bill(res, dt.date(2026, 10, 9), "260.25")
    bill(res, dt.date(2026, 10, 10), "9999")  # after the resolution
    bill(res, dt.date(2026, 10, 8), "10", currency="EUR")
    bill(ads, dt.date(2026, 10, 8), "7777")  # not affected
    world.incident.resolved_at = dt.datetime(2026, 10, 9, 6, 0, tzinfo=dt.UTC)
    world.incident.save()

    extra, currency, detail = suggestions.incident_extra_cost(world.incident)
    # 610.75 spent on 2 days, against 701 / 7 a day before: 610.75 - 200.2857... = 410.46
    assert (extra, currency) == (D("410.46"), "USD")
    assert detail["days"] == 2
    assert detail["spend"] == "610.75"
    assert detail["baseline"] == "200.29"
    assert detail["baseline_daily"] == "100.14"
    assert detail["other_currencies"] == ["EUR"]
    assert detail["business_units"] == ["RES"]

    # Unresolved: up to today (the pinned clock: Oct 10, whose 9,999 now counts).
    world.incident.resolved_at = None
    world.incident.save()
    extra, _, detail = suggestions.incident_extra_cost(world.incident)
    assert detail["days"] == 3
    assert extra == D("10309.32")  # 10,609.75 - 3 * 701 / 7


def test_incident_extra_cost_without_units_or_bills(world):
    assert suggestions.incident_extra_cost(world.incident) is None
    AffectedSubject.objects.all().delete()
    assert suggestions.incident_extra_cost(world.incident) is None
