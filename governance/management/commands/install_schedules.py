"""Add Capgov's periodic tasks to django-celery-beat, keeping any an admin has edited."""

from __future__ import annotations

import json

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask


class Command(BaseCommand):
    help = "Install the default schedules (settings.CAPGOV_SCHEDULES) where they are missing."

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset", action="store_true", help="put every default back, undoing edits"
        )

    @transaction.atomic
    def handle(self, *args, reset: bool, **options):
        added = kept = 0
        for name, entry in settings.CAPGOV_SCHEDULES.items():
            interval, _ = IntervalSchedule.objects.get_or_create(
                every=int(entry["schedule"]), period=IntervalSchedule.SECONDS
            )
            values = {
                "task": entry["task"],
                "interval": interval,
                "args": json.dumps(list(entry.get("args", ()))),
                "enabled": True,
            }
            task = PeriodicTask.objects.filter(name=name).first()
            if task is None:
                PeriodicTask.objects.create(name=name, **values)
                added += 1
            elif reset:
                for field, value in values.items():
                    setattr(task, field, value)
                task.save()
                added += 1
            else:
                kept += 1
        self.stdout.write(f"{added} schedules installed, {kept} kept as they were.")
