"""Every write on incidents and post-mortems, and the reads the pages, the API and the
metrics share.

Who may do what:

- anyone signed in may open an incident, and everyone signed in reads every incident and
  post-mortem (blameless and open by design);
- an incident is edited by its commander, the people holding a role in it, and platform
  admins;
- a post-mortem is edited by its authors and its named approvers while it is a draft or in
  review; once published it no longer changes. Only named approvers sign it off, and an
  edit while it is in review sends it back to draft: sign-offs of the old text stop counting.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from governance.choices import Role
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.models import BusinessUnit, User
from incidents.models import (
    ActionItem,
    ActionStatus,
    AffectedSubject,
    CapacityEvidence,
    ContributingFactor,
    FactorStatus,
    Incident,
    IncidentRole,
    IncidentStatus,
    IncidentType,
    PostMortem,
    PostMortemStatus,
    Runbook,
    Severity,
    SignOff,
    TimelineEvent,
)
from registry.models import CapacityPool, Endpoint, ModelVersion, RegisteredModel

# Timeline entries the app writes itself carry this source.
APP_SOURCE = "capgov"
MAX_WINDOW_DAYS = 90
# The order an incident moves through; it never moves back.
STATUS_ORDER = (
    IncidentStatus.ACTIVE,
    IncidentStatus.MITIGATED,
    IncidentStatus.RESOLVED,
    IncidentStatus.POSTMORTEM_DONE,
)
# The time each status needs, in the order the times must follow.
TIME_FIELDS = ("started_at", "detected_at", "mitigated_at", "resolved_at")
TIME_LABELS = {
    "started_at": "started",
    "detected_at": "detected",
    "mitigated_at": "mitigated",
    "resolved_at": "resolved",
}
STATUS_TIME = {IncidentStatus.MITIGATED: "mitigated_at", IncidentStatus.RESOLVED: "resolved_at"}
INCIDENT_FIELDS = frozenset(
    {
        "title",
        "severity",
        "incident_type",
        "description",
        "commander",
        "status",
        *TIME_FIELDS,
        "business_units",
        "affected",
        "cost",
        "cost_currency",
    }
)
POSTMORTEM_TEXT_FIELDS = (
    "summary",
    "impact",
    "trigger",
    "root_causes",
    "contributing_factors",
    "detection",
    "went_well",
    "got_lucky",
    "lessons",
)
POSTMORTEM_FIELDS = frozenset(
    {
        *POSTMORTEM_TEXT_FIELDS,
        "requests_failed",
        "users_affected",
        "root_cause_tags",
        "window_days",
        "authors",
        "approvers",
    }
)


# --- who may do what ---------------------------------------------------------------------


def _is_admin(user: User) -> bool:
    return user.has_role(Role.PLATFORM_ADMIN)


def may_edit_incident(user: User, incident: Incident) -> bool:
    """The commander, anyone holding a role in the incident, or a platform admin."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.pk == incident.commander_id or _is_admin(user):
        return True
    # Through .all(): the incident's page has its roles prefetched already.
    return any(role.person_id == user.pk for role in incident.roles.all())


INCIDENT_EDITORS_ONLY = (
    "Only the incident's commander, the people with a role in it, or a platform admin can {doing}."
)


def _require_incident_editor(user: User, incident: Incident, doing: str) -> None:
    if not may_edit_incident(user, incident):
        raise PermissionDeniedError(INCIDENT_EDITORS_ONLY.format(doing=doing))


def may_edit_postmortem(user: User, pm: PostMortem) -> bool:
    """Authors and named approvers edit a draft or a post-mortem in review; nobody edits a
    published one."""
    if not user.is_authenticated or not user.is_active:
        return False
    if pm.status == PostMortemStatus.PUBLISHED:
        return False
    # Through .all(): the pages and the API have both lists prefetched already.
    return any(person.pk == user.pk for person in (*pm.authors.all(), *pm.approvers.all()))


def _require_postmortem_editor(user: User, pm: PostMortem) -> None:
    if pm.status == PostMortemStatus.PUBLISHED:
        raise ConflictError(
            "This post-mortem is published and no longer changes; add what you learned since "
            "as a new action item or in a later post-mortem."
        )
    if not may_edit_postmortem(user, pm):
        raise PermissionDeniedError(
            "Only the post-mortem's authors and named approvers can edit it."
        )


# --- checks ----------------------------------------------------------------------------------


def _require_user(user: User, what: str) -> None:
    if user is None or not user.is_active:
        raise DomainError(f"The {what} must be an active person.")


def _require_aware(value: dt.datetime | None, what: str) -> None:
    if value is not None and timezone.is_naive(value):
        raise DomainError(f"The {what} time needs a time zone (times are kept in UTC).")


EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def _check_time_order(times: Mapping[str, dt.datetime | None]) -> None:
    """started ≤ detected ≤ mitigated ≤ resolved, among the times that are set, all between
    2000 and a few minutes from now."""
    latest = timezone.now() + dt.timedelta(minutes=5)
    for name, value in times.items():
        if value is not None and not EARLIEST <= value <= latest:
            raise DomainError(
                f"The {TIME_LABELS.get(name, name)} {value:%Y-%m-%d %H:%M} is not a time an "
                "incident can have (after 2000, not in the future)."
            )
    previous: tuple[str, dt.datetime] | None = None
    for name in TIME_FIELDS:
        value = times.get(name)
        if value is None:
            continue
        if previous is not None and value < previous[1]:
            raise DomainError(
                f"The {TIME_LABELS[name]} time ({value:%Y-%m-%d %H:%M} UTC) is before the "
                f"{TIME_LABELS[previous[0]]} time ({previous[1]:%Y-%m-%d %H:%M} UTC); times "
                f"must follow started ≤ detected ≤ mitigated ≤ resolved."
            )
        previous = (name, value)


def _clean_text(value: Any, what: str, *, required: bool = False, limit: int = 0) -> str:
    text = str(value or "").strip()
    if required and not text:
        raise DomainError(f"The {what} cannot be empty.")
    if limit and len(text) > limit:
        raise DomainError(f"The {what} is longer than {limit} characters.")
    return text


def _choice(value: Any, choices: type[models.TextChoices], what: str) -> str:
    if value not in choices.values:
        allowed = ", ".join(choices.values)
        raise DomainError(f"“{value}” is not a known {what}; use one of {allowed}.")
    return str(value)


# --- affected subjects -------------------------------------------------------------------


def subject_business_units(subject: models.Model) -> list[BusinessUnit]:
    """The business units an affected record belongs to: an endpoint's unit (or its model's),
    a model's unit, a pool's owning unit, a unit itself."""
    units: list[BusinessUnit | None]
    if isinstance(subject, BusinessUnit):
        units = [subject]
    elif isinstance(subject, Endpoint):
        units = [subject.business_unit]
        if subject.business_unit_id is None and subject.model_version_id:
            units = [subject.model_version.model.business_unit]
    elif isinstance(subject, RegisteredModel):
        units = [subject.business_unit]
    elif isinstance(subject, ModelVersion):
        units = [subject.model.business_unit]
    elif isinstance(subject, CapacityPool):
        units = [subject.owner]
    else:
        units = [getattr(subject, "business_unit", None)]
    return [unit for unit in units if unit is not None]


def _set_affected(incident: Incident, affected: Iterable[models.Model]) -> list[BusinessUnit]:
    """Replace the affected records; return their business units."""
    subjects = list(affected)
    for subject in subjects:
        if not isinstance(subject, models.Model) or subject.pk is None:
            raise DomainError(f"{subject!r} is not a saved record and cannot be affected.")
    wanted = {
        (ContentType.objects.get_for_model(subject).pk, subject.pk): subject for subject in subjects
    }
    current = {(a.subject_type_id, a.subject_id): a for a in incident.affected.all()}
    stale = [a.pk for key, a in current.items() if key not in wanted]
    if stale:
        AffectedSubject.objects.filter(pk__in=stale).delete()
    AffectedSubject.objects.bulk_create(
        [
            AffectedSubject(incident=incident, subject_type_id=type_id, subject_id=subject_id)
            for (type_id, subject_id) in wanted
            if (type_id, subject_id) not in current
        ]
    )
    units: dict[int, BusinessUnit] = {}
    for subject in subjects:
        for unit in subject_business_units(subject):
            units[unit.pk] = unit
    return list(units.values())


def _timeline(
    incident: Incident, *, at: dt.datetime, kind: str, text: str, by: User | None
) -> TimelineEvent:
    return TimelineEvent.objects.create(
        incident=incident, at=at, kind=kind, text=text, source=APP_SOURCE, added_by=by
    )


# --- incidents -----------------------------------------------------------------------------


@transaction.atomic
def incident_create(
    *,
    by: User,
    title: str,
    severity: str,
    incident_type: str,
    commander: User,
    started_at: dt.datetime,
    detected_at: dt.datetime | None = None,
    business_units: Iterable[BusinessUnit] = (),
    affected: Iterable[models.Model] = (),
    description: str = "",
    mitigated_at: dt.datetime | None = None,
    resolved_at: dt.datetime | None = None,
) -> Incident:
    """Open an incident. Any signed-in, active person may; the business units of the affected
    endpoints, models and pools join ``business_units`` on their own. Writes an "opened"
    timeline event (and "detected" / "mitigated" / "resolved" ones for the times known: an
    incident written up afterwards starts mitigated or resolved)."""
    _require_user(by, "person opening the incident")
    _require_user(commander, "commander")
    times = {
        "started_at": started_at,
        "detected_at": detected_at,
        "mitigated_at": mitigated_at,
        "resolved_at": resolved_at,
    }
    for name, value in times.items():
        _require_aware(value, TIME_LABELS[name])
    if started_at is None:
        raise DomainError("Say when the incident started.")
    now = timezone.now()
    if started_at > now + dt.timedelta(minutes=5):
        raise DomainError("The start time is in the future; an incident opens once it started.")
    if resolved_at is not None and mitigated_at is None:
        mitigated_at = times["mitigated_at"] = resolved_at
    _check_time_order(times)
    status = IncidentStatus.ACTIVE
    if resolved_at is not None:
        status = IncidentStatus.RESOLVED
    elif mitigated_at is not None:
        status = IncidentStatus.MITIGATED
    incident = Incident.objects.create(
        title=_clean_text(title, "title", required=True, limit=200),
        severity=_choice(severity, Severity, "severity"),
        incident_type=_choice(incident_type, IncidentType, "incident type"),
        description=_clean_text(description, "description"),
        commander=commander,
        status=status,
        started_at=started_at,
        detected_at=detected_at,
        mitigated_at=mitigated_at,
        resolved_at=resolved_at,
        created_by=by,
    )
    units = {unit.pk: unit for unit in business_units}
    for unit in _set_affected(incident, affected):
        units.setdefault(unit.pk, unit)
    incident.business_units.set(units.values())
    _timeline(
        incident,
        at=started_at,
        kind="opened",
        text=f"Incident opened by {by} ({incident.get_severity_display()}); commander {commander}.",
        by=by,
    )
    for kind, at in (
        ("detected", detected_at),
        ("mitigated", mitigated_at),
        ("resolved", resolved_at),
    ):
        if at is not None:
            _timeline(incident, at=at, kind=kind, text=f"Incident {kind}.", by=by)
    return incident


def _next_status(current: str, wanted: str) -> str:
    if wanted == current:
        return current
    if wanted == IncidentStatus.POSTMORTEM_DONE:
        raise ConflictError(
            "An incident becomes “post-mortem done” when its post-mortem is published, not by hand."
        )
    if current == IncidentStatus.POSTMORTEM_DONE:
        raise ConflictError("The post-mortem of this incident is published; its status is final.")
    if STATUS_ORDER.index(wanted) < STATUS_ORDER.index(current):
        now, back = IncidentStatus(current).label.lower(), IncidentStatus(wanted).label.lower()
        raise ConflictError(
            f"An incident moves only forward (active → mitigated → resolved); it cannot go from "
            f"{now} back to {back}."
        )
    return wanted


@transaction.atomic
def incident_update(*, incident: Incident, by: User, **fields: Any) -> Incident:
    """Change an incident: its text, severity, type, times, commander, business units,
    affected records, cost, and its status — forward only (active → mitigated → resolved),
    setting the mitigation/resolution time to now when none is given. Setting a later time
    moves the status forward with it. "Post-mortem done" is set only by publishing."""
    unknown = set(fields) - INCIDENT_FIELDS
    if unknown:
        raise DomainError(f"These incident fields cannot be changed: {', '.join(sorted(unknown))}.")
    incident = Incident.objects.select_for_update().get(pk=incident.pk)
    _require_incident_editor(by, incident, "change it")
    now = timezone.now()
    old_status, old_severity = incident.status, incident.severity
    for name in TIME_FIELDS:
        if name in fields:
            _require_aware(fields[name], TIME_LABELS[name])
    if "started_at" in fields and fields["started_at"] is None:
        raise DomainError("An incident always has a start time.")

    if "title" in fields:
        incident.title = _clean_text(fields["title"], "title", required=True, limit=200)
    if "description" in fields:
        incident.description = _clean_text(fields["description"], "description")
    if "severity" in fields:
        incident.severity = _choice(fields["severity"], Severity, "severity")
    if "incident_type" in fields:
        incident.incident_type = _choice(fields["incident_type"], IncidentType, "incident type")
    if "commander" in fields:
        _require_user(fields["commander"], "commander")
        incident.commander = fields["commander"]
    if "cost" in fields:
        incident.cost = _money(fields["cost"])
    if "cost_currency" in fields:
        incident.cost_currency = _clean_text(fields["cost_currency"], "currency").upper()[:3]
    if incident.cost is not None and not incident.cost_currency:
        raise DomainError("Give the currency of the incident's cost (e.g. USD).")
    for name in TIME_FIELDS:
        if name in fields:
            setattr(incident, name, fields[name])

    status = incident.status
    if "status" in fields and fields["status"] is not None:
        status = _next_status(incident.status, _choice(fields["status"], IncidentStatus, "status"))
    # A time given for a later stage moves the incident there (never back).
    for wanted, time_field in STATUS_TIME.items():
        if getattr(incident, time_field) is not None and STATUS_ORDER.index(
            wanted
        ) > STATUS_ORDER.index(status):
            status = _next_status(status, wanted)
    # Reaching a stage without its time stamps it now (resolved implies mitigated).
    for wanted, time_field in STATUS_TIME.items():
        reached = STATUS_ORDER.index(status) >= STATUS_ORDER.index(wanted)
        if reached and getattr(incident, time_field) is None:
            if time_field in fields:
                raise DomainError(
                    f"A {IncidentStatus(status).label.lower()} incident needs its "
                    f"{TIME_LABELS[time_field]} time."
                )
            setattr(incident, time_field, max(now, incident.started_at))
    incident.status = status
    _check_time_order({name: getattr(incident, name) for name in TIME_FIELDS})
    incident.save()

    units = None
    if "business_units" in fields:
        units = {unit.pk: unit for unit in fields["business_units"]}
    if "affected" in fields:
        derived = _set_affected(incident, fields["affected"])
        if units is None:
            units = {unit.pk: unit for unit in incident.business_units.all()}
        for unit in derived:
            units.setdefault(unit.pk, unit)
    if units is not None:
        incident.business_units.set(units.values())

    if incident.severity != old_severity:
        _timeline(
            incident,
            at=now,
            kind="severity",
            text=f"Severity changed from {Severity(old_severity).label.split(' ')[0]} to "
            f"{incident.get_severity_display().split(' ')[0]}.",
            by=by,
        )
    for wanted, time_field in STATUS_TIME.items():
        if old_status != status and STATUS_ORDER.index(old_status) < STATUS_ORDER.index(
            wanted
        ) <= STATUS_ORDER.index(status):
            _timeline(
                incident,
                at=getattr(incident, time_field),
                kind=str(wanted),
                text=f"Incident {IncidentStatus(wanted).label.lower()} (marked by {by}).",
                by=by,
            )
    return incident


def _money(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise DomainError(f"“{value}” is not an amount of money.") from exc
    if not amount.is_finite() or amount.copy_abs() >= Decimal(10) ** 16:
        raise DomainError(f"“{value}” is not an amount of money.")
    return amount


@transaction.atomic
def timeline_add(
    *,
    incident: Incident,
    by: User,
    at: dt.datetime,
    kind: str,
    text: str,
    source: str = "manual",
) -> TimelineEvent:
    """Add a moment to the incident's timeline (by hand, or taken from a record)."""
    _require_incident_editor(by, incident, "add to its timeline")
    _require_aware(at, "event")
    if at is None:
        raise DomainError("Say when it happened.")
    return TimelineEvent.objects.create(
        incident=incident,
        at=at,
        kind=_clean_text(kind, "kind", required=True, limit=32),
        text=_clean_text(text, "text", required=True),
        source=_clean_text(source, "source", limit=64) or "manual",
        added_by=by,
    )


@transaction.atomic
def evidence_add(
    *,
    incident: Incident,
    by: User,
    at: dt.datetime,
    metric: str,
    value: Decimal | int | float | str,
    unit: str = "",
    source: str = "manual",
) -> CapacityEvidence:
    """Record a capacity figure at a moment of the incident (queue depth, p95 latency, error
    rate, utilisation)."""
    _require_incident_editor(by, incident, "add capacity evidence")
    _require_aware(at, "measurement")
    if at is None:
        raise DomainError("Say when the figure was measured.")
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise DomainError(f"“{value}” is not a number.") from exc
    if not number.is_finite() or number.copy_abs() >= Decimal(10) ** 14:
        raise DomainError(f"“{value}” is not a number the evidence can hold.")
    return CapacityEvidence.objects.create(
        incident=incident,
        at=at,
        metric=_clean_text(metric, "metric", required=True, limit=64),
        value=number.quantize(Decimal("0.000001")),
        unit=_clean_text(unit, "unit", limit=32),
        source=_clean_text(source, "source", limit=64) or "manual",
    )


@transaction.atomic
def role_add(*, incident: Incident, by: User, person: User, role: str) -> IncidentRole:
    """Give someone a role in the incident (scribe, comms, subject-matter expert, ...)."""
    _require_incident_editor(by, incident, "hand out roles")
    _require_user(person, "person")
    role = _clean_text(role, "role", required=True, limit=64).lower()
    if IncidentRole.objects.filter(incident=incident, person=person, role=role).exists():
        raise ConflictError(f"{person} already is {role} of this incident.")
    held = IncidentRole.objects.create(incident=incident, person=person, role=role)
    _timeline(incident, at=timezone.now(), kind="role", text=f"{person} joined as {role}.", by=by)
    return held


@transaction.atomic
def role_remove(*, role: IncidentRole, by: User) -> None:
    """Take a role back."""
    _require_incident_editor(by, role.incident, "hand out roles")
    role.delete()


def runbook_for(incident: Incident) -> list[Runbook]:
    """The runbooks written for the incident's type."""
    return list(Runbook.objects.filter(incident_type=incident.incident_type))


# --- post-mortems --------------------------------------------------------------------------


def _refresh_suggestions(pm: PostMortem) -> None:
    # Imported here: incidents.suggestions reads this module's permission checks.
    from incidents.suggestions import suggestions_refresh

    suggestions_refresh(postmortem=pm)


def postmortem_suggestions_refresh(*, postmortem: PostMortem, by: User) -> list[ContributingFactor]:
    """Look again for the records of the window before the incident (its authors and named
    approvers, until it is published); return the factors ``by`` may read."""
    if postmortem.status == PostMortemStatus.PUBLISHED:
        raise ConflictError("This post-mortem is published; its factors no longer change.")
    if not may_edit_postmortem(by, postmortem):
        raise PermissionDeniedError(
            "Only the post-mortem's authors and named approvers can refresh its suggestions."
        )
    from incidents.suggestions import factors_visible, suggestions_refresh

    return factors_visible(suggestions_refresh(postmortem=postmortem), by)


@transaction.atomic
def postmortem_open(*, incident: Incident, by: User) -> PostMortem:
    """Start the incident's post-mortem (one per incident) with ``by`` as its author, and
    look for the records that may have contributed to it."""
    incident = Incident.objects.select_for_update().get(pk=incident.pk)
    _require_incident_editor(by, incident, "open its post-mortem")
    if PostMortem.objects.filter(incident=incident).exists():
        raise ConflictError("This incident already has a post-mortem; open it instead.")
    pm = PostMortem.objects.create(incident=incident)
    pm.authors.set([by])
    _timeline(incident, at=timezone.now(), kind="postmortem", text="Post-mortem opened.", by=by)
    _refresh_suggestions(pm)
    return pm


def _clean_tags(value: Any) -> list[str]:
    if isinstance(value, str):
        value = value.split(",")
    tags: list[str] = []
    for raw in value or ():
        tag = "-".join(str(raw).strip().lower().split())
        if len(tag) > 64:
            raise DomainError(f"The root-cause tag “{tag[:20]}…” is longer than 64 characters.")
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def _count(value: Any, what: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise DomainError(f"The {what} must be a whole number.") from exc
    if number < 0 or number >= 2**63:
        raise DomainError(f"The {what} must be zero or more.")
    return number


@transaction.atomic
def postmortem_update(*, postmortem: PostMortem, by: User, **fields: Any) -> PostMortem:
    """Edit the record (and its authors and approvers). Editing one in review sends it back
    to draft: the approvers sign the new text, not the old one."""
    unknown = set(fields) - POSTMORTEM_FIELDS
    if unknown:
        raise DomainError(
            f"These post-mortem fields cannot be changed: {', '.join(sorted(unknown))}."
        )
    pm = PostMortem.objects.select_for_update().get(pk=postmortem.pk)
    _require_postmortem_editor(by, pm)
    changed: list[str] = []
    for name in POSTMORTEM_TEXT_FIELDS:
        if name in fields:
            value = str(fields[name] or "").strip()
            if value != getattr(pm, name):
                setattr(pm, name, value)
                changed.append(name)
    for name, what in (("requests_failed", "requests failed"), ("users_affected", "users")):
        if name in fields:
            value = _count(fields[name], what)
            if value != getattr(pm, name):
                setattr(pm, name, value)
                changed.append(name)
    if "root_cause_tags" in fields:
        tags = _clean_tags(fields["root_cause_tags"])
        if tags != pm.root_cause_tags:
            pm.root_cause_tags = tags
            changed.append("root_cause_tags")
    window_changed = False
    if "window_days" in fields:
        days = _count(fields["window_days"], "window")
        if days is None or not 1 <= days <= MAX_WINDOW_DAYS:
            raise DomainError(f"The window must be between 1 and {MAX_WINDOW_DAYS} days.")
        if days != pm.window_days:
            pm.window_days = days
            changed.append("window_days")
            window_changed = True

    if ("authors" in fields or "approvers" in fields) and not pm.authors.filter(pk=by.pk).exists():
        raise PermissionDeniedError(
            "Only the post-mortem's authors choose who writes and who approves it."
        )
    authors = list(fields["authors"]) if "authors" in fields else list(pm.authors.all())
    approvers = list(fields["approvers"]) if "approvers" in fields else list(pm.approvers.all())
    if not authors:
        raise DomainError("A post-mortem needs at least one author.")
    for person in (*authors, *approvers):
        _require_user(person, "author or approver")
    both = {p.pk for p in authors} & {p.pk for p in approvers}
    if both:
        names = ", ".join(str(p) for p in approvers if p.pk in both)
        raise DomainError(
            f"{names} cannot both write and approve this post-mortem; choose other approvers."
        )
    if "authors" in fields and {p.pk for p in authors} != set(
        pm.authors.values_list("pk", flat=True)
    ):
        pm.authors.set(authors)
        changed.append("authors")
    if "approvers" in fields and {p.pk for p in approvers} != set(
        pm.approvers.values_list("pk", flat=True)
    ):
        pm.approvers.set(approvers)
        changed.append("approvers")

    if changed and pm.status == PostMortemStatus.IN_REVIEW:
        pm.status = PostMortemStatus.DRAFT
    if changed:
        pm.save()
    if window_changed:
        _refresh_suggestions(pm)
    return pm


def _review_started_at(pm: PostMortem) -> dt.datetime:
    # While in review nothing else saves the post-mortem (any edit sends it back to draft),
    # so ``updated_at`` is the moment of the last submit; sign-offs from then on count.
    return pm.updated_at


def postmortem_current_signoffs(pm: PostMortem) -> dict[int, SignOff]:
    """Each approver's latest sign-off of the text under review (empty outside review)."""
    if pm.status == PostMortemStatus.DRAFT:
        return {}
    since = _review_started_at(pm) if pm.status == PostMortemStatus.IN_REVIEW else None
    signoffs = pm.signoffs.all()
    if since is not None:
        signoffs = signoffs.filter(at__gte=since)
    latest: dict[int, SignOff] = {}
    for signoff in signoffs.order_by("at", "pk"):
        latest[signoff.approver_id] = signoff
    return latest


def _require_incident_resolved(pm: PostMortem, doing: str) -> None:
    status = pm.incident.status
    if STATUS_ORDER.index(status) < STATUS_ORDER.index(IncidentStatus.RESOLVED):
        raise ConflictError(
            f"The incident is still {IncidentStatus(status).label.lower()}; mark it resolved "
            f"before you {doing}."
        )


@transaction.atomic
def postmortem_submit(*, postmortem: PostMortem, by: User) -> PostMortem:
    """Send a draft to its named approvers (needs a summary and at least one approver, and a
    resolved incident)."""
    pm = PostMortem.objects.select_for_update().select_related("incident").get(pk=postmortem.pk)
    if not pm.authors.filter(pk=by.pk).exists():
        raise PermissionDeniedError("Only the post-mortem's authors can submit it for review.")
    if pm.status != PostMortemStatus.DRAFT:
        raise ConflictError(
            f"Only a draft goes to review; this post-mortem is {pm.get_status_display().lower()}."
        )
    missing = []
    if not pm.summary.strip():
        missing.append("a summary")
    if not pm.approvers.exists():
        missing.append("at least one named approver")
    if missing:
        raise DomainError(f"Before review the post-mortem needs {' and '.join(missing)}.")
    _require_incident_resolved(pm, "submit its post-mortem")
    now = timezone.now()
    # The review starts strictly after every earlier sign-off, so none of them count again
    # even when the clock has not moved (pinned clocks, fast clicks).
    last = pm.signoffs.order_by("-at").values_list("at", flat=True).first()
    started = max(now, last + dt.timedelta(microseconds=1)) if last else now
    pm.status = PostMortemStatus.IN_REVIEW
    pm.save()
    PostMortem.objects.filter(pk=pm.pk).update(updated_at=started)
    pm.updated_at = started
    return pm


@transaction.atomic
def postmortem_sign(
    *, postmortem: PostMortem, by: User, approved: bool, comment: str = ""
) -> SignOff:
    """A named approver signs the text under review, or asks for changes (which sends it back
    to draft). Once every named approver has approved it since the last submit, the
    post-mortem is published and the incident becomes "post-mortem done"."""
    pm = PostMortem.objects.select_for_update().select_related("incident").get(pk=postmortem.pk)
    if not pm.approvers.filter(pk=by.pk).exists():
        raise PermissionDeniedError("Only the post-mortem's named approvers can sign it off.")
    if pm.authors.filter(pk=by.pk).exists():
        raise PermissionDeniedError("An author cannot sign off their own post-mortem.")
    if pm.status != PostMortemStatus.IN_REVIEW:
        raise ConflictError(
            f"Only a post-mortem in review is signed off; this one is "
            f"{pm.get_status_display().lower()}."
        )
    comment = str(comment or "").strip()
    if not approved and not comment:
        raise DomainError("Say what should change, so the authors know what to fix.")
    current = postmortem_current_signoffs(pm)
    if approved and by.pk in current and current[by.pk].approved:
        raise ConflictError("You already approved this text.")
    now = timezone.now()
    signoff = SignOff.objects.create(
        postmortem=pm,
        approver=by,
        approved=bool(approved),
        comment=comment,
        at=max(now, _review_started_at(pm)),
    )
    if not approved:
        pm.status = PostMortemStatus.DRAFT
        pm.save()
        return signoff
    current[by.pk] = signoff
    named = set(pm.approvers.values_list("pk", flat=True))
    if all(pk in current and current[pk].approved for pk in named):
        _require_incident_resolved(pm, "publish its post-mortem")
        pm.status = PostMortemStatus.PUBLISHED
        pm.published_at = now
        pm.save()
        incident = pm.incident
        incident.status = IncidentStatus.POSTMORTEM_DONE
        incident.save(update_fields=["status"])
        _timeline(incident, at=now, kind="postmortem", text="Post-mortem published.", by=by)
    return signoff


def postmortem_get(incident: Incident) -> PostMortem | None:
    """The incident's post-mortem, if one was opened, with its authors and approvers."""
    return (
        PostMortem.objects.filter(incident=incident)
        .prefetch_related("authors", "approvers")
        .first()
    )


# --- reads -----------------------------------------------------------------------------------


def _affecting(subject: models.Model) -> Q:
    ctype = ContentType.objects.get_for_model(subject)
    return Q(subject_type=ctype, subject_id=subject.pk)


def incident_list(
    *,
    user: User,
    status: str | None = None,
    severity: str | None = None,
    incident_type: str | None = None,
    business_unit: BusinessUnit | None = None,
    model: RegisteredModel | None = None,
    pool: CapacityPool | None = None,
    endpoint: Endpoint | None = None,
    month: dt.date | None = None,
    q: str | None = None,
) -> QuerySet[Incident]:
    """Incidents, newest first, pre-joined for a list. Everyone signed in sees every incident.

    ``model`` matches incidents on the model itself or on an endpoint serving one of its
    versions; ``month`` is the UTC month the incident started in."""
    if not user.is_authenticated:
        return Incident.objects.none()
    qs = Incident.objects.all()
    if status:
        qs = qs.filter(status=status)
    if severity:
        qs = qs.filter(severity=severity)
    if incident_type:
        qs = qs.filter(incident_type=incident_type)
    if business_unit is not None:
        qs = qs.filter(business_units=business_unit)
    # Subqueries rather than joins: an incident matches once, however many records match.
    affected = AffectedSubject.objects.values("incident_id")
    if pool is not None:
        qs = qs.filter(pk__in=affected.filter(_affecting(pool)))
    if endpoint is not None:
        qs = qs.filter(pk__in=affected.filter(_affecting(endpoint)))
    if model is not None:
        endpoint_type = ContentType.objects.get_for_model(Endpoint)
        serving = Endpoint.objects.filter(model_version__model=model).values("pk")
        qs = qs.filter(
            pk__in=affected.filter(
                _affecting(model) | Q(subject_type=endpoint_type, subject_id__in=serving)
            )
        )
    if month is not None:
        start = dt.datetime(month.year, month.month, 1, tzinfo=dt.UTC)
        end = dt.datetime(month.year + (month.month == 12), month.month % 12 + 1, 1, tzinfo=dt.UTC)
        qs = qs.filter(started_at__gte=start, started_at__lt=end)
    if q:
        qs = qs.filter(title__icontains=q.strip())
    return (
        qs.select_related("commander", "postmortem")
        .prefetch_related(
            Prefetch("business_units", queryset=BusinessUnit.objects.order_by("code")),
            Prefetch(
                "affected",
                queryset=AffectedSubject.objects.select_related("subject_type").prefetch_related(
                    "subject"
                ),
            ),
        )
        .order_by("-started_at", "-pk")
    )


def incident_get(*, user: User, pk: int) -> Incident:
    """One incident with what its page shows; ``Incident.DoesNotExist`` when there is none."""
    return (
        incident_list(user=user)
        .prefetch_related(
            Prefetch("roles", queryset=IncidentRole.objects.select_related("person")),
            Prefetch("timeline", queryset=TimelineEvent.objects.select_related("added_by")),
            "evidence",
        )
        .get(pk=pk)
    )


def durations(incident: Incident) -> dict[str, dt.timedelta | None]:
    """Time to detect, mitigate and resolve, from the start (``None`` while unknown)."""

    def since_start(value: dt.datetime | None) -> dt.timedelta | None:
        return value - incident.started_at if value else None

    return {
        "detect": since_start(incident.detected_at),
        "mitigate": since_start(incident.mitigated_at),
        "resolve": since_start(incident.resolved_at),
    }


class Tally(NamedTuple):
    """One row of a count: what, how many, and its id (to link to the filtered list)."""

    label: str
    count: int
    pk: int | None = None


@dataclass
class IncidentMetrics:
    """What the incidents teach, over every incident (or those started since a date)."""

    total: int = 0
    per_month: list[tuple[dt.date, int]] = field(default_factory=list)
    per_model: list[Tally] = field(default_factory=list)
    per_pool: list[Tally] = field(default_factory=list)
    per_severity: list[tuple[str, int]] = field(default_factory=list)
    mitigate_mean: dt.timedelta | None = None
    mitigate_median: dt.timedelta | None = None
    resolve_mean: dt.timedelta | None = None
    resolve_median: dt.timedelta | None = None
    mitigated_count: int = 0
    resolved_count: int = 0
    root_causes: list[tuple[str, int]] = field(default_factory=list)
    actions_done: int = 0
    actions_open: int = 0
    actions_overdue: int = 0
    actions_cancelled: int = 0

    @property
    def repeated_root_causes(self) -> list[tuple[str, int]]:
        return [(tag, count) for tag, count in self.root_causes if count > 1]

    @property
    def actions_total(self) -> int:
        return self.actions_done + self.actions_open + self.actions_cancelled

    @property
    def actions_done_share(self) -> Decimal | None:
        wanted = self.actions_done + self.actions_open
        if not wanted:
            return None
        return (Decimal(100) * self.actions_done / wanted).quantize(Decimal("0.1"))


def _mean(values: list[dt.timedelta]) -> dt.timedelta | None:
    return sum(values, dt.timedelta()) / len(values) if values else None


def _median(values: list[dt.timedelta]) -> dt.timedelta | None:
    if not values:
        return None
    return dt.timedelta(seconds=statistics.median(v.total_seconds() for v in values))


def incident_metrics(
    *, user: User, since: dt.date | None = None, today: dt.date | None = None
) -> IncidentMetrics:
    """Incidents per month, per affected model and per pool; mean and median time to mitigate
    and resolve; root-cause tags counted across post-mortems; action-item completion.
    A fixed number of queries, whatever the number of incidents.

    An incident on an endpoint counts for the model the endpoint serves."""
    incidents = incident_list(user=user).prefetch_related(None)
    if since is not None:
        incidents = incidents.filter(
            started_at__gte=dt.datetime(since.year, since.month, since.day, tzinfo=dt.UTC)
        )
    rows = list(
        incidents.values_list("pk", "started_at", "mitigated_at", "resolved_at", "severity")
    )
    result = IncidentMetrics(total=len(rows))
    months: Counter[dt.date] = Counter(
        row[1].astimezone(dt.UTC).date().replace(day=1) for row in rows
    )
    result.per_month = sorted(months.items())
    severity_counts = Counter(row[4] for row in rows)
    result.per_severity = [
        (label.split(" ")[0], severity_counts[value])
        for value, label in Severity.choices
        if severity_counts[value]
    ]
    to_mitigate = [row[2] - row[1] for row in rows if row[2]]
    to_resolve = [row[3] - row[1] for row in rows if row[3]]
    result.mitigated_count, result.resolved_count = len(to_mitigate), len(to_resolve)
    result.mitigate_mean, result.mitigate_median = _mean(to_mitigate), _median(to_mitigate)
    result.resolve_mean, result.resolve_median = _mean(to_resolve), _median(to_resolve)

    types = ContentType.objects.get_for_models(RegisteredModel, Endpoint, CapacityPool)
    affected = list(
        AffectedSubject.objects.filter(
            incident_id__in=incidents.values("pk"), subject_type__in=types.values()
        ).values_list("incident_id", "subject_type_id", "subject_id")
    )
    by_type: dict[int, set[tuple[int, int]]] = defaultdict(set)
    for incident_id, type_id, subject_id in affected:
        by_type[type_id].add((incident_id, subject_id))
    endpoint_models = dict(
        Endpoint.objects.filter(
            pk__in={s for _, s in by_type[types[Endpoint].pk]}, model_version__isnull=False
        ).values_list("pk", "model_version__model_id")
    )
    model_incidents: dict[int, set[int]] = defaultdict(set)
    for incident_id, model_id in by_type[types[RegisteredModel].pk]:
        model_incidents[model_id].add(incident_id)
    for incident_id, endpoint_id in by_type[types[Endpoint].pk]:
        if endpoint_id in endpoint_models:
            model_incidents[endpoint_models[endpoint_id]].add(incident_id)
    pool_incidents: dict[int, set[int]] = defaultdict(set)
    for incident_id, pool_id in by_type[types[CapacityPool].pk]:
        pool_incidents[pool_id].add(incident_id)
    model_names = dict(
        RegisteredModel.objects.filter(pk__in=model_incidents).values_list("pk", "name")
    )
    pool_names = dict(CapacityPool.objects.filter(pk__in=pool_incidents).values_list("pk", "name"))
    result.per_model = sorted(
        (Tally(model_names[pk], len(found), pk) for pk, found in model_incidents.items()),
        key=lambda item: (-item.count, item.label),
    )
    result.per_pool = sorted(
        (Tally(pool_names[pk], len(found), pk) for pk, found in pool_incidents.items()),
        key=lambda item: (-item.count, item.label),
    )

    tags: Counter[str] = Counter()
    for found in PostMortem.objects.filter(incident_id__in=incidents.values("pk")).values_list(
        "root_cause_tags", flat=True
    ):
        # A tag counts once per incident, however often one post-mortem repeats it.
        tags.update({str(tag) for tag in found or ()})
    result.root_causes = sorted(tags.items(), key=lambda item: (-item[1], item[0]))

    today = today or timezone.now().date()
    actions = ActionItem.objects.filter(postmortem__incident_id__in=incidents.values("pk"))
    counts = actions.aggregate(
        done=models.Count("pk", filter=Q(status=ActionStatus.DONE)),
        open=models.Count("pk", filter=Q(status=ActionStatus.OPEN)),
        overdue=models.Count("pk", filter=Q(status=ActionStatus.OPEN, due__lt=today)),
        cancelled=models.Count("pk", filter=Q(status=ActionStatus.CANCELLED)),
    )
    result.actions_done = counts["done"]
    result.actions_open = counts["open"]
    result.actions_overdue = counts["overdue"]
    result.actions_cancelled = counts["cancelled"]
    return result


# --- the Markdown export -------------------------------------------------------------------


def _md_time(value: dt.datetime | None) -> str:
    return f"{value.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC" if value else "—"


def duration_text(value: dt.timedelta | None) -> str:
    """``1 h 05 min``, ``3 d 2 h``, ``45 min``; ``—`` when unknown."""
    if value is None:
        return "—"
    minutes = int(value.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min"


def _md_block(text: str) -> str:
    return text.strip() or "_Not written yet._"


def postmortem_markdown(pm: PostMortem, user: User | None = None) -> str:
    """The whole post-mortem as Markdown: every section, the accepted contributing factors
    and the action items."""
    incident = (
        Incident.objects.select_related("commander")
        .prefetch_related("business_units", "roles__person", "affected__subject", "timeline")
        .get(pk=pm.incident_id)
    )
    took = durations(incident)
    lines = [
        f"# Post-mortem: {incident.title}",
        "",
        f"- **Status:** {pm.get_status_display()}"
        + (f" (published {_md_time(pm.published_at)})" if pm.published_at else ""),
        f"- **Severity:** {incident.get_severity_display()}",
        f"- **Type:** {incident.get_incident_type_display()}",
        f"- **Commander:** {incident.commander}",
    ]
    for role in incident.roles.all():
        lines.append(f"- **{role.role.capitalize()}:** {role.person}")
    lines += [
        f"- **Authors:** {', '.join(str(p) for p in pm.authors.all()) or '—'}",
        f"- **Approvers:** {', '.join(str(p) for p in pm.approvers.all()) or '—'}",
        f"- **Affected:** {', '.join(str(a.subject) for a in incident.affected.all()) or '—'}",
        "- **Business units:** "
        + (", ".join(unit.code for unit in incident.business_units.all()) or "—"),
        "",
        "## Summary",
        "",
        _md_block(pm.summary),
        "",
        "## Impact",
        "",
        "| | |",
        "| --- | --- |",
        f"| Started | {_md_time(incident.started_at)} |",
        f"| Detected | {_md_time(incident.detected_at)} (after {duration_text(took['detect'])}) |",
        f"| Mitigated | {_md_time(incident.mitigated_at)} "
        f"(after {duration_text(took['mitigate'])}) |",
        f"| Resolved | {_md_time(incident.resolved_at)} (after {duration_text(took['resolve'])}) |",
        "| Requests failed | "
        + (f"{pm.requests_failed:,}" if pm.requests_failed is not None else "—")
        + " |",
        "| Users affected | "
        + (f"{pm.users_affected:,}" if pm.users_affected is not None else "—")
        + " |",
        "| Cost | "
        + (
            f"{incident.cost.quantize(Decimal('0.01')):,} {incident.cost_currency}"
            if incident.cost is not None
            else "—"
        )
        + " |",
        "",
        _md_block(pm.impact),
    ]
    sections = (
        ("Trigger", pm.trigger),
        ("Root causes", pm.root_causes),
    )
    for title, text in sections:
        lines += ["", f"## {title}", "", _md_block(text)]
    if pm.root_cause_tags:
        lines += ["", "Tags: " + ", ".join(f"`{tag}`" for tag in pm.root_cause_tags)]
    lines += ["", "## Contributing factors", "", _md_block(pm.contributing_factors)]
    from incidents.suggestions import factors_visible

    accepted = factors_visible(
        ContributingFactor.objects.filter(postmortem=pm, status=FactorStatus.ACCEPTED).order_by(
            "occurred_at", "pk"
        ),
        user,
    )
    if accepted:
        lines += ["", "Records that contributed:", ""]
        for factor in accepted:
            note = f" — {factor.note.strip()}" if factor.note.strip() else ""
            lines.append(
                f"- {_md_time(factor.occurred_at)} · {factor.kind}: {factor.summary}{note}"
            )
    for title, text in (
        ("Detection", pm.detection),
        ("What went well", pm.went_well),
        ("Where we got lucky", pm.got_lucky),
        ("Lessons", pm.lessons),
    ):
        lines += ["", f"## {title}", "", _md_block(text)]
    lines += ["", "## Action items", ""]
    actions = ActionItem.objects.filter(postmortem=pm).select_related("owner").order_by("due", "pk")
    if actions:
        lines += ["| Action | Kind | Owner | Due | Status |", "| --- | --- | --- | --- | --- |"]
        for item in actions:
            title = item.title.replace("|", "\\|")
            lines.append(
                f"| {title} | {item.get_kind_display()} | {item.owner} | {item.due:%Y-%m-%d} | "
                f"{item.get_status_display()} |"
            )
    else:
        lines.append("_No action items._")
    lines += ["", "## Timeline", ""]
    for event in incident.timeline.all():
        lines.append(f"- {_md_time(event.at)} · **{event.kind}** · {event.text.strip()}")
    signoffs = pm.signoffs.select_related("approver").order_by("at", "pk")
    if signoffs:
        lines += ["", "## Sign-off", ""]
        for signoff in signoffs:
            verdict = "approved" if signoff.approved else "asked for changes"
            comment = f": {signoff.comment.strip()}" if signoff.comment.strip() else ""
            lines.append(f"- {_md_time(signoff.at)} · {signoff.approver} {verdict}{comment}")
    return "\n".join(lines) + "\n"
