"""Fixtures shared by the operations tests."""

from __future__ import annotations

import pytest

from governance.celery import app as celery_app


@pytest.fixture
def not_eager():
    """Tasks go to the broker, as in production (the suite runs them eagerly)."""
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = eager
