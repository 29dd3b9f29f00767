"""Prune data past its retention policy now (the daily beat task does the same)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import filesizeformat

from costs import retention
from costs.models import DataClass
from governance.exceptions import DomainError


class Command(BaseCommand):
    help = (
        "Prune billing detail (into monthly aggregates), benchmark files and usage metrics past "
        "their retention policy; audit history is only listed. Classes whose policy does not "
        "allow pruning are reported, not pruned, unless --dry-run."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="compute what would go, change nothing"
        )
        parser.add_argument(
            "--class",
            dest="classes",
            action="append",
            choices=list(DataClass.values),
            help="a data class (repeat for several; default: every class)",
        )

    def handle(self, *args, dry_run: bool, classes: list[str] | None, **options):
        try:
            runs = retention.retention_prune_all(dry_run=dry_run, classes=classes)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        failed = False
        for run in runs:
            verb = "would remove" if dry_run else "removed"
            self.stdout.write(
                f"{run.get_data_class_display()} (before {run.cutoff}): {verb} "
                f"{run.rows_removed:,} of {run.rows_before:,}, added {run.rows_added:,} monthly "
                f"aggregates, {filesizeformat(run.bytes_freed)} freed; run #{run.pk}."
            )
            for skipped in run.skipped:
                self.stdout.write(f"  kept {skipped['item']}: {skipped['reason']}")
            if run.error:
                failed = True
                self.stderr.write(f"  {run.error}")
        if failed:
            raise CommandError("A retention run stopped; see its error above.")
