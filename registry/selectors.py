"""Read queries for the registry, scoped once: pages, the API and exports read through these.

Review-board members and approvers see every business unit's models (they review them);
everyone else sees the models of the units they belong to or own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import AnonymousUser
from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, Prefetch, QuerySet, Sum
from django.utils import timezone

from governance.choices import BOARD_ROLES, ConflictStatus, Role
from governance.models import CapacityConflict, User
from governance.selectors import visible_unit_ids
from registry import capacity, gate
from registry.choices import AssessmentStatus, LifecycleState, ProtocolStatus
from registry.models import (
    BenchmarkPoint,
    BenchmarkProtocol,
    CapacityAssessment,
    CapacityPool,
    EfficiencyBenchmark,
    HardwarePrice,
    HardwareProfile,
    ModelVersion,
    RegisteredModel,
    RequirementWaiver,
    VersionTransition,
)
from registry.services import deployment_gates

REGISTRY_WIDE_ROLES = BOARD_ROLES | {Role.APPROVER}


def registry_unit_ids(user: User | AnonymousUser | None) -> frozenset[int] | None:
    """Business units whose models ``user`` may read; None means all of them."""
    if user is not None and user.is_authenticated and user.role_set & REGISTRY_WIDE_ROLES:
        return None
    return visible_unit_ids(user)


def _scoped(qs: QuerySet, user: User | AnonymousUser | None, path: str) -> QuerySet:
    units = registry_unit_ids(user)
    return qs if units is None else qs.filter(**{f"{path}__in": units})


def model_list(*, user: User | AnonymousUser | None) -> QuerySet[RegisteredModel]:
    return _scoped(
        RegisteredModel.objects.select_related("business_unit")
        .annotate(version_count=Count("versions"))
        .order_by("name"),
        user,
        "business_unit_id",
    )


def version_list(*, user: User | AnonymousUser | None) -> QuerySet[ModelVersion]:
    return _scoped(
        ModelVersion.objects.select_related(
            "model__business_unit", "hardware_profile", "created_by"
        ),
        user,
        "model__business_unit_id",
    )


def benchmark_list(*, user: User | AnonymousUser | None) -> QuerySet[EfficiencyBenchmark]:
    return _scoped(
        EfficiencyBenchmark.objects.select_related(
            "version__model__business_unit", "protocol", "hardware_profile", "uploaded_by"
        ).prefetch_related("points"),
        user,
        "version__model__business_unit_id",
    )


def assessment_list(*, user: User | AnonymousUser | None) -> QuerySet[CapacityAssessment]:
    return _scoped(
        CapacityAssessment.objects.select_related(
            "version__model__business_unit",
            "version__hardware_profile",
            "benchmark__hardware_profile",
            "pool",
            "point",
            "submitted_by",
            "decision__decided_by",
        ),
        user,
        "version__model__business_unit_id",
    )


def waiver_list(*, user: User | AnonymousUser | None) -> QuerySet[RequirementWaiver]:
    return _scoped(
        RequirementWaiver.objects.select_related("version__model", "granted_by"),
        user,
        "version__model__business_unit_id",
    )


def protocol_list() -> QuerySet[BenchmarkProtocol]:
    """Protocols are shared by every team, so everyone may read them."""
    return BenchmarkProtocol.objects.select_related("hardware_profile", "approved_by")


def protocols_approved() -> QuerySet[BenchmarkProtocol]:
    return protocol_list().filter(status=ProtocolStatus.APPROVED)


def hardware_list() -> QuerySet[HardwareProfile]:
    return HardwareProfile.objects.prefetch_related(
        Prefetch("prices", queryset=HardwarePrice.objects.order_by("provider", "-effective_from"))
    )


def pool_list() -> QuerySet[CapacityPool]:
    return CapacityPool.objects.select_related("hardware_profile", "owner")


def version_history(*, version: ModelVersion) -> QuerySet[VersionTransition]:
    return version.transitions.select_related("by", "decision")


def current_prices(
    profile_ids: Iterable[int], *, at: datetime | None = None
) -> dict[int, HardwarePrice]:
    """The newest price in force per hardware profile (any provider), in one query."""
    prices: dict[int, HardwarePrice] = {}
    for price in HardwarePrice.objects.filter(
        hardware_profile_id__in=set(profile_ids), effective_from__lte=at or timezone.now()
    ).order_by("hardware_profile_id", "-effective_from", "hourly_price"):
        prices.setdefault(price.hardware_profile_id, price)
    return prices


@dataclass(frozen=True)
class PointCosts:
    """A benchmark point with what one replica costs per unit of work at full load."""

    point: BenchmarkPoint
    cost_per_1k_requests: Decimal | None
    cost_per_1m_tokens: Decimal | None
    currency: str


def point_costs(points: Sequence[BenchmarkPoint], price: HardwarePrice | None) -> list[PointCosts]:
    rows = []
    for p in points:
        per_1k = per_1m = None
        if price is not None:
            per_1k, per_1m = capacity.unit_costs(
                hourly_price=price.hourly_price,
                requests_per_s=p.requests_per_s,
                tokens_per_s=p.output_tokens_per_s or p.total_tokens_per_s,
            )
        rows.append(PointCosts(p, per_1k, per_1m, price.currency if price else ""))
    return rows


def best_point(points: Sequence[BenchmarkPoint]) -> BenchmarkPoint | None:
    """The point with the highest request throughput (the first point if none has one)."""
    if not points:
        return None
    measured = [p for p in points if p.requests_per_s is not None]
    return max(measured, key=lambda p: p.requests_per_s) if measured else points[0]


@dataclass(frozen=True)
class ComparisonRow:
    version: ModelVersion
    benchmark: EfficiencyBenchmark | None
    best: PointCosts | None


def model_comparison(
    *, model: RegisteredModel, version_ids: Iterable[int] | None = None
) -> list[ComparisonRow]:
    """Each version's newest benchmark on its own hardware, at its best point, with costs."""
    versions = list(model.versions.select_related("hardware_profile").order_by("created_at", "pk"))
    if version_ids is not None:
        wanted = set(version_ids)
        versions = [v for v in versions if v.pk in wanted]
    newest: dict[int, EfficiencyBenchmark] = {}
    for b in (
        EfficiencyBenchmark.objects.filter(version__in=versions)
        .select_related("protocol", "hardware_profile")
        .prefetch_related("points")
        .order_by("measured_at", "pk")
    ):
        v = next(v for v in versions if v.pk == b.version_id)
        if b.hardware_profile_id == v.hardware_profile_id:
            newest[b.version_id] = b
    prices = current_prices(v.hardware_profile_id for v in versions)
    rows = []
    for v in versions:
        b = newest.get(v.pk)
        best = None
        if b is not None:
            point = best_point(list(b.points.all()))
            if point is not None:
                best = point_costs([point], prices.get(v.hardware_profile_id))[0]
        rows.append(ComparisonRow(v, b, best))
    return rows


@dataclass(frozen=True)
class QueueItem:
    kind: str  # "version" or "assessment"
    waiting_since: datetime
    version: ModelVersion
    assessment: CapacityAssessment | None  # the item itself, for assessment rows
    numbers: CapacityAssessment | None  # the assessment whose figures the row shows
    best: PointCosts | None  # the best point of the newest benchmark on its hardware
    verdict: gate.GateVerdict


def newest_benchmark_best(versions: Sequence[ModelVersion]) -> dict[int, PointCosts]:
    """Per version, the best point of its newest benchmark on its own hardware, with costs."""
    newest: dict[int, EfficiencyBenchmark] = {}
    hardware = {v.pk: v.hardware_profile_id for v in versions}
    for b in (
        EfficiencyBenchmark.objects.filter(version_id__in=list(hardware))
        .prefetch_related("points")
        .order_by("measured_at", "pk")
    ):
        if b.hardware_profile_id == hardware[b.version_id]:
            newest[b.version_id] = b
    prices = current_prices(hardware.values())
    best = {}
    for version_id, b in newest.items():
        point = best_point(list(b.points.all()))
        if point is not None:
            best[version_id] = point_costs([point], prices.get(hardware[version_id]))[0]
    return best


def review_queue(*, user: User) -> list[QueueItem]:
    """What waits for the board, oldest first: submitted versions and assessments.

    Each row carries the numbers a board member needs: the best benchmarked point and its
    unit cost, and the capacity the assessment asks for.
    """
    versions = list(
        version_list(user=user)
        .filter(state__in=[LifecycleState.SUBMITTED, LifecycleState.UNDER_REVIEW])
        .order_by("state_changed_at", "pk")
    )
    waiting = list(
        assessment_list(user=user)
        .filter(status=AssessmentStatus.SUBMITTED)
        .order_by("submitted_at", "pk")
    )
    subjects = {v.pk: v for v in versions}
    for a in waiting:
        subjects.setdefault(a.version_id, a.version)
    latest: dict[int, CapacityAssessment] = {}
    for a in (
        assessment_list(user=user)
        .filter(version_id__in=[v.pk for v in versions])
        .exclude(status=AssessmentStatus.SUPERSEDED)
        .order_by("submitted_at", "pk")
    ):
        latest[a.version_id] = a
    verdicts = deployment_gates(list(subjects.values()))
    best = newest_benchmark_best(list(subjects.values()))
    items = [
        QueueItem(
            "version",
            v.state_changed_at or v.created_at,
            v,
            None,
            latest.get(v.pk),
            best.get(v.pk),
            verdicts[v.pk],
        )
        for v in versions
    ]
    items += [
        QueueItem(
            "assessment",
            a.submitted_at,
            a.version,
            a,
            a,
            best.get(a.version_id),
            verdicts[a.version_id],
        )
        for a in waiting
    ]
    return sorted(items, key=lambda i: i.waiting_since)


def conflict_list(*, user: User | AnonymousUser | None) -> QuerySet[CapacityConflict]:
    """Conflicts the user may read: all for the board and admins, else their units' own."""
    conflicts = CapacityConflict.objects.select_related("raised_by", "decision__decided_by")
    units = registry_unit_ids(user)
    if units is not None:
        conflicts = conflicts.filter(business_units__in=units).distinct()
    return conflicts.prefetch_related("business_units").order_by("raised_at", "pk")


@dataclass(frozen=True)
class PoolDemand:
    """What each business unit's live assessments ask of a pool, against its size."""

    pool: CapacityPool
    by_unit: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_unit.values())

    @property
    def over(self) -> int:
        return max(0, self.total - self.pool.accelerator_count)


def pool_demand(pools: Iterable[CapacityPool]) -> dict[int, PoolDemand]:
    """Accelerators asked of each pool by submitted or approved assessments, per unit."""
    pools = list(pools)
    demand: dict[int, dict[str, int]] = {p.pk: {} for p in pools}
    rows = (
        CapacityAssessment.objects.filter(
            pool__in=pools, status__in=[AssessmentStatus.SUBMITTED, AssessmentStatus.APPROVED]
        )
        .values_list("pool_id", "version__model__business_unit__code")
        .annotate(accelerators=Sum("accelerators"))
        .order_by()
    )
    for pool_id, unit, accelerators in rows:
        demand[pool_id][unit] = accelerators
    return {p.pk: PoolDemand(p, demand[p.pk]) for p in pools}


def open_conflicts_with_demand(*, user: User) -> list[tuple[CapacityConflict, PoolDemand | None]]:
    """Open conflicts for the meeting view, each with its pool's demand if it names one."""
    pool_type = ContentType.objects.get_for_model(CapacityPool)
    conflicts = list(conflict_list(user=user).exclude(status=ConflictStatus.RESOLVED))
    pool_ids = {c.subject_id for c in conflicts if c.subject_type_id == pool_type.pk}
    demand = pool_demand(pool_list().filter(pk__in=pool_ids))
    return [
        (c, demand.get(c.subject_id) if c.subject_type_id == pool_type.pk else None)
        for c in conflicts
    ]
