"""Structured logs: a request id from the web request into the tasks it enqueues."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis
from django.core.files.uploadedfile import SimpleUploadedFile

from governance import observability
from governance.celery import app as celery_app
from governance.choices import Role
from governance.tasks import approval_requests_expire
from tests.conftest import REQUIRE_SERVICES
from tests.factories import UserFactory, focus_line, write_focus

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/11"
IMPORT_TASK = "costs.tasks.billing_import_run_task"


@pytest.fixture
def json_lines():
    """Every record logged during the test, as the JSON objects production writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(observability.ContextFilter())
    handler.setFormatter(observability.JsonFormatter())
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(previous_level)


def test_a_request_gets_an_id_echoed_on_the_response(client, db):
    response = client.get("/healthz")
    assert len(response["X-Request-ID"]) == 32
    int(response["X-Request-ID"], 16)
    assert client.get("/healthz")["X-Request-ID"] != response["X-Request-ID"]


def test_a_sane_incoming_request_id_is_kept(client, db):
    response = client.get("/healthz", headers={"X-Request-ID": "lb-7f3a:Root=1-5e1b/2"})
    assert response["X-Request-ID"] == "lb-7f3a:Root=1-5e1b/2"


@pytest.mark.parametrize(
    "incoming",
    ["two words", "x" * 129, 'quote"d', "ünïcode", "-leading-dash", "forged\nline"],
)
def test_an_odd_incoming_request_id_is_replaced(client, db, incoming):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=incoming)
    assert response["X-Request-ID"] != incoming
    assert len(response["X-Request-ID"]) == 32


def test_an_upload_and_its_import_task_log_the_same_request_id(
    client, transactional_db, tmp_path, json_lines
):
    finance = UserFactory(username="fiona", roles=[Role.FINANCE])
    client.force_login(finance)
    path = write_focus(tmp_path / "oct.csv", [focus_line(cost="42.42")])
    upload = SimpleUploadedFile("oct.csv", path.read_bytes(), content_type="text/csv")
    # Committed for real (transactional_db): the import task is enqueued, and runs eagerly,
    # while the request is still being served, as it is published in production.
    response = client.post(
        "/costs/imports/", {"file": upload}, headers={"X-Request-ID": "upload-7f3a"}
    )
    assert response.status_code == 302
    assert response["X-Request-ID"] == "upload-7f3a"

    lines = json_lines()
    access = next(line for line in lines if line["logger"] == "capgov.request")
    assert access["message"] == "POST /costs/imports/ 302"
    assert access["request_id"] == "upload-7f3a"
    assert access["status"] == 302
    assert access["path"] == "/costs/imports/"
    assert set(access) >= {"time", "level", "logger", "message", "request_id", "duration_ms"}
    stored = next(line for line in lines if "stored" in line["message"])
    assert stored["logger"] == "costs.services"
    assert stored["request_id"] == "upload-7f3a"
    assert stored["task_name"] == IMPORT_TASK
    assert uuid.UUID(stored["task_id"])
    # Outside the request and its task, nothing is left behind.
    assert observability.request_id_get() is None
    assert observability.task_id_var.get() is None


def test_a_published_task_carries_the_request_id_in_its_headers():
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis at {REDIS_URL} is required in CI")
        pytest.skip(f"Redis at {REDIS_URL} is not reachable")
    queue = f"capgov-test-headers-{uuid.uuid4().hex[:8]}"
    token = observability.request_id_var.set("publish-5e1b")
    celery_app.conf.task_always_eager = False
    try:
        with celery_app.connection_for_write(REDIS_URL) as conn:
            approval_requests_expire.apply_async(queue=queue, connection=conn)
            inbox = conn.SimpleQueue(queue)
            try:
                message = inbox.get(timeout=5)
                message.ack()
            finally:
                inbox.clear()
                inbox.close()
    finally:
        celery_app.conf.task_always_eager = True
        observability.request_id_var.reset(token)
    assert message.headers[observability.TASK_HEADER] == "publish-5e1b"
    assert message.headers["task"] == "governance.tasks.approval_requests_expire"


def test_a_worker_restores_the_request_id_from_the_headers_and_forgets_it(db, json_lines):
    seen: dict[str, str | None] = {}

    def during(task_id=None, task=None, **_):
        seen["request_id"] = observability.request_id_get()
        seen["task_id"] = observability.task_id_var.get()

    from celery import signals

    signals.task_prerun.connect(during, weak=False)
    try:
        result = approval_requests_expire.apply(
            headers={observability.TASK_HEADER: "from-the-message"}
        )
    finally:
        signals.task_prerun.disconnect(during)
    assert seen == {"request_id": "from-the-message", "task_id": result.id}
    assert observability.request_id_get() is None
    assert observability.task_name_var.get() is None


def test_plain_lines_show_the_request_and_task():
    formatter = observability.PlainFormatter("%(levelname)s %(name)s %(message)s")
    record = logging.LogRecord("costs.services", logging.INFO, __file__, 1, "stored", None, None)
    record.request_id, record.task_name, record.task_id = "r1", IMPORT_TASK, "t1"
    assert formatter.format(record) == (
        f"INFO costs.services stored [request_id=r1 task_name={IMPORT_TASK} task_id=t1]"
    )
    bare = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    assert observability.PlainFormatter("%(message)s").format(bare) == "hello"


def test_json_lines_carry_extras_and_tracebacks():
    formatter = observability.JsonFormatter()
    try:
        raise ValueError("bad row 3")
    except ValueError:
        record = logging.LogRecord(
            "costs.ingest", logging.ERROR, __file__, 1, "import %s failed", (7,), sys.exc_info()
        )
    record.rows = 3
    entry = json.loads(formatter.format(record))
    assert entry["message"] == "import 7 failed"
    assert entry["level"] == "ERROR"
    assert entry["time"].endswith("+00:00")
    assert entry["rows"] == 3
    assert entry["request_id"] is None
    assert "ValueError: bad row 3" in entry["exception"]


def _log_format(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from governance import settings; print(settings.LOG_FORMAT)"],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
            "DJANGO_SECRET_KEY": "s" * 20 + uuid.uuid4().hex * 2,
            "DJANGO_ALLOWED_HOSTS": "capgov.example.com",
            **env,
        },
        capture_output=True,
        text=True,
        check=False,
    )


def test_logs_are_json_in_production_and_plain_in_development():
    assert _log_format(DJANGO_ENV="production").stdout.strip() == "json"
    assert _log_format(DJANGO_ENV="development").stdout.strip() == "plain"
    assert _log_format(DJANGO_ENV="production", DJANGO_LOG_FORMAT="plain").stdout.strip() == (
        "plain"
    )
    refused = _log_format(DJANGO_LOG_FORMAT="xml")
    assert refused.returncode != 0
    assert "DJANGO_LOG_FORMAT='xml': use json or plain." in refused.stderr
