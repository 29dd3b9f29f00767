"""Cost per inference: what an endpoint cost in a month over the invocations it served.

Read functions for the cost-per-inference page and the registry's comparison page. Each
endpoint's month is its cost rows (billing period = the month) over its invocations (usage
days in that calendar month); a model version's is the sum of its endpoints, beside the
cost per 1k requests its newest benchmark predicts.

A cost row belongs to an endpoint when its resource id is the endpoint's (ARN or full
resource name, compared case-insensitively: SageMaker writes names lower-case in its ARNs),
or when it is the provider's endpoint resource ending in ``/<endpoint name>``, e.g.
``arn:aws:sagemaker:us-east-1:123456789012:endpoint/ranker-prod`` for the endpoint
``Ranker-Prod`` of account 123456789012 in us-east-1. A row that could belong to two
endpoints belongs to neither, rather than being counted twice.

A missing usage day is unknown, not zero: an endpoint with cost but no usage day has no cost
per 1k (never an infinite or zero one), and a version's figure counts only the endpoints that
have both cost and usage.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Lower, TruncMonth

from costs.budgets import next_month
from costs.models import CostRow
from costs.selectors import basis_field, cost_months_cached
from governance.models import User
from governance.selectors import visible_unit_ids
from registry import selectors as registry_selectors
from registry.choices import Provider
from registry.extensions import ActualCost, EndpointCost
from registry.models import Endpoint, EndpointUsage, ModelVersion

ZERO = Decimal(0)
# The registry's predicted cost per 1k requests has six places; the actual figure matches.
PER_1K_PLACES = Decimal("0.000001")
RATIO_PLACES = Decimal("0.01")
# Where a provider's resource id names an endpoint; the endpoint's name follows it.
ENDPOINT_MARKERS = {
    Provider.AWS: ":endpoint/",  # arn:aws:sagemaker:<region>:<account>:endpoint/<name>
    Provider.GCP: "/endpoints/",  # projects/<p>/locations/<region>/endpoints/<name>
    Provider.AZURE: "/onlineendpoints/",  # .../workspaces/<ws>/onlineEndpoints/<name>
}
# The registry page looks this many of a version's newest usage months back for a figure.
LATEST_MONTHS = 3


def cost_per_1k(cost: Decimal | None, invocations: int | None) -> Decimal | None:
    """``cost`` per 1,000 invocations; None when either is unknown or nothing was served."""
    if cost is None or not invocations:
        return None
    return (cost * 1000 / invocations).quantize(PER_1K_PLACES)


def cost_ratio(actual: Decimal | None, predicted: Decimal | None) -> Decimal | None:
    """Actual over predicted (1.25 = a quarter dearer than the benchmark said)."""
    if actual is None or not predicted:
        return None
    return (actual / predicted).quantize(RATIO_PLACES)


@dataclass(frozen=True)
class EndpointInference:
    """One endpoint's month in one currency: cost, invocations and their quotient.

    ``cost`` is None when no cost row matched the endpoint, ``invocations`` None when no
    usage day is recorded. An endpoint billed in two currencies has a line for each, both
    with its invocations.
    """

    endpoint: Endpoint
    month: dt.date
    currency: str  # blank when no cost row matched
    cost: Decimal | None
    invocations: int | None
    days_with_usage: int

    @property
    def cost_per_1k(self) -> Decimal | None:
        return cost_per_1k(self.cost, self.invocations)

    @property
    def version(self) -> ModelVersion | None:
        return self.endpoint.model_version


@dataclass(frozen=True)
class VersionInference:
    """A model version's endpoints in one month and currency, beside its benchmark.

    ``cost`` and ``invocations`` are the sums over its endpoints; ``cost_per_1k`` counts only
    the endpoints that have both cost rows and usage days (``left_out`` says how many do
    not), idle ones included.
    """

    version: ModelVersion
    month: dt.date
    currency: str
    endpoints: tuple[EndpointInference, ...]
    predicted: registry_selectors.PointCosts | None = None
    cost: Decimal | None = field(init=False)
    invocations: int | None = field(init=False)

    def __post_init__(self) -> None:
        costs = [e.cost for e in self.endpoints if e.cost is not None]
        served = [e.invocations for e in self.endpoints if e.invocations is not None]
        object.__setattr__(self, "cost", sum(costs, ZERO) if costs else None)
        object.__setattr__(self, "invocations", sum(served) if served else None)

    @property
    def priced(self) -> list[EndpointInference]:
        # An endpoint that served nothing on its recorded days still counts: its cost is
        # part of what the version's invocations cost.
        return [e for e in self.endpoints if e.cost is not None and e.invocations is not None]

    @property
    def left_out(self) -> int:
        return len(self.endpoints) - len(self.priced)

    @property
    def cost_per_1k(self) -> Decimal | None:
        priced = self.priced
        if not priced:
            return None
        return cost_per_1k(sum((e.cost for e in priced), ZERO), sum(e.invocations for e in priced))

    @property
    def predicted_per_1k(self) -> Decimal | None:
        """The benchmark's cost per 1k requests, when it is in this line's currency."""
        if self.predicted is None or self.predicted.currency != self.currency:
            return None
        return self.predicted.cost_per_1k_requests

    @property
    def ratio(self) -> Decimal | None:
        return cost_ratio(self.cost_per_1k, self.predicted_per_1k)

    def endpoint_lines(self) -> list[tuple[EndpointInference, Decimal | None]]:
        """Each endpoint with its actual figure over the version's predicted one."""
        predicted = self.predicted_per_1k
        return [(e, cost_ratio(e.cost_per_1k, predicted)) for e in self.endpoints]


def _endpoint_scope(
    user: User | None, *, model_id: int | None = None, business_unit_id: int | None = None
) -> QuerySet[Endpoint]:
    """Endpoints of the business units the person may see.

    An endpoint's unit is its own (from its tags) or, while it has none, its model's.
    """
    endpoints = Endpoint.objects.select_related(
        "business_unit", "model_version__model__business_unit", "model_version__hardware_profile"
    )
    visible = visible_unit_ids(user)
    if visible is not None:
        endpoints = endpoints.filter(
            Q(business_unit__in=visible)
            | Q(business_unit__isnull=True, model_version__model__business_unit__in=visible)
        )
    if business_unit_id is not None:
        endpoints = endpoints.filter(
            Q(business_unit_id=business_unit_id)
            | Q(business_unit__isnull=True, model_version__model__business_unit_id=business_unit_id)
        )
    if model_id is not None:
        endpoints = endpoints.filter(model_version__model_id=model_id)
    return endpoints.order_by("pk")


# What matching reads of an endpoint.
MATCHED_FIELDS = ("pk", "resource_id", "provider", "name", "account_id", "region")


class _EndpointMatcher:
    """Finds the endpoint a cost row's (lower-cased) resource id belongs to, if one."""

    def __init__(self, endpoints: Iterable[Endpoint]) -> None:
        self.exact: dict[str, Endpoint] = {}
        self.by_name: dict[tuple[str, str], list[Endpoint]] = defaultdict(list)
        for endpoint in sorted(endpoints, key=lambda e: e.pk):
            if endpoint.resource_id:
                self.exact.setdefault(endpoint.resource_id.lower(), endpoint)
            if endpoint.provider in ENDPOINT_MARKERS:
                self.by_name[(endpoint.provider, endpoint.name.lower())].append(endpoint)

    @property
    def markers(self) -> list[str]:
        return sorted({ENDPOINT_MARKERS[provider] for provider, _ in self.by_name})

    def candidates(self) -> Q | None:
        """Rows (annotated ``rid``, the lower-cased resource id) that may be one of the
        endpoints' (``match`` decides); None when none can be."""
        wanted = Q()
        if self.exact:
            wanted |= Q(rid__in=sorted(self.exact))
        for marker in self.markers:
            wanted |= Q(rid__contains=marker)
        return wanted or None

    def rows(self, rows: QuerySet[CostRow]) -> QuerySet[CostRow] | None:
        """``rows`` narrowed to :meth:`candidates` (``rid`` annotated); None when none can be."""
        wanted = self.candidates()
        return None if wanted is None else rows.annotate(rid=Lower("resource_id")).filter(wanted)

    def match(self, resource_id: str) -> Endpoint | None:
        if resource_id in self.exact:
            return self.exact[resource_id]
        for provider, marker in ENDPOINT_MARKERS.items():
            head, found, name = resource_id.rpartition(marker)
            if not found or not head or "/" in name:
                continue
            candidates = self.by_name.get((provider, name), [])
            if provider == Provider.AWS:
                candidates = [e for e in candidates if _aws_same_place(e, resource_id)]
            elif len(candidates) > 1:
                candidates = [e for e in candidates if e.account_id.lower() in head]
            if len(candidates) == 1:
                return candidates[0]
        return None


def _aws_same_place(endpoint: Endpoint, arn: str) -> bool:
    """The ARN names the endpoint's account and (when it has one) its region."""
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return False
    region, account = parts[3], parts[4]
    return account == endpoint.account_id.lower() and (
        not endpoint.region or region == endpoint.region.lower()
    )


def _endpoint_costs(
    *, user: User | None, endpoints: Sequence[Endpoint], months: Sequence[dt.date], basis: str
) -> dict[tuple[dt.date, int], dict[str, Decimal]]:
    """(billing month, endpoint id) -> currency -> cost of the rows the person may read."""
    matcher = _EndpointMatcher(endpoints)
    visible = visible_unit_ids(user)
    out: dict[tuple[dt.date, int], dict[str, Decimal]] = defaultdict(dict)
    for month, rid, currency, unit_id, amount in _candidate_sums(months, basis):
        if visible is not None and unit_id not in visible:
            continue
        endpoint = matcher.match(rid)
        if endpoint is not None:
            bucket = out[(month, endpoint.pk)]
            bucket[currency] = bucket.get(currency, ZERO) + amount
    return out


def _candidate_sums(
    months: Sequence[dt.date], basis: str
) -> list[tuple[dt.date, str, str, int | None, Decimal]]:
    """(month, resource id, currency, unit, cost) of every row that may be an endpoint's, in
    one grouped query kept with the months' cost sums (the LIKE over a month's rows is the
    slow part of a statement page; matching the rows to a reader's endpoints is cheap)."""
    if not months:
        return []
    # The rows that may be any endpoint's: the same query (and cache entry) for every
    # reader, whatever endpoints they see; the caller's matcher then keeps theirs.
    every = _EndpointMatcher(Endpoint.objects.only(*MATCHED_FIELDS))
    rows = every.rows(CostRow.objects.filter(billing_period__in=list(months)))
    if rows is None:
        return []

    def compute() -> list[tuple[dt.date, str, str, int | None, Decimal]]:
        grouped = (
            rows.values("billing_period", "rid", "currency", "tag_set__business_unit_id")
            .annotate(amount=Sum(basis_field(basis)))
            .order_by()
        )
        return [
            (
                row["billing_period"],
                row["rid"],
                row["currency"],
                row["tag_set__business_unit_id"],
                row["amount"] or ZERO,
            )
            for row in grouped
        ]

    name = ("endpoint-sums", basis, str(every.candidates()))
    return cost_months_cached(name, months, compute)


def _endpoint_usage(
    *, endpoints: QuerySet[Endpoint], month: dt.date | None = None
) -> dict[tuple[dt.date, int], tuple[int, int]]:
    """(month, endpoint id) -> (invocations, days with usage), of one month or all."""
    usage = EndpointUsage.objects.filter(endpoint__in=endpoints.values("pk"))
    if month is not None:
        usage = usage.filter(day__gte=month, day__lt=next_month(month))
    grouped = (
        usage.annotate(month=TruncMonth("day"))
        .values("month", "endpoint_id")
        .annotate(invocations=Sum("invocations"), days=Count("pk"))
        .order_by()
    )
    return {
        (row["month"], row["endpoint_id"]): (row["invocations"], row["days"]) for row in grouped
    }


def _lines(
    endpoints: Sequence[Endpoint],
    month: dt.date,
    costs: dict[tuple[dt.date, int], dict[str, Decimal]],
    usage: dict[tuple[dt.date, int], tuple[int, int]],
) -> list[EndpointInference]:
    lines = []
    for endpoint in endpoints:
        by_currency = costs.get((month, endpoint.pk), {})
        invocations, days = usage.get((month, endpoint.pk), (None, 0))
        if not by_currency and invocations is None:
            continue  # nothing known of it this month
        for currency in sorted(by_currency) or [""]:
            lines.append(
                EndpointInference(
                    endpoint=endpoint,
                    month=month,
                    currency=currency,
                    cost=by_currency.get(currency),
                    invocations=invocations,
                    days_with_usage=days,
                )
            )
    return lines


def endpoint_inference_list(
    *,
    user: User | None,
    month: dt.date,
    basis: str = "billed",
    model_id: int | None = None,
    business_unit_id: int | None = None,
) -> list[EndpointInference]:
    """Each endpoint with cost or usage in the billing month, by name, in three queries.

    Scoped like every cost read: a person without a finance or admin role sees the endpoints
    of their own business units, costed with the rows they may read; ``user=None`` is the
    system view.
    """
    basis_field(basis)  # a wrong basis fails here, before any query
    scope = _endpoint_scope(user, model_id=model_id, business_unit_id=business_unit_id)
    # Sorted here, not by the database, so the order does not hang on its collation.
    endpoints = sorted(scope, key=lambda e: (e.name.lower(), e.pk))
    if not endpoints:
        return []
    costs = _endpoint_costs(user=user, endpoints=endpoints, months=[month], basis=basis)
    usage = _endpoint_usage(endpoints=scope, month=month)
    return _lines(endpoints, month, costs, usage)


def _version_lines(
    lines: Sequence[EndpointInference],
    predicted: dict[int, registry_selectors.PointCosts],
) -> list[VersionInference]:
    by_version: dict[tuple[int, dt.date], list[EndpointInference]] = defaultdict(list)
    versions: dict[int, ModelVersion] = {}
    for line in lines:
        if line.version is not None:
            versions[line.version.pk] = line.version
            by_version[(line.version.pk, line.month)].append(line)
    out = []
    for (version_id, month), group in by_version.items():
        currencies = sorted({e.currency for e in group if e.currency}) or [""]
        # An endpoint without cost rows goes with the first currency, so it counts once.
        uncosted = tuple(e for e in group if not e.currency)
        for i, currency in enumerate(currencies):
            members = tuple(e for e in group if e.currency == currency and currency)
            out.append(
                VersionInference(
                    version=versions[version_id],
                    month=month,
                    currency=currency,
                    endpoints=members + (uncosted if i == 0 else ()),
                    predicted=predicted.get(version_id),
                )
            )
    out.sort(key=lambda v: (v.version.model.name, v.version.version, v.month, v.currency))
    return out


def version_inference_list(*, endpoints: Sequence[EndpointInference]) -> list[VersionInference]:
    """The endpoint lines rolled up per model version and currency, by model and version.

    Each carries the best point of the version's newest benchmark on its own hardware, as
    the registry's comparison page shows it; three queries however many versions.
    """
    versions = {e.version.pk: e.version for e in endpoints if e.version is not None}
    # The registry's own reading of "newest benchmark, best point, current price", so the
    # predicted figure here is the comparison page's.
    predicted = registry_selectors.newest_benchmark_best(list(versions.values()))
    return _version_lines(endpoints, predicted)


def version_actual_latest(
    version_ids: Sequence[int], *, basis: str = "billed"
) -> dict[int, ActualCost]:
    """Per version, the actual cost per 1k invocations of the newest month that has one.

    The registry's comparison page asks this through ``registry.extensions`` for the versions
    of a model the person may read there (the board reviews every unit's models), so it
    reads the organisation-wide figure. Months are looked for among the version's
    ``LATEST_MONTHS`` newest months with usage; a version billed in two currencies that month
    gives the figure of its larger cost. Three queries however many versions.
    """
    ids = list(version_ids)
    if not ids:
        return {}
    scope = _endpoint_scope(None).filter(model_version_id__in=ids)
    endpoints = list(scope)
    if not endpoints:
        return {}
    usage = _endpoint_usage(endpoints=scope)
    version_of = {e.pk: e.model_version_id for e in endpoints}
    months_of: dict[int, set[dt.date]] = defaultdict(set)
    for month, endpoint_id in usage:
        months_of[version_of[endpoint_id]].add(month)
    wanted = sorted({m for months in months_of.values() for m in sorted(months)[-LATEST_MONTHS:]})
    costs = _endpoint_costs(user=None, endpoints=endpoints, months=wanted, basis=basis)
    found: dict[int, ActualCost] = {}
    for month in reversed(wanted):
        priced = [
            line
            for line in _version_lines(_lines(endpoints, month, costs, usage), {})
            if line.version.pk not in found and line.cost_per_1k is not None
        ]
        for line in sorted(priced, key=lambda line: line.cost, reverse=True):
            found.setdefault(line.version.pk, ActualCost(line.cost_per_1k, line.currency, month))
    return found


def endpoint_cost_between(
    endpoint_ids: Sequence[int], start: dt.date, end: dt.date
) -> dict[int, EndpointCost]:
    """Billed cost of each endpoint's usage days ``start`` to ``end`` (exclusive), in its
    largest currency: the registry's retirement asks through its hook. The system view."""
    endpoints = list(Endpoint.objects.filter(pk__in=list(endpoint_ids)))
    matcher = _EndpointMatcher(endpoints)
    rows = matcher.rows(CostRow.objects.filter(usage_date__gte=start, usage_date__lt=end))
    if rows is None:
        return {}
    grouped = rows.values("rid", "currency").annotate(amount=Sum("billed_cost")).order_by()
    totals: dict[int, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for row in grouped:
        endpoint = matcher.match(row["rid"])
        if endpoint is not None:
            totals[endpoint.pk][row["currency"]] += row["amount"] or ZERO
    out = {}
    for pk, by_currency in totals.items():
        currency, amount = max(by_currency.items(), key=lambda kv: kv[1])
        out[pk] = EndpointCost(amount=amount, currency=currency)
    return out
