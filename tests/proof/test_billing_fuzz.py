"""Fuzzed billing files: FOCUS, AWS CUR and GCP-export CSVs built from the real sample headers
and rows, then damaged (bad dates and amounts, missing, extra and duplicated columns, BOMs,
other encodings, NULs, cut-off lines, empty files) and imported through the real service.

Whatever the file, the import either succeeds and its stored rows add up to the file's billed
cost, or fails with a message naming the file and stores nothing (no cost row, no tag set):
never an internal error. Some go through the upload API, which must answer 4xx, never 500.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import os
import re
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.db.models import Sum
from django.test import Client, TestCase
from hypothesis import given
from hypothesis import strategies as st

from governance.choices import Role
from tests.conftest import BILLING_SAMPLES
from tests.proof.conftest import SUMMARY, derandomized

# Derandomized and small enough for `make test`; CAPGOV_PROOF_EXAMPLES=500 digs deeper by hand.
EXAMPLES = int(os.environ.get("CAPGOV_PROOF_EXAMPLES", "60"))
API_EXAMPLES = max(4, EXAMPLES // 5)
ROWS = 4
CANONICAL = re.compile(r"^[+-]?\d+(\.\d+)?$")


@dataclass(frozen=True)
class Shape:
    """One source format: a real sample file and the columns the damage aims at."""

    name: str
    sample: str
    cost: str
    date: str
    text: str
    fixes: tuple[tuple[str, str], ...] = ()  # cells set on every row (credits the oracle ignores)


SHAPES = [
    Shape(
        "focus",
        "focus/focus_1.0_sample_1000.csv",
        "BilledCost",
        "ChargePeriodStart",
        "ServiceName",
    ),
    Shape(
        "aws-cur",
        "aws/aws_cur_legacy_sample_koku.csv",
        "lineItem/UnblendedCost",
        "lineItem/UsageStartDate",
        "product/ProductName",
    ),
    Shape(
        "gcp-export",
        "gcp/gcp_bq_export_standard_sample_koku.csv",
        "cost",
        "usage_start_time",
        "service.description",
        fixes=(("credits", "[]"),),
    ),
]

BAD_AMOUNTS = [
    "1e400",
    "-1E+30",
    "99999999999999999999",
    "NaN",
    "nan",
    "Infinity",
    "-inf",
    "1,234.56",
    "1.234,56",
    "$12.00",
    "12.5.3",
    "0x1F",
    "\uff19\uff19",  # full-width digits
    " 12.50 ",
    "+7",
    "",
    "NULL",
    "--1",
]
BAD_DATES = [
    "2024-13-45 00:00:00",
    "2024-02-30 00:00:00",
    "not a date",
    "",
    "0000-00-00 00:00:00",
    "1899-12-31 00:00:00",
    "9999-12-31 23:59:59",
    "2024-09-01T00:00:00+25:00",
    "31/12/2024",
    "2024-09-01 00:00:00\x00",
]


@functools.cache
def _templates(shape: Shape) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """The sample's header and first rows, read once per shape (each example copies them)."""
    path = BILLING_SAMPLES / shape.sample
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        body = list(itertools.islice(reader, ROWS))
    for name, value in shape.fixes:
        if name in header:
            for row in body:
                row[header.index(name)] = value
    return tuple(header), tuple(tuple(row) for row in body)


@dataclass
class Case:
    shape: str
    data: bytes
    expected: Decimal | None  # the billed total if every amount is a plain number
    garbage: bool  # an amount that must not be taken for a number
    damage: list[str]


@st.composite
def billing_files(draw) -> Case:
    shape = draw(st.sampled_from(SHAPES))
    header, rows = _templates(shape)
    header, rows = list(header), [list(r) for r in rows]
    cost_at = header.index(shape.cost)
    for row in rows:
        amount = draw(st.decimals(min_value=-1000, max_value=100_000, places=4))
        row[cost_at] = f"{amount:f}"
    damage: list[str] = []
    garbage = False
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        kind = draw(
            st.sampled_from(
                [
                    "amount",
                    "date",
                    "nul",
                    "drop-column",
                    "extra-column",
                    "duplicate-header",
                    "short-row",
                    "long-text",
                ]
            )
        )
        damage.append(kind)
        row = draw(st.sampled_from(rows)) if rows else None

        def cell(name: str, current=row) -> int | None:
            """Where a column is in this row, if the damage so far left it there."""
            at = header.index(name) if name in header else -1
            return at if current is not None and 0 <= at < len(current) else None

        if kind == "amount" and cell(shape.cost) is not None:
            row[cell(shape.cost)] = draw(st.sampled_from(BAD_AMOUNTS))
            garbage = garbage or not _plain(row[cell(shape.cost)])
        elif kind == "date" and cell(shape.date) is not None:
            row[cell(shape.date)] = draw(st.sampled_from(BAD_DATES))
        elif kind == "nul" and cell(shape.text) is not None:
            row[cell(shape.text)] += "\x00"
        elif kind == "drop-column" and len(header) > 1:
            at = draw(st.integers(min_value=0, max_value=len(header) - 1))
            header.pop(at)
            for r in rows:
                r.pop(at)
            if at == cost_at:
                cost_at = -1
            elif at < cost_at:
                cost_at -= 1
        elif kind == "extra-column":
            header.append(draw(st.sampled_from(["x_Extra", "Notes", "", "BilledCost "])))
            for r in rows:
                r.append(draw(st.sampled_from(["", "1", "free text", "\u00e9t\u00e9"])))
        elif kind == "duplicate-header":
            header.append(shape.cost)
            for r in rows:
                r.append(draw(st.sampled_from(["0", "5", "bad"])))
        elif kind == "short-row" and row:
            del row[draw(st.integers(min_value=0, max_value=len(row) - 1)) :]
        elif kind == "long-text" and cell(shape.text) is not None:
            row[cell(shape.text)] = "x" * draw(st.sampled_from([300, 2000, 70_000]))
    text = io.StringIO()
    csv.writer(text, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))).writerows(
        [header, *rows]
    )
    raw = text.getvalue()
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"]))
    if encoding != "utf-8":
        damage.append(encoding)
    data = raw.encode(encoding, errors="replace")
    ending = draw(st.sampled_from(["whole", "whole", "whole", "cut", "empty", "header-only"]))
    if ending == "cut":
        data = data[: draw(st.integers(min_value=1, max_value=max(1, len(data) - 1)))]
    elif ending == "empty":
        data = b""
    elif ending == "header-only":
        data = data.split(b"\n", 1)[0] + b"\n"
    if ending != "whole":
        damage.append(ending)
    expected = None
    if cost_at >= 0 and ending == "whole":
        cells = [r[cost_at] for r in rows if len(r) > cost_at]
        if all(_plain(c) for c in cells):
            amounts = [c.strip() for c in cells if c.strip() not in ("", "NULL")]
            expected = sum((Decimal(a) for a in amounts), Decimal(0))
    return Case(shape.name, data, expected, garbage, damage)


def _plain(cell: str) -> bool:
    """A cell any reader takes for the same number (or for no amount at all)."""
    return cell.strip() in ("", "NULL") or bool(CANONICAL.match(cell.strip()))


def _check(billing_import, case: Case, tag_sets_before: int) -> str:
    """The property; returns how the file ended (for the summary)."""
    from costs.models import CostRow, ImportStatus, TagSet

    stored = CostRow.objects.filter(billing_import=billing_import)
    where = f"{case.shape} file damaged by {case.damage or 'nothing'}"
    if billing_import.status == ImportStatus.SUCCEEDED:
        total = stored.aggregate(s=Sum("billed_cost"))["s"] or Decimal(0)
        assert not case.garbage, f"{where}: an amount that is not a number was accepted"
        if case.expected is not None:
            assert total == case.expected, f"{where}: stored {total}, the file says {case.expected}"
        assert billing_import.rows_read > 0 or not stored.exists(), where
        return "stored"
    assert billing_import.status == ImportStatus.FAILED, f"{where}: {billing_import.status}"
    error = billing_import.error
    assert error, f"{where}: failed without saying why"
    assert "internal error" not in error, f"{where}: unclear failure {error!r}"
    assert billing_import.file_name in error, f"{where}: the message names no file: {error!r}"
    assert not stored.exists(), f"{where}: a failed import kept {stored.count()} cost rows"
    assert TagSet.objects.count() == tag_sets_before, f"{where}: a failed import kept tag sets"
    return "refused"


def _needs_samples():
    if not BILLING_SAMPLES.is_dir():
        pytest.skip(f"shared billing samples not found at {BILLING_SAMPLES}")


@pytest.fixture
def finance(db):
    from tests.factories import UserFactory

    return UserFactory(username="fuzz-finance", roles=[Role.FINANCE])


FUZZ = derandomized(EXAMPLES)
FUZZ_API = derandomized(API_EXAMPLES)


def test_damaged_billing_files_import_whole_or_not_at_all(db, tmp_path):
    _needs_samples()
    from costs import services
    from costs.models import TagSet

    outcomes: dict[str, int] = {}

    @FUZZ
    @given(case=billing_files())
    def run(case: Case) -> None:
        path = tmp_path / f"{case.shape}-bill.csv"
        path.write_bytes(case.data)
        with transaction.atomic():
            before = TagSet.objects.count()
            result = services.billing_import(path=path, fmt="auto")
            outcome = _check(result, case, before)
            transaction.set_rollback(True)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    run()
    SUMMARY["fuzz"] = (
        f"fuzzed billing files: {sum(outcomes.values())} imported through the service "
        f"({outcomes.get('stored', 0)} stored and reconciled, "
        f"{outcomes.get('refused', 0)} refused with a clear error)"
    )
    assert outcomes.get("stored"), f"no damaged file was importable: {outcomes}"
    assert outcomes.get("refused"), f"no damaged file was refused: {outcomes}"


def test_damaged_billing_files_uploaded_never_get_a_server_error(finance, tmp_path, settings):
    _needs_samples()
    from costs.models import BillingImport, TagSet

    settings.MEDIA_ROOT = tmp_path / "media"
    client = Client()
    client.force_login(finance)
    statuses: dict[int, int] = {}

    @FUZZ_API
    @given(case=billing_files())
    def run(case: Case) -> None:
        upload = SimpleUploadedFile(f"{case.shape}-upload.csv", case.data, "text/csv")
        with transaction.atomic():
            before = TagSet.objects.count()
            # The upload queues the import after its commit; run it here, as a worker would.
            with TestCase.captureOnCommitCallbacks(execute=True):
                response = client.post("/api/v1/imports/", {"file": upload, "format": "auto"})
            assert response.status_code < 500, (case.damage, response.content[:300])
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code in (200, 201, 202):
                record = BillingImport.objects.get(pk=response.json()["id"])
                _check(record, case, before)
                assert client.get(f"/api/v1/imports/{record.pk}/").status_code == 200
            transaction.set_rollback(True)

    run()
    SUMMARY["fuzz-api"] = (
        f"fuzzed uploads through POST /api/v1/imports/: {sum(statuses.values())} "
        f"(statuses {dict(sorted(statuses.items()))})"
    )
