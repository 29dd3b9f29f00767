from decimal import Decimal
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from costs import services
from costs.ingest import FORMATS
from costs.models import ImportStatus
from governance.money import money_round


class Command(BaseCommand):
    help = "Import a billing export (FOCUS, AWS CUR, GCP BigQuery export, Azure cost export)."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--format", choices=FORMATS, default="auto", dest="fmt")

    def handle(self, *args, path: Path, fmt: str, **options):
        result = services.billing_import(path=path, fmt=fmt)
        if result.status != ImportStatus.SUCCEEDED:
            raise CommandError(result.error)
        out = self.stdout
        out.write(
            self.style.SUCCESS(
                f"Imported {result.file_name} as {result.detected_format}"
                f"{' (detected)' if fmt == 'auto' else ''}"
            )
        )
        out.write(f"  rows read:       {result.rows_read:,}")
        out.write(f"  rows stored:     {result.rows_stored:,} (daily grain)")
        out.write(f"  billing periods: {', '.join(result.billing_periods)}")
        for period, totals in result.period_totals.items():
            for currency, amount in totals.items():
                rounded = money_round(Decimal(amount), currency)
                out.write(f"  billed {period} {currency}: {rounded:,} (exact {amount})")
        for warning in result.warnings:
            out.write(self.style.WARNING(f"  warning: {warning}"))
