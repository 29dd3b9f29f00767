"""Load GPU-hours per pool and business unit from a CSV file."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from governance.exceptions import DomainError
from registry.services import pool_usage_import


class Command(BaseCommand):
    help = (
        "Load pool usage from a CSV file: pool,business_unit,day,gpu_hours (pool code, unit "
        "code, YYYY-MM-DD, GPU-hours). All rows or none; the same pool, unit and day replaces."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)

    def handle(self, *args, file: Path, **options):
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"{file}: cannot read ({exc.strerror})") from exc
        try:
            stored = pool_usage_import(data=data)
        except DomainError as exc:
            raise CommandError(f"{file.name}: {exc.message}") from exc
        self.stdout.write(self.style.SUCCESS(f"{stored} pool usage rows stored from {file.name}."))
