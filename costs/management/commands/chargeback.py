import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from costs import selectors
from costs.exports import EXPORTERS
from governance.templatetags.capgov import money


class Command(BaseCommand):
    help = "Print or write the chargeback of one billing month."

    def add_arguments(self, parser):
        parser.add_argument("--month", required=True, help="YYYY-MM")
        parser.add_argument("--basis", choices=list(selectors.BASES), default="billed")
        parser.add_argument("--format", choices=["table", *EXPORTERS], default="table", dest="fmt")
        parser.add_argument("--output", type=Path, help="write to this file instead of stdout")

    def handle(self, *args, month: str, basis: str, fmt: str, output: Path | None, **options):
        try:
            period = selectors.month_parse(month)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        result = selectors.chargeback_get(user=None, month=period, basis=basis)
        if not result.currencies:
            raise CommandError(f"No costs are stored for billing month {month}.")
        if fmt == "xlsx" and not output:
            raise CommandError("XLSX is a binary file; give --output FILE.xlsx.")
        data = self._table(result).encode() if fmt == "table" else EXPORTERS[fmt](result)
        if output:
            output.write_bytes(data)
            self.stdout.write(self.style.SUCCESS(f"Wrote {output} ({len(data):,} bytes)"))
        else:
            sys.stdout.buffer.write(data if data.endswith(b"\n") else data + b"\n")
            sys.stdout.flush()

    def _table(self, result: selectors.Chargeback) -> str:
        lines = [f"Chargeback {result.month:%Y-%m} ({result.basis} basis)"]
        for currency, cur in result.currencies.items():
            lines.append("")
            for line in cur.lines:
                lines.append(
                    f"  {line.code:<14} {line.name:<32} {money(line.amount, currency):>22}"
                )
            lines.append(f"  {'TOTAL':<14} {'':<32} {money(cur.total, currency):>22}")
        return "\n".join(lines) + "\n"
