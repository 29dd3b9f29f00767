"""Seed a demo organisation and two months of generated FOCUS billing data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from costs import sampledata, services
from costs.models import ImportStatus
from governance.choices import Role
from governance.models import BusinessUnit, User
from governance.services import business_unit_owner_set, person_upsert
from registry.demo import seed_registry

DEMO_PASSWORD = "capgov-demo"  # noqa: S105 - printed on screen for the local demo
RULES = Path(services.__file__).parent / "demo" / "allocation_rules.yaml"

PEOPLE = [
    # username, first, last, roles, business units, staff
    ("fiona", "Fiona", "Okafor", [Role.FINANCE], [], False),
    ("pat", "Pat", "Lindqvist", [Role.PLATFORM_ADMIN], [], True),
    ("ines", "Ines", "Moreau", [Role.BOARD_INFRA], ["PLAT"], False),
    ("mark", "Mark", "Adeyemi", [Role.BOARD_ML], ["RES"], False),
    ("priya", "Priya", "Raman", [Role.BOARD_PRODUCT], ["ADS"], False),
    ("alex", "Alex", "Chen", [Role.APPROVER], ["RES", "ADS"], False),
    ("rhea", "Rhea", "Novak", [Role.ML_ENGINEER], ["RES"], False),
    ("adam", "Adam", "Silva", [Role.ML_ENGINEER], ["ADS"], False),
]
OWNERS = {"RES": "mark", "ADS": "priya", "SRCH": "alex", "PLAT": "ines"}


def _last_full_months(today: dt.date, count: int) -> tuple[str, ...]:
    months = []
    cursor = today.replace(day=1)
    for _ in range(count):
        cursor = (cursor - dt.timedelta(days=1)).replace(day=1)
        months.append(cursor.strftime("%Y-%m"))
    return tuple(reversed(months))


class Command(BaseCommand):
    help = "Create the demo organisation and import two months of realistic FOCUS billing data."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=40_000, help="generated billing lines")
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args, rows: int, seed: int, **options):
        self._organisation()
        months = _last_full_months(timezone.now().date(), 2)
        folder = Path(settings.VAR_DIR) / "demo"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"focus-demo-{months[0]}-{months[-1]}.csv"
        sampledata.write_focus_csv(path, rows=rows, seed=seed, months=months, profile="demo")
        result = services.billing_import(path=path, fmt="auto")
        if result.status != ImportStatus.SUCCEEDED:
            raise CommandError(f"demo import failed: {result.error}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {result.rows_read:,} FOCUS lines for {', '.join(months)} "
                f"into {result.rows_stored:,} daily cost rows."
            )
        )
        self.stdout.write("")
        self.stdout.write(f"  Demo logins (password for all: {DEMO_PASSWORD})")
        codes = dict(BusinessUnit.objects.values_list("pk", "code"))
        for user in User.objects.filter(username__in=[p[0] for p in PEOPLE]).order_by("pk"):
            labels = ", ".join(Role(r).label for r in sorted(user.role_set))
            if user.sees_all_business_units:
                scope = "every business unit"
            else:
                scope = ", ".join(sorted(codes[pk] for pk in user.scoped_business_unit_ids))
            self.stdout.write(f"    {user.username:<7} {user}: {labels} — sees {scope}")

    @transaction.atomic
    def _organisation(self) -> None:
        services.allocation_rules_load(text=RULES.read_text(), file_name=RULES.name)
        units = {bu.code: bu for bu in BusinessUnit.objects.all()}
        people = {
            username: person_upsert(
                username=username,
                email=f"{username}@capgov.example",
                first_name=first,
                last_name=last,
                password=DEMO_PASSWORD,
                roles=roles,
                business_units=[units[c] for c in scope],
                is_staff=staff,
            )
            for username, first, last, roles, scope, staff in PEOPLE
        }
        for code, username in OWNERS.items():
            business_unit_owner_set(business_unit=units[code], owner=people[username])
        seed_registry(people, units)
