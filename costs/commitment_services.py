"""Commitment recommendations per pool and offer, and turning one into a purchase request.

The size comes from the pool's GPU-hours forecast: the low quantile of each forecast day ÷ 24
is the GPUs the pool is almost sure to keep busy that day, and its mean over the forecast's
horizon (90 days by default) stands in for the whole commitment term — a proxy: no forecast
reaches one or three years ahead, so a recommendation is as good as the last quarter's
trend and should be recomputed (weekly, or with the button) before buying. The on-demand
rate is the pool hardware's current price per accelerator-hour. Arithmetic:
:mod:`costs.commitments`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from costs import commitments
from costs.models import (
    CommitmentOffer,
    CommitmentRecommendation,
    Forecast,
    ForecastPoint,
    Measure,
    RecommendationStatus,
    SubjectKind,
)
from costs.planning import plans_see_all, pool_gpu_hour_prices
from governance.choices import RequestKind
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.models import ApprovalRequest, User
from governance.money import money_format, money_round
from governance.selectors import TIMES, approval_filing_unit_list
from governance.services import approval_request_create, approval_request_submit
from registry.models import CapacityPool

HOURS_PER_DAY = Decimal(24)


def commitments_may_see(user: User | None) -> bool:
    """Finance, platform admins and the review board read and recompute commitments: the
    people who see every unit's capacity plan."""
    return plans_see_all(user)


def commitment_request_unit_ids(user: User) -> set[int]:
    """Units ``user`` may buy a commitment for: those they may file approval requests for
    (their own, or any as a platform admin); none without a commitment role."""
    if not commitments_may_see(user):
        return set()
    return set(approval_filing_unit_list(user=user).values_list("pk", flat=True))


def commitment_may_request(user: User, recommendation: CommitmentRecommendation) -> bool:
    """Whoever may file approval requests for the pool's owner unit (its people, or a platform
    admin), among those who see commitments."""
    owner_id = recommendation.pool.owner_id
    return owner_id is not None and owner_id in commitment_request_unit_ids(user)


def commitment_list(*, user: User | None) -> QuerySet[CommitmentRecommendation]:
    """Recommendations ``user`` may read (all of them for the commitment roles, else none),
    open ones first, then by pool and term."""
    rows = CommitmentRecommendation.objects.select_related(
        "pool", "pool__owner", "pool__hardware_profile", "offer", "approval_request"
    ).order_by("pool__name", "term_years", "kind", "-generated_at", "-pk")
    return rows if commitments_may_see(user) else rows.none()


def offer_list() -> QuerySet[CommitmentOffer]:
    return CommitmentOffer.objects.select_related("pool").order_by("pool__name", "term_years")


@dataclass(frozen=True)
class LowQuantile:
    gpus: Decimal
    days: int
    first: dt.date
    last: dt.date


def pool_low_quantile(pool: CapacityPool, *, today: dt.date) -> LowQuantile | None:
    """Mean over the pool's forecast horizon of the daily low quantile ÷ 24 (GPUs), or None
    when the pool has no GPU-hours forecast with a low quantile ahead."""
    forecast = Forecast.objects.filter(
        kind=SubjectKind.POOL, pool=pool, measure=Measure.GPU_HOURS
    ).first()
    if forecast is None:
        return None
    after = forecast.history_end or (today - dt.timedelta(days=1))
    points = ForecastPoint.objects.filter(
        forecast=forecast, day__gt=after, low_quantile__isnull=False
    )
    rows = list(points.order_by("day").values_list("day", "low_quantile"))
    if not rows:
        return None
    # Summed as Decimal here: an average in SQL may come back as a float on SQLite.
    mean = sum((value for _, value in rows), Decimal(0)) / len(rows)
    gpus = (mean / HOURS_PER_DAY).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return LowQuantile(max(gpus, Decimal(0)), len(rows), rows[0][0], rows[-1][0])


@dataclass
class RecommendationRun:
    made: list[CommitmentRecommendation] = field(default_factory=list)
    superseded: int = 0
    skipped: list[str] = field(default_factory=list)  # why a pool got no recommendation


def commitment_recommendations_compute(
    *, by: User | None = None, now: dt.datetime | None = None
) -> RecommendationRun:
    """Recommend a commitment for every pool and offer; new ones supersede the open ones.

    ``by`` None is the weekly beat task; a person needs to be finance, a platform admin or
    on the board. Requested and dismissed recommendations are left as they are.
    """
    if by is not None and not commitments_may_see(by):
        raise PermissionDeniedError(
            "Commitments are for finance, platform admins and the review board."
        )
    now = now or timezone.now()
    run = RecommendationRun()
    offers = list(offer_list().select_related("pool__hardware_profile"))
    by_pool: dict[int, list[CommitmentOffer]] = {}
    for offer in offers:
        by_pool.setdefault(offer.pool_id, []).append(offer)
    prices = pool_gpu_hour_prices([o[0].pool for o in by_pool.values()], at=now)
    for pool_offers in by_pool.values():
        pool = pool_offers[0].pool
        low = pool_low_quantile(pool, today=now.date())
        if low is None:
            run.skipped.append(f"{pool.name}: no GPU-hours forecast with a low quantile ahead.")
            continue
        price = prices.get(pool.pk)
        if price is None:
            run.skipped.append(
                f"{pool.name}: no hourly price for {pool.hardware_profile} at "
                f"{pool.get_provider_display()}."
            )
            continue
        with transaction.atomic():
            for offer in pool_offers:
                sized = commitments.commitment_size(
                    low_quantile_gpus=low.gpus,
                    on_demand_rate=price.amount,
                    discount_percent=offer.discount_percent,
                    term_years=offer.term_years,
                )
                run.superseded += CommitmentRecommendation.objects.filter(
                    pool=pool, offer=offer, status=RecommendationStatus.OPEN
                ).update(status=RecommendationStatus.SUPERSEDED)
                run.made.append(
                    CommitmentRecommendation.objects.create(
                        pool=pool,
                        offer=offer,
                        kind=offer.kind,
                        term_years=offer.term_years,
                        low_quantile_gpus=low.gpus,
                        commit_gpus=sized.commit_gpus,
                        hours_per_year=sized.hours_per_year,
                        on_demand_rate=price.amount.quantize(Decimal("0.000001"), ROUND_HALF_UP),
                        committed_rate=sized.committed_rate,
                        discount_percent=offer.discount_percent,
                        currency=price.currency,
                        annual_cost=sized.annual_cost,
                        annual_on_demand_cost=sized.annual_on_demand_cost,
                        annual_saving=sized.annual_saving,
                        break_even_percent=sized.break_even_percent,
                        risk=[
                            {
                                **row.as_dict(),
                                "basis": f"low quantile {low.gpus} GPUs over {low.days} "
                                f"forecast days ({low.first} to {low.last}); {price.source}",
                            }
                            for row in sized.risk
                        ],
                        generated_at=now,
                    )
                )
    return run


def _term_text(recommendation: CommitmentRecommendation) -> str:
    years = recommendation.term_years
    return f"{years} year{'s' if years > 1 else ''}"


def commitment_request(*, recommendation: CommitmentRecommendation, by: User) -> ApprovalRequest:
    """Turn an open recommendation into a reserved-capacity approval request for the pool's
    owner unit, submitted at once so its policy's approvers are e-mailed their links.

    The estimate is the whole term: annual cost x term years, for the committed GPUs over the
    term's hours. The recommendation becomes *requested* and links to the request.
    """
    if not commitments_may_see(by):
        raise PermissionDeniedError(
            "Commitments are requested by finance, platform admins and the review board."
        )
    with transaction.atomic():
        rec = (
            CommitmentRecommendation.objects.select_for_update(of=("self",))
            .select_related("pool__owner", "pool__hardware_profile", "offer")
            .get(pk=recommendation.pk)
        )
        if rec.status != RecommendationStatus.OPEN:
            raise ConflictError(
                f"This recommendation is {rec.get_status_display().lower()}; request the "
                "pool's open recommendation instead (recompute if there is none)."
            )
        if rec.commit_gpus < 1:
            raise DomainError(
                f"The recommendation commits no GPUs of {rec.pool.name} (its low quantile is "
                f"{rec.low_quantile_gpus}): there is nothing to buy."
            )
        unit = rec.pool.owner
        if unit is None:
            raise DomainError(
                f"{rec.pool.name} has no owner unit to buy the commitment; a platform admin "
                "sets the pool's owner first."
            )
        accelerator = rec.pool.hardware_profile.accelerator or str(rec.pool.hardware_profile)
        term_cost = money_round(rec.annual_cost * rec.term_years, rec.currency)
        description = (
            f"{rec.get_kind_display()} on {rec.pool.name}: {rec.commit_gpus} {TIMES} "
            f"{accelerator} for {_term_text(rec)} at {rec.discount_percent.normalize():f} % off "
            f"on-demand ({rec.committed_rate.normalize():f} instead of "
            f"{rec.on_demand_rate.normalize():f} {rec.currency} per GPU-hour). A year: "
            f"{money_format(rec.annual_cost, rec.currency)}, saving "
            f"{money_format(rec.annual_saving, rec.currency)} against on-demand; break-even at "
            f"{rec.break_even_percent} % utilisation. Sized from the pool forecast's low "
            f"quantile ({rec.low_quantile_gpus} GPUs)."
        )
        request = approval_request_create(
            by=by,
            kind=RequestKind.RESERVED_CAPACITY,
            title=f"Commit {rec.commit_gpus} {TIMES} {accelerator} on {rec.pool.name} for "
            f"{_term_text(rec)}",
            business_unit=unit,
            estimated_cost=term_cost,
            currency=rec.currency,
            description=description,
            accelerator=accelerator,
            accelerator_count=rec.commit_gpus,
            duration_hours=Decimal(rec.hours_per_year * rec.term_years),
            subject=rec,
        )
        request = approval_request_submit(request=request, by=by)
        rec.status = RecommendationStatus.REQUESTED
        rec.approval_request = request
        rec.save(update_fields=["status", "approval_request"])
    return request


def commitment_dismiss(*, recommendation: CommitmentRecommendation, by: User) -> None:
    """Set an open recommendation aside (the next computation makes a fresh one)."""
    if not commitments_may_see(by):
        raise PermissionDeniedError(
            "Commitments are for finance, platform admins and the review board."
        )
    updated = CommitmentRecommendation.objects.filter(
        pk=recommendation.pk, status=RecommendationStatus.OPEN
    ).update(status=RecommendationStatus.DISMISSED)
    if not updated:
        raise ConflictError("Only an open recommendation can be dismissed.")
