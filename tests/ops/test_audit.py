"""The audit log: each covered action leaves an entry naming who and from where; the page, its
CSV export and the API show them to platform admins, finance and board members only."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal as D

import pytest
from auditlog.context import set_actor
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from costs.models import AllocationRule, BillingImport, Budget
from governance import services
from governance.audit import audit_record, client_address
from governance.choices import Role
from governance.models import ApiToken, ApprovalPolicy, AuditEntry, DeploymentFreeze
from governance.tokens import api_token_create
from registry.models import RetirementPolicy
from tests.factories import PASSWORD, UserFactory, focus_line, write_focus
from tests.governance.test_approvals import approvals_org, policy_make, request_make

# The retirement world (an idle endpoint with an open case) and its fixtures.
from tests.registry.test_retirement_views import clock, committed, world  # noqa: F401

NOW = dt.datetime(2026, 10, 5, 9, 0, tzinfo=dt.UTC)
IP = "203.0.113.7"
AUDIT = "/audit/"


def browser(user, ip: str = IP) -> Client:
    client = Client(REMOTE_ADDR=ip)
    assert client.login(username=user.username, password=PASSWORD)
    return client


def api(user, ip: str = IP) -> APIClient:
    client = APIClient(REMOTE_ADDR=ip)
    _, key = api_token_create(user=user, name="audit tests", scope="write", days=30, by=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def entry(kind: str) -> AuditEntry:
    return AuditEntry.objects.select_related("actor").get(kind=kind)


def by_and_from(kind: str) -> tuple[str | None, str | None]:
    found = entry(kind)
    return (found.actor.username if found.actor else None), found.remote_addr


@pytest.fixture
def people(db, time_machine):
    time_machine.move_to(NOW, tick=False)
    return approvals_org()


# --- where from --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hops", "forwarded", "expected"),
    [
        (0, "198.51.100.1", "10.0.0.5"),  # no proxy trusted: the header is anyone's to write
        (1, "198.51.100.1", "198.51.100.1"),
        (1, "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # the client wrote the first entry
        (2, "6.6.6.6, 198.51.100.1, 10.0.0.9", "198.51.100.1"),
        (1, "not-an-address", "10.0.0.5"),
        (1, "", "10.0.0.5"),
        (1, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_address_trusts_only_the_configured_proxies(settings, hops, forwarded, expected):
    settings.CAPGOV_TRUSTED_PROXIES = hops
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.5", **headers)
    assert client_address(request) == expected


def test_behind_a_proxy_the_entry_has_the_clients_address(people, settings):
    settings.CAPGOV_TRUSTED_PROXIES = 1
    client = browser(people.pat, ip="10.0.0.2")
    response = client.post(
        "/account/tokens/",
        {"name": "Proxy test", "scope": "read", "days": "5"},
        HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.23",
    )
    assert response.status_code == 200
    assert by_and_from("governance.apitoken.created") == ("pat", "198.51.100.23")


# --- each covered action -----------------------------------------------------------------------


def test_a_billing_upload_is_recorded(people, tmp_path):
    path = write_focus(tmp_path / "october.csv", [focus_line(cost="4.00")])
    with path.open("rb") as fh:
        response = browser(people.fiona).post(
            "/costs/imports/", {"file": fh, "format": "auto"}, follow=False
        )
    assert response.status_code == 302
    billing_import = BillingImport.objects.get()
    found = entry("costs.billingimport.created")
    assert (found.actor, found.remote_addr, found.object_pk) == (
        people.fiona,
        IP,
        str(billing_import.pk),
    )
    assert found.summary == f"Created billing import “{billing_import}”"
    assert found.changes["file_name"] == [None, "october.csv"]


def test_allocation_rule_changes_are_recorded_with_the_token_owner(people):
    client = api(people.fiona)
    created = client.post(
        "/api/v1/allocation-rules/",
        {"business_unit": "RES", "tag_key": "team", "tag_values": ["research"], "priority": 10},
        format="json",
    )
    assert created.status_code == 201, created.json()
    rule = AllocationRule.objects.get()
    changed = client.patch(f"/api/v1/allocation-rules/{rule.pk}/", {"priority": 20}, format="json")
    assert changed.status_code == 200
    assert client.delete(f"/api/v1/allocation-rules/{rule.pk}/").status_code == 204
    for kind in ("created", "updated", "deleted"):
        assert by_and_from(f"costs.allocationrule.{kind}") == ("fiona", IP)
    updated = entry("costs.allocationrule.updated")
    assert "priority 10 → 20" in updated.summary
    assert updated.business_unit == people.research


def test_votes_decisions_and_request_outcomes_are_recorded(
    people, django_capture_on_commit_callbacks
):
    policy_make(steps=((Role.APPROVER, 1, 24),))
    job = request_make(people)
    with django_capture_on_commit_callbacks(execute=True):
        services.approval_request_submit(request=job, by=people.rhea)
    step = job.steps.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = browser(people.alex).post(
            f"/approvals/{job.pk}/vote/",
            {"step": step.pk, "decision": "approve", "comment": "Within the quarter's plan."},
        )
    assert response.status_code == 302
    vote = entry("governance.approvalvote.approved")
    assert (vote.actor, vote.remote_addr, vote.business_unit) == (people.alex, IP, people.research)
    assert vote.summary == (
        "Alex Chen approved step 1 of “Fine-tune ranker-7b on October clicks” (via page): "
        "Within the quarter's plan."
    )
    assert by_and_from("governance.decision.approved") == ("alex", IP)
    assert by_and_from("governance.approvalrequest.approved") == ("alex", IP)
    assert entry("governance.approvalrequest.approved").summary.count("status pending → approved")


def test_a_freeze_set_in_the_admin_and_lifted_on_its_page_is_recorded(people):
    people.pat.is_staff = True
    people.pat.save(update_fields=["is_staff"])
    client = browser(people.pat)
    response = client.post(
        "/admin/governance/deploymentfreeze/add/",
        {"business_unit": people.ads.pk, "reason": "Q4 overspend"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    freeze = DeploymentFreeze.objects.get()
    assert by_and_from("governance.deploymentfreeze.set") == ("pat", IP)
    assert entry("governance.deploymentfreeze.set").business_unit == people.ads
    response = client.post(f"/freezes/{freeze.pk}/lift/", {"reason": "Back on plan."})
    assert response.status_code == 302
    lifted = entry("governance.deploymentfreeze.lifted")
    assert (lifted.actor, lifted.remote_addr) == (people.pat, IP)
    assert lifted.summary == "Lifted the deployment freeze on ADS: Back on plan."


def test_publishing_and_closing_statements_is_recorded(abc):
    finance = abc["finance"]
    client = api(finance)
    assert client.post("/api/v1/statements/2026-10/publish/").status_code == 200
    assert client.post("/api/v1/statements/2026-10/close/").status_code == 200
    assert by_and_from("costs.chargebackperiod.published") == ("fin", IP)
    assert by_and_from("costs.chargebackperiod.closed") == ("fin", IP)
    published = entry("costs.chargebackperiod.published")
    assert published.summary.startswith(
        "Updated chargeback period “Chargeback 2026-10 (published)”: status draft → published"
    )


def test_retirement_actions_are_recorded(world):  # noqa: F811 - the imported fixture
    rhea = browser(world.org.researcher)
    response = rhea.post(
        f"/registry/retirement/cases/{world.case.pk}/keep/",
        {"reason": "Needed for the December re-training.", "until": "2026-12-01"},
    )
    assert response.status_code == 302
    assert by_and_from("registry.retirementcase.kept") == ("rhea", IP)
    assert entry("registry.retirementcase.kept").business_unit == world.org.research
    assert by_and_from("registry.retirementexemption.created") == ("rhea", IP)
    step = AuditEntry.objects.filter(kind="registry.retirementstep.created", actor__isnull=False)
    assert [(e.actor.username, e.remote_addr) for e in step] == [("rhea", IP)]
    assert step.get().business_unit == world.org.research


def test_api_tokens_made_and_revoked_on_the_page_are_recorded(people):
    client = browser(people.rhea)
    client.post("/account/tokens/", {"name": "Notebook", "scope": "read", "days": "7"})
    token = ApiToken.objects.get()
    client.post(f"/account/tokens/{token.pk}/revoke/")
    created = entry("governance.apitoken.created")
    assert (created.actor, created.remote_addr) == (people.rhea, IP)
    assert created.summary == (
        f"Issued API token “Notebook” ({token.prefix}…, read scope) to rhea; it expires "
        "2026-10-12 09:00 UTC"
    )
    assert token.key_hash not in str(created.changes)
    assert by_and_from("governance.apitoken.revoked") == ("rhea", IP)


def test_budgets_are_recorded(people):
    client = api(people.fiona)
    response = client.post(
        "/api/v1/budgets/",
        {"name": "LLM", "business_unit": "RES", "amount": "300", "currency": "USD"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    budget = Budget.objects.get()
    client.patch(f"/api/v1/budgets/{budget.pk}/", {"amount": "450"}, format="json")
    assert by_and_from("costs.budget.created") == ("fiona", IP)
    assert by_and_from("costs.budget.updated") == ("fiona", IP)
    assert "amount 300.0000 → 450" in entry("costs.budget.updated").summary


def test_policies_are_recorded(people):
    # Policies are edited in the admin; the admin's requests run in this same context.
    with set_actor(people.pat, remote_addr=IP):
        policy = policy_make("Large GPU jobs", steps=((Role.APPROVER, 1, 24),))
        policy.business_units.set([people.research])
        RetirementPolicy.objects.create(name="Idle endpoints", grace_days=7)
    assert by_and_from("governance.approvalpolicy.created") == ("pat", IP)
    assert by_and_from("governance.policystep.created") == ("pat", IP)
    assert by_and_from("registry.retirementpolicy.created") == ("pat", IP)
    m2m = AuditEntry.objects.get(
        kind="governance.approvalpolicy.updated", content_type__model="approvalpolicy"
    )
    assert m2m.summary == (
        f"Updated approval policy “Large GPU jobs”: business units added: {people.research}"
    )
    assert ApprovalPolicy.objects.get() == policy


def test_what_capgov_does_on_its_own_has_no_actor(people):
    freeze = services.freeze_start(business_unit=people.ads, reason="Budget breach", by=None)
    found = entry("governance.deploymentfreeze.set")
    assert (found.actor, found.remote_addr, found.object_pk) == (None, None, str(freeze.pk))


# --- reading the log -------------------------------------------------------------------------


@pytest.fixture
def logged(people):
    """Pat's freeze (and its decision) three days ago, Fiona's note yesterday; Bo sits on
    the ML board."""
    board = UserFactory(username="bo", roles=[Role.BOARD_ML])
    with set_actor(people.pat, remote_addr="198.51.100.1"):
        services.freeze_start(business_unit=people.ads, reason="Q4 spend", by=people.pat)
    with set_actor(people.fiona, remote_addr="198.51.100.2"):
        audit_record(
            kind="governance.test.note",
            summary='=HYPERLINK("http://evil")',
            subject=people.research,
            actor=people.fiona,
        )
    AuditEntry.objects.exclude(actor__in=[people.pat, people.fiona]).delete()  # the set-up's
    AuditEntry.objects.filter(actor=people.pat).update(timestamp=NOW - dt.timedelta(days=3))
    AuditEntry.objects.filter(actor=people.fiona).update(timestamp=NOW - dt.timedelta(days=1))
    return board


@pytest.mark.parametrize(
    ("who", "status"),
    [("pat", 200), ("fiona", 200), ("bo", 200), ("rhea", 403), ("alex", 403)],
)
def test_the_audit_page_is_for_admins_finance_and_the_board(people, logged, who, status):
    from governance.models import User

    user = User.objects.get(username=who)
    assert browser(user).get(AUDIT).status_code == status
    assert browser(user).get(f"{AUDIT}export/").status_code == status
    assert api(user).get("/api/v1/audit/").status_code == status


def test_the_audit_page_needs_a_sign_in(people):
    assert Client().get(AUDIT).status_code == 302
    assert APIClient().get("/api/v1/audit/").status_code in {401, 403}


def test_the_audit_page_shows_who_what_when_and_where(people, logged):
    page = browser(people.fiona).get(AUDIT).content.decode()
    assert "Froze deployments in ADS (A platform admin): Q4 spend" in page
    assert "198.51.100.1" in page
    assert "governance.deploymentfreeze.set" in page


@pytest.mark.parametrize(
    ("query", "kinds"),
    [
        ({"actor": "pat"}, {"governance.deploymentfreeze.set", "governance.decision.approved"}),
        ({"actor": "FIONA"}, {"governance.test.note"}),
        ({"kind": "governance.deploymentfreeze"}, {"governance.deploymentfreeze.set"}),
        ({"model": "governance.deploymentfreeze"}, {"governance.deploymentfreeze.set"}),
        ({"business_unit": "res"}, {"governance.test.note"}),
        ({"since": "2026-10-04"}, {"governance.test.note"}),
        (
            {"until": "2026-10-02"},
            {"governance.deploymentfreeze.set", "governance.decision.approved"},
        ),
    ],
)
def test_the_audit_filters(people, logged, query, kinds):
    found = api(people.pat).get("/api/v1/audit/", query).json()["results"]
    assert {e["kind"] for e in found} - {"governance.apitoken.created"} == kinds


def test_a_filter_that_cannot_apply_shows_nothing(people, logged):
    response = browser(people.pat).get(AUDIT, {"since": "not-a-date"})
    assert response.status_code == 200
    assert "No entries match these filters" in response.content.decode()


def test_the_api_entry_has_who_what_when_where(people, logged):
    (found,) = (
        api(people.pat)
        .get("/api/v1/audit/", {"kind": "governance.deploymentfreeze"})
        .json()["results"]
    )
    assert found["actor"] == "pat"
    assert found["ip"] == "198.51.100.1"
    assert found["model"] == "governance.deploymentfreeze"
    assert found["business_unit"] == "ADS"
    assert found["action"] == "create"
    assert found["timestamp"] == "2026-10-02T09:00:00Z"


def test_the_csv_export_streams_every_matching_entry_and_is_itself_recorded(people, logged):
    response = browser(people.fiona).get(f"{AUDIT}export/", {"actor": "fiona"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"].startswith('attachment; filename="capgov-audit-')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["kind"] for r in rows] == ["governance.test.note"]
    (row,) = rows
    assert (row["actor"], row["ip"], row["business_unit"]) == ("fiona", "198.51.100.2", "RES")
    assert row["summary"] == '\'=HYPERLINK("http://evil")', "a formula is written as text"
    assert row["time_utc"] == "2026-10-04T09:00:00+00:00"
    exported = entry("governance.auditentry.exported")
    assert (exported.actor, exported.remote_addr) == (people.fiona, IP)
    assert exported.summary == "Exported the audit log (actor=fiona)"


def test_the_page_paginates(people, logged):
    for n in range(60):
        audit_record(kind="governance.test.bulk", summary=f"Note {n}", subject=people.ads)
    client = browser(people.pat)
    first = client.get(AUDIT).content.decode()
    assert "Page 1 of 2" in first
    assert "Note 59" in first
    assert "Note 0<" not in first
    assert "Note 0<" in client.get(AUDIT, {"page": 2}).content.decode()


def test_reading_the_log_costs_a_bounded_number_of_queries(
    people, logged, django_assert_max_num_queries
):
    client = browser(people.pat)
    rest = api(people.pat)
    client.get(AUDIT)
    rest.get("/api/v1/audit/")
    for n in range(30):
        with set_actor(people.fiona, remote_addr="198.51.100.3"):
            services.freeze_lift(
                freeze=services.freeze_start(
                    business_unit=people.research, reason=f"Breach {n}", by=None
                ),
                by=None,
                reason="ok",
            )
    with django_assert_max_num_queries(7):
        assert client.get(AUDIT).status_code == 200
    with django_assert_max_num_queries(6):
        assert rest.get("/api/v1/audit/").status_code == 200
    with django_assert_max_num_queries(8):
        response = client.get(f"{AUDIT}export/")
        assert len(b"".join(response.streaming_content).splitlines()) > 60


def test_the_nav_links_the_log_for_its_readers_only(people):
    assert 'href="/audit/"' in browser(people.fiona).get("/approvals/").content.decode()
    assert 'href="/audit/"' not in browser(people.rhea).get("/approvals/").content.decode()


def test_money_amounts_are_recorded_as_exact_text(people):
    with set_actor(people.fiona, remote_addr=IP):
        Budget.objects.create(
            name="Exact", business_unit=people.research, amount=D("1234.5678"), currency="USD"
        )
    assert entry("costs.budget.created").changes["amount"] == [None, "1234.5678"]
