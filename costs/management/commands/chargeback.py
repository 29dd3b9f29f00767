import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from costs import chargeback, selectors
from costs.statement_exports import STATEMENT_EXPORTS
from governance.exceptions import DomainError
from governance.templatetags.capgov import money

ACTIONS = {
    "publish": chargeback.period_publish,
    "unpublish": chargeback.period_unpublish,
    "close": chargeback.period_close,
}


class Command(BaseCommand):
    help = (
        "Print or export a month's chargeback statements (draft months are computed live), "
        "or publish / close the month."
    )

    def add_arguments(self, parser):
        parser.add_argument("--month", required=True, help="YYYY-MM")
        parser.add_argument(
            "--format", choices=["table", "json", *STATEMENT_EXPORTS], default="table", dest="fmt"
        )
        parser.add_argument("--output", type=Path, help="write to this file instead of stdout")
        parser.add_argument(
            "--action", choices=list(ACTIONS), help="publish, unpublish or close the month first"
        )

    def handle(self, *args, month: str, fmt: str, output: Path | None, action, **options):
        try:
            period = selectors.month_parse(month)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if fmt == "xlsx" and not output:
            raise CommandError("XLSX is a binary file; give --output FILE.xlsx.")
        if output and (output.is_dir() or not output.parent.is_dir()):
            raise CommandError(f"--output {output}: give a file in a folder that exists.")
        if action:
            try:
                ACTIONS[action](month=period, by=None)
            except DomainError as exc:
                raise CommandError(exc.message) from exc
            self.stderr.write(self.style.SUCCESS(f"{month}: {action} done."))
        result = chargeback.statements_get(user=None, month=period)
        if result.error:
            raise CommandError(f"{month}: {result.error}")
        if not result.currencies:
            raise CommandError(f"No costs are stored for billing month {month}.")
        if fmt == "table":
            data = self._table(result).encode()
        elif fmt == "json":
            data = json.dumps(result.as_dict(), indent=2).encode()
        else:
            body = STATEMENT_EXPORTS[fmt].render(result)
            data = body if isinstance(body, bytes) else b"".join(body)
        if output:
            output.write_bytes(data)
            self.stdout.write(self.style.SUCCESS(f"Wrote {output} ({len(data):,} bytes)"))
        else:
            sys.stdout.buffer.write(data if data.endswith(b"\n") else data + b"\n")
            sys.stdout.flush()

    def _table(self, result: chargeback.StatementSet) -> str:
        lines = [f"Statements {result.month:%Y-%m} ({result.status}, {result.basis} basis)"]
        lines += [f"  ! {warning}" for warning in result.warnings]
        for currency, cur in result.currencies.items():
            lines.append("")
            for s in cur.statements:
                lines.append(
                    f"  {s.unit.code:<14} {s.unit.name:<32} {money(s.total, currency):>22}"
                )
                for line in s.lines:
                    lines.append(f"      {line.label[:44]:<44} {money(line.amount, currency):>22}")
            lines.append(
                f"  {'UNALLOCATED':<14} {'':<32} {money(cur.unallocated_total, currency):>22}"
            )
            lines.append(f"  {'TOTAL':<14} {'':<32} {money(cur.grand_total, currency):>22}")
            check = "reconciles ✓" if cur.reconciles else f"differs by {cur.difference}"
            lines.append(f"  month total {money(cur.month_total, currency)}: {check}")
        return "\n".join(lines) + "\n"
