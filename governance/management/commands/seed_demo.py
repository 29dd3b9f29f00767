"""Seed a demo organisation and two months of generated FOCUS billing data."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_CEILING, Decimal
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from costs import sampledata, selectors, services
from costs.demo import seed_chargeback
from costs.models import Budget, BudgetAlert, ImportStatus
from governance.choices import Role
from governance.models import ApprovalRequest, BusinessUnit, User
from governance.services import (
    approval_policies_load,
    approval_request_create,
    approval_request_submit,
    approval_vote_cast,
    business_unit_owner_set,
    person_upsert,
)
from incidents.demo import seed_incidents
from registry.demo import seed_registry

DEMO_PASSWORD = "capgov-demo"  # noqa: S105 - printed on screen for the local demo
RULES = Path(services.__file__).parent / "demo" / "allocation_rules.yaml"
APPROVAL_POLICIES = Path(__file__).resolve().parents[2] / "demo" / "approval_policies.yaml"

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


def _approvals(people: dict[str, User], units: dict[str, BusinessUnit]) -> None:
    """The approval policies, a costly job waiting for its approvers and a decided one.

    Filed through the services, so the mails, events and decisions are the real ones; a
    second run finds the requests by title and files nothing twice.
    """
    approval_policies_load(
        text=APPROVAL_POLICIES.read_text(encoding="utf-8"), file_name=APPROVAL_POLICIES.name
    )
    requests = [
        (
            "rhea",
            "RES",
            {
                "kind": "fine_tuning",
                "title": "Fine-tune ranker-7b on October clicks",
                "description": "Full fine-tune with the October click logs; evaluation on the "
                "held-out week before it is registered.",
                "estimated_cost": Decimal("23000.00"),
                "accelerator": "H100",
                "accelerator_count": 64,
                "duration_hours": Decimal(72),
                "needed_by": timezone.now() + dt.timedelta(days=10),
            },
            None,
        ),
        (
            "adam",
            "ADS",
            {
                "kind": "batch_inference",
                "title": "Batch-score the spring catalogue",
                "description": "Re-score 40M listings with ads-ctr 3.2 before the campaign.",
                "estimated_cost": Decimal("2400.00"),
                "accelerator": "L4",
                "accelerator_count": 16,
                "duration_hours": Decimal(30),
            },
            ("alex", "Fits the quarter's batch budget; run it over the weekend."),
        ),
    ]
    for username, code, fields, vote in requests:
        if ApprovalRequest.objects.filter(
            title=fields["title"], business_unit=units[code]
        ).exists():
            continue
        request = approval_request_create(by=people[username], business_unit=units[code], **fields)
        request = approval_request_submit(request=request, by=people[username])
        if vote is not None:
            approver, comment = vote
            step = request.steps.order_by("order").first()
            approval_vote_cast(
                step=step, by=people[approver], approve=True, comment=comment, via="page"
            )


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
        self._budgets(selectors.month_parse(months[-1]))
        self.stdout.write(
            self.style.SUCCESS(
                seed_chargeback(
                    months=[selectors.month_parse(m) for m in months],
                    finance=User.objects.get(username="fiona"),
                )
            )
        )
        # After the budgets, so the approval mails can say what an estimate takes of them.
        _approvals(
            {u.username: u for u in User.objects.filter(username__in=[p[0] for p in PEOPLE])},
            {bu.code: bu for bu in BusinessUnit.objects.all()},
        )
        self.stdout.write(
            self.style.SUCCESS(
                seed_incidents(
                    people={
                        u.username: u
                        for u in User.objects.filter(username__in=[p[0] for p in PEOPLE])
                    }
                )
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

    def _budgets(self, month: dt.date) -> None:
        """Research close to its budget (the dashboard shows an alert, no freeze yet), and a
        project-tag budget for the Ads canaries well within its own; then check them."""
        units = {bu.code: bu for bu in BusinessUnit.objects.all()}
        for name, code, share, tag in [
            ("Research GPUs", "RES", 86, {}),
            ("Ads canaries", "ADS", 40, {"tag_key": "env", "tag_value": "canary"}),
        ]:
            probe = Budget(business_unit=units[code], currency="USD", basis="billed", **tag)
            spend = sum(selectors.budget_daily(budget=probe, month=month).values(), Decimal(0))
            # Rounded up to the hundred, so last month's spend is just under ``share`` %.
            hundreds = (spend / share).to_integral_value(rounding=ROUND_CEILING)
            services.budget_save(
                budget=Budget.objects.filter(name=name, business_unit=units[code]).first(),
                name=name,
                business_unit=units[code],
                amount=max(hundreds, Decimal(1)) * 100,
                currency="USD",
                **tag,
            )
        # Each save checks the budgets after it commits; count what that found.
        alerts = BudgetAlert.objects.filter(month=month).count()
        self.stdout.write(
            self.style.SUCCESS(
                f"Budgets set; {alerts} alert(s) for {month:%Y-%m} (see Budgets on the dashboard)."
            )
        )

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
