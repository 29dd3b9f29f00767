import pytest
from django.urls import reverse

from costs.models import AllocationRule, BillingImport
from tests.factories import PASSWORD, focus_line, write_focus


@pytest.fixture
def signed_in(client):
    def sign_in(user):
        assert client.login(username=user.username, password=PASSWORD)
        return client

    return sign_in


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/costs/chargeback/",
        "/costs/explorer/",
        "/costs/imports/",
        "/costs/rules/",
        "/costs/unallocated/",
    ],
)
def test_pages_require_sign_in(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith("/login/")


def test_api_docs_need_a_signed_in_caller(client, org, signed_in):
    assert client.get("/api/docs/").url.startswith("/login/")
    assert signed_in(org.researcher).get("/api/docs/").status_code == 200


def test_healthz_is_open_and_answers_without_asking_the_database(
    client, db, django_assert_num_queries
):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_dashboard_shows_spend_by_unit_and_unallocated(signed_in, october):
    page = signed_in(october.finance).get("/").content.decode()
    assert "10.01 USD" in page
    assert "Unallocated" in page
    assert "october.csv" in page


def test_dashboard_empty_state_says_what_to_do(signed_in, org):
    page = signed_in(org.finance).get("/").content.decode()
    assert "Upload a billing file" in page


def test_chargeback_page_lists_units_and_reconciles(signed_in, october):
    page = signed_in(october.finance).get("/costs/chargeback/?month=2026-10").content.decode()
    assert "15.76 USD" in page
    assert "to the cent ✓" in page
    assert "vendor/plotly/plotly.min.js" in page


def test_chargeback_page_hides_other_units_from_a_member(signed_in, october):
    page = signed_in(october.researcher).get("/costs/chargeback/?month=2026-10").content.decode()
    assert "3.75 USD" in page
    assert "Ads Ranking" not in page
    assert "10.01" not in page


def test_chargeback_drilldown_refuses_another_units_resources(signed_in, october):
    client = signed_in(october.researcher)
    url = "/costs/chargeback/resources/?month=2026-10&bu={}&service=Amazon+EC2"
    assert client.get(url.format("ADS")).status_code == 404
    assert client.get(url.format("UNALLOCATED")).status_code == 404
    ok = client.get("/costs/chargeback/resources/?month=2026-10&bu=RES&service=Amazon+SageMaker")
    assert "res-gpu-1" in ok.content.decode()


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "json"])
def test_chargeback_export_downloads_each_format(signed_in, october, fmt):
    response = signed_in(october.finance).get(
        f"/costs/chargeback/export/?month=2026-10&format={fmt}"
    )
    assert response.status_code == 200
    assert f"chargeback-2026-10-billed.{fmt}" in response["Content-Disposition"]


def test_explorer_groups_and_filters(signed_in, october):
    client = signed_in(october.finance)
    page = client.get("/costs/explorer/?group_by=business_unit").content.decode()
    assert "UNALLOCATED" in page
    page = client.get("/costs/explorer/?group_by=resource&tag=team%3Dresearch").content.decode()
    assert "res-gpu-1" in page
    assert "ads-ranker" not in page


def test_explorer_shows_a_member_only_their_costs(signed_in, october):
    page = signed_in(october.ads_engineer).get("/costs/explorer/?group_by=resource")
    text = page.content.decode()
    assert "ads-ranker" in text
    assert "res-gpu-1" not in text


def test_cost_pages_are_for_cost_managers(signed_in, october):
    client = signed_in(october.researcher)
    for url in ("/costs/imports/", "/costs/rules/", "/costs/unallocated/", "/costs/rules/new/"):
        assert client.get(url).status_code == 403, url


def test_upload_page_imports_and_shows_the_result(
    signed_in, october, tmp_path, django_capture_on_commit_callbacks
):
    client = signed_in(october.finance)
    path = write_focus(
        tmp_path / "nov.csv", [focus_line(cost="7.5", period="2026-11-01", day="2026-11-03")]
    )
    with django_capture_on_commit_callbacks(execute=True), path.open("rb") as fh:
        response = client.post("/costs/imports/", {"file": fh, "format": "auto"})
    record = BillingImport.objects.latest("pk")
    assert response.url == record.get_absolute_url()
    page = client.get(response.url).content.decode()
    assert "Succeeded" in page
    assert "7.50 USD" in page


def test_upload_of_a_bad_file_shows_the_line_and_stores_nothing(
    signed_in, october, tmp_path, django_capture_on_commit_callbacks
):
    client = signed_in(october.finance)
    bad = write_focus(tmp_path / "bad.csv", [focus_line(cost="abc")])
    with django_capture_on_commit_callbacks(execute=True), bad.open("rb") as fh:
        response = client.post("/costs/imports/", {"file": fh})
    page = client.get(response.url).content.decode()
    assert "bad.csv, line 2, column BilledCost" in page
    assert "nothing was stored" in page


def test_rule_created_from_unallocated_updates_the_chargeback(signed_in, october):
    client = signed_in(october.finance)
    unallocated = client.get("/costs/unallocated/?month=2026-10").content.decode()
    assert "mystery" in unallocated
    response = client.post(
        "/costs/rules/new/",
        {
            "business_unit": october.research.pk,
            "tag_key": "team",
            "tag_values": "mystery",
            "priority": 5,
            "is_active": "on",
            "next": "/costs/unallocated/?month=2026-10",
        },
    )
    assert response.status_code == 302
    assert response.url == "/costs/unallocated/?month=2026-10"
    assert AllocationRule.objects.filter(tag_values=["mystery"]).exists()
    assert "Nothing is unallocated" in client.get(response.url).content.decode()


def test_rule_form_does_not_redirect_off_site(signed_in, october):
    response = signed_in(october.finance).post(
        "/costs/rules/new/",
        {
            "business_unit": october.ads.pk,
            "tag_key": "env",
            "tag_values": "x",
            "priority": 1,
            "next": "https://evil.example/",
        },
    )
    assert response.url == reverse("costs:rule-list")


@pytest.mark.parametrize(
    "url",
    [
        "/costs/imports/",
        "/costs/rules/",
        "/costs/unallocated/",
        "/costs/explorer/?group_by=service",
        "/",
    ],
)
def test_list_pages_have_no_n_plus_one(
    signed_in, october, tmp_path, url, django_assert_max_num_queries
):
    from costs import services

    for n in range(5):
        services.billing_import(
            path=write_focus(
                tmp_path / f"{n}.csv",
                [focus_line(cost="1", tags={"team": f"t{n}"}, resource=f"r{n}")],
            )
        )
    client = signed_in(october.finance)
    with django_assert_max_num_queries(14):
        assert client.get(url).status_code == 200
