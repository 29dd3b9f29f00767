"""What may have contributed to an incident: the records of the days before it that touch what
it affected, suggested to the post-mortem's authors, who accept or dismiss each one.

What an incident touches (its *scope*):

- endpoints: the affected endpoints;
- models: the affected models, the models of affected versions, and the models served by the
  affected endpoints;
- versions: the affected versions, every version of those models, and the versions with a
  (not rejected) capacity assessment on an affected pool;
- pools: the affected shared pools;
- business units: the incident's business units, affected units, and the units of the
  affected endpoints and models.

What is suggested, from the window ``[started_at - window_days, started_at]``:

========================  ===================================================================
kind                      matched by
========================  ===================================================================
``deployment``            a version of the scope moved to *deployed* (its VersionTransition)
``version_change``        any other lifecycle move of a version of the scope
``decision``              a Decision of an affected unit, or about a record of the scope (an
                          endpoint, model, version, pool, unit), about an assessment, waiver
                          or approval request of a version of the scope, or about a capacity
                          conflict over an affected pool — approvals of costly jobs, board
                          reviews, budget exceptions, freezes and their lifting
``waiver``                a waiver granted to a version of the scope and in force at the start
                          (granted before it, not yet expired nor revoked then)
``freeze``                a deployment freeze on an affected unit started or lifted in the
                          window, or in force at the start
``retirement``            a step (notification, decision, dry run, cloud action) of a
                          retirement case on an affected endpoint or model
``cost_anomaly``          a recorded cost anomaly (``costs.CostAnomaly``: a day outside its
                          forecast's prediction interval) of a forecast of an affected unit,
                          pool or endpoint, its cost or its GPU-hours
========================  ===================================================================

Business units alone do not match deployments: a deployment of another model on another
endpoint of the same unit is unrelated to this one. Decisions, freezes and cost anomalies are
about units, so a unit matches them.

Every factor is identified by its record; a ``cost_anomaly`` factor's record is the anomaly,
and its link goes to the forecast's page. Factors stored before anomalies were recorded
(no record; the unit, day and currency in ``detail["key"]``) keep their reading rule.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.contrib.contenttypes.prefetch import GenericPrefetch
from django.db import models, transaction
from django.db.models import Q, Sum
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from costs.forecasts import anomaly_list, exclusions_record
from costs.models import (
    AnomalyDirection,
    CostAnomaly,
    CostRow,
    Forecast,
    ForecastExclusion,
    Measure,
)
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.extensions import RelatedItem
from governance.models import (
    ApprovalRequest,
    BusinessUnit,
    CapacityConflict,
    Decision,
    DeploymentFreeze,
    User,
)
from governance.money import money_format, money_round
from governance.selectors import decision_list, manages_costs, visible_unit_ids
from incidents.models import (
    ContributingFactor,
    FactorStatus,
    Incident,
    PostMortem,
    PostMortemStatus,
    TimelineEvent,
)
from registry.choices import AssessmentStatus, LifecycleState, WaiverStatus
from registry.models import (
    CapacityAssessment,
    CapacityPool,
    Endpoint,
    ModelVersion,
    RegisteredModel,
    RequirementWaiver,
    RetirementStep,
    VersionTransition,
)

SUMMARY_LIMIT = 500
TIMES = "\u00d7"  # the multiplication sign, as in "64 x H100"
NOTE_LIMIT = 5000

# The incident's cost (``incident_extra_cost``).
COST_BASELINE_DAYS = 7


# --- the scope of an incident -----------------------------------------------------------------


@dataclass
class Scope:
    """The ids of what an incident touches (see the module's docstring)."""

    endpoint_ids: set[int] = field(default_factory=set)
    model_ids: set[int] = field(default_factory=set)
    version_ids: set[int] = field(default_factory=set)
    pool_ids: set[int] = field(default_factory=set)
    unit_ids: set[int] = field(default_factory=set)
    endpoint_names: dict[int, list[str]] = field(default_factory=dict)  # per version id


def _ctype(model: type[models.Model]) -> ContentType:
    return ContentType.objects.get_for_model(model)


def incident_scope(incident: Incident) -> Scope:
    """What the incident touches: endpoints, models, versions, pools, business units."""
    scope = Scope(unit_ids=set(incident.business_units.values_list("pk", flat=True)))
    by_type: dict[int, set[int]] = defaultdict(set)
    for type_id, subject_id in incident.affected.values_list("subject_type_id", "subject_id"):
        by_type[type_id].add(subject_id)
    types = ContentType.objects.get_for_models(
        Endpoint, RegisteredModel, ModelVersion, CapacityPool, BusinessUnit
    )
    scope.unit_ids |= by_type[types[BusinessUnit].pk]
    scope.pool_ids |= by_type[types[CapacityPool].pk]

    for pk, unit_id, version_id, model_id, model_unit_id in Endpoint.objects.filter(
        pk__in=by_type[types[Endpoint].pk]
    ).values_list(
        "pk",
        "business_unit_id",
        "model_version_id",
        "model_version__model_id",
        "model_version__model__business_unit_id",
    ):
        scope.endpoint_ids.add(pk)
        if unit_id or model_unit_id:
            scope.unit_ids.add(unit_id or model_unit_id)
        if version_id:
            scope.version_ids.add(version_id)
            scope.model_ids.add(model_id)

    for model_id, unit_id in RegisteredModel.objects.filter(
        pk__in=by_type[types[RegisteredModel].pk]
    ).values_list("pk", "business_unit_id"):
        scope.model_ids.add(model_id)
        scope.unit_ids.add(unit_id)
    for version_id, model_id, unit_id in ModelVersion.objects.filter(
        pk__in=by_type[types[ModelVersion].pk]
    ).values_list("pk", "model_id", "model__business_unit_id"):
        scope.version_ids.add(version_id)
        scope.model_ids.add(model_id)
        scope.unit_ids.add(unit_id)

    scope.version_ids |= set(
        ModelVersion.objects.filter(model_id__in=scope.model_ids).values_list("pk", flat=True)
    )
    if scope.pool_ids:
        scope.version_ids |= set(
            CapacityAssessment.objects.filter(pool_id__in=scope.pool_ids)
            .exclude(status=AssessmentStatus.REJECTED)
            .values_list("version_id", flat=True)
        )
    names: dict[int, list[str]] = defaultdict(list)
    for version_id, name in (
        Endpoint.objects.filter(model_version_id__in=scope.version_ids)
        .order_by("name")
        .values_list("model_version_id", "name")
    ):
        names[version_id].append(name)
    scope.endpoint_names = dict(names)
    return scope


# --- candidates ---------------------------------------------------------------------------------


@dataclass
class Candidate:
    """A record found for a post-mortem, before it is stored as a factor."""

    kind: str
    subject: models.Model
    occurred_at: dt.datetime
    summary: str
    detail: dict[str, Any]

    @property
    def key(self) -> tuple:
        return (self.kind, _ctype(type(self.subject)).pk, self.subject.pk)


def _factor_key(factor: ContributingFactor) -> tuple:
    if factor.subject_type_id is None:  # stored before cost anomalies were recorded
        return (factor.kind, None, (factor.detail or {}).get("key"))
    return (factor.kind, factor.subject_type_id, factor.subject_id)


def _utc(value: dt.datetime) -> str:
    return f"{value.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"


def _person(user: User | None) -> str:
    return str(user) if user is not None else "Capgov (by rule)"


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def _transitions(scope: Scope, since: dt.datetime, until: dt.datetime) -> list[Candidate]:
    found = []
    rows = VersionTransition.objects.filter(
        version_id__in=scope.version_ids, at__gte=since, at__lte=until
    ).select_related("version__model", "by")
    for t in rows:
        on = scope.endpoint_names.get(t.version_id, [])
        where = f" (serving {', '.join(on)})" if on else ""
        if t.to_state == LifecycleState.DEPLOYED:
            kind = "deployment"
            text = f"{t.version} deployed by {_person(t.by)} on {_utc(t.at)}{where}"
        else:
            kind = "version_change"
            before = LifecycleState(t.from_state).label.lower() if t.from_state else "new"
            after = LifecycleState(t.to_state).label.lower()
            text = f"{t.version} moved from {before} to {after} by {_person(t.by)} on {_utc(t.at)}"
        if t.comment:
            text += f": {t.comment}"
        found.append(
            Candidate(
                kind=kind,
                subject=t,
                occurred_at=t.at,
                summary=_clip(text),
                detail={
                    "version_id": t.version_id,
                    "version": str(t.version),
                    "from_state": t.from_state,
                    "to_state": t.to_state,
                    "by": t.by.username,
                    "endpoints": on,
                    "decision_id": t.decision_id,
                    "comment": t.comment,
                },
            )
        )
    return found


def _amount(value: Any, currency: str | None) -> str | None:
    try:
        amount = Decimal(str(value))
    except (ArithmeticError, ValueError, TypeError):
        return None
    return money_format(amount, currency) if currency else f"{amount:,}"


def evidence_numbers(evidence: Mapping[str, Any]) -> list[str]:
    """The key numbers of a decision's evidence, as short phrases ("est. 40,000.00 USD")."""
    if not isinstance(evidence, Mapping):
        return []
    currency = evidence.get("currency") or ""
    numbers = []
    if evidence.get("estimated_cost") not in (None, "") and (
        text := _amount(evidence["estimated_cost"], currency)
    ):
        numbers.append(f"estimated {text}")
    if evidence.get("gpu_hours") not in (None, "", "0"):
        try:
            hours = Decimal(str(evidence["gpu_hours"]))
        except ArithmeticError:
            hours = None
        if hours:
            count, accel = evidence.get("accelerator_count"), evidence.get("accelerator")
            machines = f"{count} {TIMES} {accel or 'accelerator'}, " if count else ""
            numbers.append(f"{machines}{hours.normalize():,f} GPU-hours")
    if evidence.get("monthly_cost") not in (None, "") and (
        text := _amount(evidence["monthly_cost"], currency)
    ):
        numbers.append(f"{text} a month")
    if evidence.get("accelerators") not in (None, "") and "gpu_hours" not in evidence:
        numbers.append(f"{evidence['accelerators']} accelerators")
    if evidence.get("pool_share_pct") not in (None, ""):
        numbers.append(f"{evidence['pool_share_pct']} % of {evidence.get('pool') or 'the pool'}")
    return numbers


def _decisions(scope: Scope, since: dt.datetime, until: dt.datetime) -> list[Candidate]:
    about = Q(business_unit_id__in=scope.unit_ids)
    subjects: list[tuple[type[models.Model], Iterable[int]]] = [
        (Endpoint, scope.endpoint_ids),
        (RegisteredModel, scope.model_ids),
        (ModelVersion, scope.version_ids),
        (CapacityPool, scope.pool_ids),
        (BusinessUnit, scope.unit_ids),
        (
            CapacityAssessment,
            CapacityAssessment.objects.filter(version_id__in=scope.version_ids).values_list(
                "pk", flat=True
            ),
        ),
        (
            RequirementWaiver,
            RequirementWaiver.objects.filter(version_id__in=scope.version_ids).values_list(
                "pk", flat=True
            ),
        ),
    ]
    version_type = _ctype(ModelVersion)
    requests = ApprovalRequest.objects.filter(
        subject_type=version_type, subject_id__in=scope.version_ids
    ).values_list("pk", flat=True)
    subjects.append((ApprovalRequest, requests))
    if scope.pool_ids:
        conflicts = CapacityConflict.objects.filter(
            subject_type=_ctype(CapacityPool), subject_id__in=scope.pool_ids
        ).values_list("pk", flat=True)
        subjects.append((CapacityConflict, conflicts))
    for model, ids in subjects:
        ids = list(ids)
        if ids:
            about |= Q(subject_type=_ctype(model), subject_id__in=ids)
    rows = (
        Decision.objects.filter(about, decided_at__gte=since, decided_at__lte=until)
        .select_related("decided_by", "business_unit")
        .order_by("decided_at", "pk")
    )
    found = []
    for d in rows:
        role = f" ({d.get_decided_as_display()})" if d.decided_as else ""
        board = d.evidence.get("board") if isinstance(d.evidence, dict) else None
        who = f"the {board}" if board else f"{_person(d.decided_by)}{role}"
        numbers = evidence_numbers(d.evidence)
        figures = f" — {', '.join(numbers)}" if numbers else ""
        unit = f" for {d.business_unit.code}" if d.business_unit else ""
        text = (
            f"{d.get_kind_display()}{unit}: {d.get_outcome_display().lower()} by {who} on "
            f"{_utc(d.decided_at)}: {d.title}{figures}"
        )
        found.append(
            Candidate(
                kind="decision",
                subject=d,
                occurred_at=d.decided_at,
                summary=_clip(text),
                detail={
                    "decision_kind": d.kind,
                    "outcome": d.outcome,
                    "title": d.title,
                    "decided_by": d.decided_by.username if d.decided_by else None,
                    "decided_as": d.decided_as,
                    "business_unit": d.business_unit.code if d.business_unit else None,
                    "numbers": numbers,
                    "rationale": d.rationale[:1000],
                },
            )
        )
    return found


def _waivers(scope: Scope, start: dt.datetime) -> list[Candidate]:
    rows = (
        RequirementWaiver.objects.filter(
            version_id__in=scope.version_ids,
            status=WaiverStatus.GRANTED,
            granted_at__lte=start,
            expires_at__gt=start,
        )
        .filter(Q(revoked_at__isnull=True) | Q(revoked_at__gt=start))
        .select_related("version__model", "granted_by", "decision__decided_by")
    )
    found = []
    for w in rows:
        by = w.decision.decided_by if w.decision and w.decision.decided_by else w.granted_by
        text = (
            f"Waiver of “{w.get_requirement_display()}” for {w.version} in force: granted "
            f"{_utc(w.granted_at)} (proposed by {_person(by)}), until {_utc(w.expires_at)} — "
            f"{w.reason}"
        )
        found.append(
            Candidate(
                kind="waiver",
                subject=w,
                occurred_at=w.granted_at,
                summary=_clip(text),
                detail={
                    "version_id": w.version_id,
                    "version": str(w.version),
                    "requirement": w.requirement,
                    "expires_at": w.expires_at.isoformat(),
                    "decision_id": w.decision_id,
                    "reason": w.reason[:1000],
                },
            )
        )
    return found


def _freezes(scope: Scope, since: dt.datetime, until: dt.datetime) -> list[Candidate]:
    started_or_lifted = Q(started_at__gte=since, started_at__lte=until) | Q(
        lifted_at__gte=since, lifted_at__lte=until
    )
    in_force = Q(started_at__lte=until) & (Q(lifted_at__isnull=True) | Q(lifted_at__gt=until))
    rows = DeploymentFreeze.objects.filter(
        started_or_lifted | in_force, business_unit_id__in=scope.unit_ids
    ).select_related("business_unit", "created_by", "lifted_by")
    found = []
    for f in rows:
        unit = f.business_unit.name
        if f.lifted_at is not None and since <= f.lifted_at <= until:
            at = f.lifted_at
            text = (
                f"Deployment freeze on {unit} (since {_utc(f.started_at)}) lifted by "
                f"{_person(f.lifted_by)} on {_utc(f.lifted_at)}: {f.lift_reason}"
            )
        else:
            at = f.started_at
            # Not lifted in the window, so it was in force when the incident started.
            by = _person(f.created_by) if f.origin == "person" else "a budget breach"
            text = (
                f"Deployment freeze on {unit} started {_utc(f.started_at)} by {by}, in force "
                f"when the incident started: {f.reason}"
            )
        found.append(
            Candidate(
                kind="freeze",
                subject=f,
                occurred_at=at,
                summary=_clip(text),
                detail={
                    "business_unit": f.business_unit.code,
                    "origin": f.origin,
                    "started_at": f.started_at.isoformat(),
                    "lifted_at": f.lifted_at.isoformat() if f.lifted_at else None,
                    "reason": f.reason[:1000],
                },
            )
        )
    return found


def _retirements(scope: Scope, since: dt.datetime, until: dt.datetime) -> list[Candidate]:
    on = Q(case__endpoint_id__in=scope.endpoint_ids) | Q(case__model_id__in=scope.model_ids)
    rows = RetirementStep.objects.filter(on, at__gte=since, at__lte=until).select_related(
        "case__endpoint", "case__model", "by", "policy"
    )
    found = []
    for s in rows:
        target = s.case.endpoint or s.case.model
        flags = []
        if s.dry_run:
            flags.append("dry run")
        if not s.succeeded:
            flags.append("failed")
        how = f" ({', '.join(flags)})" if flags else ""
        by = f" by {s.by}" if s.by else ""
        text = f"Retirement of {target}: {s.kind.replace('_', ' ')}{how}{by} on {_utc(s.at)}"
        if s.text:
            text += f" — {s.text}"
        found.append(
            Candidate(
                kind="retirement",
                subject=s,
                occurred_at=s.at,
                summary=_clip(text),
                detail={
                    "case_id": s.case_id,
                    "step": s.kind,
                    "dry_run": s.dry_run,
                    "succeeded": s.succeeded,
                    "policy": s.policy.name if s.policy else None,
                    "target": str(target),
                },
            )
        )
    return found


# --- cost anomalies -----------------------------------------------------------------------------


def _figure(value: Decimal, forecast: Forecast) -> str:
    if forecast.measure == Measure.COST:
        return money_format(value, forecast.currency)
    return f"{value.quantize(Decimal('0.1')).normalize():,f} GPU-hours"


def cost_anomaly_candidates(
    scope: Scope, since: dt.datetime, until: dt.datetime
) -> list[Candidate]:
    """The cost anomalies recorded in the window for the affected units, pools and endpoints
    (their cost and GPU-hours forecasts)."""
    about = Q(forecast__business_unit_id__in=scope.unit_ids)
    if scope.pool_ids:
        about |= Q(forecast__pool_id__in=scope.pool_ids)
    if scope.endpoint_ids:
        about |= Q(forecast__endpoint_id__in=scope.endpoint_ids)
    if not (scope.unit_ids or scope.pool_ids or scope.endpoint_ids):
        return []
    first, last = since.astimezone(dt.UTC).date(), until.astimezone(dt.UTC).date()
    rows = (
        CostAnomaly.objects.filter(about, day__gte=first, day__lte=last)
        .select_related("forecast__business_unit", "forecast__pool__owner", "forecast__endpoint")
        .order_by("day", "pk")
    )
    found = []
    for a in rows:
        forecast = a.forecast
        subject = forecast.subject
        above = a.direction == AnomalyDirection.ABOVE
        verb = "spent" if forecast.measure == Measure.COST else "used"
        bound = (
            f"up to {_figure(a.upper, forecast)}"
            if above
            else f"at least {_figure(a.lower, forecast)}"
        )
        text = (
            f"{subject} {verb} {_figure(a.actual, forecast)} on {a.day:%Y-%m-%d}, "
            f"{'above' if above else 'below'} its forecast (expected "
            f"{_figure(a.expected, forecast)}, {bound}): {_figure(abs(a.size), forecast)} "
            f"{'over' if above else 'under'}"
        )
        found.append(
            Candidate(
                kind="cost_anomaly",
                subject=a,
                occurred_at=dt.datetime.combine(a.day, dt.time(), tzinfo=dt.UTC),
                summary=_clip(text),
                detail={
                    "forecast_id": forecast.pk,
                    "subject_kind": forecast.kind,
                    "subject": str(subject),
                    "business_unit": forecast.business_unit.code
                    if forecast.business_unit
                    else None,
                    "day": a.day.isoformat(),
                    "measure": forecast.measure,
                    "currency": forecast.currency or None,
                    "actual": f"{a.actual:f}",
                    "expected": f"{a.expected:f}",
                    "lower": f"{a.lower:f}",
                    "upper": f"{a.upper:f}",
                    "size": f"{a.size:f}",
                    "direction": a.direction,
                    "interval_percent": f"{forecast.interval_percent:f}",
                },
            )
        )
    return found


# --- refresh ------------------------------------------------------------------------------------


def suggestion_candidates(postmortem: PostMortem) -> list[Candidate]:
    """Everything the window before the incident holds about what it affected."""
    incident = postmortem.incident
    until = incident.started_at
    since = until - dt.timedelta(days=postmortem.window_days)
    scope = incident_scope(incident)
    return [
        *_transitions(scope, since, until),
        *_decisions(scope, since, until),
        *_waivers(scope, until),
        *_freezes(scope, since, until),
        *_retirements(scope, since, until),
        *cost_anomaly_candidates(scope, since, until),
    ]


@transaction.atomic
def suggestions_refresh(*, postmortem: PostMortem) -> list[ContributingFactor]:
    """Store what the window before the incident holds as suggested factors; return every
    factor of the post-mortem (as ``factor_list``).

    Idempotent: a record already suggested is updated in place, one already accepted or
    dismissed stays exactly as the authors left it, and a suggestion no longer found (the
    window shrank, the incident's scope changed) goes away unless someone decided on it.
    """
    pm = PostMortem.objects.select_for_update().select_related("incident").get(pk=postmortem.pk)
    candidates = {c.key: c for c in suggestion_candidates(pm)}
    existing = {_factor_key(f): f for f in pm.factors.all()}
    stale = [
        f.pk
        for key, f in existing.items()
        if key not in candidates and f.status == FactorStatus.SUGGESTED
    ]
    if stale:
        ContributingFactor.objects.filter(pk__in=stale).delete()
    new = []
    for key, c in candidates.items():
        factor = existing.get(key)
        if factor is None:
            new.append(
                ContributingFactor(
                    postmortem=pm,
                    kind=c.kind,
                    subject_type=_ctype(type(c.subject)),
                    subject_id=c.subject.pk,
                    occurred_at=c.occurred_at,
                    summary=c.summary,
                    detail=c.detail,
                )
            )
        elif factor.status == FactorStatus.SUGGESTED and (
            factor.summary,
            factor.detail,
            factor.occurred_at,
        ) != (c.summary, c.detail, c.occurred_at):
            factor.summary, factor.detail, factor.occurred_at = c.summary, c.detail, c.occurred_at
            factor.save(update_fields=["summary", "detail", "occurred_at"])
    ContributingFactor.objects.bulk_create(new)
    return factor_list(pm)


# --- accept / dismiss ---------------------------------------------------------------------------


def _may_edit(user: User, pm: PostMortem) -> bool:
    from incidents.services import may_edit_postmortem

    return may_edit_postmortem(user, pm)


def _decide(*, factor: ContributingFactor, by: User, status: str, note: str) -> ContributingFactor:
    try:
        factor = (
            ContributingFactor.objects.select_for_update()
            .select_related("postmortem")
            .get(pk=factor.pk)
        )
    except ContributingFactor.DoesNotExist:
        raise ConflictError(
            "This suggestion is gone: the records were looked up again and it no longer "
            "touches the incident."
        ) from None
    pm = factor.postmortem
    if pm.status != PostMortemStatus.DRAFT:
        raise ConflictError(
            "This post-mortem is "
            + ("published" if pm.status == PostMortemStatus.PUBLISHED else "in review")
            + "; its contributing factors change only while it is a draft (the approvers "
            "sign off what they read)."
        )
    if not _may_edit(by, pm):
        raise PermissionDeniedError(
            "Only the post-mortem's authors and named approvers can accept or dismiss its "
            "contributing factors."
        )
    note = str(note or "").strip()
    if len(note) > NOTE_LIMIT:
        raise DomainError(f"The note is longer than {NOTE_LIMIT} characters.")
    factor.status = status
    factor.note = note
    factor.decided_by = by
    factor.decided_at = timezone.now()
    factor.save(update_fields=["status", "note", "decided_by", "decided_at"])
    # The timeline takes the app's own records: an accepted factor becomes an event at the
    # time it happened (dismissing it takes the event away again).
    source = f"factor:{factor.pk}"
    TimelineEvent.objects.filter(incident_id=pm.incident_id, source=source).delete()
    if status == FactorStatus.ACCEPTED:
        TimelineEvent.objects.create(
            incident_id=pm.incident_id,
            at=factor.occurred_at,
            kind=factor.kind,
            text=factor.summary + (f" — {note}" if note else ""),
            source=source,
            added_by=by,
        )
    return factor


@transaction.atomic
def factor_accept(*, factor: ContributingFactor, by: User, note: str) -> ContributingFactor:
    """Accept a suggestion as a contributing factor, saying how it contributed. It then shows
    on the record's own page (a decision's, for one). A dismissed factor can be accepted after
    all, and an accepted one's note rewritten, while the post-mortem is not published."""
    if not str(note or "").strip():
        raise DomainError("Say how this contributed to the incident: a note is needed to accept.")
    return _decide(factor=factor, by=by, status=FactorStatus.ACCEPTED, note=note)


@transaction.atomic
def factor_dismiss(*, factor: ContributingFactor, by: User, note: str = "") -> ContributingFactor:
    """Dismiss a suggestion (or an accepted factor on second thoughts); later refreshes leave it
    dismissed."""
    return _decide(factor=factor, by=by, status=FactorStatus.DISMISSED, note=note)


# --- reads --------------------------------------------------------------------------------------


def _subject_querysets() -> list[models.QuerySet]:
    return [
        VersionTransition.objects.select_related("version__model", "by"),
        Decision.objects.select_related("decided_by", "business_unit"),
        RequirementWaiver.objects.select_related("version__model"),
        RetirementStep.objects.select_related("case"),
        DeploymentFreeze.objects.select_related("business_unit"),
        CostAnomaly.objects.select_related(
            "forecast__business_unit", "forecast__pool", "forecast__endpoint"
        ),
    ]


def subject_url(subject: models.Model | None) -> str:
    """Where a factor's record is shown, or "" when it has no page (or no longer exists)."""
    if subject is None:
        return ""
    try:
        if isinstance(subject, Decision):
            return reverse("governance:decision-detail", args=[subject.pk])
        if isinstance(subject, VersionTransition | RequirementWaiver):
            return subject.version.get_absolute_url()
        if isinstance(subject, RetirementStep):
            return subject.case.get_absolute_url()
        if isinstance(subject, DeploymentFreeze):
            return reverse("governance:freeze-list")
        if isinstance(subject, CostAnomaly):
            url = reverse("costs:forecast-detail", args=[subject.forecast_id])
            return f"{url}#anomaly-{subject.pk}"
        if hasattr(subject, "get_absolute_url"):
            return subject.get_absolute_url()
    except NoReverseMatch:
        return ""
    return ""


def factors_visible_q(user) -> Q:
    """The same rule as :func:`factors_visible`, as a filter for querysets (the API)."""
    if user is None:
        return Q()
    rule = ~Q(kind="decision") | Q(subject_id__in=decision_list(user=user).values("pk"))
    units = visible_unit_ids(user)
    if units is not None:
        # Anomalies read as their forecasts are read; a factor stored without its record
        # (before anomalies were recorded) by the unit its key leads with.
        anomalies = Q(
            subject_type=_ctype(CostAnomaly), subject_id__in=anomaly_list(user=user).values("pk")
        )
        for unit in units:
            anomalies |= Q(subject_id__isnull=True, detail__key__startswith=f"{unit}:")
        rule &= ~Q(kind="cost_anomaly") | anomalies
    return rule


def factors_visible(factors, user) -> list[ContributingFactor]:
    """The factors ``user`` may read. Everyone reads incidents, but a decision is readable
    only where the decision list lets them read it, and a cost anomaly reads as its forecast
    does (``costs.forecasts.anomaly_list``): another unit's spend is left out (``user=None``:
    the system)."""
    factors = list(factors)
    if user is None:
        return factors

    decision_ids = {f.subject_id for f in factors if f.kind == "decision" and f.subject_id}
    readable = (
        set(decision_list(user=user).filter(pk__in=decision_ids).values_list("pk", flat=True))
        if decision_ids
        else set()
    )
    units = visible_unit_ids(user)
    anomaly_ids = {f.subject_id for f in factors if f.kind == "cost_anomaly" and f.subject_id}
    anomalies = (
        set(anomaly_list(user=user).filter(pk__in=anomaly_ids).values_list("pk", flat=True))
        if anomaly_ids and units is not None
        else anomaly_ids
    )

    def shown(f: ContributingFactor) -> bool:
        if f.kind == "decision":
            return f.subject_id in readable
        if f.kind == "cost_anomaly" and f.subject_id:
            return f.subject_id in anomalies
        if f.kind == "cost_anomaly" and units is not None:
            unit = str((f.detail or {}).get("key", "")).split(":")[0]
            return unit.isdigit() and int(unit) in units
        return True

    return [f for f in factors if shown(f)]


def factor_list(postmortem: PostMortem, user=None) -> list[ContributingFactor]:
    """The post-mortem's factors ``user`` may read, in time order, each with its record and
    ``subject_url``; a fixed number of queries whatever their number."""
    factors = factors_visible(
        ContributingFactor.objects.filter(postmortem=postmortem)
        .select_related("subject_type", "decided_by")
        .prefetch_related(GenericPrefetch("subject", _subject_querysets()))
        .order_by("occurred_at", "pk"),
        user,
    )
    for f in factors:
        f.subject_url = subject_url(f.subject)
    return factors


def incidents_for(obj: models.Model) -> list[tuple[Incident, ContributingFactor]]:
    """The incidents ``obj`` (a decision, a deployment, a waiver…) was accepted as having
    contributed to, newest first, each with its factor."""
    factors = (
        ContributingFactor.objects.filter(
            subject_type=_ctype(type(obj)), subject_id=obj.pk, status=FactorStatus.ACCEPTED
        )
        .select_related("postmortem__incident", "decided_by")
        .order_by("-postmortem__incident__started_at", "-pk")
    )
    return [(f.postmortem.incident, f) for f in factors]


def _incident_url(incident: Incident) -> str:
    for name, args in (
        ("incidents:incident-detail", [incident.pk]),
        ("incidents:postmortem", [incident.pk]),
    ):
        try:
            return reverse(name, args=args)
        except NoReverseMatch:
            continue
    return ""


def decision_incidents_panel(decision: Decision, user: User | None = None) -> list[RelatedItem]:
    """For the decision's page: the incidents it contributed to (every signed-in person reads
    every incident, so ``user`` narrows nothing)."""
    items = []
    for incident, factor in incidents_for(decision):
        when = f"{incident.started_at.astimezone(dt.UTC):%Y-%m-%d}"
        by = f" by {factor.decided_by}" if factor.decided_by else ""
        text = f"Started {when}; {incident.get_status_display().lower()}. Accepted as contributing"
        text += f"{by}: {factor.note}" if factor.note else f"{by}."
        items.append(
            RelatedItem(
                title=incident.title,
                url=_incident_url(incident),
                text=text,
                section="Incidents it contributed to",
            )
        )
    return items


# --- the incident's cost ------------------------------------------------------------------------


def _units_of(incident: Incident) -> set[int]:
    return incident_scope(incident).unit_ids


def incident_extra_cost(
    incident: Incident, *, now: dt.datetime | None = None
) -> tuple[Decimal, str, dict[str, Any]] | None:
    """What the incident cost: the affected units' spend on its days (the start day to the
    resolution day, or today while unresolved, both included) minus the baseline — the average
    daily spend of the 7 days before the start day times the number of incident days. In the
    currency most of that spend is in, rounded to its minor unit; other currencies are left
    out (and listed in the detail). ``None`` when no unit is affected or nothing was billed.

    A day of the baseline without cost rows counts as zero spend.
    """
    unit_ids = _units_of(incident)
    if not unit_ids:
        return None
    first, last = incident_impact_days(incident, now=now)
    days = (last - first).days + 1
    base_first = first - dt.timedelta(days=COST_BASELINE_DAYS)
    rows = (
        CostRow.objects.filter(
            tag_set__business_unit_id__in=unit_ids, usage_date__gte=base_first, usage_date__lte=last
        )
        .values("currency")
        .annotate(
            during=Sum("billed_cost", filter=Q(usage_date__gte=first)),
            before=Sum("billed_cost", filter=Q(usage_date__lt=first)),
        )
        .order_by()
    )
    totals = {r["currency"]: (r["during"] or Decimal(0), r["before"] or Decimal(0)) for r in rows}
    if not totals:
        return None
    currency = max(totals, key=lambda c: (abs(totals[c][0]) + abs(totals[c][1]), c))
    during, before = totals[currency]
    baseline = before * days / COST_BASELINE_DAYS
    extra = money_round(during - baseline, currency)
    codes = sorted(BusinessUnit.objects.filter(pk__in=unit_ids).values_list("code", flat=True))
    detail = {
        "business_units": codes,
        "first_day": first.isoformat(),
        "last_day": last.isoformat(),
        "days": days,
        "spend": f"{money_round(during, currency):f}",
        "baseline_days": COST_BASELINE_DAYS,
        "baseline_spend": f"{money_round(before, currency):f}",
        "baseline_daily": f"{money_round(before / COST_BASELINE_DAYS, currency):f}",
        "baseline": f"{money_round(baseline, currency):f}",
        "currency": currency,
        "other_currencies": sorted(c for c in totals if c != currency),
        "resolved": incident.resolved_at is not None,
    }
    return extra, currency, detail


# --- leaving the incident's days out of forecasts ------------------------------------------------


def exclusion_source(incident: Incident) -> str:
    return f"incident:{incident.pk}"


def incident_impact_days(
    incident: Incident, *, now: dt.datetime | None = None
) -> tuple[dt.date, dt.date]:
    """The usage days the incident touched: its start day to its resolution day (today while
    it is unresolved), UTC."""
    end = incident.resolved_at or now or timezone.now()
    first = incident.started_at.astimezone(dt.UTC).date()
    return first, max(first, end.astimezone(dt.UTC).date())


def incident_forecast_exclusions(*, incident: Incident) -> list[ForecastExclusion]:
    """The days already left out of forecasts for this incident (its exclusions)."""
    return list(
        ForecastExclusion.objects.filter(source=exclusion_source(incident)).select_related(
            "business_unit", "pool", "endpoint"
        )
    )


@transaction.atomic
def incident_forecast_exclude(
    *, incident: Incident, by: User, now: dt.datetime | None = None
) -> list[ForecastExclusion]:
    """Leave the incident's impact days (:func:`incident_impact_days`) out of the forecasts
    of the units, pools and endpoints it touches (:func:`incident_scope`), so they do not
    distort the next refresh. The incident's editors and cost managers may; pressing it again
    after the incident moved on adds the new span, and the same span twice is stored once."""
    from incidents.services import may_edit_incident

    if not (may_edit_incident(by, incident) or manages_costs(by)):
        raise PermissionDeniedError(
            "Only the incident's commander, the people with a role in it, platform admins and "
            "finance can leave its days out of forecasts."
        )
    scope = incident_scope(incident)
    if not (scope.unit_ids or scope.pool_ids or scope.endpoint_ids):
        raise DomainError(
            "The incident names no business unit, shared pool or endpoint: add what it "
            "affected first, then leave its days out."
        )
    first, last = incident_impact_days(incident, now=now)
    return exclusions_record(
        by=by,
        starts_on=first,
        ends_on=last,
        reason=_clip(f"Incident {incident.title}")[:300],
        source=exclusion_source(incident),
        business_units=BusinessUnit.objects.filter(pk__in=scope.unit_ids).order_by("pk"),
        pools=CapacityPool.objects.filter(pk__in=scope.pool_ids).order_by("pk"),
        endpoints=Endpoint.objects.filter(pk__in=scope.endpoint_ids).order_by("pk"),
    )
