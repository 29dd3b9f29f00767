"""An ML engineer ships a version through the registry and the review board approves it.

register → version → benchmark upload → gate lists what is missing → submit → assessment
→ the board approves the assessment and the version → the owner deploys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.utils import timezone

from governance.choices import Role
from governance.models import User
from registry import services
from registry.models import CapacityPool, HardwarePrice, HardwareProfile, ModelVersion
from tests.factories import PASSWORD, Org, OrgFactory, UserFactory
from tests.registry.conftest import capgov_benchmark

pytestmark = pytest.mark.e2e


@dataclass
class Board:
    org: Org
    ines: User


@pytest.fixture
def shared_capacity(transactional_db) -> Board:
    """Research and Ads, a priced H100, the shared H100 pool and an approved protocol."""
    org = OrgFactory.build_org()
    ines = UserFactory(username="ines", roles=[Role.BOARD_INFRA])
    mark = UserFactory(username="mark", roles=[Role.BOARD_ML])
    h100 = HardwareProfile.objects.create(
        name="1 x H100 80GB", accelerator="NVIDIA H100 80GB", accelerator_count=1
    )
    HardwarePrice.objects.create(
        hardware_profile=h100,
        provider="aws",
        instance_type="ml.p5.xlarge",
        hourly_price=Decimal("4.10"),
        effective_from=timezone.now() - timezone.timedelta(days=365),
    )
    CapacityPool.objects.create(
        code="h100-shared",
        name="Shared H100 pool",
        provider="aws",
        hardware_profile=h100,
        accelerator_count=80,
    )
    protocol = services.protocol_create(
        by=ines,
        name="Online serving",
        workload={"input_tokens": {"distribution": "normal", "mean": 512, "stddev": 128}},
        concurrency_levels=[4, 8, 16],
        required_metrics=["requests_per_s", "latency_p95_ms"],
    )
    services.protocol_approve(protocol=protocol, by=mark, rationale="Matches production.")
    return Board(org=org, ines=ines)


def sign_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/registry/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Model registry").wait_for()


def sign_out(page) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in to Capgov").wait_for()


def test_engineer_ships_a_version_and_the_board_approves_it(
    page, live_server, shared_capacity, tmp_path
):
    result = tmp_path / "ranker-int8.json"
    result.write_bytes(capgov_benchmark())

    # rhea registers the model and its version through the forms.
    sign_in(page, live_server, "rhea")
    assert page.get_by_text("No models registered yet").is_visible()
    page.get_by_role("link", name="Register a model").first.click()
    page.get_by_label("Name", exact=True).fill("ranker")
    page.get_by_label("Business unit").select_option(label="RES — Research")
    page.get_by_label("Task").select_option(label="Ranking / recommendation")
    page.get_by_role("button", name="Register model").click()
    page.get_by_role("heading", name="ranker").wait_for()

    page.get_by_role("link", name="Add version").click()
    page.get_by_label("Version", exact=True).fill("2.1-int8")
    page.get_by_label("Artifact URI").fill("s3://models/ranker/2.1-int8/")
    page.get_by_label("Framework").fill("PyTorch")
    page.get_by_label("Precision").select_option(label="INT8")
    page.get_by_label("Serving runtime").fill("vLLM 0.8")
    page.get_by_label("Hardware profile").select_option(label="1 x H100 80GB")
    page.get_by_role("button", name="Register version").click()
    page.get_by_text("is registered as a draft").wait_for()
    version = ModelVersion.objects.get(model__name="ranker", version="2.1-int8")
    assert page.url.endswith(f"/registry/versions/{version.pk}/")

    # Uploads the benchmark; the page shows its points and the gate lists what is missing.
    page.get_by_label("Result file").set_input_files(str(result))
    page.get_by_label("Benchmark protocol").select_option(label="Online serving v1")
    page.get_by_role("button", name="Upload benchmark").click()
    page.get_by_text("ranker-int8.json imported").wait_for()
    assert page.get_by_role("cell", name="concurrency 8").is_visible()
    gate = page.locator("#gate")
    assert "Not ready to deploy" in gate.inner_text()
    assert "No capacity impact assessment has been filed." in gate.inner_text()
    assert "the review board must approve it" in gate.inner_text()

    page.get_by_role("button", name="Submit for review").click()
    page.get_by_text("now Submitted").wait_for()

    # Files the capacity impact assessment: 11 replicas, 32,923.00 USD a month.
    page.get_by_label("Peak traffic (req/s)").fill("100")
    page.get_by_label("Daily requests").fill("4000000")
    page.get_by_label("SLO metric").select_option(label="p95 latency")
    page.get_by_label("SLO threshold (ms)").fill("500")
    page.get_by_label("Headroom (%)").fill("30")
    page.get_by_role("button", name="File assessment").click()
    page.get_by_text("Assessment filed: 11 replicas, 11 accelerators").wait_for()
    assessments = page.locator("#assessments")
    assert assessments.locator("[data-field=replicas]").first.inner_text() == "11"
    assert assessments.locator("[data-field=monthly-cost]").first.inner_text() == "32,923.00 USD"
    assert "waiting for the review board" in page.locator("#gate").inner_text()
    sign_out(page)

    # ines, on the board, works the queue: approves the assessment, then the version.
    sign_in(page, live_server, "ines")
    page.get_by_role("link", name="Review queue").first.click()
    page.get_by_role("heading", name="Review queue").wait_for()
    queue = page.locator("table.queue")
    assert "ranker 2.1-int8" in queue.inner_text()
    assert "32,923.00 USD" in queue.inner_text()
    page.get_by_role("link", name="Decide").click()
    page.get_by_label("Approve", exact=True).check()
    page.get_by_label("Rationale").fill("11 H100s fit in the shared pool.")
    page.get_by_label("Alternatives considered").fill("FP16 on 19 replicas.")
    page.get_by_role("button", name="Record decision").click()
    page.get_by_text("The board approved the capacity assessment").wait_for()

    page.get_by_label("Rationale (required to approve or reject)").fill(
        "INT8 halves the GPUs at the same p95."
    )
    page.get_by_role("button", name="Approve version").click()
    page.get_by_text("now Approved").wait_for()
    assert "Ready to deploy" in page.locator("#gate").inner_text()
    sign_out(page)

    # rhea deploys; the history lists every step.
    sign_in(page, live_server, "rhea")
    page.goto(f"{live_server.url}/registry/versions/{version.pk}/")
    page.get_by_role("button", name="Deploy").click()
    page.get_by_text("now Deployed").wait_for()
    assert page.locator("h1 .state").inner_text() == "Deployed"
    history = page.locator("#history").inner_text()
    for step in (
        "Draft",
        "Draft → Submitted",
        "Submitted → Approved",
        "Approved → Deployed",
        "INT8 halves the GPUs at the same p95.",
    ):
        assert step in history
    assert "Registered." in history
    if os.environ.get("CAPGOV_SCREENSHOTS"):
        page.screenshot(path=os.environ["CAPGOV_SCREENSHOTS"] + "/version.png", full_page=True)
