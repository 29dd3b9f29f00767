"""Writes about approvals: policies, requests and their steps, votes, e-mailed links, escalation.

A request is filed as a draft, submitted (the policy that applies puts its steps on it),
voted on step by step and ends approved, rejected, withdrawn or expired. Every change is an
``ApprovalEvent``; an approval or a rejection is also a ``Decision``. Mails leave through
Celery once the transaction that caused them commits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml
from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.db import models, transaction
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone

from governance import emails, links
from governance import policy as rules
from governance.celery import enqueue
from governance.choices import (
    DecisionKind,
    DecisionOutcome,
    FreezeOrigin,
    RequestKind,
    RequestStatus,
    Role,
    StepMode,
    StepStatus,
)
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.extensions import request_notes
from governance.models import (
    ApprovalEvent,
    ApprovalLink,
    ApprovalPolicy,
    ApprovalRequest,
    ApprovalStep,
    ApprovalVote,
    BusinessUnit,
    DeploymentFreeze,
    PolicyStep,
    User,
)
from governance.money import money_format
from governance.selectors import (
    TIMES,
    approval_escalation_entries,
    approval_filing_unit_list,
    approval_request_summary,
    approval_step_approvers,
    approval_step_eligible,
    freezes_in_force,
)
from governance.services.decisions import decision_record, freeze_lift

OPEN_STEP_STATUSES = (StepStatus.WAITING, StepStatus.ACTIVE)
EDITABLE_FIELDS = (
    "kind",
    "title",
    "description",
    "business_unit",
    "estimated_cost",
    "currency",
    "accelerator",
    "accelerator_count",
    "duration_hours",
    "needed_by",
)
# Once submitted these decide the policy and the scope; change them by filing anew.
FIXED_WHEN_PENDING = ("kind", "business_unit")
# What the approvers judged: changing any of these after a vote discards the votes.
ESTIMATE_FIELDS = (
    "estimated_cost",
    "currency",
    "accelerator",
    "accelerator_count",
    "duration_hours",
)
# Bounds on what a request may claim (the form, the API and the service say the same).
MAX_ESTIMATED_COST = Decimal(10) ** 15
MAX_ACCELERATOR_COUNT = 1_000_000
MAX_DURATION_HOURS = 100_000
COMMENT_MAX = 4000


def _when(value: dt.datetime) -> str:
    return f"{value:%d %b %Y %H:%M} UTC"


def _event(
    request: ApprovalRequest,
    *,
    kind: str,
    text: str,
    at: dt.datetime,
    actor: User | None = None,
    **data: Any,
) -> ApprovalEvent:
    return ApprovalEvent.objects.create(
        request=request, kind=kind, text=text, at=at, actor=actor, data=data
    )


def _role_label(role: str) -> str:
    return Role(role).label if role in Role.values else role


def _names(people: list[User]) -> str:
    return ", ".join(str(p) for p in people) or "nobody"


def freeze_message(freeze: DeploymentFreeze) -> str:
    """The sentence people read when a freeze stops them (the same as the registry gate's)."""
    return (
        f"{freeze.business_unit.name} is under a deployment freeze since "
        f"{freeze.started_at:%Y-%m-%d %H:%M} UTC: {freeze.reason}"
    )


def _freeze_refuse(request: ApprovalRequest, *, what: str) -> None:
    if request.kind == RequestKind.BUDGET_EXCEPTION:
        return
    freeze = freezes_in_force(business_unit_ids=[request.business_unit_id]).get(
        request.business_unit_id
    )
    if freeze is not None:
        raise ConflictError(
            f"{freeze_message(freeze)}. {what} is refused until the freeze is lifted or a "
            "budget exception is approved."
        )


# --- policies -----------------------------------------------------------------------------


def _policy_rules() -> list[rules.PolicyRule]:
    policies = ApprovalPolicy.objects.filter(is_active=True).prefetch_related(
        "steps", "business_units"
    )
    return [
        rules.PolicyRule(
            id=p.pk,
            name=p.name,
            priority=p.priority,
            is_active=p.is_active,
            kinds=frozenset(p.kinds or ()),
            business_unit_ids=frozenset(bu.pk for bu in p.business_units.all()),
            min_cost=p.min_cost,
            currency=p.currency,
            min_gpu_hours=p.min_gpu_hours,
            mode=p.mode,
            escalation_path=tuple(p.escalation_path or ()),
            steps=tuple(
                rules.StepRule(
                    order=s.order,
                    role=s.role,
                    required_approvals=s.required_approvals,
                    wait_hours=s.wait_hours,
                )
                for s in p.steps.all()
            ),
        )
        for p in policies
    ]


def _facts(request: ApprovalRequest) -> rules.RequestFacts:
    return rules.RequestFacts(
        kind=request.kind,
        business_unit_id=request.business_unit_id,
        estimated_cost=Decimal(request.estimated_cost),
        currency=request.currency,
        gpu_hours=Decimal(request.gpu_hours),
    )


def approval_plan(*, request: ApprovalRequest) -> rules.Plan:
    """The policy and steps that would apply to ``request`` now (nothing is written)."""
    return rules.plan_for(_policy_rules(), _facts(request))


def _check_text(request: ApprovalRequest, check: rules.ThresholdCheck) -> str:
    name = check.policy.name
    if check.measure == rules.COST:
        limit = money_format(check.threshold, check.policy.currency, symbol=True)
        estimate = money_format(request.estimated_cost, request.currency, symbol=True)
        if check.outcome == rules.OTHER_CURRENCY:
            return (
                f"{name}: cost from {limit}; est. {estimate} is in another currency, so it "
                "counts as above (no exchange rate)"
            )
        return f"{name}: cost from {limit}, est. {estimate} is " + (
            "above" if check.outcome == rules.MET else "below"
        )
    limit = f"{check.threshold.normalize():f}"
    hours = f"{Decimal(request.gpu_hours).normalize():f}"
    return f"{name}: from {limit} GPU-hours, the request's {hours} are " + (
        "above" if check.outcome == rules.MET else "below"
    )


def _checks_text(request: ApprovalRequest, plan: rules.Plan) -> str:
    """Which thresholds were checked, in words, for the history."""
    if not plan.checks:
        return (
            f"no active policy with a threshold covers a {request.get_kind_display().lower()} "
            f"for {request.business_unit.name}"
        )
    return "thresholds checked: " + "; ".join(_check_text(request, c) for c in plan.checks)


def _checks_data(plan: rules.Plan) -> list[dict[str, str]]:
    return [
        {
            "policy": c.policy.name,
            "measure": c.measure,
            "threshold": f"{c.threshold:f}",
            "currency": c.policy.currency if c.measure == rules.COST else "",
            "outcome": c.outcome,
        }
        for c in plan.checks
    ]


@dataclass(frozen=True)
class PoliciesLoadResult:
    created: int
    updated: int


def _policy_error(file_name: str, where: str, message: str) -> DomainError:
    return DomainError(f"{file_name}: {where}: {message}")


_POLICY_KEYS = {
    "name",
    "description",
    "priority",
    "active",
    "kinds",
    "business_units",
    "min_cost",
    "currency",
    "min_gpu_hours",
    "mode",
    "escalation_path",
    "steps",
}
_STEP_KEYS = {"role", "approvals", "required_approvals", "wait_hours"}


def _decimal_or_none(value: Any, *, error: DomainError) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise error from exc
    if not amount.is_finite() or amount < 0:
        raise error
    return amount


def _positive_int(value: Any, *, default: int, error: DomainError, minimum: int = 0) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise error
    try:
        number = int(value)
    except ValueError as exc:
        raise error from exc
    if number < minimum:
        raise error
    return number


def _policy_parse(item: Any, *, where: str, file_name: str, units: dict[str, BusinessUnit]):
    def fail(message: str) -> DomainError:
        return _policy_error(file_name, where, message)

    if not isinstance(item, dict):
        raise fail("each policy is a mapping with a name and steps")
    unknown = set(item) - _POLICY_KEYS
    if unknown:
        raise fail(f"unknown key(s) {', '.join(sorted(unknown))}")
    name = str(item.get("name") or "").strip()
    if not name:
        raise fail("needs a name")
    where = f"{where} ({name})"
    kinds = item.get("kinds") or []
    if isinstance(kinds, str):
        kinds = [kinds]
    if not isinstance(kinds, list) or any(k not in RequestKind.values for k in kinds):
        raise fail(f"kinds must be a list of: {', '.join(RequestKind.values)}")
    codes = item.get("business_units") or []
    if isinstance(codes, str):
        codes = [codes]
    if not isinstance(codes, list):
        raise fail("business_units must be a list of codes, e.g. [RES]")
    missing = [str(c).upper() for c in codes if str(c).upper() not in units]
    if missing:
        raise fail(f"business unit(s) {', '.join(missing)} not defined")
    mode = str(item.get("mode", StepMode.SEQUENTIAL))
    if mode not in StepMode.values:
        raise fail("mode is sequential or parallel")
    path = item.get("escalation_path") or []
    if not isinstance(path, list) or not all(
        rules.escalation_target_valid(str(e), Role.values) for e in path
    ):
        raise fail("escalation_path lists bu_owner or role:<role>, e.g. [bu_owner, role:finance]")
    currency = rules.currency_code_parse(str(item.get("currency", "USD")))
    if currency is None:
        raise fail("currency is a three-letter ISO 4217 code such as USD (letters A-Z only)")
    steps = item.get("steps")
    if not isinstance(steps, list) or not steps:
        raise fail("needs at least one step, e.g. steps: [{role: approver}]")
    parsed_steps = []
    for order, step in enumerate(steps, start=1):
        step_where = f"step {order}"
        if not isinstance(step, dict) or set(step) - _STEP_KEYS:
            raise fail(f"{step_where}: a mapping of role, approvals and wait_hours")
        if step.get("role") not in Role.values:
            raise fail(f"{step_where}: role must be one of {', '.join(Role.values)}")
        approvals = step.get("required_approvals", step.get("approvals"))
        parsed_steps.append(
            (
                order,
                step["role"],
                _positive_int(
                    approvals,
                    default=1,
                    minimum=1,
                    error=fail(f"{step_where}: approvals is a whole number of at least 1"),
                ),
                _positive_int(
                    step.get("wait_hours"),
                    default=24,
                    minimum=1,
                    error=fail(f"{step_where}: wait_hours is a whole number of hours"),
                ),
            )
        )
    values = {
        "description": str(item.get("description") or "").strip(),
        "priority": _positive_int(
            item.get("priority"), default=100, error=fail("priority is a whole number")
        ),
        "is_active": bool(item.get("active", True)),
        "kinds": sorted(set(kinds)),
        "min_cost": _decimal_or_none(
            item.get("min_cost"), error=fail("min_cost is an amount such as 10000.00")
        ),
        "currency": currency,
        "min_gpu_hours": _decimal_or_none(
            item.get("min_gpu_hours"), error=fail("min_gpu_hours is a number of hours")
        ),
        "mode": mode,
        "escalation_path": [str(e) for e in path],
    }
    return name, values, [units[str(c).upper()] for c in codes], parsed_steps


@transaction.atomic
def approval_policies_load(*, text: str, file_name: str = "policies.yaml") -> PoliciesLoadResult:
    """Create or update approval policies from YAML, matched by name; all or nothing.

    Loading the same file twice changes nothing. Policies missing from the file are left
    as they are (deactivate them in the admin or with ``active: false``).
    """
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        problem = getattr(exc, "problem", None) or str(exc)
        raise _policy_error(file_name, where, f"not valid YAML: {problem}") from exc
    if not isinstance(data, dict) or set(data) - {"policies"}:
        raise _policy_error(file_name, "top level", "expected one key: policies")
    items = data.get("policies") or []
    if not isinstance(items, list):
        raise _policy_error(file_name, "policies", "a list of policies")
    units = {bu.code: bu for bu in BusinessUnit.objects.all()}
    created = updated = 0
    seen: set[str] = set()
    for index, item in enumerate(items, start=1):
        name, values, scope, steps = _policy_parse(
            item, where=f"policies[{index}]", file_name=file_name, units=units
        )
        if name in seen:
            raise _policy_error(file_name, f"policies[{index}]", f"{name!r} appears twice")
        seen.add(name)
        policy, was_created = ApprovalPolicy.objects.get_or_create(name=name, defaults=values)
        changed = not was_created and any(getattr(policy, k) != v for k, v in values.items())
        if changed:
            for key, value in values.items():
                setattr(policy, key, value)
            policy.save()
        if {bu.pk for bu in policy.business_units.all()} != {bu.pk for bu in scope}:
            policy.business_units.set(scope)
            changed = True
        have = [
            (s.order, s.role, s.required_approvals, s.wait_hours)
            for s in policy.steps.order_by("order")
        ]
        if have != steps:
            policy.steps.all().delete()
            PolicyStep.objects.bulk_create(
                PolicyStep(policy=policy, order=o, role=r, required_approvals=n, wait_hours=w)
                for o, r, n, w in steps
            )
            changed = True
        created += was_created
        updated += changed and not was_created
    return PoliciesLoadResult(created=created, updated=updated)


# --- requests -----------------------------------------------------------------------------


def _may_file(by: User, business_unit: BusinessUnit) -> None:
    if approval_filing_unit_list(user=by).filter(pk=business_unit.pk).exists():
        return
    raise PermissionDeniedError(
        f"You can file requests for your own business units only; {business_unit.name} is "
        "not one of them."
    )


def currency_clean(value: Any) -> str:
    """An ISO 4217 shaped code (three ASCII letters, upper-cased), or ``DomainError``."""
    currency = rules.currency_code_parse(value)
    if currency is None:
        raise DomainError(
            f"The currency {str(value).strip()[:10]!r} is not a three-letter ISO 4217 code "
            "such as USD, EUR or GBP (letters A-Z only)."
        )
    return currency


def _clean(values: dict[str, Any], *, now: dt.datetime) -> dict[str, Any]:
    """Validate a request's fields; the messages name the field and the fix."""
    if values["kind"] not in RequestKind.values:
        raise DomainError(f"Unknown request kind {values['kind']!r}.")
    values["title"] = str(values["title"]).strip()
    if not values["title"]:
        raise DomainError("Give the request a title, e.g. 'Fine-tune ranker on October data'.")
    try:
        cost = Decimal(str(values["estimated_cost"]))
    except InvalidOperation as exc:
        raise DomainError("The estimated cost is an amount such as 23000.00.") from exc
    if not cost.is_finite() or cost < 0 or cost.as_tuple().exponent < -2:
        raise DomainError("The estimated cost is a positive amount with at most two decimals.")
    if cost > MAX_ESTIMATED_COST:
        raise DomainError(
            f"The estimated cost is at most {MAX_ESTIMATED_COST:,}; check the amount (it is the "
            "whole operation's cost, not in cents)."
        )
    values["estimated_cost"] = cost
    values["currency"] = currency_clean(values["currency"])
    count = values["accelerator_count"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise DomainError("The accelerator count is a whole number, 0 or more.")
    if count > MAX_ACCELERATOR_COUNT:
        raise DomainError(f"The accelerator count is at most {MAX_ACCELERATOR_COUNT:,}.")
    try:
        hours = Decimal(str(values["duration_hours"]))
    except InvalidOperation as exc:
        raise DomainError("The duration is a number of hours such as 72.") from exc
    if not hours.is_finite() or hours < 0 or hours.as_tuple().exponent < -2:
        raise DomainError("The duration is a positive number of hours, at most two decimals.")
    if hours > MAX_DURATION_HOURS:
        raise DomainError(f"The duration is at most {MAX_DURATION_HOURS:,} hours.")
    if count and not hours:
        raise DomainError("Say for how many hours the accelerators are needed.")
    values["duration_hours"] = hours
    values["accelerator"] = str(values["accelerator"]).strip()
    values["description"] = str(values["description"]).strip()
    needed_by = values["needed_by"]
    if needed_by is not None:
        if timezone.is_naive(needed_by):
            raise DomainError("'Needed by' needs a time zone (UTC).")
        if needed_by <= now:
            raise DomainError("'Needed by' is in the past; choose a later date or leave it empty.")
    return values


def approval_request_create(
    *,
    by: User,
    kind: str,
    title: str,
    business_unit: BusinessUnit,
    estimated_cost: Decimal,
    currency: str = "USD",
    description: str = "",
    accelerator: str = "",
    accelerator_count: int = 0,
    duration_hours: Decimal = Decimal(0),
    needed_by: dt.datetime | None = None,
    subject: models.Model | None = None,
) -> ApprovalRequest:
    """File a draft request for a business unit the person belongs to (or any, as admin)."""
    _may_file(by, business_unit)
    now = timezone.now()
    values = _clean(
        {
            "kind": kind,
            "title": title,
            "description": description,
            "business_unit": business_unit,
            "estimated_cost": estimated_cost,
            "currency": currency,
            "accelerator": accelerator,
            "accelerator_count": accelerator_count,
            "duration_hours": duration_hours,
            "needed_by": needed_by,
        },
        now=now,
    )
    with transaction.atomic():
        request = ApprovalRequest(requested_by=by, **values)
        if subject is not None:
            request.subject = subject
        request.save()
        _event(
            request,
            kind="created",
            text=f"{by} filed the request as a draft: {approval_request_summary(request=request)}.",
            at=now,
            actor=by,
        )
    return request


def _locked(request: ApprovalRequest) -> ApprovalRequest:
    return (
        ApprovalRequest.objects.select_for_update()
        .select_related("business_unit", "requested_by")
        .get(pk=request.pk)
    )


def _requester_only(request: ApprovalRequest, by: User, what: str) -> None:
    if request.requested_by_id != by.pk:
        raise PermissionDeniedError(f"Only {request.requested_by}, who filed it, can {what}.")


def _links_supersede(
    request: ApprovalRequest, *, now: dt.datetime, step: ApprovalStep | None = None
) -> int:
    open_links = ApprovalLink.objects.filter(
        step__request=request, used_at=None, superseded_at=None
    )
    if step is not None:
        open_links = open_links.filter(step=step)
    return open_links.update(superseded_at=now)


def _display(value: Any) -> Any:
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:f}"
    return value


def approval_request_update(
    *, request: ApprovalRequest, by: User, **changes: Any
) -> ApprovalRequest:
    """Edit a draft or pending request. Each edit is a new revision: every link sent so far
    stops working and the approvers of the open steps get new ones.

    A pending request keeps its steps, so an edit that would put it under a different
    policy is refused: withdraw it and file a new one. An edit of the estimate (cost,
    currency, accelerator, count or duration) after anyone voted discards every vote and
    starts the approval again from the first step (see ``_votes_reset``): nobody's
    approval of one estimate counts for another.
    """
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise DomainError(f"These fields cannot be edited: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        request = _locked(request)
        _requester_only(request, by, "edit it")
        if request.status not in (RequestStatus.DRAFT, RequestStatus.PENDING):
            raise ConflictError(
                f"The request is {request.get_status_display().lower()}; only drafts and "
                "pending requests can be edited."
            )
        now = timezone.now()
        current = {f: getattr(request, f) for f in EDITABLE_FIELDS}
        values = _clean({**current, **changes}, now=now)
        if values["business_unit"] != request.business_unit:
            _may_file(by, values["business_unit"])
        diff = {f: (current[f], values[f]) for f in EDITABLE_FIELDS if current[f] != values[f]}
        if not diff:
            return request
        pending = request.status == RequestStatus.PENDING
        if pending and set(diff) & set(FIXED_WHEN_PENDING):
            raise ConflictError(
                "The kind and business unit of a submitted request are fixed; withdraw it and "
                "file a new one."
            )
        for field, value in values.items():
            setattr(request, field, value)
        if pending:
            plan = approval_plan(request=request)
            new_policy = plan.policy.id if plan.policy else None
            if new_policy != request.policy_id or not plan.needs_approval:
                now_name = plan.policy.name if plan.policy else "no policy"
                raise ConflictError(
                    f"After this change the request falls under {now_name} instead of "
                    f"{request.policy or 'the built-in budget exception policy'}; withdraw it "
                    "and file a new one."
                )
        estimate_changed = [f for f in ESTIMATE_FIELDS if f in diff]
        reset = (
            pending
            and bool(estimate_changed)
            and ApprovalVote.objects.filter(step__request=request).exists()
        )
        request.revision += 1
        request.save()
        superseded = _links_supersede(request, now=now)
        fields = ", ".join(f.replace("_", " ") for f in diff)
        _event(
            request,
            kind="edited",
            text=f"{by} edited the request ({fields}); revision {request.revision}. "
            f"{superseded} link(s) already sent no longer work.",
            at=now,
            actor=by,
            revision=request.revision,
            changes={f: [_display(a), _display(b)] for f, (a, b) in diff.items()},
            links_superseded=superseded,
        )
        if reset:
            _votes_reset(request, by=by, fields=estimate_changed, now=now)
        elif pending:
            for step in request.steps.filter(status=StepStatus.ACTIVE).order_by("order"):
                _links_resend(request, step, now=now)
    return request


def _votes_reset(
    request: ApprovalRequest, *, by: User, fields: list[str], now: dt.datetime
) -> None:
    """The estimate the approvers judged has changed: their votes no longer stand.

    Every vote is discarded (the history keeps them, here and in the vote events), every
    step goes back to waiting with its escalation undone, and approval starts again from
    the first step (every step, in parallel), with new links for the new revision.
    """
    votes = list(
        ApprovalVote.objects.filter(step__request=request)
        .select_related("approver", "step")
        .order_by("step__order", "at", "pk")
    )
    discarded = [
        {
            "step": v.step.order,
            "approver": v.approver.username,
            "approve": v.approve,
            "at": v.at.isoformat(),
            "via": v.via,
        }
        for v in votes
    ]
    ApprovalVote.objects.filter(pk__in=[v.pk for v in votes]).delete()
    request.steps.update(
        status=StepStatus.WAITING,
        activated_at=None,
        due_at=None,
        escalation_level=0,
        escalated_at=None,
        decided_at=None,
    )
    steps = list(request.steps.order_by("order"))
    what = ", ".join(f.replace("_", " ") for f in fields)
    who = "; ".join(
        f"{v.approver} {'approved' if v.approve else 'rejected'} step {v.step.order}" for v in votes
    )
    start = "every step" if request.mode == StepMode.PARALLEL else f"step {steps[0].order}"
    _event(
        request,
        kind="votes_reset",
        text=f"Votes reset because the estimate changed ({what}): {len(votes)} vote(s) no "
        f"longer count ({who}). Approval starts again from {start}.",
        at=now,
        actor=by,
        revision=request.revision,
        discarded=discarded,
    )
    opening = steps if request.mode == StepMode.PARALLEL else steps[:1]
    for step in opening:
        _step_activate(request, step, now=now)


def approval_request_submit(*, request: ApprovalRequest, by: User) -> ApprovalRequest:
    """Send a draft for approval: the policy that applies puts its steps on the request and
    the approvers of the first step (every step, in parallel) are e-mailed.

    No policy applies: the request is approved at once (a budget exception always needs
    someone: see ``governance.policy.plan_for``). A business unit under a deployment freeze
    can file only budget exceptions.
    """
    with transaction.atomic():
        request = _locked(request)
        _requester_only(request, by, "submit it")
        if request.status != RequestStatus.DRAFT:
            raise ConflictError(
                f"The request is already {request.get_status_display().lower()}; only a draft "
                "can be submitted."
            )
        now = timezone.now()
        if request.needed_by is not None and request.needed_by <= now:
            raise DomainError(
                f"'Needed by' ({_when(request.needed_by)}) has passed; change it before submitting."
            )
        _freeze_refuse(request, what="A new costly request")
        plan = approval_plan(request=request)
        request.status = RequestStatus.PENDING
        request.submitted_at = now
        request.policy_id = plan.policy.id if plan.policy else None
        request.mode = plan.mode
        request.escalation_path = list(plan.escalation_path)
        checked = _checks_text(request, plan)
        if not plan.needs_approval:
            request.status = RequestStatus.APPROVED
            request.decided_at = now
            request.save()
            why = (
                f"Policy {plan.policy.name} asks for no approvals"
                if plan.policy
                else "No approval policy requires approval for this request"
            )
            _event(
                request,
                kind="approved",
                text=f"{by} submitted the request. {why} ({checked}): it is approved without "
                "approvers.",
                at=now,
                actor=by,
                checks=_checks_data(plan),
            )
            return request
        request.save()
        steps = [
            ApprovalStep.objects.create(
                request=request,
                order=s.order,
                role=s.role,
                required_approvals=s.required_approvals,
                wait_hours=s.wait_hours,
            )
            for s in plan.steps
        ]
        described = "; ".join(
            f"step {s.order}: {s.required_approvals} {TIMES} {_role_label(s.role)}"
            for s in plan.steps
        )
        mode = "one after another" if plan.mode == StepMode.SEQUENTIAL else "all at once"
        text = f"{by} submitted the request under {plan.policy.name} ({described}; {mode})."
        for check in plan.currency_fail_closed:
            text += (
                f" The estimate is in {request.currency} but the policy's cost threshold "
                f"({money_format(check.threshold, check.policy.currency, symbol=True)}) is in "
                f"{check.policy.currency.upper()}: with no exchange rate to compare by, it "
                "counts as above the threshold."
            )
        _event(
            request,
            kind="submitted",
            text=text,
            at=now,
            actor=by,
            policy=plan.policy.name,
            checks=_checks_data(plan),
        )
        active_orders = {s.order for s in plan.steps if s.active}
        for step in steps:
            if step.order in active_orders:
                _step_activate(request, step, now=now)
    return request


def approval_request_withdraw(
    *, request: ApprovalRequest, by: User, reason: str = ""
) -> ApprovalRequest:
    """The requester takes a draft or pending request back; links sent stop working."""
    with transaction.atomic():
        request = _locked(request)
        _requester_only(request, by, "withdraw it")
        if request.status not in (RequestStatus.DRAFT, RequestStatus.PENDING):
            raise ConflictError(
                f"The request is already {request.get_status_display().lower()}; it cannot be "
                "withdrawn."
            )
        now = timezone.now()
        _request_close(request, status=RequestStatus.WITHDRAWN, now=now)
        text = f"{by} withdrew the request."
        if reason.strip():
            text += f" Reason: {reason.strip()}"
        _event(request, kind="withdrawn", text=text, at=now, actor=by)
    return request


def _request_close(request: ApprovalRequest, *, status: str, now: dt.datetime) -> None:
    request.status = status
    request.decided_at = now
    request.save(update_fields=["status", "decided_at"])
    request.steps.filter(status__in=OPEN_STEP_STATUSES).update(status=StepStatus.CANCELLED)
    _links_supersede(request, now=now)


def approval_requests_expire(*, now: dt.datetime | None = None) -> int:
    """Pending requests still undecided at their 'needed by' time expire. Idempotent."""
    now = now or timezone.now()
    due = ApprovalRequest.objects.filter(
        status=RequestStatus.PENDING, needed_by__lte=now
    ).values_list("pk", flat=True)
    expired = 0
    for pk in list(due):
        with transaction.atomic():
            request = _locked(ApprovalRequest(pk=pk))
            if request.status != RequestStatus.PENDING or request.needed_by > now:
                continue
            _request_close(request, status=RequestStatus.EXPIRED, now=now)
            _event(
                request,
                kind="expired",
                text=f"Not decided by {_when(request.needed_by)}, when it was needed: expired.",
                at=now,
            )
            _outcome_mail_later(request)
            expired += 1
    return expired


# --- steps, links and mail ----------------------------------------------------------------


def _link_create(
    step: ApprovalStep, approver: User, *, now: dt.datetime, escalated: bool = False
) -> ApprovalLink:
    return ApprovalLink.objects.create(
        step=step,
        approver=approver,
        revision=step.request.revision,
        created_at=now,
        expires_at=now + dt.timedelta(hours=settings.CAPGOV_APPROVAL_LINK_HOURS),
        escalated=escalated,
    )


def _mail_later(link_ids: list[Any]) -> None:
    from governance.tasks import approval_link_mail_task

    for link_id in link_ids:
        transaction.on_commit(
            lambda link_id=link_id: enqueue(approval_link_mail_task, str(link_id))
        )


def _outcome_mail_later(request: ApprovalRequest) -> None:
    from governance.tasks import approval_request_outcome_mail_task

    transaction.on_commit(lambda: enqueue(approval_request_outcome_mail_task, request.pk))


def _step_activate(request: ApprovalRequest, step: ApprovalStep, *, now: dt.datetime) -> None:
    step.request = request
    step.status = StepStatus.ACTIVE
    step.activated_at = now
    step.due_at = rules.due_at(now, step.wait_hours)
    approvers = list(approval_step_approvers(step=step))
    mailable = [a for a in approvers if a.email]
    if not approvers:
        step.due_at = now  # nobody to ask: the next escalation run asks the path at once
    step.save(update_fields=["status", "activated_at", "due_at"])
    created = [_link_create(step, a, now=now) for a in mailable]
    role = _role_label(step.role)
    if approvers:
        text = (
            f"Step {step.order} ({role}) opened: {step.required_approvals} approval(s) "
            f"needed by {_when(step.due_at)}; links go to {_names(mailable)}."
        )
        no_mail = [a for a in approvers if not a.email]
        if no_mail:
            text += f" No e-mail address for {_names(no_mail)}: they can decide on the page."
    else:
        text = (
            f"Step {step.order} ({role}) opened, but nobody other than the requester holds "
            "that role: it escalates at the next escalation run."
        )
    _event(
        request,
        kind="step_activated",
        text=text,
        at=now,
        step=step.order,
        approvers=[a.username for a in approvers],
    )
    _mail_later([link.pk for link in created])


def _links_resend(request: ApprovalRequest, step: ApprovalStep, *, now: dt.datetime) -> None:
    """New links for the current revision, to everyone asked on this step who has not voted."""
    voted = set(step.votes.values_list("approver_id", flat=True))
    step.request = request
    asked = {a.pk: (a, False) for a in approval_step_approvers(step=step) if a.email}
    for link in step.links.filter(escalated=True).select_related("approver"):
        if (
            link.approver.email
            and link.approver_id != request.requested_by_id
            and approval_step_eligible(step=step, user=link.approver)
        ):
            asked[link.approver_id] = (link.approver, True)
    created = [
        _link_create(step, person, now=now, escalated=escalated)
        for pk, (person, escalated) in sorted(asked.items())
        if pk not in voted
    ]
    if created:
        _event(
            request,
            kind="links_resent",
            text=f"New links for step {step.order} (revision {request.revision}) go to "
            f"{_names([link.approver for link in created])}.",
            at=now,
            step=step.order,
        )
    _mail_later([link.pk for link in created])


def _link_urls(link: ApprovalLink) -> dict[str, str]:
    return {
        action: emails.absolute_url(
            reverse(
                "governance:approval-link",
                args=[links.approval_token_make(link_id=link.pk, action=action)],
            )
        )
        for action in links.ACTIONS
    }


def approval_link_mail(*, link_id: str) -> bool:
    """E-mail one approver their approve and reject links; False if the link is no longer
    worth sending (used, superseded, expired, or the request is decided)."""
    link = (
        ApprovalLink.objects.select_related(
            "approver",
            "step",
            "step__request",
            "step__request__business_unit",
            "step__request__requested_by",
        )
        .filter(pk=link_id)
        .first()
    )
    now = timezone.now()
    if (
        link is None
        or link.used_at
        or link.superseded_at
        or link.expires_at <= now
        or link.step.request.status != RequestStatus.PENDING
        or not link.approver.email
        or not link.approver.is_active
    ):
        return False
    request, step = link.step.request, link.step
    urls = _link_urls(link)
    summary = approval_request_summary(request=request)
    context = {
        "request": request,
        "step": step,
        "approver": link.approver,
        "summary": summary,
        "notes": request_notes(request),
        "approve_url": urls[links.APPROVE],
        "reject_url": urls[links.REJECT],
        "request_url": emails.absolute_url(request.get_absolute_url()),
        "expires_at": link.expires_at,
        "link_hours": settings.CAPGOV_APPROVAL_LINK_HOURS,
        "escalated": link.escalated,
        "role": _role_label(step.role),
        "signin_note": approval_signin_reason(request=request),
    }
    prefix = "Escalated: " if link.escalated else ""
    emails.mail_send(
        to=[link.approver.email],
        subject=f"{prefix}Approval needed: {summary}",
        template="approval_request",
        context=context,
    )
    _event(
        request,
        kind="mailed",
        text=f"E-mailed approve and reject links for step {step.order} to {link.approver} "
        f"<{link.approver.email}>{' (escalation)' if link.escalated else ''}; they work until "
        f"{_when(link.expires_at)}.",
        at=now,
        step=step.order,
        to=link.approver.email,
    )
    return True


def approval_request_outcome_mail(*, request_id: int) -> bool:
    """Tell the requester how their request ended (approved, rejected or expired)."""
    request = (
        ApprovalRequest.objects.select_related("requested_by", "business_unit", "decision")
        .filter(pk=request_id)
        .first()
    )
    if request is None or not request.requested_by.email:
        return False
    summary = approval_request_summary(request=request)
    emails.mail_send(
        to=[request.requested_by.email],
        subject=f"{request.get_status_display()}: {summary}",
        template="approval_outcome",
        context={
            "request": request,
            "summary": summary,
            "decision": request.decision,
            "request_url": emails.absolute_url(request.get_absolute_url()),
        },
    )
    _event(
        request,
        kind="mailed",
        text=f"E-mailed the outcome to {request.requested_by} <{request.requested_by.email}>.",
        at=timezone.now(),
        to=request.requested_by.email,
    )
    return True


# --- votes --------------------------------------------------------------------------------


def approval_vote_cast(
    *,
    step: ApprovalStep,
    by: User,
    approve: bool,
    comment: str = "",
    via: str = "page",
    link: ApprovalLink | None = None,
) -> ApprovalVote:
    """Record one person's approval or rejection of one step.

    The requester never votes; the voter holds the step's role or was asked by an
    escalation; one vote per person per step. A step is approved when its required
    approvals are in, and then the next step opens (in sequence) or, after the last, the
    request is approved. Any rejection rejects the step and the request. Request and step
    rows are locked so two votes at the same moment cannot both complete a step.
    """
    comment = comment.strip()
    if len(comment) > COMMENT_MAX:
        raise DomainError(
            f"A comment is at most {COMMENT_MAX:,} characters; this one has {len(comment):,}."
        )
    with transaction.atomic():
        request = _locked(ApprovalRequest(pk=step.request_id))
        step = ApprovalStep.objects.select_for_update().get(pk=step.pk)
        step.request = request
        now = timezone.now()
        if request.status != RequestStatus.PENDING:
            raise ConflictError(
                f"The request is {request.get_status_display().lower()}; it takes no more votes."
            )
        if request.requested_by_id == by.pk:
            raise PermissionDeniedError("Nobody approves their own request.")
        if link is not None and (
            link.approver_id != by.pk
            or link.step_id != step.pk
            or link.revision != request.revision
        ):
            raise PermissionDeniedError("This link is for another person, step or revision.")
        if link is not None and (link.used_at or link.superseded_at or link.expires_at <= now):
            raise ConflictError("This link was already used, superseded or has expired.")
        if step.status == StepStatus.WAITING:
            raise ConflictError(
                f"Step {step.order} ({_role_label(step.role)}) opens when the steps before it "
                "are approved."
            )
        if step.status != StepStatus.ACTIVE:
            raise ConflictError(
                f"Step {step.order} is already {step.get_status_display().lower()}."
            )
        if not approval_step_eligible(step=step, user=by):
            raise PermissionDeniedError(
                f"Step {step.order} needs a person holding the {_role_label(step.role)} role."
            )
        earlier = ApprovalVote.objects.filter(step=step, approver=by).first()
        if earlier is not None:
            raise ConflictError(
                f"You already {'approved' if earlier.approve else 'rejected'} step {step.order} "
                f"on {_when(earlier.at)}."
            )
        if not approve and not comment:
            raise DomainError("Say why you reject it, so the requester knows what to change.")
        if approve:
            _freeze_refuse(request, what="Approving a costly request")
        vote = ApprovalVote.objects.create(
            step=step, approver=by, approve=approve, comment=comment, at=now, via=via, link=link
        )
        if link is not None:
            link.used_at = now
            link.save(update_fields=["used_at"])
        verb = "approved" if approve else "rejected"
        channel = {"email": "from the e-mailed link", "api": "through the API"}.get(via, "")
        text = f"{by} {verb} step {step.order} ({_role_label(step.role)}) {channel}".strip()
        _event(
            request,
            kind="vote",
            text=text + (f": {comment}" if comment else "."),
            at=now,
            actor=by,
            step=step.order,
            approve=approve,
            via=via,
        )
        if not approve:
            _step_reject(request, step, by=by, comment=comment, now=now)
        elif step.votes.filter(approve=True).count() >= step.required_approvals:
            _step_approve(request, step, by=by, now=now)
    return vote


def _step_approve(
    request: ApprovalRequest, step: ApprovalStep, *, by: User, now: dt.datetime
) -> None:
    step.status = StepStatus.APPROVED
    step.decided_at = now
    step.save(update_fields=["status", "decided_at"])
    others = _links_supersede(request, now=now, step=step)
    approvers = [v.approver for v in step.votes.select_related("approver") if v.approve]
    _event(
        request,
        kind="step_approved",
        text=f"Step {step.order} ({_role_label(step.role)}) is approved by {_names(approvers)}."
        + (f" {others} other link(s) for it no longer work." if others else ""),
        at=now,
        step=step.order,
    )
    steps = list(request.steps.order_by("order"))
    if all(s.status == StepStatus.APPROVED for s in steps):
        _request_decide(request, outcome=DecisionOutcome.APPROVED, by=by, step=step, now=now)
        return
    for order in rules.next_active_orders([(s.order, s.status) for s in steps], mode=request.mode):
        _step_activate(request, next(s for s in steps if s.order == order), now=now)


def _step_reject(
    request: ApprovalRequest, step: ApprovalStep, *, by: User, comment: str, now: dt.datetime
) -> None:
    step.status = StepStatus.REJECTED
    step.decided_at = now
    step.save(update_fields=["status", "decided_at"])
    _event(
        request,
        kind="step_rejected",
        text=f"Step {step.order} ({_role_label(step.role)}) is rejected by {by}.",
        at=now,
        step=step.order,
    )
    _request_decide(
        request, outcome=DecisionOutcome.REJECTED, by=by, step=step, comment=comment, now=now
    )


def _evidence(request: ApprovalRequest) -> dict[str, Any]:
    """The numbers the approvers saw, kept with the decision as they were."""
    return {
        "request_id": request.pk,
        "revision": request.revision,
        "kind": request.kind,
        "summary": approval_request_summary(request=request),
        "estimated_cost": f"{request.estimated_cost:f}",
        "currency": request.currency,
        "accelerator": request.accelerator,
        "accelerator_count": request.accelerator_count,
        "duration_hours": f"{Decimal(request.duration_hours):f}",
        "gpu_hours": f"{Decimal(request.gpu_hours):f}",
        "needed_by": request.needed_by.isoformat() if request.needed_by else None,
        "policy": request.policy.name if request.policy else None,
        "steps": [
            {
                "order": s.order,
                "role": s.role,
                "required_approvals": s.required_approvals,
                "status": s.status,
                "votes": [
                    {
                        "approver": v.approver.username,
                        "approve": v.approve,
                        "comment": v.comment,
                        "at": v.at.isoformat(),
                        "via": v.via,
                    }
                    for v in s.votes.select_related("approver").order_by("at")
                ],
            }
            for s in request.steps.order_by("order")
        ],
    }


def _request_decide(
    request: ApprovalRequest,
    *,
    outcome: str,
    by: User,
    step: ApprovalStep,
    now: dt.datetime,
    comment: str = "",
) -> None:
    status = (
        RequestStatus.APPROVED if outcome == DecisionOutcome.APPROVED else RequestStatus.REJECTED
    )
    _request_close(request, status=status, now=now)
    if outcome == DecisionOutcome.APPROVED:
        rationale = "Approved at every step: " + "; ".join(
            f"step {s.order} ({_role_label(s.role)}) by "
            + _names([v.approver for v in s.votes.select_related("approver") if v.approve])
            for s in request.steps.order_by("order")
        )
    else:
        rationale = f"Rejected by {by} at step {step.order} ({_role_label(step.role)}): {comment}"
    kind = (
        DecisionKind.BUDGET_EXCEPTION
        if request.kind == RequestKind.BUDGET_EXCEPTION
        else DecisionKind.APPROVAL_REQUEST
    )
    decision = decision_record(
        subject=request,
        kind=kind,
        outcome=outcome,
        title=f"{request.get_kind_display()}: {request.title}",
        rationale=rationale,
        by=by,
        decided_as=step.role if by.has_role(step.role) else "",
        evidence=_evidence(request),
        business_unit=request.business_unit,
        at=now,
    )
    request.decision = decision
    request.save(update_fields=["decision"])
    _event(
        request,
        kind=str(status),
        text=f"The request is {status.label.lower()} (decision #{decision.pk}).",
        at=now,
        actor=by,
        decision=decision.pk,
    )
    if outcome == DecisionOutcome.APPROVED and request.kind == RequestKind.BUDGET_EXCEPTION:
        freeze = freezes_in_force(business_unit_ids=[request.business_unit_id]).get(
            request.business_unit_id
        )
        if freeze is not None and freeze.origin == FreezeOrigin.BUDGET:
            freeze_lift(
                freeze=freeze,
                by=None,
                reason=f"Budget exception approved: {request.title} (request #{request.pk}, "
                f"decision #{decision.pk}).",
            )
            _event(
                request,
                kind="freeze_lifted",
                text=f"The deployment freeze on {request.business_unit.name} since "
                f"{_when(freeze.started_at)} is lifted by this budget exception.",
                at=now,
                freeze=freeze.pk,
            )
        elif freeze is not None:
            imposed = f" by {freeze.created_by}" if freeze.created_by_id else ""
            _event(
                request,
                kind="freeze_kept",
                text=f"The deployment freeze on {request.business_unit.name} since "
                f"{_when(freeze.started_at)} was imposed{imposed}, not by a budget "
                f"({freeze.reason}): a budget exception does not lift it. A platform admin "
                "lifts it on the Freezes page.",
                at=now,
                freeze=freeze.pk,
            )
    _outcome_mail_later(request)


# --- e-mailed links -----------------------------------------------------------------------


class SignInRequiredError(PermissionDeniedError):
    """The estimate is above ``CAPGOV_APPROVAL_SIGNIN_ABOVE``: the link alone is not enough."""


VALID, TAMPERED, UNKNOWN, USED, SUPERSEDED, CLOSED, DECIDED, EXPIRED, REVOKED = (
    "valid",
    "tampered",
    "unknown",
    "used",
    "superseded",
    "closed",
    "decided",
    "expired",
    "revoked",
)
# Where the moment of the session's sign-in is kept (set on ``user_logged_in``).
SIGNED_IN_AT_SESSION_KEY = "capgov_signed_in_at"


@receiver(user_logged_in, dispatch_uid="capgov.governance.approvals.signed-in-at")
def _signed_in_at_remember(sender, request, user, **kwargs) -> None:
    """Note in the session when its person signed in, for the fresh sign-in check."""
    session = getattr(request, "session", None)
    if session is not None:
        session[SIGNED_IN_AT_SESSION_KEY] = timezone.now().isoformat()


def session_signed_in_at(session: Any) -> dt.datetime | None:
    """When the session's person signed in (None: not noted, e.g. a session from before)."""
    value = session.get(SIGNED_IN_AT_SESSION_KEY) if session is not None else None
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if timezone.is_aware(when) else None


def approval_signin_max_age_minutes() -> int:
    """How recent a sign-in must be to confirm above the threshold, in minutes."""
    return max(settings.CAPGOV_APPROVAL_SIGNIN_MAX_AGE_MINUTES, 0)


def _signin_max_age() -> dt.timedelta:
    return dt.timedelta(minutes=approval_signin_max_age_minutes())


def approval_signin_fresh(
    *, signed_in_at: dt.datetime | None, now: dt.datetime | None = None
) -> bool:
    """The sign-in happened within ``CAPGOV_APPROVAL_SIGNIN_MAX_AGE_MINUTES`` (15) of now."""
    if signed_in_at is None:
        return False
    now = now or timezone.now()
    return now - _signin_max_age() <= signed_in_at <= now + dt.timedelta(minutes=1)


@dataclass
class LinkCheck:
    """What an e-mailed link can do now, and if nothing, why (in words for the page)."""

    state: str
    title: str = ""
    message: str = ""
    action: str = ""
    link: ApprovalLink | None = None
    vote: ApprovalVote | None = None

    @property
    def valid(self) -> bool:
        return self.state == VALID

    @property
    def approve(self) -> bool:
        return self.action == links.APPROVE


def _signin_currency() -> str:
    return settings.CAPGOV_APPROVAL_SIGNIN_CURRENCY.upper()


def _signin_threshold(request: ApprovalRequest) -> Decimal | None:
    """The sign-in threshold when it applies to ``request``, else None.

    ``CAPGOV_APPROVAL_SIGNIN_ABOVE`` is an amount in ``CAPGOV_APPROVAL_SIGNIN_CURRENCY``
    (USD); a request in another currency cannot be compared, so it always needs the
    sign-in (fail closed).
    """
    threshold = settings.CAPGOV_APPROVAL_SIGNIN_ABOVE
    if threshold is None:
        return None
    threshold = Decimal(threshold)
    required = rules.signin_required(
        threshold=threshold,
        threshold_currency=_signin_currency(),
        amount=Decimal(request.estimated_cost),
        currency=request.currency,
    )
    return threshold if required else None


def approval_signin_reason(*, request: ApprovalRequest) -> str:
    """Why confirming this request needs a sign-in, in words; "" when it does not."""
    threshold = _signin_threshold(request)
    if threshold is None:
        return ""
    limit = money_format(threshold, _signin_currency(), symbol=True)
    if request.currency.upper() != _signin_currency():
        return (
            f"The estimate is in {request.currency}, and a link alone confirms only up to "
            f"{limit} (there is no exchange rate to compare by)"
        )
    return f"The estimate is above {limit}, the most a link alone confirms"


def approval_link_needs_signin(*, link: ApprovalLink) -> bool:
    """The estimate is above the sign-in threshold (or in another currency than it): confirm
    only when freshly signed in as the approver."""
    return _signin_threshold(link.step.request) is not None


def _decided_by(step: ApprovalStep) -> str:
    votes = [
        v
        for v in step.votes.select_related("approver")
        if v.approve == (step.status == StepStatus.APPROVED)
    ]
    return _names([v.approver for v in votes])


def approval_link_check(*, token: str, now: dt.datetime | None = None) -> LinkCheck:
    """Read a token and say whether its link may still record a vote. Changes nothing."""
    try:
        parsed = links.approval_token_read(token)
    except links.LinkTamperedError:
        return LinkCheck(
            TAMPERED,
            "This link is not genuine",
            "Its signature does not match: the address was changed or cut short (mail "
            "programs sometimes break long links across lines). Open the link from the "
            "e-mail again, or sign in and decide on the request's page.",
        )
    link = (
        ApprovalLink.objects.select_related(
            "approver",
            "step",
            "step__request",
            "step__request__business_unit",
            "step__request__requested_by",
            "step__request__decision__decided_by",
        )
        .filter(pk=parsed.link_id)
        .first()
    )
    if link is None:
        return LinkCheck(
            UNKNOWN,
            "This link no longer leads anywhere",
            "The approval request it was sent for no longer exists.",
            action=parsed.action,
        )
    now = now or timezone.now()
    request, step = link.step.request, link.step
    check = LinkCheck(VALID, action=parsed.action, link=link)
    if link.used_at is not None:
        vote = ApprovalVote.objects.filter(link=link).select_related("approver").first()
        vote = vote or ApprovalVote.objects.filter(step=step, approver=link.approver).first()
        verb = "approved" if vote is None or vote.approve else "rejected"
        check.state, check.vote, check.title = USED, vote, "This link was already used"
        at = vote.at if vote else link.used_at
        check.message = f"Already {verb} by you ({link.approver}) on {_when(at)}."
        return check
    if link.revision != request.revision:
        edited = (
            request.events.filter(kind="edited", at__gte=link.created_at).order_by("at").first()
        )
        check.state, check.title = SUPERSEDED, "This link was superseded"
        check.message = (
            f"The request was edited{f' on {_when(edited.at)}' if edited else ''} after this "
            f"link was sent (revision {link.revision}; it is now at revision {request.revision})."
        )
        if request.status == RequestStatus.PENDING:
            check.message += " A new e-mail with fresh links went to the approvers still asked."
        return check
    if request.status != RequestStatus.PENDING:
        status = request.get_status_display().lower()
        check.state, check.title = CLOSED, "This request is no longer pending"
        when = f" on {_when(request.decided_at)}" if request.decided_at else ""
        who = ""
        if request.decision is not None:
            who = f" by {request.decision.decided_by}"
        elif request.status == RequestStatus.WITHDRAWN:
            who = f" by {request.requested_by}, who filed it"
        check.message = f"It was {status}{when}{who}. Your vote is no longer needed."
        return check
    if step.status != StepStatus.ACTIVE:
        check.state, check.title = DECIDED, "Someone else already decided this step"
        if step.status in (StepStatus.APPROVED, StepStatus.REJECTED):
            check.message = (
                f"Step {step.order} ({_role_label(step.role)}) was already "
                f"{step.get_status_display().lower()} by {_decided_by(step)}"
                f"{f' on {_when(step.decided_at)}' if step.decided_at else ''}; this link "
                "no longer works and your vote is not needed."
            )
        else:
            check.message = f"Step {step.order} is {step.get_status_display().lower()}."
        return check
    if link.superseded_at is not None:
        check.state, check.title = SUPERSEDED, "This link was superseded"
        check.message = f"It stopped working on {_when(link.superseded_at)}."
        return check
    if link.expires_at <= now:
        check.state, check.title = EXPIRED, "This link has expired"
        check.message = (
            f"It worked until {_when(link.expires_at)}. Sign in and decide on the request's "
            "page instead."
        )
        return check
    revoked = _link_revoked_because(link)
    if revoked:
        check.state, check.title = REVOKED, "This link no longer works for its recipient"
        check.message = revoked
        return check
    return check


def _link_revoked_because(link: ApprovalLink) -> str:
    """Why the person a link was sent to may no longer decide with it; "" if they may."""
    approver, step = link.approver, link.step
    if not approver.is_active:
        return (
            f"The account of {approver}, to whom it was sent, is deactivated: it decides "
            "nothing any more."
        )
    if approval_step_eligible(step=step, user=approver):
        return ""
    role = _role_label(step.role)
    if not link.escalated:
        return (
            f"It was sent to {approver} as a holder of the {role} role, which they no longer "
            "hold. Someone who holds it decides this step."
        )
    reasons = [
        _escalation_entry_text(step.request, entry)
        for entry in approval_escalation_entries(step=step)
    ]
    asked = " or ".join(dict.fromkeys(reasons)) or "the escalation"
    return (
        f"It was sent to {approver} when step {step.order} ({role}) escalated to {asked}, "
        f"and {approver} no longer is: the link stopped working with the reason it was sent."
    )


def _escalation_entry_text(request: ApprovalRequest, entry: str) -> str:
    if entry == rules.BU_OWNER:
        return f"{request.business_unit.name}'s owner"
    return f"a holder of the {_role_label(entry.removeprefix(rules.ROLE_PREFIX))} role"


@transaction.atomic
def approval_link_confirm(
    *,
    token: str,
    comment: str = "",
    signed_in: User | None = None,
    signed_in_at: dt.datetime | None = None,
) -> ApprovalVote:
    """Record the vote an e-mailed link stands for, as the person it was sent to.

    Refused with the link's state (``ConflictError``) unless the link is valid now (which it
    is not once its recipient is deactivated or no longer holds the reason it was sent);
    refused when someone else is signed in; above the sign-in threshold only when
    ``signed_in`` is that person and ``signed_in_at`` is fresh (``SignInRequiredError``).
    """
    check = approval_link_check(token=token)
    if not check.valid:
        raise ConflictError(f"{check.title}. {check.message}")
    # Lock in the same order as every other write: the request, then the link.
    _locked(check.link.step.request)
    link = (
        ApprovalLink.objects.select_for_update()
        .select_related("approver", "step", "step__request")
        .get(pk=check.link.pk)
    )
    check = approval_link_check(token=token)
    if not check.valid:
        raise ConflictError(f"{check.title}. {check.message}")
    if signed_in is not None and signed_in.is_authenticated and signed_in.pk != link.approver_id:
        raise PermissionDeniedError(
            f"This link was sent to {link.approver}, but you are signed in as {signed_in}. "
            "A link decides only for the person it was sent to: sign out, or decide on the "
            "request's page as yourself."
        )
    if approval_link_needs_signin(link=link):
        reason = approval_signin_reason(request=link.step.request)
        if signed_in is None or not signed_in.is_authenticated:
            raise SignInRequiredError(f"{reason}: sign in as {link.approver} to confirm.")
        if not approval_signin_fresh(signed_in_at=signed_in_at):
            minutes = approval_signin_max_age_minutes()
            raise SignInRequiredError(
                f"{reason}, and your sign-in is older than {minutes} minutes: sign in again "
                f"as {link.approver} to confirm."
            )
    return approval_vote_cast(
        step=link.step,
        by=link.approver,
        approve=check.approve,
        comment=comment,
        via="email",
        link=link,
    )


# --- escalation ---------------------------------------------------------------------------


def _escalation_targets(request: ApprovalRequest, entry: str) -> tuple[str, list[User]]:
    """(who, in words; the people) for one entry of an escalation path."""
    if entry == rules.BU_OWNER:
        owner = request.business_unit.owner
        people = (
            [owner]
            if owner is not None and owner.is_active and owner.pk != request.requested_by_id
            else []
        )
        return f"{request.business_unit.name}'s owner", people
    role = entry.removeprefix(rules.ROLE_PREFIX)
    people = list(
        User.objects.filter(role_assignments__role=role, is_active=True)
        .exclude(pk=request.requested_by_id)
        .distinct()
        .order_by("username")
    )
    return f"the {_role_label(role)} role", people


def _step_escalate(step_id: int, *, now: dt.datetime) -> bool:
    step = ApprovalStep.objects.filter(pk=step_id).only("request_id").first()
    if step is None:
        return False
    request = _locked(ApprovalRequest(pk=step.request_id))
    step = ApprovalStep.objects.select_for_update().get(pk=step_id)
    step.request = request
    if (
        request.status != RequestStatus.PENDING
        or step.status != StepStatus.ACTIVE
        or step.due_at is None
        or step.due_at > now
    ):
        return False
    path = list(request.escalation_path or rules.DEFAULT_ESCALATION_PATH)
    role = _role_label(step.role)
    level = step.escalation_level
    voted = set(step.votes.values_list("approver_id", flat=True))
    live = set(
        step.links.filter(
            revision=request.revision, used_at=None, superseded_at=None, expires_at__gt=now
        ).values_list("approver_id", flat=True)
    )
    skipped: list[str] = []
    while level < len(path):
        who, people = _escalation_targets(request, path[level])
        level += 1
        people = [p for p in people if p.pk not in voted]
        if people:
            break
        skipped.append(who)
    else:
        people, who = [], ""
    if not people:
        step.escalation_level = len(path)
        step.due_at = None
        step.save(update_fields=["escalation_level", "due_at"])
        nobody = f" ({', '.join(skipped)}: nobody to ask)" if skipped else ""
        _event(
            request,
            kind="escalation_exhausted",
            text=f"Step {step.order} ({role}) has waited past its due time and the escalation "
            f"path is exhausted{nobody}; it keeps waiting for the people already asked.",
            at=now,
            step=step.order,
        )
        return False
    step.escalation_level = level
    step.escalated_at = now
    step.due_at = rules.due_at(now, step.wait_hours)
    step.save(update_fields=["escalation_level", "escalated_at", "due_at"])
    new = [p for p in people if p.pk not in live and p.email]
    created = [_link_create(step, p, now=now, escalated=True) for p in new]
    text = (
        f"Step {step.order} ({role}) waited past its due time: escalated to level {level}, "
        f"{who} ({_names(people)})."
    )
    if skipped:
        text += f" Skipped {', '.join(skipped)}: nobody to ask."
    already = [p for p in people if p.pk in live]
    if already:
        text += f" {_names(already)} already had a link."
    text += f" Next escalation after {_when(step.due_at)}."
    _event(
        request,
        kind="escalated",
        text=text,
        at=now,
        step=step.order,
        level=level,
        to=[p.username for p in people],
    )
    _mail_later([link.pk for link in created])
    return True


def approval_steps_escalate(*, now: dt.datetime | None = None) -> int:
    """Escalate every open step past its due time one level along its request's path.

    Each level is asked once; at the end of the path the step keeps waiting (one event
    says so) instead of mailing the same people again. Idempotent per run and level.
    """
    now = now or timezone.now()
    due = list(
        ApprovalStep.objects.filter(
            status=StepStatus.ACTIVE, request__status=RequestStatus.PENDING, due_at__lte=now
        )
        .order_by("due_at", "pk")
        .values_list("pk", flat=True)
    )
    escalated = 0
    for step_id in due:
        with transaction.atomic():
            escalated += _step_escalate(step_id, now=now)
    return escalated
