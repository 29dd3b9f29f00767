"""Load daily SLO measurements from a CSV file ``slo,day,value[,good,total]``."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from governance.exceptions import DomainError
from governance.services import slo_measurements_import


class Command(BaseCommand):
    help = (
        "Load SLO measurements from a CSV file: slo,day,value[,good,total] (SLO name, "
        "YYYY-MM-DD, percent or ms). All rows or none; the same SLO and day replaces."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)

    def handle(self, *args, file: Path, **options):
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"{file}: cannot read ({exc.strerror})") from exc
        try:
            stored = slo_measurements_import(data=data)
        except DomainError as exc:
            raise CommandError(f"{file.name}: {exc.message}") from exc
        self.stdout.write(self.style.SUCCESS(f"{stored} SLO measurements stored from {file.name}."))
