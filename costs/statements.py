"""A month's chargeback statements in one currency, from plain numbers. Pure: no Django.

The order of the computation is the order of a statement:

1. **Direct cost.** Each unit's exact cost (and Unallocated's) is rounded to the minor unit
   over the whole organisation by largest remainder, so the units plus Unallocated equal the
   month's rounded total; each unit's total is then split over its services the same way.
2. **Shared pools.** A pool's rounded total — a holding unit's direct cost, or Unallocated —
   is split over its recipients (proportional to their direct cost, evenly, or by fixed
   percentages), again by largest remainder, ties to the unit code first in order. The holder
   gets the same amount back as a *shared out* line.
3. **Transfers.** SLA penalties (a credit to the consumer, the same debit to the provider) and
   overage surcharges (a debit to the over-user, the same credit to the pool owner) are
   computed from rounded figures and rounded once, so each pair nets to exactly zero.
4. **Adjustments** carried in from closed months.

So for every currency: Σ statements + Unallocated = month total + adjustments, to the cent.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from costs.penalties import Band, credit
from governance.money import money_distribute, money_format, money_round

ZERO = Decimal(0)
HUNDRED = Decimal(100)

# The order lines take on a statement, and what each kind is called.
KIND_LABELS = {
    "direct": "Direct cost",
    "credit": "Credits and refunds",
    "shared_out": "Shared out",
    "shared": "Shared-cost share",
    "penalty": "SLA penalty",
    "surcharge": "Overage surcharge",
    "adjustment": "Adjustment",
}
KIND_ORDER = tuple(KIND_LABELS)


class ChargebackError(ValueError):
    """The policy cannot be applied as configured; the message says what to change."""


_METHOD_LABELS = {
    "proportional": "proportional to direct cost",
    "even": "evenly",
    "fixed": "fixed percentages",
}

# --- What comes in --------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    id: int
    code: str
    name: str


@dataclass(frozen=True)
class DirectCost:
    """Exact cost of one unit (None: Unallocated) for one service, summed from cost rows."""

    unit_id: int | None
    service: str
    amount: Decimal
    credit: bool = False  # credits, refunds and corrections (FOCUS Credit / Adjustment)
    rules: tuple[str, ...] = ()  # how the rows came to the unit, e.g. "team in [research]"
    rows: int = 0


@dataclass(frozen=True)
class Pool:
    name: str
    source_unit_id: int | None  # None: Unallocated is spread
    method: str  # proportional, even, fixed
    recipient_ids: tuple[int, ...] = ()  # empty: every unit with direct cost
    shares: Mapping[int, Decimal] = field(default_factory=dict)  # fixed: unit -> percent

    @property
    def method_label(self) -> str:
        return _METHOD_LABELS.get(self.method, self.method)


@dataclass(frozen=True)
class Penalty:
    """An SLO missed in a band: ``band`` of the consumer's ``charge`` moves to them."""

    slo: str
    consumer_id: int
    provider_id: int
    charge: Decimal  # rounded, the consumer's cost of the service
    charge_label: str
    target: Decimal
    indicator: str
    attainment: str  # described, e.g. "99.500 % (requests, 30 days)"
    band: Band


@dataclass(frozen=True)
class Surcharge:
    consumer_id: int
    owner_id: int
    pool: str
    reserved: Decimal
    used: Decimal
    unit_price: Decimal
    multiplier: Decimal


@dataclass(frozen=True)
class Adjustment:
    """The change to a closed month's figure for a unit (None: Unallocated), carried in."""

    unit_id: int | None
    month: dt.date
    was: Decimal
    now: Decimal

    @property
    def amount(self) -> Decimal:
        return self.now - self.was


# --- What goes out --------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    kind: str
    label: str
    amount: Decimal
    explanation: str
    detail: Mapping[str, object] = field(default_factory=dict)

    @property
    def kind_label(self) -> str:
        return KIND_LABELS[self.kind]

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "label": self.label,
            "amount": str(self.amount),
            "explanation": self.explanation,
            "detail": dict(self.detail),
        }


@dataclass
class UnitStatement:
    unit: Unit
    currency: str
    lines: list[Line] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)

    def subtotal(self, *kinds: str) -> Decimal:
        return sum((line.amount for line in self.lines if line.kind in kinds), ZERO)

    @property
    def adjustments(self) -> Decimal:
        return self.subtotal("adjustment")

    @property
    def columns(self) -> dict[str, Decimal]:
        """The statement in the summary's columns: direct, credits, shared, penalties,
        surcharges and adjustments (a shared-out line counts under shared)."""
        return {
            "direct": self.subtotal("direct"),
            "credits": self.subtotal("credit"),
            "shared": self.subtotal("shared", "shared_out"),
            "penalties": self.subtotal("penalty"),
            "surcharges": self.subtotal("surcharge"),
            "adjustments": self.subtotal("adjustment"),
        }

    def as_dict(self) -> dict:
        return {
            "business_unit": self.unit.code,
            "business_unit_name": self.unit.name,
            "currency": self.currency,
            "total": str(self.total),
            "lines": [line.as_dict() for line in self.lines],
        }


@dataclass
class CurrencyStatements:
    """Every unit's statement in one currency, with what reconciles them to the bill."""

    currency: str
    month_total: Decimal  # the month's cost on the basis, rounded
    unallocated: Decimal  # what stays Unallocated after pools spread it
    unallocated_adjustment: Decimal
    statements: list[UnitStatement]

    @property
    def statements_total(self) -> Decimal:
        return sum((s.total for s in self.statements), ZERO)

    @property
    def adjustments(self) -> Decimal:
        return sum((s.adjustments for s in self.statements), self.unallocated_adjustment)

    @property
    def unallocated_total(self) -> Decimal:
        return self.unallocated + self.unallocated_adjustment

    @property
    def unallocated_percent(self) -> Decimal:
        if not self.month_total:
            return ZERO
        return (self.unallocated_total / self.month_total * HUNDRED).quantize(Decimal("0.1"))

    @property
    def grand_total(self) -> Decimal:
        """Σ statements + Unallocated."""
        return self.statements_total + self.unallocated_total

    @property
    def difference(self) -> Decimal:
        """Σ statements + Unallocated - (month total + adjustments); zero when it reconciles."""
        return (
            self.statements_total
            + self.unallocated
            + self.unallocated_adjustment
            - self.month_total
            - self.adjustments
        )

    @property
    def reconciles(self) -> bool:
        return self.difference == ZERO


# --- The computation ------------------------------------------------------------------------


def statements_build(
    *,
    currency: str,
    units: Mapping[int, Unit],
    direct: Sequence[DirectCost],
    pools: Sequence[Pool] = (),
    penalties: Sequence[Penalty] = (),
    surcharges: Sequence[Surcharge] = (),
    adjustments: Sequence[Adjustment] = (),
    basis: str = "billed",
) -> CurrencyStatements:
    """Every unit's statement for the month in ``currency``; see the module docstring."""
    book = _Book(currency, units)

    exact: dict[int | None, Decimal] = defaultdict(lambda: ZERO)
    for cost in direct:
        exact[cost.unit_id] += cost.amount
    order = sorted(exact, key=lambda uid: (uid is None, units[uid].code if uid else ""))
    unit_totals = money_distribute({uid: exact[uid] for uid in order}, currency)
    month_total = sum(unit_totals.values(), ZERO)

    for uid in order:
        if uid is not None:
            book.direct(uid, [c for c in direct if c.unit_id == uid], unit_totals[uid], basis)

    unallocated = unit_totals.get(None, ZERO)
    holders = {pool.source_unit_id for pool in pools}
    for pool in pools:
        amount = (
            unallocated if pool.source_unit_id is None else unit_totals.get(pool.source_unit_id)
        )
        if not amount:
            continue
        book.share(pool, amount, unit_totals, holders)
        if pool.source_unit_id is None:
            unallocated -= amount

    for penalty in penalties:
        book.penalty(penalty)
    for surcharge in surcharges:
        book.surcharge(surcharge)

    unallocated_adjustment = ZERO
    for adjustment in adjustments:
        amount = money_round(adjustment.amount, currency)
        if not amount:
            continue
        if adjustment.unit_id is None:
            unallocated_adjustment += amount
        else:
            book.adjust(adjustment, amount)

    return CurrencyStatements(
        currency=currency,
        month_total=month_total,
        unallocated=unallocated,
        unallocated_adjustment=unallocated_adjustment,
        statements=book.statements(),
    )


def split(
    amount: Decimal,
    weights: Mapping[int, Decimal],
    currency: str,
    *,
    order: Sequence[int],
) -> dict[int, Decimal]:
    """``amount`` split in proportion to ``weights``, in cents that add up exactly.

    Ties in the rounding go to the units first in ``order`` (the caller passes them by code).
    """
    total_weight = sum(weights.values(), ZERO)
    if not total_weight:
        raise ChargebackError("Nothing to split by: every weight is zero.")
    parts = {uid: amount * weights[uid] / total_weight for uid in order}
    return money_distribute(parts, currency, total=amount)


class _Book:
    """The statements being written, one per unit that gets a line."""

    def __init__(self, currency: str, units: Mapping[int, Unit]) -> None:
        self.currency = currency
        self.units = units
        self._statements: dict[int, UnitStatement] = {}

    def _money(self, amount: Decimal) -> str:
        return money_format(amount, self.currency)

    def add(self, unit_id: int, line: Line) -> None:
        if unit_id not in self.units:
            raise ChargebackError(f"Business unit #{unit_id} is not known.")
        statement = self._statements.setdefault(
            unit_id, UnitStatement(unit=self.units[unit_id], currency=self.currency)
        )
        statement.lines.append(line)

    def statements(self) -> list[UnitStatement]:
        out = sorted(self._statements.values(), key=lambda s: s.unit.code)
        for statement in out:
            statement.lines.sort(key=lambda line: KIND_ORDER.index(line.kind))
        return out

    def direct(self, unit_id: int, costs: list[DirectCost], total: Decimal, basis: str) -> None:
        parts: dict[tuple[bool, str], Decimal] = defaultdict(lambda: ZERO)
        rules: dict[tuple[bool, str], set[str]] = defaultdict(set)
        rows: dict[tuple[bool, str], int] = defaultdict(int)
        for cost in costs:
            key = (cost.credit, cost.service or "(no service)")
            parts[key] += cost.amount
            rules[key].update(cost.rules)
            rows[key] += cost.rows
        ordered = dict(sorted(parts.items(), key=lambda kv: (kv[0][0], -abs(kv[1]), kv[0][1])))
        for (is_credit, service), amount in money_distribute(
            ordered, self.currency, total=total
        ).items():
            if not amount and not parts[(is_credit, service)]:
                continue
            how = "; ".join(sorted(rules[(is_credit, service)])) or "allocation rules"
            if is_credit:
                label = f"Credits and refunds · {service}"
                text = (
                    f"{basis.capitalize()} credits, refunds and corrections on {service} "
                    f"({_rows(rows[(is_credit, service)])}), to the unit whose charges "
                    f"they correct: {how}."
                )
            else:
                label = service
                text = (
                    f"{basis.capitalize()} cost of {_rows(rows[(is_credit, service)])} "
                    f"allocated to this unit: {how}."
                )
            self.add(
                unit_id,
                Line(
                    kind="credit" if is_credit else "direct",
                    label=label,
                    amount=amount,
                    explanation=text,
                    detail={
                        "basis": basis,
                        "service": service,
                        "rules": sorted(rules[(is_credit, service)]),
                        "rows": rows[(is_credit, service)],
                    },
                ),
            )

    def share(
        self,
        pool: Pool,
        amount: Decimal,
        unit_totals: Mapping[int | None, Decimal],
        holders: set[int | None],
    ) -> None:
        def code(uid: int) -> str:
            return self.units[uid].code

        if pool.method == "fixed":
            total = sum(pool.shares.values(), ZERO)
            if total != HUNDRED:
                raise ChargebackError(
                    f"The fixed shares of pool {pool.name!r} add up to {total} %, not 100 %; "
                    "correct them in the allocation policy."
                )
            recipients = sorted(pool.shares, key=code)
            clash = holders & set(recipients)
            if clash:
                raise ChargebackError(
                    f"Pool {pool.name!r} gives a fixed share to a unit that holds a shared pool "
                    f"({', '.join(sorted(code(uid) for uid in clash if uid))}); a pool's holder "
                    "cannot receive a share."
                )
            weights = {uid: pool.shares[uid] for uid in recipients}
            how = {uid: f"fixed share {pool.shares[uid].normalize():f} %" for uid in recipients}
        else:
            if pool.recipient_ids:
                recipients = sorted(pool.recipient_ids, key=code)
            else:
                recipients = sorted(
                    (
                        uid
                        for uid, total in unit_totals.items()
                        if uid is not None and uid not in holders and total
                    ),
                    key=code,
                )
            if not recipients:
                raise ChargebackError(
                    f"Pool {pool.name!r} has nobody to share {self._money(amount)} with: no "
                    "other unit has direct cost this month. Name its recipients in the policy."
                )
            clash = holders & set(recipients)
            if clash:
                raise ChargebackError(
                    f"Pool {pool.name!r} lists a unit that holds a shared pool itself "
                    f"({', '.join(sorted(code(uid) for uid in clash if uid))}); a pool's "
                    "holder cannot receive a share."
                )
            direct = {uid: max(unit_totals.get(uid, ZERO), ZERO) for uid in recipients}
            base = sum(direct.values(), ZERO)
            if pool.method == "proportional" and base:
                weights = direct
                how = {
                    uid: f"proportional: {self._money(direct[uid])} of {self._money(base)} "
                    f"direct cost after credits = {_percent(direct[uid], base)} %"
                    for uid in recipients
                }
            else:
                weights = dict.fromkeys(recipients, Decimal(1))
                note = "" if pool.method == "even" else " (no recipient has direct cost)"
                how = {uid: f"even: 1 of {len(recipients)} units{note}" for uid in recipients}
        shares = split(amount, weights, self.currency, order=recipients)
        source = "Unallocated" if pool.source_unit_id is None else code(pool.source_unit_id)
        for uid in recipients:
            self.add(
                uid,
                Line(
                    kind="shared",
                    label=f"Share of {pool.name}",
                    amount=shares[uid],
                    explanation=(
                        f"{pool.name} ({source}, {self._money(amount)} this month), {how[uid]}."
                    ),
                    detail={
                        "pool": pool.name,
                        "method": pool.method,
                        "pool_total": str(amount),
                        "share_percent": _percent(shares[uid], amount),
                        "rule": how[uid],
                    },
                ),
            )
        if pool.source_unit_id is not None:
            self.add(
                pool.source_unit_id,
                Line(
                    kind="shared_out",
                    label=f"{pool.name} shared out",
                    amount=-amount,
                    explanation=(
                        f"This unit's {self._money(amount)} is shared across "
                        f"{len(recipients)} units ({pool.method_label})."
                    ),
                    detail={
                        "pool": pool.name,
                        "method": pool.method,
                        "recipients": len(recipients),
                    },
                ),
            )

    def penalty(self, penalty: Penalty) -> None:
        amount = credit(charge=penalty.charge, band=penalty.band, currency=self.currency)
        if not amount or penalty.consumer_id == penalty.provider_id:
            return
        detail = {
            "slo": penalty.slo,
            "indicator": penalty.indicator,
            "target": str(penalty.target),
            "attainment": penalty.attainment,
            "band": penalty.band.describe(),
            "credit_percent": str(penalty.band.credit_percent),
            "charge": str(penalty.charge),
        }
        how = (
            f"SLO {penalty.slo}: target {penalty.target.normalize():f}"
            f"{' ms' if penalty.indicator == 'latency_p95' else ' %'}, attained "
            f"{penalty.attainment}; band {penalty.band.describe()} of "
            f"{self._money(penalty.charge)} charged for {penalty.charge_label}"
        )
        consumer = self.units[penalty.consumer_id].code
        provider = self.units[penalty.provider_id].code
        self.add(
            penalty.consumer_id,
            Line(
                "penalty",
                f"SLA credit · {penalty.slo}",
                -amount,
                f"{how}; paid by {provider}.",
                detail,
            ),
        )
        self.add(
            penalty.provider_id,
            Line(
                "penalty",
                f"SLA penalty · {penalty.slo}",
                amount,
                f"{how}; paid to {consumer}.",
                detail,
            ),
        )

    def surcharge(self, surcharge: Surcharge) -> None:
        over = surcharge.used - surcharge.reserved
        if over <= 0 or surcharge.consumer_id == surcharge.owner_id:
            return
        amount = money_round(
            over * surcharge.unit_price * (surcharge.multiplier - 1), self.currency
        )
        if not amount:
            return
        how = (
            f"{_hours(surcharge.used)} GPU-h used on {surcharge.pool}, "
            f"{_hours(surcharge.reserved)} reserved: {_hours(over)} GPU-h over "
            f"x {self._money(surcharge.unit_price)} per GPU-h "
            f"x ({surcharge.multiplier.normalize():f} - 1)"
        )
        detail = {
            "pool": surcharge.pool,
            "reserved_gpu_hours": str(surcharge.reserved),
            "used_gpu_hours": str(surcharge.used),
            "over_gpu_hours": str(over),
            "unit_price": str(surcharge.unit_price),
            "multiplier": str(surcharge.multiplier),
        }
        owner = self.units[surcharge.owner_id].code
        consumer = self.units[surcharge.consumer_id].code
        self.add(
            surcharge.consumer_id,
            Line(
                "surcharge",
                f"Overage surcharge · {surcharge.pool}",
                amount,
                f"{how}; paid to {owner}.",
                detail,
            ),
        )
        self.add(
            surcharge.owner_id,
            Line(
                "surcharge",
                f"Overage surcharge received · {surcharge.pool}",
                -amount,
                f"{how}; paid by {consumer}.",
                detail,
            ),
        )

    def adjust(self, adjustment: Adjustment, amount: Decimal) -> None:
        self.add(
            adjustment.unit_id,  # type: ignore[arg-type]
            Line(
                "adjustment",
                f"Adjustment for {adjustment.month:%B %Y}",
                amount,
                (
                    f"{adjustment.month:%B %Y} is closed; its charge for this unit was "
                    f"{self._money(adjustment.was)} and is now {self._money(adjustment.now)} "
                    "after late billing data or corrections."
                ),
                {
                    "month": f"{adjustment.month:%Y-%m}",
                    "was": str(adjustment.was),
                    "now": str(adjustment.now),
                },
            ),
        )


def _percent(part: Decimal, whole: Decimal) -> str:
    return f"{(part / whole * HUNDRED).quantize(Decimal('0.01')):f}" if whole else "0"


def _hours(value: Decimal) -> str:
    return f"{value.normalize():,f}"


def _rows(count: int) -> str:
    return f"{count:,} cost row{'' if count == 1 else 's'}"
