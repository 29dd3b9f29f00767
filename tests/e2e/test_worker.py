"""An uploaded file is imported by a real Celery worker over Redis into PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from costs import services
from costs.models import BillingImport, ImportStatus
from tests.e2e.conftest import celery_worker
from tests.factories import focus_line, write_focus

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker(transactional_db, settings):
    with celery_worker({"DJANGO_MEDIA_ROOT": str(settings.MEDIA_ROOT)}) as process:
        yield process


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
