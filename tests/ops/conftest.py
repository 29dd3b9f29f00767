"""Fixtures shared by the operations tests."""

from __future__ import annotations

import pytest

from governance import celery as governance_celery
from governance.celery import app as celery_app


@pytest.fixture
def not_eager(monkeypatch):
    """Tasks go to the broker, as in production (the suite runs them eagerly), starting with
    a broker that has not refused anything yet."""
    monkeypatch.setattr(governance_celery, "_broker_down_until", 0.0)
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = eager
