"""The proof suite's world: the demo organisation seeded once for the package, people holding
one role each in two business units, and a WSGI app that takes their session cookie.

The demo is seeded inside a transaction opened for the whole package and rolled back after
its last test, so the tests here share it (each still runs in its own savepoint) and the
rest of the suite never sees it.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from io import StringIO

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from django.core.signals import got_request_exception, request_finished, request_started
from django.db import close_old_connections, transaction
from django.test import Client, TestCase, override_settings
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings

from governance.choices import Role

# Lines for the end of the run: what each proof checked (operations, pairs, examples).
SUMMARY: dict[str, str] = {}

# Unit A is the one the single-role people belong to; unit B is the one they do not.
UNIT_A, UNIT_B = "RES", "ADS"


def derandomized(max_examples: int) -> hypothesis_settings:
    """The proofs' Hypothesis settings: the same examples every run, no deadline on slow
    requests, and no example database left behind."""
    return hypothesis_settings(
        max_examples=max_examples,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


def pytest_terminal_summary(terminalreporter):
    if SUMMARY:
        terminalreporter.section("proof")
        for line in SUMMARY.values():
            terminalreporter.write_line(line)


@dataclass
class World:
    """The seeded demo plus the people the proofs sign in as."""

    admin: object  # every role, every unit: what schemathesis runs as
    by_role: dict[str, object]  # one person per role, member of unit A only
    outsiders: dict[str, object]  # the same roles, member of unit B only
    units: dict[str, object]
    months: list[str] = field(default_factory=list)
    media: object = None  # where the demo's files (benchmark results, imports) were kept


def _person(username: str, roles, units):
    from governance.models import RoleAssignment, User

    user = User.objects.create_user(
        username=username, email=f"{username}@proof.example", password="proof-pass-1"
    )
    for role in roles:
        RoleAssignment.objects.create(user=user, role=role)
    user.business_units.set(units)
    return user


def _unit_a_records(unit, other, admin) -> None:
    """What the demo has no example of in unit A, so each detail route has a record to open:
    a freeze, a waiver before the board, a conflict with another unit (not B), a retirement
    case, and a cloud account with a sync run."""
    import datetime as dt
    from decimal import Decimal

    from django.utils import timezone

    from costs.models import CloudAccount, SyncRun
    from governance.services.conflicts import conflict_raise
    from governance.services.decisions import freeze_start
    from registry.models import (
        CaseKind,
        CaseStatus,
        Endpoint,
        ModelVersion,
        RequirementWaiver,
        RetirementCase,
        RetirementPolicy,
    )

    now = timezone.now()
    freeze_start(business_unit=unit, reason="Proof: a freeze to look at.", by=admin)
    version = ModelVersion.objects.filter(model__business_unit=unit).order_by("pk").first()
    RequirementWaiver.objects.create(
        version=version,
        requirement="assessment",
        reason="Proof: a waiver before the board.",
        expires_at=now + dt.timedelta(days=10),
        granted_by=admin,
        granted_at=now,
    )
    conflict_raise(
        title="Proof: H100 hours in contention",
        description="Both units want the same pool next week.",
        business_units=[unit, other],
        by=admin,
    )
    endpoint = Endpoint.objects.filter(business_unit=unit).order_by("pk").first()
    RetirementCase.objects.create(
        kind=CaseKind.IDLE,
        endpoint=endpoint,
        policy=RetirementPolicy.objects.order_by("pk").first(),
        business_unit=unit,
        status=CaseStatus.OPEN,
        opened_at=now,
        grace_ends_at=now + dt.timedelta(days=7),
        monthly_cost=Decimal("420.00"),
        currency="USD",
        owner=unit.owner,
        summary=f"{endpoint.name} is idle.",
    )
    account = CloudAccount.objects.create(
        name="proof-aws", provider="aws", account_id="111122223333"
    )
    SyncRun.objects.create(account=account, kind="costs", status="succeeded")


@pytest.fixture(scope="package")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    """The demo organisation (a small bill of two months), once for every test in the package."""
    from costs.models import CostRow
    from governance.models import BusinessUnit

    var = tmp_path_factory.mktemp("proof-var")
    with (
        django_db_blocker.unblock(),
        override_settings(
            VAR_DIR=var,
            MEDIA_ROOT=var / "media",
            EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
            PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        ),
    ):
        outer = transaction.atomic()
        outer.__enter__()
        try:
            # Mails, budget checks and freezes run after their commit, as they would live.
            with TestCase.captureOnCommitCallbacks(execute=True):
                call_command("seed_demo", rows=400, stdout=StringIO())
            units = {bu.code: bu for bu in BusinessUnit.objects.all()}
            admin = _person("proof-admin", list(Role), list(units.values()))
            admin.is_staff = True
            admin.save(update_fields=["is_staff"])
            by_role = {
                role: _person(f"proof-{role}", [role], [units[UNIT_A]]) for role in Role.values
            }
            outsiders = {
                role: _person(f"proof-b-{role}", [role], [units[UNIT_B]]) for role in Role.values
            }
            _unit_a_records(units[UNIT_A], units["SRCH"], admin)
            months = sorted(
                {
                    d.strftime("%Y-%m")
                    for d in CostRow.objects.values_list("billing_period", flat=True)
                }
            )
            yield World(admin, by_role, outsiders, units, months, media=var / "media")
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def proof_db(world, db, settings):
    """The seeded world, inside this test's own savepoint, with its stored files."""
    settings.MEDIA_ROOT = world.media
    return world


def session_key(user) -> str:
    """A session signing ``user`` in, made by ``Client.force_login``."""
    from django.conf import settings

    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


SESSION_HEADER = "X-Proof-Session"


class ProofWSGIHandler(WSGIHandler):
    """Django's WSGI handler as the test client runs it: the session is the caller's proof
    of identity without a CSRF token (what a token-authenticated integration sends), and
    every unhandled exception is kept so a 500 can say where it came from.

    The session key comes in an ``X-Proof-Session`` header and becomes the session cookie
    here, because the WSGI test client replaces a ``Cookie`` header with its own jar.
    """

    def __init__(self):
        super().__init__()
        self.errors: list[str] = []

    def __call__(self, environ, start_response):
        from django.conf import settings

        key = environ.pop("HTTP_X_PROOF_SESSION", "")
        if key:
            cookie = f"{settings.SESSION_COOKIE_NAME}={key}"
            other = environ.get("HTTP_COOKIE", "")
            environ["HTTP_COOKIE"] = f"{other}; {cookie}" if other else cookie
        return super().__call__(environ, start_response)

    def get_response(self, request):
        request._dont_enforce_csrf_checks = True
        return super().get_response(request)


@pytest.fixture
def wsgi_app(proof_db):
    """The real project WSGI app, its connection kept open for the test's transaction."""
    app = ProofWSGIHandler()

    def keep(sender, **kwargs):
        app.errors.append(traceback.format_exc())

    # A WSGI request closes "old" connections at its end; the test client skips that too.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    got_request_exception.connect(keep)
    try:
        yield app
    finally:
        got_request_exception.disconnect(keep)
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
