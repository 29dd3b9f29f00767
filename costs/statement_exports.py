"""A month's chargeback statements as finance files: CSV, XLSX and a FOCUS-shaped CSV.

Every file is written from a :class:`~costs.chargeback.StatementSet` as the person may see it,
so scoping is decided once, in ``statements_get``. A set that is not complete (a business-unit
member's) carries only their own statements: no Unallocated, no month totals, no other
unit's cost rows.

The amounts of each file add up the way the statements do: a unit's rows sum to its statement
total, to the minor unit; for finance, Unallocated is added so the whole file sums to the
month's total plus adjustments.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, F, Sum
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from costs.chargeback import CREDIT_CATEGORIES, StatementSet, month_next
from costs.exports import _cell
from costs.models import CostRow
from costs.selectors import UNALLOCATED, basis_field
from costs.statements import CurrencyStatements, Line, UnitStatement
from governance.money import minor_unit, money_distribute

ZERO = Decimal(0)
NO_SERVICE = "(no service)"  # how the statement engine names a line of rows without a service
# How ``chargeback._credits_placed`` writes a credit moved from Unallocated to a resource's users.
FOLLOWS_USAGE = "follows the usage of "


def _money(amount: Decimal, currency: str) -> Decimal:
    """A statement amount at the currency's minor unit (stored lines keep four places)."""
    return Decimal(amount).quantize(minor_unit(currency))


def _places(currency: str) -> int:
    return -minor_unit(currency).as_tuple().exponent


def _exact(value: Decimal | None) -> str:
    """A source amount as written, without the database's trailing zeros."""
    return f"{(value or ZERO).normalize():f}"


def _month(result: StatementSet) -> str:
    return f"{result.month:%Y-%m}"


def _unallocated_total(cur: CurrencyStatements) -> Decimal:
    return cur.unallocated + cur.unallocated_adjustment


def _unallocated_explanation(cur: CurrencyStatements) -> str:
    text = "Cost no allocation rule attributes to a business unit, after shared pools."
    if cur.unallocated_adjustment:
        text += (
            f" Includes {_money(cur.unallocated_adjustment, cur.currency)} {cur.currency} of "
            "adjustments carried in from closed months."
        )
    return text


# --- CSV ---------------------------------------------------------------------------------------

CSV_HEADER = [
    "month",
    "status",
    "basis",
    "currency",
    "business_unit",
    "business_unit_name",
    "kind",
    "label",
    "amount",
    "explanation",
]


def statements_csv(result: StatementSet) -> bytes:
    """One row per statement line; for finance also one Unallocated row per currency.

    A unit's rows sum to its statement total; a complete file sums, per currency, to the
    month's total plus adjustments.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADER)
    head = [_month(result), result.status, result.basis]
    for currency, cur in result.currencies.items():
        for statement in cur.statements:
            for line in statement.lines:
                writer.writerow(
                    [
                        *head,
                        currency,
                        _cell(statement.unit.code),
                        _cell(statement.unit.name),
                        line.kind,
                        _cell(line.label),
                        str(_money(line.amount, currency)),
                        _cell(line.explanation),
                    ]
                )
        if result.complete:
            writer.writerow(
                [
                    *head,
                    currency,
                    UNALLOCATED,
                    "Unallocated",
                    "unallocated",
                    "Unallocated",
                    str(_money(_unallocated_total(cur), currency)),
                    _unallocated_explanation(cur),
                ]
            )
    return buffer.getvalue().encode()


# --- XLSX --------------------------------------------------------------------------------------

SUMMARY_HEADER = [
    "month",
    "status",
    "basis",
    "currency",
    "business_unit",
    "business_unit_name",
    "direct",
    "credits",
    "shared",
    "penalties",
    "surcharges",
    "adjustments",
    "total",
    "reconciles",
]
SUMMARY_COLUMNS = (  # money columns of the summary and the line kinds each adds up
    ("direct",),
    ("credit",),
    ("shared", "shared_out"),
    ("penalty",),
    ("surcharge",),
    ("adjustment",),
)
UNIT_HEADER = ["currency", "kind", "label", "amount", "explanation"]
_SHEET_FORBIDDEN = str.maketrans(dict.fromkeys("[]:*?/\\", "_"))
_SHEET_MAX = 31
_WIDTH_MIN, _WIDTH_MAX = 8, 80


def _number_format(currency: str) -> str:
    places = _places(currency)
    return "#,##0." + "0" * places if places else "#,##0"


def sheet_title(code: str, taken: set[str]) -> str:
    """``code`` as a worksheet name Excel accepts and no other sheet has (case-insensitively).

    Excel allows 31 characters, none of ``[]:*?/\\``, no apostrophe at either end, and
    reserves "History".
    """
    base = code.translate(_SHEET_FORBIDDEN).strip("'").strip() or "Unit"
    title = base[:_SHEET_MAX]
    number = 1
    while title.lower() in taken or title.lower() == "history":
        number += 1
        suffix = f"~{number}"
        title = base[: _SHEET_MAX - len(suffix)] + suffix
    taken.add(title.lower())
    return title


def _header(sheet: Worksheet, names: list[str]) -> None:
    sheet.append(names)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"


def _widths(sheet: Worksheet, wrap: Iterable[str] = ()) -> None:
    """Columns as wide as their longest value (within bounds); long text wraps instead."""
    wrapped = set(wrap)
    for index, column in enumerate(sheet.iter_cols(), start=1):
        longest = max(
            (len(str(cell.value)) for cell in column if cell.value is not None), default=0
        )
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = max(_WIDTH_MIN, min(longest + 2, _WIDTH_MAX))
        if column[0].value in wrapped:
            for cell in column[1:]:
                cell.alignment = Alignment(wrap_text=True, vertical="top")


def _money_row(sheet: Worksheet, columns: range, currency: str, *, bold: bool = False) -> None:
    """Format the money cells of the row just appended, and embolden it if asked."""
    row = sheet.max_row
    for column in columns:
        sheet.cell(row, column).number_format = _number_format(currency)
    if bold:
        for cell in sheet[row]:
            cell.font = Font(bold=True)


def statements_xlsx(result: StatementSet) -> bytes:
    """A Summary sheet (per unit and currency; for finance Unallocated, the total and whether
    it reconciles) and one sheet per business unit with its lines."""
    book = Workbook()
    book.properties.title = f"Chargeback statements {_month(result)} ({result.status})"
    summary = book.active
    summary.title = "Summary"
    _header(summary, SUMMARY_HEADER)
    head = [_month(result), result.status, result.basis]
    money_columns = range(7, 7 + len(SUMMARY_COLUMNS) + 1)
    units: dict[int, list[UnitStatement]] = {}
    for currency, cur in result.currencies.items():
        sums = [ZERO] * (len(SUMMARY_COLUMNS) + 1)
        for statement in cur.statements:
            units.setdefault(statement.unit.id, []).append(statement)
            amounts = [
                *(_money(statement.subtotal(*kinds), currency) for kinds in SUMMARY_COLUMNS),
                _money(statement.total, currency),
            ]
            sums = [a + b for a, b in zip(sums, amounts, strict=True)]
            summary.append(
                [
                    *head,
                    currency,
                    _cell(statement.unit.code),
                    _cell(statement.unit.name),
                    *amounts,
                ]
            )
            _money_row(summary, money_columns, currency)
        if not result.complete:
            continue
        # Unallocated's own cost is what the units' direct and credit lines leave of the month;
        # what pools spread of it shows as a negative share, so the shared column nets to zero.
        own = cur.month_total - sum((s.subtotal("direct", "credit") for s in cur.statements), ZERO)
        unallocated = [
            _money(own, currency),
            ZERO,
            _money(cur.unallocated - own, currency),
            ZERO,
            ZERO,
            _money(cur.unallocated_adjustment, currency),
            _money(_unallocated_total(cur), currency),
        ]
        summary.append([*head, currency, UNALLOCATED, "Unallocated", *unallocated])
        _money_row(summary, money_columns, currency)
        sums = [a + b for a, b in zip(sums, unallocated, strict=True)]
        summary.append(
            [
                *head,
                currency,
                "TOTAL",
                "Month total and adjustments",
                *sums[:-1],
                _money(cur.month_total + cur.adjustments, currency),
                "yes" if cur.reconciles else "no",
            ]
        )
        _money_row(summary, money_columns, currency, bold=True)
    _widths(summary)

    taken = {"summary"}
    for statements in units.values():
        unit = statements[0].unit
        sheet = book.create_sheet(sheet_title(unit.code, taken))
        _header(sheet, UNIT_HEADER)
        for statement in statements:
            currency = statement.currency
            for line in statement.lines:
                sheet.append(
                    [
                        currency,
                        line.kind,
                        _cell(line.label),
                        _money(line.amount, currency),
                        _cell(line.explanation),
                    ]
                )
                _money_row(sheet, range(4, 5), currency)
            sheet.append(
                [
                    currency,
                    "total",
                    _cell(f"Total · {unit.name}"),
                    _money(statement.total, currency),
                ]
            )
            _money_row(sheet, range(4, 5), currency, bold=True)
        _widths(sheet, wrap=["explanation"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# --- FOCUS -------------------------------------------------------------------------------------

FOCUS_HEADER = [
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "BillingCurrency",
    "ProviderName",
    "BillingAccountId",
    "SubAccountId",
    "ServiceName",
    "ChargeCategory",
    "ChargeDescription",
    "ResourceId",
    "RegionId",
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "x_CapgovBusinessUnit",
    "x_CapgovLineKind",
    "x_CapgovLine",
    "x_CapgovAllocationRule",
    "x_CapgovAllocatedCost",
    "x_CapgovStatementStatus",
]
# The cost rows behind a line are summed per these columns, in this order.
GROUP_FIELDS = (
    "provider",
    "billing_account_id",
    "sub_account_id",
    "service_name",
    "charge_category",
    "resource_id",
    "region",
)
REST = "rest"  # the part of a line its unit's own cost rows do not carry


@dataclass
class _Context:
    result: StatementSet
    currency: str
    amount_field: str
    start: str
    end: str

    def row(
        self,
        *,
        unit: str,
        line_kind: str,
        line: str,
        rule: str,
        allocated: Decimal,
        group: Mapping[str, object] | None = None,
        description: str = "",
        category: str = "Adjustment",
    ) -> list[object]:
        source = group or {}

        def text(name: str) -> object:
            return _cell(source.get(name, ""))

        costs = (
            [_exact(source[f]) for f in ("billed", "effective", "list")] if group else ["", "", ""]
        )
        return [
            self.start,
            self.end,
            self.currency,
            text("provider"),
            text("billing_account_id"),
            text("sub_account_id"),
            text("service_name"),
            text("charge_category") if group else category,
            _cell(description),
            text("resource_id"),
            text("region"),
            *costs,
            _cell(unit),
            line_kind,
            _cell(line),
            _cell(rule),
            str(_money(allocated, self.currency)),
            self.result.status,
        ]


def _groups(month: dt.date, currency: str, **unit_filter: object) -> list[dict]:
    """The month's cost rows in ``currency`` summed per source column: one query."""
    return list(
        CostRow.objects.filter(billing_period=month, currency=currency, **unit_filter)
        .values(*GROUP_FIELDS)
        .annotate(
            billed=Sum("billed_cost"),
            effective=Sum("effective_cost"),
            list=Sum("list_cost"),
            rows=Count("pk"),
        )
        .order_by(*GROUP_FIELDS)
    )


def _is_credit(group: Mapping[str, object]) -> bool:
    return group["charge_category"] in CREDIT_CATEGORIES


def _service(group: Mapping[str, object]) -> str:
    return str(group["service_name"] or NO_SERVICE)


def _allocate(
    weights: Mapping[object, Decimal], total: Decimal, currency: str, *, rest: bool = False
) -> dict[object, Decimal]:
    """``total`` over the keys in proportion to ``weights``, in minor units that add up.

    With ``rest`` (or when the weights give no proportion) what the weights do not carry goes
    to :data:`REST`; otherwise the weights are scaled to ``total`` first, so a stored line
    whose cost rows changed since is still split in proportion.
    """
    weight = sum(weights.values(), ZERO)
    if rest or (not weight and total):
        parts = {**weights, REST: total - weight}
    elif weight and weight != total:
        parts = {key: value * total / weight for key, value in weights.items()}
    else:
        parts = dict(weights)
    return money_distribute(parts, currency, total=total)


def _rule(line: Line) -> str:
    """How a line was computed, in a few words: the rule, share, band or formula."""
    detail = line.detail
    if line.kind in ("direct", "credit"):
        return "; ".join(str(r) for r in detail.get("rules", [])) or "allocation rules"
    if line.kind == "shared":
        return f"{detail.get('pool', '')}: {detail.get('rule', '')}"
    if line.kind == "shared_out":
        return f"{detail.get('pool', '')}: shared out ({detail.get('method', '')})"
    if line.kind == "penalty":
        return f"SLO {detail.get('slo', '')}: band {detail.get('band', '')}"
    if line.kind == "adjustment":
        return (
            f"{detail.get('month', '')} closed: was {detail.get('was', '')}, "
            f"now {detail.get('now', '')}"
        )
    return line.explanation.split("; ")[0]  # surcharges: the formula before who is paid


def _placed_resources(rules: Iterable[object]) -> list[str]:
    return [r[len(FOLLOWS_USAGE) :] for r in map(str, rules) if r.startswith(FOLLOWS_USAGE)]


def _unit_rows(ctx: _Context, statement: UnitStatement, groups: list[dict]) -> Iterator[list]:
    """A unit's statement lines, each direct or credit line over the cost rows behind it."""
    code = statement.unit.code
    by_line: dict[tuple[bool, str], list[dict]] = defaultdict(list)
    for group in groups:
        by_line[(_is_credit(group), _service(group))].append(group)
    for line in statement.lines:
        if line.kind not in ("direct", "credit"):
            yield ctx.row(
                unit=code,
                line_kind=line.kind,
                line=line.label,
                rule=_rule(line),
                allocated=line.amount,
                description=line.explanation,
            )
            continue
        service = str(line.detail.get("service", NO_SERVICE))
        behind = by_line.pop((line.kind == "credit", service), [])
        placed = _placed_resources(line.detail.get("rules", []))
        shares = _allocate(
            {i: group[ctx.amount_field] or ZERO for i, group in enumerate(behind)},
            _money(line.amount, ctx.currency),
            ctx.currency,
            rest=bool(placed) or not behind,
        )
        rule = _rule(line)
        for i, group in enumerate(behind):
            yield ctx.row(
                unit=code,
                line_kind=line.kind,
                line=line.label,
                rule=rule,
                allocated=shares[i],
                group=group,
            )
        if shares.get(REST) or not behind:
            yield ctx.row(
                unit=code,
                line_kind=line.kind,
                line=line.label,
                rule=rule,
                allocated=shares[REST],
                category="Credit" if line.kind == "credit" else "Adjustment",
                description=(
                    f"Credits moved from Unallocated to this unit: {', '.join(placed)}."
                    if placed
                    else line.explanation
                ),
            )
    # Cost rows that net to nothing on the basis get no line; they still belong in the file.
    for (is_credit, service), rest in by_line.items():
        yield from _zero_rows(ctx, code, is_credit, service, rest)


def _zero_rows(
    ctx: _Context, code: str, is_credit: bool, service: str, groups: list[dict]
) -> Iterator[list]:
    for group in groups:
        yield ctx.row(
            unit=code,
            line_kind="credit" if is_credit else "direct",
            line=f"Credits and refunds · {service}" if is_credit else service,
            rule="nets to zero on the basis: no statement line",
            allocated=ZERO,
            group=group,
        )


def _unallocated_rows(ctx: _Context, cur: CurrencyStatements) -> Iterator[list]:
    """Untagged cost rows under UNALLOCATED, over what stays Unallocated after pools.

    Credits that followed their resource's usage onto units' statements carry no weight here:
    their amount is on those units' rows.
    """
    placed = {
        resource
        for statement in cur.statements
        for line in statement.lines
        if line.kind == "credit"
        for resource in _placed_resources(line.detail.get("rules", []))
    }
    groups = _groups(ctx.result.month, ctx.currency, tag_set__business_unit__isnull=True)

    def moved(group: Mapping[str, object]) -> bool:
        return _is_credit(group) and bool(group["resource_id"]) and group["resource_id"] in placed

    shares = _allocate(
        {
            i: (ZERO if moved(group) else group[ctx.amount_field] or ZERO)
            for i, group in enumerate(groups)
        },
        _money(cur.unallocated, ctx.currency),
        ctx.currency,
        rest=not groups and bool(cur.unallocated),
    )
    for i, group in enumerate(groups):
        if moved(group):
            rule = f"{FOLLOWS_USAGE}{group['resource_id']}: on the units' statements"
        elif not cur.unallocated:
            rule = "no allocation rule matched; spread by a shared pool"
        else:
            rule = "no allocation rule matched"
        yield ctx.row(
            unit=UNALLOCATED,
            line_kind="unallocated",
            line=f"Unallocated · {_service(group)}",
            rule=rule,
            allocated=shares[i],
            group=group,
        )
    if REST in shares:
        yield ctx.row(
            unit=UNALLOCATED,
            line_kind="unallocated",
            line="Unallocated",
            rule="no allocation rule matched",
            allocated=shares[REST],
            description=_unallocated_explanation(cur),
        )
    if cur.unallocated_adjustment:
        yield ctx.row(
            unit=UNALLOCATED,
            line_kind="adjustment",
            line="Unallocated adjustments",
            rule="closed months recomputed",
            allocated=cur.unallocated_adjustment,
            description="Unallocated's adjustments carried in from closed months.",
        )


def _focus_rows(result: StatementSet) -> Iterator[list]:
    start = f"{result.month:%Y-%m-%d}T00:00:00Z"
    end = f"{month_next(result.month):%Y-%m-%d}T00:00:00Z"
    amount_field = {"billed_cost": "billed", "effective_cost": "effective", "list_cost": "list"}[
        basis_field(result.basis)
    ]
    for currency, cur in result.currencies.items():
        ctx = _Context(result, currency, amount_field, start, end)
        with_statement = {s.unit.id for s in cur.statements}
        for statement in cur.statements:
            groups = _groups(result.month, currency, tag_set__business_unit_id=statement.unit.id)
            yield from _unit_rows(ctx, statement, groups)
        if not result.complete:
            continue
        # Units whose cost rows all net to zero have no statement; their rows still count.
        others = (
            CostRow.objects.filter(billing_period=result.month, currency=currency)
            .exclude(tag_set__business_unit__isnull=True)
            .exclude(tag_set__business_unit_id__in=with_statement)
            .values_list("tag_set__business_unit_id", "tag_set__business_unit__code")
            .distinct()
            .order_by(F("tag_set__business_unit__code"))
        )
        for unit_id, code in others:
            for group in _groups(result.month, currency, tag_set__business_unit_id=unit_id):
                yield from _zero_rows(ctx, code, _is_credit(group), _service(group), [group])
        yield from _unallocated_rows(ctx, cur)


def statements_focus_csv(result: StatementSet, *, batch: int = 500) -> Iterator[bytes]:
    """A FOCUS-shaped CSV of the month with the allocation as ``x_Capgov*`` columns, streamed.

    Direct and credit lines are spread over the cost rows behind them (summed per provider,
    account, service, charge category, resource and region); other lines are one Adjustment
    row each. Per business unit, ``x_CapgovAllocatedCost`` sums exactly to its statement total;
    for finance, every cost row of the month appears once, so ``BilledCost`` sums to the bill.
    Queries: one or two per unit and currency, whatever the number of resources.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(FOCUS_HEADER)
    for count, row in enumerate(_focus_rows(result), start=1):
        writer.writerow(row)
        if count % batch == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


# --- The formats, for views, the API and the management command --------------------------------


@dataclass(frozen=True)
class StatementExport:
    """One file format of a month's statements."""

    label: str
    content_type: str
    suffix: str  # what follows ``statements-YYYY-MM`` in the file name
    render: Callable[[StatementSet], bytes | Iterator[bytes]]
    streamed: bool = False  # ``render`` yields chunks: send with a StreamingHttpResponse

    def file_name(self, month: dt.date) -> str:
        return f"statements-{month:%Y-%m}{self.suffix}"


STATEMENT_EXPORTS: dict[str, StatementExport] = {
    "csv": StatementExport("CSV", "text/csv; charset=utf-8", ".csv", statements_csv),
    "xlsx": StatementExport(
        "Excel workbook",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ".xlsx",
        statements_xlsx,
    ),
    "focus": StatementExport(
        "FOCUS CSV with allocation",
        "text/csv; charset=utf-8",
        "-focus.csv",
        statements_focus_csv,
        streamed=True,
    ),
}
