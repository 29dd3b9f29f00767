"""An uploaded file is imported by a real Celery worker over Redis into PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from costs import services
from costs.models import BillingImport, ImportStatus
from governance.celery import app as celery_app
from tests.e2e.conftest import missing
from tests.factories import focus_line, write_focus

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker(transactional_db, settings):
    broker = os.environ.get("CELERY_BROKER_URL")
    if not broker or connection.vendor != "postgresql":
        missing("PostgreSQL (DATABASE_URL) and Redis (CELERY_BROKER_URL)")
    db = connection.settings_dict
    env = {
        **os.environ,
        # The worker must see the test database, not the developer's.
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DJANGO_MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    queue = f"capgov-test-{os.getpid()}"
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
            queue,
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_default_queue = queue
    try:
        deadline = time.monotonic() + 30
        while not celery_app.control.ping(timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"Celery worker did not start:\n{output}")
        yield process
    finally:
        celery_app.conf.task_always_eager = True
        celery_app.conf.task_default_queue = "celery"
        process.terminate()
        process.wait(timeout=10)


def test_upload_is_imported_by_the_worker(worker, tmp_path):
    from tests.factories import OrgFactory

    org = OrgFactory.build_org()
    path = write_focus(tmp_path / "oct.csv", [focus_line(cost="42.42"), focus_line(cost="0.58")])
    upload = SimpleUploadedFile("oct.csv", path.read_bytes(), content_type="text/csv")
    record = services.billing_import_create(uploaded_file=upload, by=org.finance)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        record.refresh_from_db()
        if record.is_finished:
            break
        time.sleep(0.2)
    assert record.status == ImportStatus.SUCCEEDED, record.error
    assert record.billed_totals == {"USD": "43.000000000000000000"}
    assert BillingImport.objects.count() == 1
