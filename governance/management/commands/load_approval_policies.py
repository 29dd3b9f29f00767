from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from governance import services
from governance.exceptions import DomainError


class Command(BaseCommand):
    help = "Create or update approval policies from a YAML file (governance/demo/ has an example)."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)

    def handle(self, *args, file: Path, **options):
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"{file}: cannot read ({exc.strerror})") from exc
        try:
            result = services.approval_policies_load(text=text, file_name=file.name)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Approval policies: {result.created} created, {result.updated} updated."
            )
        )
