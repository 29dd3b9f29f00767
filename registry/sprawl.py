"""What retirement has saved, and where model versions sprawl (reads only).

:func:`savings` lists the idle endpoints really retired (a dry run changes nothing, so it
saves nothing) with the monthly cost each avoids and what that has come to so far.
:func:`sprawl` finds models with more than K versions deployed at once, versions deployed on
more than one endpoint, and deprecated or retired versions still serving traffic, each with
the monthly cost it carries, so someone can open a consolidation case on it.

Both read a fixed number of queries whatever the number of rows.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import models
from django.db.models import Prefetch, Sum
from django.utils import timezone

from governance.choices import Role
from governance.models import User
from governance.money import money_format
from governance.selectors import visible_unit_ids
from registry import selectors
from registry.choices import LifecycleState
from registry.models import (
    CaseKind,
    CaseStatus,
    Endpoint,
    EndpointUsage,
    ModelVersion,
    RegisteredModel,
    RetirementActionKind,
    RetirementCase,
    RetirementStep,
)
from registry.retirement_services import cases_visible, endpoint_monthly_costs

DEFAULT_K = 2
MIN_K, MAX_K = 1, 50
TRAFFIC_DAYS = 7
ACTION_STEPS = (RetirementActionKind.DELETE, RetirementActionKind.SCALE_MIN)
ACTION_LABELS = {
    RetirementActionKind.DELETE: "Deleted",
    RetirementActionKind.SCALE_MIN: "Scaled to the minimum",
}
OUT_OF_SERVICE_STATES = (LifecycleState.DEPRECATED, LifecycleState.RETIRED)


# --- Savings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SavingRow:
    """One retired endpoint: what it saves a month and what that has come to."""

    case: RetirementCase
    action: str
    retired_at: dt.datetime
    monthly_saving: Decimal | None
    currency: str
    months: int | None
    saved_so_far: Decimal | None
    restored_at: dt.datetime | None = None


@dataclass(frozen=True)
class Savings:
    """The savings page: retired endpoints, restored ones, and totals per currency.

    ``monthly_totals`` is what is being avoided now (retired endpoints only; a restored one
    costs again). ``saved_totals`` is what has been saved so far, restored endpoints
    included up to their restore. ``unknown`` counts rows whose saving is not known.
    """

    retired: list[SavingRow]
    restored: list[SavingRow]
    monthly_totals: dict[str, Decimal]
    saved_totals: dict[str, Decimal]
    unknown: int


def whole_months(start: dt.datetime, end: dt.datetime) -> int:
    """Whole calendar months from ``start`` to ``end`` (UTC): a month counts once the same
    day of the month and time of day has come round again; 0 if ``end`` is not later."""
    start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    if end <= start:
        return 0
    months = (end.year - start.year) * 12 + end.month - start.month
    if (end.day, end.time()) < (start.day, start.time()):
        months -= 1
    return max(months, 0)


def savings(*, user: User, now: dt.datetime | None = None) -> Savings:
    """The idle endpoints really retired (status retired or restored, never a dry run) among
    the cases ``user`` may see, with their monthly saving.

    Saved so far is the monthly saving times the *whole* calendar months since the endpoint
    was retired (:func:`whole_months`) — a month not yet complete saves nothing yet, so the
    figure never claims more than was avoided. A restored endpoint stopped saving when it was
    restored (the time of its restore step); without that step what it saved is unknown.
    """
    now = now or timezone.now()
    steps = RetirementStep.objects.filter(
        kind__in=[*ACTION_STEPS, "restore"], succeeded=True, dry_run=False
    ).order_by("at", "pk")
    cases = (
        cases_visible(user)
        .filter(
            kind=CaseKind.IDLE,
            status__in=[CaseStatus.RETIRED, CaseStatus.RESTORED],
            retired_at__isnull=False,
        )
        .prefetch_related(Prefetch("steps", queryset=steps, to_attr="done_steps"))
        .order_by("-retired_at", "-pk")
    )
    retired: list[SavingRow] = []
    restored: list[SavingRow] = []
    monthly_totals: dict[str, Decimal] = defaultdict(Decimal)
    saved_totals: dict[str, Decimal] = defaultdict(Decimal)
    unknown = 0
    for case in cases:
        acted = [s for s in case.done_steps if s.kind in ACTION_STEPS and s.at <= case.retired_at]
        kind = acted[-1].kind if acted else (case.policy.action if case.policy else "")
        restores = [s for s in case.done_steps if s.kind == "restore" and s.at >= case.retired_at]
        is_restored = case.status == CaseStatus.RESTORED
        restored_at = restores[-1].at if is_restored and restores else None
        until = restored_at if is_restored else now
        months = whole_months(case.retired_at, until) if until is not None else None
        saving = case.monthly_saving
        saved = saving * months if saving is not None and months is not None else None
        row = SavingRow(
            case=case,
            action=ACTION_LABELS.get(kind, kind or "—"),
            retired_at=case.retired_at,
            monthly_saving=saving,
            currency=case.currency,
            months=months,
            saved_so_far=saved,
            restored_at=restored_at,
        )
        (restored if is_restored else retired).append(row)
        if saving is None:
            unknown += 1
            continue
        if not is_restored:
            monthly_totals[case.currency] += saving
        if saved is not None:
            saved_totals[case.currency] += saved
    return Savings(
        retired=retired,
        restored=restored,
        monthly_totals=dict(sorted(monthly_totals.items())),
        saved_totals=dict(sorted(saved_totals.items())),
        unknown=unknown,
    )


# --- Sprawl -----------------------------------------------------------------------------------


class SprawlKind(models.TextChoices):
    VERSIONS = "versions", "More than K versions deployed at once"
    DUPLICATES = "duplicates", "The same version deployed more than once"
    OUT_OF_SERVICE = "out_of_service", "Deprecated or retired versions still serving"


@dataclass(frozen=True)
class EndpointLine:
    """One endpoint with what it costs a month (None: no bill and no hardware price)."""

    endpoint: Endpoint
    monthly_cost: Decimal | None
    currency: str
    how: str
    invocations: int | None = None  # over the last TRAFFIC_DAYS days, where asked


@dataclass(frozen=True)
class VersionLine:
    version: ModelVersion
    endpoints: list[EndpointLine]


@dataclass(frozen=True)
class SprawlItem:
    """One finding of the report, with the monthly cost it carries per currency."""

    kind: str
    model: RegisteredModel
    version: ModelVersion | None  # the version a duplicate / out-of-service finding is about
    lines: list[VersionLine]
    costs: dict[str, Decimal]
    unpriced: int  # endpoints whose cost is not known
    invocations: int  # requests served over the last TRAFFIC_DAYS days (out of service only)
    open_case: RetirementCase | None
    k: int
    as_of: dt.date

    @property
    def endpoint_count(self) -> int:
        return sum(len(line.endpoints) for line in self.lines)

    @property
    def cost_text(self) -> str:
        """The monthly cost as a sentence fragment, e.g. ``$4,380.00``."""
        text = " + ".join(
            money_format(amount, currency, symbol=True) for currency, amount in self.costs.items()
        )
        if not text:
            return "an unknown amount"
        if self.unpriced:
            text += f" (and {self.unpriced} endpoint{'s' if self.unpriced > 1 else ''} unpriced)"
        return text

    @property
    def summary(self) -> str:
        """The consolidation case's one-line summary."""
        version = self.version
        if self.kind == SprawlKind.VERSIONS or version is None:
            return (
                f"{self.model.name} has {len(self.lines)} versions deployed at once (more than "
                f"{self.k}); they cost {self.cost_text} a month"
            )
        if self.kind == SprawlKind.DUPLICATES:
            return (
                f"{version} is deployed on {self.endpoint_count} endpoints; they cost "
                f"{self.cost_text} a month"
            )
        return (
            f"{version} is {version.get_state_display().lower()} but served "
            f"{self.invocations:,} requests in the last {TRAFFIC_DAYS} days; its endpoints "
            f"cost {self.cost_text} a month"
        )

    @property
    def evidence(self) -> dict:
        """What the report saw, JSON-able, for the case to keep."""
        evidence: dict = {
            "report": "sprawl",
            "finding": self.kind,
            "as_of": self.as_of.isoformat(),
            "versions": [
                {
                    "id": line.version.pk,
                    "version": line.version.version,
                    "state": line.version.state,
                    "endpoints": [
                        {
                            "id": e.endpoint.pk,
                            "name": e.endpoint.name,
                            "monthly_cost": str(e.monthly_cost)
                            if e.monthly_cost is not None
                            else None,
                            "currency": e.currency,
                            "how": e.how,
                            **(
                                {f"invocations_{TRAFFIC_DAYS}d": e.invocations}
                                if e.invocations is not None
                                else {}
                            ),
                        }
                        for e in line.endpoints
                    ],
                }
                for line in self.lines
            ],
            "costs": {currency: str(amount) for currency, amount in self.costs.items()},
            "unpriced_endpoints": self.unpriced,
        }
        if self.kind == SprawlKind.VERSIONS:
            evidence["k"] = self.k
        if self.kind == SprawlKind.OUT_OF_SERVICE:
            evidence[f"invocations_{TRAFFIC_DAYS}d"] = self.invocations
        if len(self.costs) == 1:
            [(currency, amount)] = self.costs.items()
            evidence["monthly_cost"], evidence["currency"] = str(amount), currency
        return evidence


@dataclass(frozen=True)
class Sprawl:
    """The three sections of the sprawl report."""

    k: int
    as_of: dt.date
    too_many_versions: list[SprawlItem] = field(default_factory=list)
    duplicates: list[SprawlItem] = field(default_factory=list)
    out_of_service: list[SprawlItem] = field(default_factory=list)

    @property
    def sections(self) -> list[tuple[str, str, list[SprawlItem]]]:
        return [
            (
                SprawlKind.VERSIONS,
                f"More than {self.k} versions deployed at once",
                self.too_many_versions,
            ),
            (SprawlKind.DUPLICATES, SprawlKind.DUPLICATES.label, self.duplicates),
            (SprawlKind.OUT_OF_SERVICE, SprawlKind.OUT_OF_SERVICE.label, self.out_of_service),
        ]

    def find(self, kind: str, model_id: int, version_id: int | None) -> SprawlItem | None:
        """The finding a consolidation button names, if the report still has it."""
        for section_kind, _, items in self.sections:
            if section_kind != kind:
                continue
            for item in items:
                if item.model.pk == model_id and (
                    kind == SprawlKind.VERSIONS or (item.version and item.version.pk == version_id)
                ):
                    return item
        return None


def may_open_consolidation(user: User) -> bool:
    """Who the page offers the button to: the rule ``consolidation_open`` enforces."""
    return user.is_authenticated and (
        user.has_role(Role.PLATFORM_ADMIN) or user.is_board_member or user.manages_costs
    )


def sprawl(*, user: User, k: int = DEFAULT_K, today: dt.date | None = None) -> Sprawl:
    """Version sprawl among the models ``user`` may read (the registry's scoping).

    (a) models with more than ``k`` versions in state deployed, with those versions'
    endpoints; (b) versions running on two or more endpoints; (c) deprecated or retired
    versions whose endpoints served requests in the last 7 full days (``today`` excluded).
    Endpoints deleted by a retirement no longer count. Costs come from
    :func:`endpoint_monthly_costs` (the bill of the last 30 days, else an estimate from the
    hardware price) and are summed per currency.
    """
    if not MIN_K <= k <= MAX_K:
        raise ValueError(f"k must be from {MIN_K} to {MAX_K}")
    today = today or timezone.now().date()
    deployed = list(
        selectors.version_list(user=user)
        .filter(state=LifecycleState.DEPLOYED)
        .order_by("model__name", "version", "pk")
    )
    units = selectors.registry_unit_ids(user)
    endpoints_qs = (
        Endpoint.objects.filter(model_version__isnull=False)
        .exclude(status__istartswith="delet")
        .select_related("model_version__model__business_unit", "business_unit")
        .order_by("name", "pk")
    )
    if units is not None:
        endpoints_qs = endpoints_qs.filter(model_version__model__business_unit_id__in=units)
    endpoints = list(endpoints_qs)
    by_version: dict[int, list[Endpoint]] = defaultdict(list)
    versions: dict[int, ModelVersion] = {}
    for endpoint in endpoints:
        by_version[endpoint.model_version_id].append(endpoint)
        versions[endpoint.model_version_id] = endpoint.model_version

    deployed_by_model: dict[int, list[ModelVersion]] = defaultdict(list)
    for version in deployed:
        deployed_by_model[version.model_id].append(version)
    crowded = {m: vs for m, vs in deployed_by_model.items() if len(vs) > k}
    duplicated = [v for pk, v in versions.items() if len(by_version[pk]) >= 2]
    out_of_service = [v for v in versions.values() if v.state in OUT_OF_SERVICE_STATES]

    traffic: dict[int, int] = {}
    serving_ids = [e.pk for v in out_of_service for e in by_version[v.pk]]
    if serving_ids:
        traffic = dict(
            EndpointUsage.objects.filter(
                endpoint_id__in=serving_ids,
                day__gte=today - dt.timedelta(days=TRAFFIC_DAYS),
                day__lt=today,
            )
            .values("endpoint_id")
            .annotate(total=Sum("invocations"))
            .order_by()
            .values_list("endpoint_id", "total")
        )
    out_of_service = [
        v for v in out_of_service if sum(traffic.get(e.pk, 0) for e in by_version[v.pk]) > 0
    ]

    wanted = {e.pk: e for vs in crowded.values() for v in vs for e in by_version.get(v.pk, [])}
    wanted |= {e.pk: e for v in [*duplicated, *out_of_service] for e in by_version[v.pk]}
    costs = endpoint_monthly_costs(list(wanted.values()), today=today)
    # Costs follow the cost rules, not the registry's: a board member or approver reads every
    # unit's models but only their own units' money.
    money_units = visible_unit_ids(user)
    if money_units is not None:
        costs = {
            pk: cost for pk, cost in costs.items() if wanted[pk].business_unit_id in money_units
        }
    model_ids = set(crowded) | {v.model_id for v in [*duplicated, *out_of_service]}
    open_cases: dict[int, RetirementCase] = {}
    if model_ids:
        for case in RetirementCase.objects.filter(
            kind=CaseKind.CONSOLIDATION, status=CaseStatus.OPEN, model_id__in=model_ids
        ).order_by("opened_at", "pk"):
            open_cases.setdefault(case.model_id, case)

    def line(version: ModelVersion, *, with_traffic: bool = False) -> VersionLine:
        out = []
        for endpoint in by_version.get(version.pk, []):
            amount, currency, how = costs.get(endpoint.pk, (None, "", "no bill and no price"))
            out.append(
                EndpointLine(
                    endpoint=endpoint,
                    monthly_cost=amount,
                    currency=currency,
                    how=how,
                    invocations=traffic.get(endpoint.pk, 0) if with_traffic else None,
                )
            )
        return VersionLine(version=version, endpoints=out)

    def item(kind: str, model: RegisteredModel, version, lines: list[VersionLine]) -> SprawlItem:
        totals: dict[str, Decimal] = defaultdict(Decimal)
        unpriced = 0
        for ln in lines:
            for e in ln.endpoints:
                if e.monthly_cost is None:
                    unpriced += 1
                else:
                    totals[e.currency] += e.monthly_cost
        return SprawlItem(
            kind=kind,
            model=model,
            version=version,
            lines=lines,
            costs=dict(sorted(totals.items())),
            unpriced=unpriced,
            invocations=sum(e.invocations or 0 for ln in lines for e in ln.endpoints),
            open_case=open_cases.get(model.pk),
            k=k,
            as_of=today,
        )

    def by_name(v: ModelVersion) -> tuple:
        return (v.model.name, v.version, v.pk)

    return Sprawl(
        k=k,
        as_of=today,
        too_many_versions=[
            item(SprawlKind.VERSIONS, vs[0].model, None, [line(v) for v in vs])
            for vs in crowded.values()
        ],
        duplicates=[
            item(SprawlKind.DUPLICATES, v.model, v, [line(v)])
            for v in sorted(duplicated, key=by_name)
        ],
        out_of_service=[
            item(SprawlKind.OUT_OF_SERVICE, v.model, v, [line(v, with_traffic=True)])
            for v in sorted(out_of_service, key=by_name)
        ],
    )
