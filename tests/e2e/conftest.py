"""Real parts for end-to-end flows: Debian's Chromium through Playwright, a Celery worker."""

from __future__ import annotations

import contextlib
import email
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVICES

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def missing(what: str) -> None:
    """Skip on a developer machine without the part; fail in CI, where it must be there."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required in CI (CAPGOV_REQUIRE_SERVICES=1)")
    pytest.skip(f"{what} is not available here")


@pytest.fixture(scope="session")
def chromium():
    if not os.path.exists(CHROMIUM):
        missing("Debian's chromium package")
    # Playwright's sync API runs an event loop in this thread; Django's ORM calls made by the
    # test itself (fixtures, assertions) are still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


@contextlib.contextmanager
def celery_worker(extra_env: dict[str, str] | None = None):
    """A real Celery worker on its own queues (default and bulk), over Redis, on the test's
    PostgreSQL database."""
    from django.db import connection
    from django.test import override_settings

    from governance.celery import app as celery_app

    broker = os.environ.get("CELERY_BROKER_URL")
    if not broker or connection.vendor != "postgresql":
        missing("PostgreSQL (DATABASE_URL) and Redis (CELERY_BROKER_URL)")
    db = connection.settings_dict
    queue = f"capgov-test-{os.getpid()}"
    bulk_queue = f"{queue}-bulk"
    env = {
        **os.environ,
        # The worker must see the test database, not the developer's.
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        # Tasks the worker enqueues itself go to these queues too.
        "CAPGOV_DEFAULT_QUEUE": queue,
        "CAPGOV_BULK_QUEUE": bulk_queue,
        **(extra_env or {}),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "governance",
            "worker",
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-Q",
            f"{queue},{bulk_queue}",
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_default_queue = queue
    # Imports and syncs are routed to the bulk queue (governance.celery.task_route).
    bulk_routing = override_settings(CAPGOV_BULK_QUEUE=bulk_queue)
    bulk_routing.enable()
    try:
        deadline = time.monotonic() + 30
        while not celery_app.control.ping(timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"Celery worker did not start:\n{output}")
        yield process
    finally:
        bulk_routing.disable()
        celery_app.conf.task_always_eager = True
        celery_app.conf.task_default_queue = "celery"
        process.terminate()
        process.wait(timeout=10)


class Inbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email_policy.default)
        )
        self.arrived.set()
        return "250 Message accepted for delivery"

    def wait_for(self, recipient: str, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages:
                if recipient in message["To"]:
                    return message
            self.arrived.wait(0.1)
            self.arrived.clear()
        pytest.fail(f"no mail for {recipient} arrived; got {[m['To'] for m in self.messages]}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp(settings):
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        missing("aiosmtpd")
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    yield inbox
    controller.stop()
