"""`make run-prod` for real: deploy/run_prod.py migrates, collects the static files, starts
gunicorn, a worker per queue and beat on the test's PostgreSQL and Redis, serves a page,
imports an uploaded file on the bulk worker (its log lines carrying the upload's request id)
and stops everything on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from governance.celery import app as celery_app
from governance.choices import Role
from tests.e2e.conftest import missing
from tests.factories import PASSWORD, UserFactory, focus_line, write_focus

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 240  # a loaded 2-core machine; it starts in well under a minute when idle


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Stack:
    def __init__(self, process: subprocess.Popen, base: str, log: Path, queues: tuple[str, str]):
        self.process, self.base, self.log, self.queues = process, base, log, queues
        self.session = requests.Session()

    def lines(self) -> list[dict]:
        """The JSON log lines written so far (Celery's banners are plain text)."""
        found = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        return found

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        response = self.session.request(
            method, self.base + path, timeout=30, allow_redirects=False, **kwargs
        )
        # The cookies are Secure (production); this test speaks plain HTTP to 127.0.0.1.
        for cookie in response.cookies:
            self.session.cookies.set(cookie.name, cookie.value)
        return response

    def csrf_token(self, path: str) -> str:
        page = self.request("GET", path)
        assert page.status_code == 200, page.text
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)


@pytest.fixture
def stack(transactional_db, tmp_path):
    from django.db import connection

    broker = os.environ.get("CELERY_BROKER_URL")
    if not broker or connection.vendor != "postgresql":
        missing("PostgreSQL (DATABASE_URL) and Redis (CELERY_BROKER_URL)")
    db = connection.settings_dict
    port = free_port()
    tag = uuid.uuid4().hex[:8]
    queues = (f"capgov-runprod-{tag}", f"capgov-runprod-{tag}-bulk")
    # WhiteNoise compresses with brotli when it is installed (here it comes with a dev tool):
    # minutes of CPU on 2 cores. Gzip proves the same serving path in seconds.
    shim = tmp_path / "no-brotli"
    shim.mkdir()
    (shim / "brotli.py").write_text('raise ImportError("gzip is enough for this test")\n')
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CAPGOV_"))},
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": broker,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "CAPGOV_VAR_DIR": str(tmp_path / "var"),
        "CAPGOV_DEFAULT_QUEUE": queues[0],
        "CAPGOV_BULK_QUEUE": queues[1],
        "GUNICORN_WORKERS": "1",
        "GUNICORN_THREADS": "2",
        "CAPGOV_WORKER_CONCURRENCY": "1",
        "PYTHONPATH": os.pathsep.join([str(shim), str(ROOT)]),
    }
    log = tmp_path / "stack.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "deploy/run_prod.py", "--port", str(port), "--stop-timeout", "30"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = time.monotonic()
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"run_prod.py exited with {process.returncode}:\n{log.read_text()}")
            if time.monotonic() - started > START_SECONDS:
                pytest.fail(f"the stack did not become ready:\n{log.read_text()[-5000:]}")
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10).ok:
                    break
            except requests.RequestException:  # not listening yet, or still loading Django
                pass
            time.sleep(0.5)
        print(f"run_prod.py ready in {time.monotonic() - started:.1f} s")
        yield Stack(process, f"http://127.0.0.1:{port}", log, queues)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_run_prod_serves_imports_on_the_bulk_worker_and_stops(stack, tmp_path):
    fiona = UserFactory(username="fiona", roles=[Role.FINANCE])
    # The tests hash with MD5 for speed; the stack knows only Django's default hashers.
    fiona.password = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    fiona.save(update_fields=["password"])

    ready = stack.request("GET", "/readyz").json()
    assert ready == {"status": "ok", "database": "ok", "broker": "ok", "migrations": "ok"}
    login = stack.request("GET", "/login/")
    assert login.status_code == 200
    assert "script-src 'self'" in login.headers["Content-Security-Policy"]
    # Collected, hashed and compressed static files, served by WhiteNoise.
    css = re.search(r'href="(/static/css/capgov\.[0-9a-f]{12}\.css)"', login.text).group(1)
    served = stack.request("GET", css, headers={"Accept-Encoding": "gzip"})
    assert served.status_code == 200
    assert served.headers["Content-Encoding"] == "gzip"
    assert "immutable" in served.headers["Cache-Control"]

    token = stack.csrf_token("/login/")
    signed_in = stack.request(
        "POST", "/login/", data={"username": "fiona", "password": PASSWORD, **csrf(token)}
    )
    assert signed_in.status_code == 302, signed_in.text
    path = write_focus(tmp_path / "oct.csv", [focus_line(cost="42.42"), focus_line(cost="0.58")])
    upload = stack.request(
        "POST",
        "/costs/imports/",
        data={"format": "auto", **csrf(stack.csrf_token("/costs/imports/"))},
        files={"file": ("oct.csv", path.read_bytes(), "text/csv")},
        headers={"X-Request-ID": "run-prod-upload-1"},
    )
    assert upload.status_code == 302, upload.text
    assert upload.headers["X-Request-ID"] == "run-prod-upload-1"
    status_url = upload.headers["Location"] + "status/"
    deadline = time.monotonic() + 60
    while not (status := stack.request("GET", status_url).json())["finished"]:
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    assert status["status"] == "succeeded", status

    # The import ran on the bulk worker, and its log lines carry the upload's request id.
    bulk_node = f"bulk.{stack.process.pid}@{socket.gethostname()}"
    stats = celery_app.control.inspect(destination=[bulk_node], timeout=5).stats()
    ran = stats[bulk_node]["total"]
    assert ran["costs.tasks.billing_import_run_task"] == 1
    # After it, the month's cost sums are warmed on the same queue; nothing else runs there.
    assert set(ran) <= {"costs.tasks.billing_import_run_task", "costs.tasks.cost_cache_warm_task"}
    lines = stack.lines()
    task_lines = [line for line in lines if line["request_id"] == "run-prod-upload-1"]
    assert {line["logger"] for line in task_lines} >= {
        "capgov.request",
        "costs.services",
        "celery.app.trace",
    }
    stored = next(line for line in task_lines if line["logger"] == "costs.services")
    assert stored["task_name"] == "costs.tasks.billing_import_run_task"
    assert stored["task_id"]
    assert {"time", "level", "logger", "message"} <= set(stored)

    # Ctrl-C: every process stops, and the supervisor says so.
    stack.process.send_signal(signal.SIGINT)
    assert stack.process.wait(timeout=60) == 0
    output = stack.log.read_text()
    assert "run-prod: stopped" in output
    with pytest.raises(requests.ConnectionError):
        requests.get(stack.base + "/healthz", timeout=2)


def csrf(token: str) -> dict[str, str]:
    return {"csrfmiddlewaretoken": token}
