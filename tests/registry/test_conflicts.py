"""Capacity conflicts: raised, shown in the meeting view, escalated, decided."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from governance.choices import Role
from governance.exceptions import ConflictError, PermissionDeniedError
from governance.models import BoardMembership, ReviewBoard
from governance.services.conflicts import (
    conflict_raise,
    conflict_resolve,
    conflict_vote,
    conflicts_escalate,
)
from governance.services.organisation import business_unit_owner_set
from tests.factories import PASSWORD, UserFactory
from tests.registry.conftest import assess, upload


@pytest.fixture
def conflict(registry, django_capture_on_commit_callbacks):
    business_unit_owner_set(business_unit=registry.org.research, owner=registry.org.researcher)
    with django_capture_on_commit_callbacks(execute=True):
        return conflict_raise(
            title="Both want the H100 pool in December",
            description="Research's launch and Ads' retraining both need 60 GPUs.",
            business_units=[registry.org.research, registry.org.ads],
            subject=registry.pool,
            by=registry.org.researcher,
        )


def test_conflict_raise_tells_the_board(registry, conflict):
    [message] = mail.outbox
    assert set(message.to) == {registry.board_infra.email, registry.board_ml.email}
    assert "Both want the H100 pool" in message.subject
    assert message.alternatives[0][1] == "text/html"
    assert conflict.get_absolute_url() in message.body


def test_conflict_needs_two_units_and_an_involved_person(registry):
    with pytest.raises(Exception, match="at least two"):
        conflict_raise(
            title="x",
            description="y",
            business_units=[registry.org.research],
            by=registry.board_ml,
        )
    with pytest.raises(PermissionDeniedError):
        conflict_raise(
            title="x",
            description="y",
            business_units=[registry.org.research, registry.org.ads],
            by=registry.org.finance,
        )


def test_conflict_escalates_once_per_level_then_a_platform_admin_decides(
    registry, conflict, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    with (
        time_machine.travel(timezone.now() + timedelta(hours=49)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert conflicts_escalate() == 1
        assert conflicts_escalate() == 0
    [owners] = mail.outbox
    assert owners.to == [registry.org.researcher.email]
    conflict.refresh_from_db()
    assert (conflict.status, conflict.escalation_level) == ("escalated", 1)
    with (
        time_machine.travel(timezone.now() + timedelta(hours=98)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert conflicts_escalate() == 1
    assert mail.outbox[-1].to == [registry.org.admin.email]
    with pytest.raises(PermissionDeniedError):
        conflict_resolve(conflict=conflict, by=registry.org.finance, resolution="x")
    outcome = conflict_resolve(
        conflict=conflict, by=registry.org.admin, resolution="Research until the 15th."
    )
    conflict.refresh_from_db()
    assert conflict.status == "resolved"
    assert conflict.decision == outcome.decision
    assert outcome.decision.kind == "capacity_conflict"
    with pytest.raises(ConflictError):
        conflict_resolve(conflict=conflict, by=registry.board_ml, resolution="again")


def test_board_member_resolves_without_a_configured_board(registry, conflict):
    outcome = conflict_resolve(conflict=conflict, by=registry.board_ml, resolution="Split 40/20")
    assert outcome.decision.decided_by == registry.board_ml


def test_meeting_view_lists_conflicts_with_pool_demand(registry, conflict, client):
    assess(registry, upload(registry))
    client.login(username=registry.board_infra.username, password=PASSWORD)
    page = client.get(reverse("registry:review-queue")).content.decode()
    assert "Both want the H100 pool in December" in page
    assert "11 of 80 accelerators asked" in page


def test_conflict_page_scoped_and_resolvable(registry, conflict, client):
    url = conflict.get_absolute_url()
    client.login(username=registry.org.finance.username, password=PASSWORD)
    assert client.get(url).status_code == 200
    assert "Record the resolution" not in client.get(url).content.decode()
    client.login(username=registry.board_ml.username, password=PASSWORD)
    response = client.post(
        reverse("registry:conflict-resolve", args=[conflict.pk]),
        {"resolution": "Research first, Ads from the 15th."},
    )
    assert response.status_code == 302
    conflict.refresh_from_db()
    assert conflict.status == "resolved"


def test_conflict_create_page(registry, client):
    client.login(username=registry.org.researcher.username, password=PASSWORD)
    response = client.post(
        reverse("registry:conflict-create"),
        {
            "title": "GPU crunch",
            "pool": registry.pool.pk,
            "business_units": [registry.org.research.pk, registry.org.ads.pk],
            "description": "Both need it.",
        },
    )
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "GPU crunch" in page
    assert "the review board" in page


def test_review_queue_with_conflicts_has_no_n_plus_one(
    registry, client, django_assert_max_num_queries
):
    for n in range(4):
        conflict_raise(
            title=f"Conflict {n}",
            description="Both need it.",
            business_units=[registry.org.research, registry.org.ads],
            subject=registry.pool,
            by=registry.board_ml,
        )
    from governance.models import ApprovalPolicy, PolicyStep
    from governance.services import approval_request_create, approval_request_submit

    policy = ApprovalPolicy.objects.create(name="Costly jobs", min_cost=Decimal(10000))
    PolicyStep.objects.create(policy=policy, order=1, role=Role.APPROVER)
    for n in range(3):
        request = approval_request_create(
            by=registry.org.researcher,
            kind="fine_tuning",
            title=f"Fine-tune {n}",
            business_unit=registry.org.research,
            estimated_cost=Decimal(23000),
            accelerator="H100",
            accelerator_count=64,
            duration_hours=Decimal(72),
        )
        approval_request_submit(request=request, by=registry.org.researcher)
    client.login(username=registry.board_infra.username, password=PASSWORD)
    with django_assert_max_num_queries(22):
        page = client.get(reverse("registry:review-queue")).content.decode()
    assert "Fine-tune 2" in page
    assert "64 \N{MULTIPLICATION SIGN} H100 for 72 h" in page


def test_nobody_from_a_unit_in_the_conflict_decides_it(registry, conflict):
    insider = UserFactory(roles=[Role.BOARD_ML], units=[registry.org.research])
    with pytest.raises(PermissionDeniedError, match="others decide it"):
        conflict_resolve(conflict=conflict, by=insider, resolution="Research gets all of it")


def test_with_a_board_a_proposal_is_voted_and_a_rejected_one_makes_room(registry, conflict):
    board = ReviewBoard.objects.create(name="Board", quorum_rule="n_of_m", quorum_n=2)
    third = UserFactory(roles=[Role.BOARD_PRODUCT])
    for user, function in (
        (registry.board_infra, "infra"),
        (registry.board_ml, "ml"),
        (third, "product"),
    ):
        BoardMembership.objects.create(board=board, user=user, function=function)
    first = conflict_resolve(
        conflict=conflict, by=registry.board_infra, resolution="Research first"
    )
    assert first.decision is None
    with pytest.raises(ConflictError, match="vote on it"):
        conflict_resolve(conflict=conflict, by=registry.board_ml, resolution="Ads first")
    conflict_vote(conflict=conflict, by=registry.board_ml, approve=False, rationale="Ads launches")
    turned_down = conflict_vote(conflict=conflict, by=third, approve=False, rationale="Agree")
    assert turned_down.decision.outcome == "rejected"
    conflict.refresh_from_db()
    assert (conflict.status, conflict.proposal) == ("open", "")
    conflict_resolve(conflict=conflict, by=registry.board_ml, resolution="Ads first")
    adopted = conflict_vote(conflict=conflict, by=third, approve=True, rationale="Fair")
    conflict.refresh_from_db()
    assert conflict.status == "resolved"
    assert adopted.decision.evidence["proposal"] == "Ads first"


def test_on_a_sitting_board_a_member_from_an_involved_unit_still_votes(registry, conflict):
    insider = UserFactory(roles=[Role.BOARD_ML], units=[registry.org.research])
    board = ReviewBoard.objects.create(name="Board", quorum_rule="n_of_m", quorum_n=2)
    BoardMembership.objects.create(board=board, user=insider, function="ml")
    BoardMembership.objects.create(board=board, user=registry.board_infra, function="infra")
    conflict_resolve(conflict=conflict, by=insider, resolution="Split 40/40")
    outcome = conflict_vote(
        conflict=conflict, by=registry.board_infra, approve=True, rationale="Ok"
    )
    assert outcome.decision is not None
