from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from costs import services
from governance.exceptions import DomainError


class Command(BaseCommand):
    help = "Load business units and allocation rules from a YAML file (see README)."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)

    def handle(self, *args, file: Path, **options):
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"{file}: cannot read ({exc.strerror})") from exc
        try:
            result = services.allocation_rules_load(text=text, file_name=file.name)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Business units: {result.business_units_created} created, "
                f"{result.business_units_updated} updated. Rules: {result.rules_created} "
                f"created, {result.rules_updated} updated. "
                f"{result.tag_sets_changed} tag set(s) re-attributed."
            )
        )
