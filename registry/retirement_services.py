"""Retiring idle endpoints: the daily evaluation, the owners' answers, the cloud actions.

The evaluation (:func:`retirement_evaluate`, daily from beat) scores every endpoint a policy
covers with the pure :func:`registry.retirement.evaluate`, keeps the verdict on the endpoint
(so its page says why it was or was not flagged), and opens a case for each new candidate,
e-mailing the owner signed links to keep it or retire it now. :func:`retirement_cases_due`
reminds owners before the grace period ends and then runs the policy's action — recorded
as what *would* have been done while the policy is a dry run, which it is until a platform
admin says otherwise. What costs an endpoint has, and how to act on it in its cloud, come
through ``registry.extensions`` hooks that ``costs`` registers.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import Max, Min, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from governance import links
from governance.celery import enqueue
from governance.choices import Role
from governance.emails import absolute_url, subject_clean
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.models import User
from governance.money import money_format, money_round
from registry import extensions, retirement
from registry.models import (
    ACTIVE_STATUSES,
    CaseKind,
    CaseStatus,
    Endpoint,
    EndpointUsage,
    HardwarePrice,
    RegisteredModel,
    RetirementActionKind,
    RetirementCase,
    RetirementExemption,
    RetirementLink,
    RetirementPolicy,
    RetirementStep,
)

logger = logging.getLogger(__name__)

RETIREMENT_LINK_SALT = "capgov.registry.retirement-link"
LINK_ACTIONS = ("keep", "retire")
HOURS_PER_MONTH = Decimal(730)
MAX_KEEP_DAYS = 366


# --- Reading ----------------------------------------------------------------------------------


def policy_endpoints(policy: RetirementPolicy, *, among=None) -> list[Endpoint]:
    """The endpoints a policy covers: its units, providers, environments and tags (of
    ``among``, a queryset of endpoints, when given)."""
    endpoints = (among if among is not None else Endpoint.objects).select_related(
        "business_unit__owner", "model_version"
    )
    units = [u.pk for u in policy.business_units.all()]
    if units:
        endpoints = endpoints.filter(business_unit__in=units)
    if policy.providers:
        endpoints = endpoints.filter(provider__in=policy.providers)
    out = []
    for endpoint in endpoints.order_by("pk"):
        tags = endpoint.tags or {}
        if policy.environments and not any(
            retirement.has_tag(tags, "env", env) for env in policy.environments
        ):
            continue
        if not all(retirement.has_tag(tags, k, str(v)) for k, v in (policy.tags or {}).items()):
            continue
        out.append(endpoint)
    return out


def endpoint_monthly_costs(
    endpoints: list[Endpoint], *, today: dt.date
) -> dict[int, tuple[Decimal, str, str]]:
    """Per endpoint: (monthly cost, currency, how it was found).

    The bill of the last 30 usage days where it has the endpoint; else an estimate from the
    hardware's hourly price x instances x 730 hours.
    """
    start = today - dt.timedelta(days=30)
    billed = extensions.endpoint_costs([e.pk for e in endpoints], start, today)
    out: dict[int, tuple[Decimal, str, str]] = {}
    missing = []
    for endpoint in endpoints:
        cost = billed.get(endpoint.pk)
        if cost is not None:
            out[endpoint.pk] = (
                money_round(cost.amount, cost.currency),
                cost.currency,
                f"billed, {start:%Y-%m-%d} to {today - dt.timedelta(days=1):%Y-%m-%d}",
            )
        else:
            missing.append(endpoint)
    types = {(e.provider, e.instance_type) for e in missing if e.instance_type}
    prices: dict[tuple, HardwarePrice] = {}
    if types:
        in_force = HardwarePrice.objects.filter(
            provider__in={p for p, _ in types},
            instance_type__in={t for _, t in types},
            effective_from__lt=dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC)
            + dt.timedelta(days=1),
        ).order_by("effective_from", "pk")
        for price in in_force:
            # The newest price in force wins; one of the endpoint's own region over any other.
            prices[(price.provider, price.instance_type)] = price
            prices[(price.provider, price.instance_type, price.region)] = price
    for endpoint in missing:
        price = prices.get(
            (endpoint.provider, endpoint.instance_type, endpoint.region)
        ) or prices.get((endpoint.provider, endpoint.instance_type))
        if price is None or not endpoint.instance_count:
            continue
        amount = price.hourly_price * endpoint.instance_count * HOURS_PER_MONTH
        out[endpoint.pk] = (
            money_round(amount, price.currency),
            price.currency,
            f"estimated: {endpoint.instance_count} x {endpoint.instance_type} at "
            f"{money_format(price.hourly_price, price.currency)}/h x 730 h",
        )
    return out


def may_decide(user: User | None, case: RetirementCase) -> bool:
    """The endpoint's unit's owner and people, and platform admins, answer for a case."""
    if user is None:
        return True
    if not user.is_authenticated or not user.is_active:
        return False
    if user.has_role(Role.PLATFORM_ADMIN):
        return True
    unit = case.business_unit_id
    return unit is not None and (
        unit in user.scoped_business_unit_ids
        or (case.business_unit and case.business_unit.owner_id == user.pk)
    )


# --- The daily evaluation ---------------------------------------------------------------------


@dataclass
class EvaluationResult:
    evaluated: int = 0
    opened: list[RetirementCase] = field(default_factory=list)
    closed: list[RetirementCase] = field(default_factory=list)


def retirement_evaluate(*, now: dt.datetime | None = None) -> EvaluationResult:
    """Score every endpoint against every active policy; open and close cases. Idempotent."""
    now = now or timezone.now()
    today = now.date()
    result = EvaluationResult()
    policies = list(
        RetirementPolicy.objects.filter(is_active=True).prefetch_related("business_units")
    )
    covered: dict[int, tuple[Endpoint, list[RetirementPolicy]]] = {}
    for policy in policies:
        try:
            endpoints_of = policy_endpoints(policy)
        except (AttributeError, TypeError, ValueError):
            # A policy saved with malformed filters (before the admin checked them) is
            # skipped, not allowed to stop every other policy's evaluation.
            logger.exception("retirement policy %s has malformed filters; skipped", policy.pk)
            continue
        for endpoint in endpoints_of:
            covered.setdefault(endpoint.pk, (endpoint, []))[1].append(policy)
    if not covered:
        return result
    endpoints = [endpoint for endpoint, _ in covered.values()]
    longest = max(p.window_days for p in policies)
    usage: dict[int, dict[dt.date, int]] = defaultdict(dict)
    for endpoint_id, day, count in EndpointUsage.objects.filter(
        endpoint__in=endpoints, day__gte=today - dt.timedelta(days=longest), day__lt=today
    ).values_list("endpoint_id", "day", "invocations"):
        usage[endpoint_id][day] = count
    first_usage = {
        row["endpoint_id"]: row["first"]
        for row in EndpointUsage.objects.filter(endpoint__in=endpoints)
        .values("endpoint_id")
        .annotate(first=Min("day"))
    }
    last_request = {
        row["endpoint_id"]: row["last"]
        for row in EndpointUsage.objects.filter(endpoint__in=endpoints, invocations__gt=0)
        .values("endpoint_id")
        .annotate(last=Max("day"))
    }
    exemptions = {}
    for exemption in RetirementExemption.objects.filter(
        endpoint__in=endpoints, revoked_at=None, until__gte=today
    ).order_by("until"):
        exemptions[exemption.endpoint_id] = (exemption.until, exemption.reason)
    active = {
        case.endpoint_id: case
        for case in RetirementCase.objects.filter(
            endpoint__in=endpoints, kind=CaseKind.IDLE, status__in=ACTIVE_STATUSES
        ).select_related("policy")
    }
    recent = _recently_settled(endpoints, today=today)
    costs = endpoint_monthly_costs(endpoints, today=today)

    for endpoint, endpoint_policies in covered.values():
        result.evaluated += 1
        created = (
            endpoint.created_in_cloud_at.date()
            if endpoint.created_in_cloud_at
            else first_usage.get(endpoint.pk)
        )
        cost, currency, basis = costs.get(endpoint.pk, (None, "", ""))
        verdicts = []
        for policy in endpoint_policies:
            verdict = retirement.evaluate(
                today=today,
                window_days=policy.window_days,
                max_daily_invocations=policy.max_daily_invocations,
                min_monthly_cost=policy.min_monthly_cost,
                policy_currency=policy.currency,
                usage=usage.get(endpoint.pk, {}),
                created=created,
                tags=endpoint.tags or {},
                exempt_tag=(policy.exempt_tag_key, policy.exempt_tag_value),
                exemption=exemptions.get(endpoint.pk),
                monthly_cost=cost,
                currency=currency,
                cost_basis=basis,
                last_request=last_request.get(endpoint.pk),
            )
            verdicts.append((policy, verdict))
        chosen_policy, chosen = next(((p, v) for p, v in verdicts if v.idle), verdicts[0])
        endpoint.retirement_verdict = {
            **chosen.as_dict(),
            "policy": chosen_policy.name,
            "evaluated_at": now.isoformat(),
        }
        endpoint.save(update_fields=["retirement_verdict"])
        case = active.get(endpoint.pk)
        if case is None:
            if chosen.idle and endpoint.pk not in recent:
                opened = _case_open(
                    endpoint=endpoint, policy=chosen_policy, verdict=chosen, now=now
                )
                if opened is not None:
                    result.opened.append(opened)
            continue
        # A case is judged by the policy that opened it: idle under another one is not enough.
        own = next((v for p, v in verdicts if p.pk == case.policy_id), None)
        if own is None or not own.idle:
            why = own.reason if own else "its policy no longer covers this endpoint."
            if _case_settle_if(
                case,
                (CaseStatus.OPEN, CaseStatus.DRY_RUN),
                now=now,
                text=f"No longer a candidate: {why}",
            ):
                result.closed.append(case)
    # Cases whose policy was switched off, or whose endpoint left every policy, close too.
    for case in RetirementCase.objects.filter(
        kind=CaseKind.IDLE, status__in=ACTIVE_STATUSES
    ).exclude(endpoint__in=list(covered)):
        if _case_settle_if(
            case,
            (CaseStatus.OPEN, CaseStatus.DRY_RUN),
            now=now,
            text="No longer a candidate: no active policy covers this endpoint.",
        ):
            result.closed.append(case)
    return result


def _still_candidate(case: RetirementCase, *, now) -> str:
    """Why the case's endpoint should not be acted on now ("" when it should).

    Only positive reasons count: its policy switched off, the endpoint out of the policy's
    scope, a keep tag or an exemption since, or requests since the case opened. Days without
    data since then do not stop it: the case was opened on a full window.
    """
    policy, endpoint = case.policy, case.endpoint
    if policy is None or endpoint is None:
        return "the case has no policy or endpoint."
    if not policy.is_active:
        return f"the policy {policy.name} is switched off."
    endpoint.refresh_from_db()
    if not policy_endpoints(policy, among=Endpoint.objects.filter(pk=endpoint.pk)):
        return f"the policy {policy.name} no longer covers the endpoint."
    key, value = policy.exempt_tag_key, policy.exempt_tag_value
    if key and retirement.has_tag(endpoint.tags or {}, key, value):
        return f"it is now tagged {key}={value}."
    exemption = RetirementExemption.objects.filter(
        endpoint=endpoint, revoked_at=None, until__gte=now.date()
    ).first()
    if exemption:
        return f"it is kept until {exemption.until:%Y-%m-%d}: {exemption.reason}"
    busy = (
        EndpointUsage.objects.filter(
            endpoint=endpoint,
            day__gte=case.opened_at.date(),
            invocations__gte=policy.max_daily_invocations,
        )
        .order_by("day")
        .first()
    )
    if busy:
        return f"it served {busy.invocations:,} requests on {busy.day:%Y-%m-%d}."
    return ""


def _recently_settled(endpoints: Iterable[Endpoint], *, today: dt.date) -> set[int]:
    """Endpoints not to flag again yet: retired (until restored), or with a case closed or
    kept within its policy's window (the same quiet days would only raise it again)."""
    out = set()
    for case in (
        RetirementCase.objects.filter(endpoint__in=list(endpoints), kind=CaseKind.IDLE)
        .exclude(status__in=ACTIVE_STATUSES)
        .select_related("policy")
        .order_by("endpoint_id", "opened_at", "pk")
    ):
        if case.status == CaseStatus.RETIRED:
            out.add(case.endpoint_id)
        elif case.status == CaseStatus.RESTORED:
            out.discard(case.endpoint_id)
        else:
            window = case.policy.window_days if case.policy else 14
            settled = (case.closed_at or case.opened_at).date()
            if settled > today - dt.timedelta(days=window):
                out.add(case.endpoint_id)
    return out


class _AnswerEncoder(DjangoJSONEncoder):
    def default(self, o):
        try:
            return super().default(o)
        except TypeError:
            return str(o)


def _json_safe(value):
    """What a cloud answered, as JSON the step can store (dates, Decimals, anything as text)."""
    return json.loads(json.dumps(value, cls=_AnswerEncoder))


def _step(case: RetirementCase, kind: str, *, now=None, by=None, **fields) -> RetirementStep:
    for key in ("request", "response"):
        if key in fields:
            fields[key] = _json_safe(fields[key] or {})
    return RetirementStep.objects.create(
        case=case, kind=kind, at=now or timezone.now(), by=by, policy=case.policy, **fields
    )


def _case_open(
    *, endpoint: Endpoint, policy: RetirementPolicy, verdict: retirement.Verdict, now
) -> RetirementCase | None:
    unit = endpoint.business_unit
    grace = now + dt.timedelta(days=policy.grace_days)
    try:
        with transaction.atomic():
            case = RetirementCase.objects.create(
                kind=CaseKind.IDLE,
                endpoint=endpoint,
                policy=policy,
                business_unit=unit,
                status=CaseStatus.OPEN,
                opened_at=now,
                grace_ends_at=grace,
                evidence={
                    **verdict.as_dict(),
                    "owner": str(unit.owner) if unit and unit.owner else "",
                    "instance_type": endpoint.instance_type,
                    "instance_count": endpoint.instance_count,
                    "config_name": endpoint.config_name,
                },
                monthly_cost=verdict.monthly_cost,
                currency=verdict.currency,
                owner=unit.owner if unit else None,
                summary=_summary(endpoint, verdict, policy, grace),
            )
            _step(case, "opened", now=now, text=verdict.reason)
            transaction.on_commit(lambda: _notify_later(case.pk, "opened"))
    except IntegrityError:
        return None  # another evaluation opened it first
    return case


def _summary(endpoint: Endpoint, verdict: retirement.Verdict, policy, grace) -> str:
    quiet = sum(n or 0 for _, n in verdict.window)
    cost = (
        f" and costs {money_format(verdict.monthly_cost, verdict.currency, symbol=True)} a month"
        if verdict.monthly_cost
        else ""
    )
    what = {
        RetirementActionKind.DELETE: "It will be deleted",
        RetirementActionKind.SCALE_MIN: f"It will be scaled to {policy.min_instances} instance(s)",
        RetirementActionKind.NOTIFY: "Nothing will be changed; please retire it yourself",
    }[policy.action]
    kept = " (its configuration is kept for restore)" if policy.action == "delete" else ""
    return (
        f"{endpoint.name} had {quiet:,} requests in {policy.window_days} days{cost}. "
        f"{what} on {grace:%Y-%m-%d}{kept}."
    )[:300]


@transaction.atomic
def _case_settle(case: RetirementCase, *, status: str, now=None, by=None, text: str = "") -> None:
    now = now or timezone.now()
    case.status = status
    case.closed_at = now
    case.save(update_fields=["status", "closed_at"])
    _step(case, status, now=now, by=by, text=text)


@transaction.atomic
def _case_settle_if(case: RetirementCase, statuses, *, now, text: str) -> bool:
    """Close the case only if it is still in one of ``statuses`` (re-read under a lock): a
    case someone decided while the evaluation ran keeps their decision."""
    locked = _locked(case)
    if locked.status not in statuses:
        return False
    _case_settle(locked, status=CaseStatus.CLOSED, now=now, text=text)
    case.status = locked.status
    return True


# --- Owners' answers --------------------------------------------------------------------------


def _locked(case: RetirementCase) -> RetirementCase:
    return (
        # Only the case row is locked: its nullable relations are outer joins, which
        # PostgreSQL will not lock.
        RetirementCase.objects.select_for_update(of=("self",))
        .select_related("endpoint", "policy", "business_unit__owner")
        .get(pk=case.pk)
    )


@transaction.atomic
def case_keep(
    *, case: RetirementCase, by: User, until: dt.date, reason: str, now=None
) -> RetirementExemption:
    """Keep the endpoint: an exemption until ``until`` (no case opens meanwhile)."""
    now = now or timezone.now()
    case = _locked(case)
    if not may_decide(by, case):
        raise PermissionDeniedError("Only the endpoint's unit and platform admins decide on it.")
    if not case.is_active:
        raise ConflictError(f"The case is {case.get_status_display().lower()}; nothing to keep.")
    if case.endpoint is None:
        raise DomainError("A consolidation case is closed, not kept.")
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Say why the endpoint is kept.")
    if until <= now.date():
        raise DomainError("Keep it until a date after today.")
    if until > now.date() + dt.timedelta(days=MAX_KEEP_DAYS):
        raise DomainError(f"An exemption lasts at most {MAX_KEEP_DAYS} days; pick an earlier date.")
    exemption = RetirementExemption.objects.create(
        endpoint=case.endpoint, until=until, reason=reason, granted_by=by, case=case
    )
    case.decision, case.decided_by, case.decided_at, case.reason = "keep", by, now, reason
    case.summary = f"{case.endpoint.name} is kept until {until:%Y-%m-%d} by {by}: {reason}"[:300]
    case.save(update_fields=["decision", "decided_by", "decided_at", "reason", "summary"])
    _case_settle(
        case, status=CaseStatus.KEPT, now=now, by=by, text=f"Kept until {until:%Y-%m-%d}: {reason}"
    )
    return exemption


@transaction.atomic
def case_wait(*, case: RetirementCase, by: User, now=None) -> RetirementCase:
    """The owner lets the grace period run: recorded, nothing else changes."""
    case = _locked(case)
    if not may_decide(by, case):
        raise PermissionDeniedError("Only the endpoint's unit and platform admins decide on it.")
    if case.status != CaseStatus.OPEN:
        raise ConflictError(f"The case is {case.get_status_display().lower()}.")
    case.decision, case.decided_by, case.decided_at = "wait", by, now or timezone.now()
    case.save(update_fields=["decision", "decided_by", "decided_at"])
    _step(case, "wait", by=by, text="The owner lets the grace period run.")
    return case


def case_retire_now(*, case: RetirementCase, by: User, now=None) -> RetirementCase:
    """The owner retires it now: the policy's action runs at once (a dry run stays one)."""
    with transaction.atomic():
        locked = _locked(case)
        if not may_decide(by, locked):
            raise PermissionDeniedError(
                "Only the endpoint's unit and platform admins decide on it."
            )
        if locked.status != CaseStatus.OPEN:
            raise ConflictError(f"The case is {locked.get_status_display().lower()}.")
        locked.decision, locked.decided_by, locked.decided_at = "retire", by, now or timezone.now()
        locked.save(update_fields=["decision", "decided_by", "decided_at"])
        return _act(case=locked, by=by, now=now)


# --- Acting -----------------------------------------------------------------------------------


MAX_AUTOMATIC_ATTEMPTS = 3


def case_act(*, case: RetirementCase, by: User | None = None, now=None) -> RetirementCase:
    """Run the policy's action on the case's endpoint (or record it, in a dry run).

    ``by`` is a platform admin acting by hand, or None for the schedule. The case stays
    locked for the length of the cloud call, so a second run waits and then finds it done;
    a failure is recorded (the case stays open with the error) rather than raised.
    """
    if by is not None and not by.has_role(Role.PLATFORM_ADMIN):
        raise PermissionDeniedError("Only platform admins run retirement actions by hand.")
    return _act(case=case, by=by, now=now)


@transaction.atomic
def _act(*, case: RetirementCase, by: User | None, now=None) -> RetirementCase:
    now = now or timezone.now()
    case = _locked(case)
    if case.status not in ACTIVE_STATUSES or case.endpoint is None or case.policy is None:
        raise ConflictError(f"Case #{case.pk} has nothing to act on ({case.status}).")
    policy, endpoint = case.policy, case.endpoint
    action = policy.action
    if action == RetirementActionKind.NOTIFY:
        _case_settle(
            case,
            status=CaseStatus.CLOSED,
            now=now,
            by=by,
            text="The policy only notifies; the owner was told and nothing was changed.",
        )
        return case
    actuator = extensions.endpoint_actuator(endpoint.provider)
    try:
        plan = (
            actuator.plan(endpoint, action, min_instances=policy.min_instances)
            if actuator
            else {"call": None}
        )
    except Exception as exc:  # an actuator's bug must not lose the case
        plan = {"call": None, "problem": f"{type(exc).__name__}: {exc}"}
    if policy.dry_run:
        call = plan.get("call") or f"nothing (no actuator for {endpoint.provider})"
        case.status = CaseStatus.DRY_RUN
        case.summary = (
            f"Dry run: {endpoint.name} would have been retired ({call}) on {now:%Y-%m-%d}; "
            "nothing was changed."
        )[:300]
        case.save(update_fields=["status", "summary"])
        _step(
            case,
            action,
            now=now,
            by=by,
            dry_run=True,
            request=plan,
            text=f"Dry run: would have called {call} on {endpoint.name}; nothing was "
            "changed. A platform admin turns off the policy's dry run to act.",
        )
        return case
    if actuator is None:
        return _act_failed(
            case,
            action,
            now,
            by,
            plan,
            f"No way to act on {endpoint.provider} endpoints is installed.",
        )
    try:
        if action == RetirementActionKind.DELETE:
            response = actuator.delete(endpoint)
        else:
            response = actuator.scale_min(endpoint, min_instances=policy.min_instances)
    except extensions.ActuatorError as exc:
        # Part of the work may be done (some models undeployed): keep what it returned.
        return _act_failed(case, action, now, by, plan, str(exc), getattr(exc, "partial", None))
    except Exception as exc:  # recorded on the case, retried, never lost
        logger.exception("retirement case %s: %s raised", case.pk, action)
        return _act_failed(case, action, now, by, plan, f"{type(exc).__name__}: {exc}")
    saving = _saving(case, action, policy.min_instances)
    case.status = CaseStatus.RETIRED
    case.retired_at = now
    case.monthly_saving = saving
    case.last_error = ""
    case.summary = (
        f"{endpoint.name} was {'deleted' if action == 'delete' else 'scaled to the minimum'} "
        f"on {now:%Y-%m-%d}, saving {_money_or_unknown(saving, case.currency)} a month."
    )[:300]
    case.save(update_fields=["status", "retired_at", "monthly_saving", "last_error", "summary"])
    if action == RetirementActionKind.DELETE:
        endpoint.status = "Deleted (configuration kept)"
        endpoint.instance_count = 0  # nothing runs (or costs) until it is restored
        endpoint.save(update_fields=["status", "instance_count"])
    else:
        endpoint.instance_count = policy.min_instances
        endpoint.save(update_fields=["instance_count"])
    _step(
        case,
        action,
        now=now,
        by=by,
        request=plan,
        response=response,
        text=f"{'Deleted' if action == 'delete' else 'Scaled to the minimum'}: saves "
        f"{_money_or_unknown(saving, case.currency)} a month.",
    )
    return case


def _money_or_unknown(amount: Decimal | None, currency: str) -> str:
    return money_format(amount, currency) if amount is not None else "an unknown amount"


def _saving(case: RetirementCase, action: str, min_instances: int) -> Decimal | None:
    if case.monthly_cost is None:
        return None
    if action == RetirementActionKind.DELETE:
        return case.monthly_cost
    count = int(case.evidence.get("instance_count") or 0)
    if count <= min_instances or count == 0:
        return Decimal(0)
    return money_round(case.monthly_cost * (count - min_instances) / count, case.currency)


def _act_failed(case, action, now, by, plan, error: str, partial=None) -> RetirementCase:
    case.status = CaseStatus.OPEN
    case.last_error = error[:2000]
    case.save(update_fields=["status", "last_error"])
    _step(
        case,
        action,
        now=now,
        by=by,
        succeeded=False,
        request=plan,
        response=partial or {},
        text=error,
    )
    logger.warning("retirement case %s: %s failed: %s", case.pk, action, error)
    return case


@transaction.atomic
def case_restore(*, case: RetirementCase, by: User | None, now=None) -> RetirementCase:
    """Bring a retired endpoint back from what was kept (platform admins). The case stays
    locked during the cloud call, so two restores cannot both recreate it."""
    now = now or timezone.now()
    if by is not None and not by.has_role(Role.PLATFORM_ADMIN):
        raise PermissionDeniedError("Only platform admins restore endpoints.")
    case = _locked(case)
    if case.status != CaseStatus.RETIRED or case.endpoint is None:
        raise ConflictError("Only a retired endpoint can be restored.")
    evidence = _restore_evidence(case)
    endpoint = case.endpoint
    actuator = extensions.endpoint_actuator(endpoint.provider)
    if actuator is None:
        raise DomainError(f"No way to act on {endpoint.provider} endpoints is installed.")
    try:
        response = actuator.restore(endpoint, evidence=evidence)
    except Exception as exc:  # recorded, then reported to the caller
        error = (
            str(exc)
            if isinstance(exc, extensions.ActuatorError)
            else f"{type(exc).__name__}: {exc}"
        )
        _step(case, "restore", now=now, by=by, succeeded=False, text=error)
        case.last_error = error[:2000]
        case.save(update_fields=["last_error"])
        return case
    case.status = CaseStatus.RESTORED
    case.last_error = ""
    case.summary = f"{endpoint.name} was restored on {now:%Y-%m-%d}."
    case.save(update_fields=["status", "last_error", "summary"])
    endpoint.status = "Creating (restored)"
    if case.evidence.get("instance_count"):
        endpoint.instance_count = case.evidence["instance_count"]
    endpoint.save(update_fields=["status", "instance_count"])
    _step(case, "restore", now=now, by=by, response=response, text=f"Restored {endpoint.name}.")
    return case


def _restore_evidence(case: RetirementCase) -> dict:
    """What the retirement kept, for the restore: the last successful step's answer, with
    what earlier partial attempts had already removed merged in (a retry after a failure
    part-way only sees what was still deployed)."""
    steps = list(
        case.steps.filter(kind__in=["delete", "scale_min"], dry_run=False).order_by("at", "pk")
    )
    done = next((st for st in reversed(steps) if st.succeeded), None)
    evidence = dict(done.response) if done and isinstance(done.response, dict) else {}
    if not isinstance(evidence.get("kept"), dict):
        return evidence  # an actuator's own shape (not a list of deployed models): as it is
    kept = dict(evidence["kept"])
    models = [m for m in kept.get("deployedModels") or [] if isinstance(m, dict)]
    seen = {m.get("id") for m in models}
    for step in steps:
        earlier = (step.response or {}).get("kept") if isinstance(step.response, dict) else None
        if not isinstance(earlier, dict):
            continue
        for model in earlier.get("deployedModels") or []:
            if not isinstance(model, dict):
                continue
            if model.get("id") not in seen:
                models.append(model)
                seen.add(model.get("id"))
        if earlier.get("trafficSplit") and len(earlier["trafficSplit"]) > len(
            kept.get("trafficSplit") or {}
        ):
            kept["trafficSplit"] = earlier["trafficSplit"]
    if models:
        kept["deployedModels"] = models
    if kept:
        evidence["kept"] = kept
    return evidence


@dataclass
class DueResult:
    reminded: list[int] = field(default_factory=list)
    acted: list[int] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)


def retirement_cases_due(*, now: dt.datetime | None = None) -> DueResult:
    """Remind owners before the grace period ends; act on the cases whose period is over."""
    now = now or timezone.now()
    result = DueResult()
    cases = RetirementCase.objects.filter(
        kind=CaseKind.IDLE, status=CaseStatus.OPEN, grace_ends_at__isnull=False
    ).select_related("policy")
    for case in cases:
        policy = case.policy
        if policy is None:
            continue
        if case.grace_ends_at <= now:
            failures = case.steps.filter(kind=policy.action, succeeded=False).count()
            if failures >= MAX_AUTOMATIC_ATTEMPTS:
                continue  # left open with its error for a platform admin
            why_not = _still_candidate(case, now=now)
            try:
                if why_not:
                    _case_settle_if(
                        case, (CaseStatus.OPEN,), now=now, text=f"Not acted on: {why_not}"
                    )
                    continue
                _act(case=case, by=None, now=now)
            except DomainError as exc:  # decided or closed meanwhile: nothing to do
                logger.info("retirement case %s skipped: %s", case.pk, exc)
                continue
            result.acted.append(case.pk)
        elif (
            case.reminded_at is None
            and case.grace_ends_at - dt.timedelta(days=policy.reminder_days) <= now
        ):
            with transaction.atomic():
                updated = RetirementCase.objects.filter(
                    pk=case.pk, reminded_at=None, status=CaseStatus.OPEN
                ).update(reminded_at=now)
                if updated:
                    _step(case, "reminded", now=now, text="Reminder: the grace period ends soon.")
                    transaction.on_commit(lambda pk=case.pk: _notify_later(pk, "reminder"))
                    result.reminded.append(case.pk)
    # A policy whose dry run was turned off: its dry-run cases start over, owners told again
    # (if the endpoint is still a candidate).
    for case in RetirementCase.objects.filter(
        kind=CaseKind.IDLE, status=CaseStatus.DRY_RUN, policy__dry_run=False
    ).select_related("policy"):
        why_not = _still_candidate(case, now=now)
        if why_not:
            _case_settle_if(
                case, (CaseStatus.DRY_RUN,), now=now, text=f"No longer a candidate: {why_not}"
            )
            continue
        with transaction.atomic():
            case = _locked(case)
            if case.status != CaseStatus.DRY_RUN:
                continue
            case.status = CaseStatus.OPEN
            case.grace_ends_at = now + dt.timedelta(days=case.policy.grace_days)
            case.reminded_at = None
            case.summary = _summary(
                case.endpoint,
                retirement.Verdict(
                    idle=True,
                    reason="",
                    window=[(d["day"], d["invocations"]) for d in case.evidence.get("window", [])],
                    monthly_cost=case.monthly_cost,
                    currency=case.currency,
                ),
                case.policy,
                case.grace_ends_at,
            )
            case.save(update_fields=["status", "grace_ends_at", "reminded_at", "summary"])
            _step(
                case,
                "reopened",
                now=now,
                text="The policy's dry run is off: the grace period starts again.",
            )
            transaction.on_commit(lambda pk=case.pk: _notify_later(pk, "opened"))
        result.reopened.append(case.pk)
    return result


# --- Consolidation (version sprawl) -----------------------------------------------------------


@transaction.atomic
def consolidation_open(
    *, model: RegisteredModel, by: User, summary: str, evidence: dict
) -> RetirementCase:
    """Open a case asking the model's unit to consolidate its deployments (from the sprawl
    report); the owner is mailed. One open consolidation case per model."""
    if not (by.has_role(Role.PLATFORM_ADMIN) or by.is_board_member or by.manages_costs):
        raise PermissionDeniedError(
            "Platform admins, finance and review-board members open consolidation cases."
        )
    RegisteredModel.objects.select_for_update().filter(pk=model.pk).first()  # one at a time
    existing = RetirementCase.objects.filter(
        kind=CaseKind.CONSOLIDATION, model=model, status=CaseStatus.OPEN
    ).first()
    if existing:
        raise ConflictError(f"Consolidation case #{existing.pk} is already open for {model.name}.")
    unit = model.business_unit
    case = RetirementCase.objects.create(
        kind=CaseKind.CONSOLIDATION,
        model=model,
        business_unit=unit,
        status=CaseStatus.OPEN,
        opened_at=timezone.now(),
        evidence=evidence,
        owner=unit.owner,
        summary=summary[:300],
        monthly_cost=Decimal(evidence["monthly_cost"]) if evidence.get("monthly_cost") else None,
        currency=evidence.get("currency", ""),
    )
    _step(case, "opened", by=by, text=summary)
    transaction.on_commit(lambda: _notify_later(case.pk, "opened"))
    return case


@transaction.atomic
def case_close(*, case: RetirementCase, by: User, reason: str) -> RetirementCase:
    """Close a case by hand (a consolidation done, or an idle case no longer wanted)."""
    case = _locked(case)
    if not may_decide(by, case):
        raise PermissionDeniedError("Only the unit's people and platform admins close its cases.")
    if not case.is_active:
        raise ConflictError(f"The case is already {case.get_status_display().lower()}.")
    if not reason.strip():
        raise DomainError("Say why the case is closed.")
    _case_settle(case, status=CaseStatus.CLOSED, by=by, text=reason.strip())
    return case


# --- Links and mail ---------------------------------------------------------------------------


def link_token(link: RetirementLink) -> str:
    return links.token_make(salt=RETIREMENT_LINK_SALT, payload={"l": str(link.pk)})


def link_read(token: str) -> RetirementLink:
    """The link a token names; ``LinkTamperedError`` if forged, ``DomainError`` if gone."""
    payload = links.token_read(salt=RETIREMENT_LINK_SALT, token=token)
    raw = payload.get("l")
    try:
        link_id = uuid.UUID(raw) if isinstance(raw, str) else None
    except ValueError:
        link_id = None
    if link_id is None:
        raise links.LinkTamperedError("The token does not name a link.")
    link = (
        RetirementLink.objects.select_related("case__endpoint", "case__policy", "person")
        .filter(pk=link_id)
        .first()
    )
    if link is None:
        raise DomainError("This link no longer exists.")
    return link


def link_check(link: RetirementLink, *, now=None) -> str:
    """Why a link cannot be used now ("" when it can)."""
    now = now or timezone.now()
    if link.used_at:
        return f"This link was already used on {link.used_at:%Y-%m-%d %H:%M} UTC."
    if not link.case.is_open:
        return (
            f"The case is already {link.case.get_status_display().lower()}; there is nothing "
            "left to decide."
        )
    if link.expires_at <= now:
        return "This link has expired; open the case in Capgov instead."
    if not link.person.is_active or not may_decide(link.person, link.case):
        return "This link's recipient may no longer decide on the endpoint."
    return ""


def link_use(
    *, link: RetirementLink, until: dt.date | None = None, reason: str = "", now=None
) -> RetirementCase:
    """Act on a link (POST of the confirmation page): keep, or retire now. Single use: the
    link is spent in the same transaction as the decision, so a refused decision leaves it
    usable."""
    now = now or timezone.now()
    with transaction.atomic():
        link = (
            RetirementLink.objects.select_for_update()
            .select_related("case", "person")
            .get(pk=link.pk)
        )
        problem = link_check(link, now=now)
        if problem:
            raise ConflictError(problem)
        # Only this link is spent; the case's other links are refused because it is decided.
        link.used_at = now
        link.save(update_fields=["used_at"])
        if link.action == "keep":
            if until is None:
                raise DomainError("Pick the date until which the endpoint is kept.")
            case_keep(case=link.case, by=link.person, until=until, reason=reason, now=now)
            return RetirementCase.objects.get(pk=link.case_id)
        return case_retire_now(case=link.case, by=link.person, now=now)


def _links_make(case: RetirementCase, person: User, now) -> dict[str, str]:
    expires = max(case.grace_ends_at or now, now) + dt.timedelta(days=1)
    urls = {}
    for action in LINK_ACTIONS:
        link = RetirementLink.objects.create(
            case=case, person=person, action=action, created_at=now, expires_at=expires
        )
        urls[action] = absolute_url(reverse("registry:retirement-link", args=[link_token(link)]))
    return urls


def _notify_later(case_id: int, what: str) -> None:
    from registry.tasks import retirement_notify_task

    enqueue(retirement_notify_task, case_id, what)


def retirement_notify(*, case_id: int, what: str) -> int:
    """E-mail the case's owner (the unit's owner): the case opened, or a reminder."""
    case = RetirementCase.objects.select_related(
        "endpoint", "policy", "business_unit__owner", "model"
    ).get(pk=case_id)
    if what == "reminder" and not case.is_open:
        return 0  # decided since the reminder was queued
    owner = (case.business_unit.owner if case.business_unit else None) or case.owner
    if owner is None or not owner.email or not owner.is_active:
        logger.warning("retirement case %s has no owner to e-mail", case.pk)
        return 0
    now = timezone.now()
    urls = _links_make(case, owner, now) if case.kind == CaseKind.IDLE and case.is_open else {}
    context = {
        "case": case,
        "owner": owner,
        "what": what,
        "urls": urls,
        "case_url": absolute_url(case.get_absolute_url()),
    }
    subject = ("Reminder: " if what == "reminder" else "") + case.summary
    message = EmailMultiAlternatives(
        subject=subject_clean(f"[Capgov] {subject}"),
        body=render_to_string("registry/email/retirement_case.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[owner.email],
    )
    message.attach_alternative(
        render_to_string("registry/email/retirement_case.html", context), "text/html"
    )
    message.send()
    if what == "opened":
        RetirementCase.objects.filter(pk=case.pk).update(notified_at=now)
    _step(case, "mailed", now=now, text=f"{what.capitalize()} mailed to {owner.email}.")
    return 1


def cases_visible(user: User):
    """Cases of the units the person belongs to (all for platform admins and finance)."""
    cases = RetirementCase.objects.select_related(
        "endpoint", "policy", "business_unit", "model", "owner"
    )
    if user.has_role(Role.PLATFORM_ADMIN) or user.manages_costs:
        return cases
    mine = Q(business_unit__in=user.scoped_business_unit_ids) | Q(business_unit__owner=user)
    if user.is_board_member:  # they open consolidation cases from the sprawl report
        mine |= Q(kind=CaseKind.CONSOLIDATION)
    return cases.filter(mine)
