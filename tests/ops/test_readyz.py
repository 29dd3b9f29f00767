"""/readyz: database, broker and migrations, each reported; 503 when any of them fails."""

from __future__ import annotations

import os
import socket
import time
from unittest import mock

import pytest
import redis
from django.db import OperationalError, connection
from django.db.migrations import Migration
from django.db.migrations.executor import MigrationExecutor

from tests.conftest import REQUIRE_SERVICES

REDIS_URL = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/11"


def closed_port() -> int:
    """A port nothing listens on: bound once, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_readyz_is_open_and_ready_with_eager_tasks(client, db, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "broker": "eager (no broker configured)",
        "migrations": "ok",
    }
    assert "no-cache" in response["Cache-Control"]


def test_readyz_pings_a_real_redis_broker(client, db, settings):
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis at {REDIS_URL} is required in CI")
        pytest.skip(f"Redis at {REDIS_URL} is not reachable")
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = REDIS_URL
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["broker"] == "ok"


def test_readyz_is_503_when_the_broker_is_down(client, db, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/0"
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < 5  # a short timeout, not a hanging probe
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["broker"] == "error: ConnectionError"
    assert body["database"] == "ok"
    assert body["migrations"] == "ok"


def test_readyz_is_503_when_a_migration_is_unapplied(client, db, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    pending = Migration("0999_not_yet", "costs")
    with mock.patch.object(MigrationExecutor, "migration_plan", return_value=[(pending, False)]):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["migrations"] == "error: 1 unapplied (costs.0999_not_yet); run manage.py migrate"
    assert body["database"] == "ok"


def test_readyz_is_503_when_the_database_is_down(client, db, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    with mock.patch.object(
        connection, "cursor", side_effect=OperationalError("connection refused")
    ):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "error: OperationalError"
    # The detail stays in the server's log; an anonymous caller learns only the kind.
    assert "refused" not in response.content.decode()


def test_healthz_stays_alive_while_the_broker_is_down_and_readyz_says_so(client, db, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/0"
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["broker"] == "error: ConnectionError"
