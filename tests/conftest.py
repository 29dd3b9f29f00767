"""Shared fixtures: named people with roles, a pinned clock, sample-data paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from governance.celery import app as celery_app

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BILLING_SAMPLES = SHARED_DATA / "billing"
REQUIRE_SERVICES = os.environ.get("CAPGOV_REQUIRE_SERVICES") == "1"


def pytest_configure(config):
    # Tests that want a real worker switch this off themselves.
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True


@pytest.fixture(autouse=True)
def _fast_settings(settings, tmp_path):
    from django.core.cache import cache

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    # Rate-limit counters live in the cache: each test starts with none. The API's failed-sign-in
    # limit is off unless a test sets one: the permission matrix and schemathesis send hundreds of
    # anonymous requests from one address on purpose.
    cache.clear()
    settings.CAPGOV_API_AUTH_FAILURE_RATE = None


@pytest.fixture
def billing_samples() -> Path:
    if not BILLING_SAMPLES.is_dir():
        pytest.skip(f"shared billing samples not found at {BILLING_SAMPLES}")
    return BILLING_SAMPLES


@pytest.fixture
def org(db):
    """Research and Ads business units with one person of each kind."""
    from tests.factories import OrgFactory

    return OrgFactory.build_org()


@pytest.fixture
def abc(db, tmp_path):
    """October 2026: A 600, B 300 (all on the checkout endpoint), C 100, and the platform's
    overhead 200 (USD), split across A, B and C in proportion to their direct spend."""
    from costs import services
    from costs.models import AllocationPolicy, SharedPool
    from governance.choices import Role
    from tests.costs.conftest import CHECKOUT, OCT, import_file
    from tests.factories import BusinessUnitFactory, UserFactory, focus_line

    units = {code: BusinessUnitFactory(code=code, name=f"Unit {code}") for code in "ABC"}
    units["PLAT"] = BusinessUnitFactory(code="PLAT", name="Platform")
    for code, unit in units.items():
        unit.owner = UserFactory(username=f"owner-{code.lower()}", units=[unit])
        unit.save()
        services.allocation_rule_save(
            business_unit=unit, tag_key="team", tag_values=[code.lower()], priority=10
        )
    lines = [
        focus_line(cost="600.00", tags={"team": "a"}, resource="a-gpu"),
        focus_line(cost="300.00", tags={"team": "b"}, resource=CHECKOUT),
        focus_line(cost="100.00", tags={"team": "c"}, resource="c-gpu"),
        focus_line(cost="200.00", tags={"team": "plat"}, resource="control-plane"),
    ]
    import_file(tmp_path / "oct.csv", lines)
    policy = AllocationPolicy.objects.create(name="FY26", first_month=OCT, basis="billed")
    SharedPool.objects.create(
        policy=policy, name="Platform overhead", source_unit=units["PLAT"], method="proportional"
    )
    units["finance"] = UserFactory(username="fin", roles=[Role.FINANCE])
    return units
