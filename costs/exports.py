"""Chargeback as CSV, XLSX and JSON files. Same numbers as the page and the API."""

from __future__ import annotations

import csv
import io
import json

from openpyxl import Workbook
from openpyxl.styles import Font

from costs.selectors import Chargeback

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "json": "application/json",
}
LINE_HEADER = [
    "month",
    "basis",
    "currency",
    "business_unit",
    "business_unit_name",
    "service",
    "amount",
]


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value):
    """Text that a spreadsheet would run as a formula is written as plain text instead.

    Service and business-unit names come from billing files; ``=HYPERLINK(...)`` in one
    must not become a live formula in finance's workbook.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _lines(chargeback: Chargeback):
    month = chargeback.month.strftime("%Y-%m")
    for currency, cur in chargeback.currencies.items():
        for line in cur.lines:
            for service, amount in line.by_service.items():
                yield [
                    month,
                    chargeback.basis,
                    currency,
                    line.code,
                    _cell(line.name),
                    _cell(service),
                    amount,
                ]


def chargeback_csv(chargeback: Chargeback) -> bytes:
    """One row per (currency, business unit, service); rows of a BU sum to its total."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(LINE_HEADER)
    for row in _lines(chargeback):
        writer.writerow([*row[:-1], str(row[-1])])
    return buffer.getvalue().encode()


def chargeback_xlsx(chargeback: Chargeback) -> bytes:
    """A Summary sheet (per business unit and the total) and a Lines sheet (per service)."""
    book = Workbook()
    summary = book.active
    summary.title = "Summary"
    summary.append(["month", "basis", "currency", "business_unit", "business_unit_name", "amount"])
    for cell in summary[1]:
        cell.font = Font(bold=True)
    month = chargeback.month.strftime("%Y-%m")
    for currency, cur in chargeback.currencies.items():
        for line in cur.lines:
            summary.append(
                [month, chargeback.basis, currency, line.code, _cell(line.name), line.amount]
            )
        label = "Total" if chargeback.complete else "Total of your business units"
        summary.append([month, chargeback.basis, currency, "TOTAL", label, cur.total])
        summary.cell(summary.max_row, 4).font = Font(bold=True)
    lines = book.create_sheet("Lines")
    lines.append(LINE_HEADER)
    for cell in lines[1]:
        cell.font = Font(bold=True)
    for row in _lines(chargeback):
        lines.append(row)
    for sheet in (summary, lines):
        money_col = sheet.max_column
        for (cell,) in sheet.iter_rows(min_row=2, min_col=money_col, max_col=money_col):
            cell.number_format = "#,##0.00"
        for column, width in zip("ABCDEFG", (9, 9, 9, 16, 28, 40, 16), strict=False):
            sheet.column_dimensions[column].width = width
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def chargeback_json(chargeback: Chargeback) -> bytes:
    return json.dumps(chargeback.as_dict(), indent=2).encode()


EXPORTERS = {"csv": chargeback_csv, "xlsx": chargeback_xlsx, "json": chargeback_json}
