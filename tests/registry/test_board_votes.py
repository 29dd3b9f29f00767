"""The review board decides by quorum; registry approvals go through its votes."""

import pytest

from governance import quorum
from governance.choices import Role
from governance.exceptions import ConflictError, PermissionDeniedError
from governance.models import BoardMembership, ReviewBoard
from registry import services
from tests.factories import UserFactory
from tests.registry.conftest import assess, upload


def test_quorum_one_of_each_waits_for_the_missing_function():
    state = quorum.quorum_state(
        rule="one_of_each",
        n=0,
        votes=[quorum.Vote("ines", "infra", True), quorum.Vote("mark", "ml", True)],
    )
    assert (state.met, state.outcome, state.waiting_for) == (False, None, "product")
    assert state.summary() == "infra ✓, ML ✓, product pending"


def test_quorum_n_of_m_majority_decides_and_a_tie_waits():
    votes = [quorum.Vote("a", "infra", True), quorum.Vote("b", "ml", False)]
    tied = quorum.quorum_state(rule="n_of_m", n=2, votes=votes)
    assert (tied.met, tied.outcome) == (True, None)
    assert "tied" in tied.waiting_for
    three = quorum.quorum_state(rule="n_of_m", n=2, votes=[*votes, quorum.Vote("c", "ml", False)])
    assert three.outcome == "rejected"


@pytest.fixture
def board(registry):
    board = ReviewBoard.objects.create(name="Capacity review board", quorum_rule="one_of_each")
    priya = UserFactory(username="priya", roles=[Role.BOARD_PRODUCT])
    for user, function in (
        (registry.board_infra, "infra"),
        (registry.board_ml, "ml"),
        (priya, "product"),
    ):
        BoardMembership.objects.create(board=board, user=user, function=function)
    registry.priya = priya
    return board


def test_assessment_is_decided_when_the_votes_make_quorum(registry, board):
    assessment = assess(registry, upload(registry))
    first = services.assessment_decide(
        assessment=assessment, by=registry.board_infra, approve=True, rationale="Fits"
    )
    assert first.decision is None
    assert first.quorum.summary() == "infra ✓, ML pending, product pending"
    services.assessment_decide(
        assessment=assessment, by=registry.board_ml, approve=False, rationale="Use INT4"
    )
    assessment.refresh_from_db()
    assert assessment.status == "submitted"
    last = services.assessment_decide(
        assessment=assessment, by=registry.priya, approve=True, rationale="Launch needs it"
    )
    assessment.refresh_from_db()
    assert assessment.status == "approved"
    decision = last.decision
    assert decision.evidence["quorum"] == "infra ✓, ML ✓, product ✓"
    assert decision.evidence["votes"] == {"for": 2, "against": 1}
    assert "Use INT4" in decision.rationale
    assert decision.votes.count() == 3


def test_a_member_votes_once(registry, board):
    assessment = assess(registry, upload(registry))
    services.assessment_decide(
        assessment=assessment, by=registry.board_infra, approve=True, rationale="Fits"
    )
    with pytest.raises(ConflictError, match="already voted"):
        services.assessment_decide(
            assessment=assessment, by=registry.board_infra, approve=True, rationale="Again"
        )


def test_with_a_board_only_its_members_vote(registry, board):
    outsider = UserFactory(roles=[Role.BOARD_ML])
    assessment = assess(registry, upload(registry))
    with pytest.raises(PermissionDeniedError, match="do not sit"):
        services.assessment_decide(assessment=assessment, by=outsider, approve=True, rationale="x")


def test_version_review_moves_under_review_until_the_board_decides(registry, board):
    version = registry.version
    services.version_transition(version=version, action="submit", by=registry.org.researcher)
    services.version_transition(
        version=version, action="approve", by=registry.board_infra, comment="Good"
    )
    assert version.state == "under_review"
    services.version_transition(
        version=version, action="reject", by=registry.board_ml, comment="Too costly"
    )
    assert version.state == "under_review"
    services.version_transition(
        version=version, action="reject", by=registry.priya, comment="Not now"
    )
    assert version.state == "rejected"
    history = list(version.transitions.values_list("to_state", flat=True))
    assert history == ["draft", "submitted", "under_review", "rejected"]


def test_a_resubmitted_version_is_reviewed_again(registry, board):
    version = registry.version
    services.version_transition(version=version, action="submit", by=registry.org.researcher)
    for member in (registry.board_infra, registry.board_ml, registry.priya):
        services.version_transition(version=version, action="reject", by=member, comment="No")
    assert version.state == "rejected"
    services.version_transition(version=version, action="revise", by=registry.org.researcher)
    services.version_transition(version=version, action="submit", by=registry.org.researcher)
    for member in (registry.board_infra, registry.board_ml, registry.priya):
        services.version_transition(version=version, action="approve", by=member, comment="Now yes")
    assert version.state == "approved"


def test_the_version_history_shows_every_members_vote(registry, board, client):
    from tests.factories import PASSWORD

    version = registry.version
    services.version_transition(version=version, action="submit", by=registry.org.researcher)
    for member, why in (
        (registry.board_infra, "Fits"),
        (registry.board_ml, "Good"),
        (registry.priya, "Go"),
    ):
        services.version_transition(version=version, action="approve", by=member, comment=why)
    client.login(username=registry.org.researcher.username, password=PASSWORD)
    history = client.get(version.get_absolute_url()).content.decode().split('id="history"')[1]
    for member in (registry.board_infra, registry.board_ml, registry.priya):
        assert str(member) in history
