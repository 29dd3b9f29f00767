"""Check budgets now (the daily beat task does the same), e.g. after changing one."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from costs import selectors, services


class Command(BaseCommand):
    help = "Record budget thresholds reached, e-mail owners, freeze breaching units."

    def add_arguments(self, parser):
        parser.add_argument("--month", help="YYYY-MM (default: the current month)")

    def handle(self, *args, month: str | None, **options):
        try:
            parsed = selectors.month_parse(month) if month else None
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        result = services.budgets_evaluate(month=parsed)
        self.stdout.write(
            f"{result.month:%Y-%m}: {result.budgets} budgets, {len(result.alerts)} new alerts, "
            f"{len(result.freezes)} units frozen."
        )
