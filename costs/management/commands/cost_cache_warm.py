"""Sum every month with costs into the cost cache now (after a deploy or a cache flush)."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand

from costs import selectors


class Command(BaseCommand):
    help = (
        "Compute and cache the month sums the dashboard, chargeback and statement pages read, "
        "for every month with costs (what is cached already is kept). Workers do this after "
        "imports, rule changes and on the cost-cache-warm schedule; run it after a deploy or "
        "a cache flush so the first visitor does not wait."
    )

    def handle(self, *args, **options):
        if settings.CAPGOV_COST_CACHE_SECONDS <= 0:
            self.stdout.write(
                "The cost cache is off (CAPGOV_COST_CACHE_SECONDS=0): nothing to warm."
            )
            return
        started = time.monotonic()
        months = selectors.cost_cache_warm()
        self.stdout.write(f"Warmed {months} month(s) in {time.monotonic() - started:.1f} s.")
