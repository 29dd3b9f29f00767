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
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


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
