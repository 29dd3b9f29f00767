"""Import or export SLO definitions as OpenSLO YAML."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from governance.exceptions import DomainError
from governance.models import ServiceLevelObjective
from governance.services.slos import slos_export, slos_import


class Command(BaseCommand):
    help = "manage.py slos import FILE | manage.py slos export [--output FILE]"

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["import", "export"])
        parser.add_argument("path", nargs="?", help="OpenSLO YAML file to import")
        parser.add_argument("--output", help="write the export here instead of stdout")

    def handle(self, *args, action: str, path: str | None, output: str | None, **options):
        if action == "import":
            if not path:
                raise CommandError("Give the OpenSLO YAML file to import.")
            try:
                created, updated = slos_import(text=Path(path).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                raise CommandError(f"{path}: {exc}") from exc
            except DomainError as exc:
                raise CommandError(f"{path}: {exc.message}") from exc
            self.stdout.write(self.style.SUCCESS(f"{created} SLOs created, {updated} updated."))
            return
        text = slos_export(ServiceLevelObjective.objects.select_related("provider"))
        if output:
            Path(output).write_text(text, encoding="utf-8")
            self.stdout.write(self.style.SUCCESS(f"Wrote {output}."))
        else:
            self.stdout.write(text, ending="")
