import base64
import copy
import itertools

import pytest
from rest_framework.test import APIClient

from costs.models import AllocationRule, BillingImport, CostRow
from governance.tokens import api_token_create
from tests.factories import focus_line, write_focus


@pytest.fixture
def api():
    return APIClient()


def as_user(api, user):
    _, key = api_token_create(user=user, name="tests", scope="write", days=730, by=user)
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api


def test_chargeback_api_gives_the_stable_shape(api, october):
    body = as_user(api, october.finance).get("/api/v1/chargeback/?month=2026-10").json()
    assert body["month"] == "2026-10"
    assert body["basis"] == "billed"
    assert body["currencies"]["USD"]["total"] == "15.76"
    assert body["currencies"]["USD"]["business_units"] == {
        "ADS": "10.01",
        "RES": "3.75",
        "UNALLOCATED": "2.00",
    }


def test_chargeback_api_requires_authentication(api, october):
    assert api.get("/api/v1/chargeback/?month=2026-10").status_code == 401


def test_chargeback_api_rejects_a_bad_month_with_a_reason(api, october):
    response = as_user(api, october.finance).get("/api/v1/chargeback/?month=October")
    assert response.status_code == 400
    assert "YYYY-MM" in str(response.json())
    assert as_user(api, october.finance).get("/api/v1/chargeback/").status_code == 400


def test_chargeback_api_scopes_a_business_unit_member(api, october):
    body = as_user(api, october.researcher).get("/api/v1/chargeback/?month=2026-10").json()
    assert body["currencies"]["USD"]["business_units"] == {"RES": "3.75"}
    assert body["complete"] is False


def test_costs_api_never_shows_another_units_costs(api, october):
    client = as_user(api, october.researcher)
    rows = client.get("/api/v1/costs/").json()["results"]
    assert {r["business_unit"] for r in rows} == {"RES"}
    assert client.get("/api/v1/costs/?business_unit=ADS").json()["results"] == []
    assert client.get("/api/v1/costs/?business_unit=UNALLOCATED").json()["results"] == []
    ads_row = (
        as_user(APIClient(), october.finance)
        .get("/api/v1/costs/?business_unit=ADS")
        .json()["results"][0]
    )
    assert client.get(f"/api/v1/costs/{ads_row['id']}/").status_code == 404


def test_costs_api_filters_by_tag_service_and_dates(api, october):
    client = as_user(api, october.finance)
    assert len(client.get("/api/v1/costs/?tag=team=research").json()["results"]) == 2
    assert len(client.get("/api/v1/costs/?service=amazon ec2").json()["results"]) == 1
    assert len(client.get("/api/v1/costs/?date_from=2026-10-06").json()["results"]) == 1


def test_costs_api_pages_every_row_once_by_day_through_cursors(api, october):
    client = as_user(api, october.finance)
    everything = client.get("/api/v1/costs/?page_size=1000").json()["results"]
    seen, url = [], "/api/v1/costs/?page_size=2"
    while url:
        body = client.get(url).json()
        assert "count" not in body  # nothing counts the whole bill for a page
        seen += body["results"]
        url = body["next"]
    assert [r["id"] for r in seen] == [r["id"] for r in everything]
    assert len(seen) == len({r["id"] for r in seen}) >= 3
    assert [(r["usage_date"], r["id"]) for r in seen] == sorted(
        (r["usage_date"], r["id"]) for r in seen
    )
    assert client.get("/api/v1/costs/?cursor=forged").status_code == 404
    # A cursor is base64 of its position: an edited one is refused the same way, not a 500.
    for position in (
        "n|not-a-day|1",
        "n|2026-13-45|1",
        "x|2026-10-01|1",
        "n|2026-10-01|one",
        "n|2026-10-01|99999999999999999999",  # past a 64-bit id (SQLite would overflow)
    ):
        edited = base64.urlsafe_b64encode(position.encode()).decode()
        assert client.get("/api/v1/costs/", {"cursor": edited}).status_code == 404


def test_costs_api_pages_forward_and_back_through_thousands_of_rows_of_one_day(api, october):
    """More rows share a usage day than any offset would reach (a real bill has ~27k a
    day): every row comes once going forward, and ``previous`` gives each page back."""
    template = CostRow.objects.filter(usage_date="2026-10-05").first()
    clones = []
    for i in range(2_400):
        template.pk, template.resource_id = None, f"r-clone-{i}"
        clones.append(copy.copy(template))
    CostRow.objects.bulk_create(clones)
    client = as_user(api, october.finance)
    wanted = list(CostRow.objects.order_by("usage_date", "id").values_list("id", flat=True))

    pages, url = [], "/api/v1/costs/?page_size=1000"
    while url:
        body = client.get(url).json()
        pages.append(([r["id"] for r in body["results"]], body["previous"]))
        url = body["next"]
    assert [i for ids, _ in pages for i in ids] == wanted
    assert [len(ids) for ids, _ in pages] == [1000, 1000, len(wanted) - 2000]
    assert pages[0][1] is None  # nothing before the first page
    for (earlier, _), (_, previous) in itertools.pairwise(pages):
        body = client.get(previous).json()
        assert [r["id"] for r in body["results"]] == earlier
    assert client.get(pages[1][1]).json()["previous"] is None  # back at the start


def test_costs_summary_groups_by_business_unit(api, october):
    body = as_user(api, october.finance).get("/api/v1/costs/summary/?group_by=business_unit").json()
    assert {(g["key"], g["amount"]) for g in body["results"]} == {
        ("ADS", "10.01"),
        ("RES", "3.75"),
        ("UNALLOCATED", "2.00"),
    }
    bad = as_user(api, october.finance).get("/api/v1/costs/summary/?group_by=colour")
    assert bad.status_code == 400


def test_costs_api_list_has_no_n_plus_one(api, october, django_assert_max_num_queries):
    client = as_user(api, october.researcher)
    with django_assert_max_num_queries(8):
        assert client.get("/api/v1/costs/").status_code == 200


def test_imports_api_refuses_people_without_a_cost_role(api, october, tmp_path):
    client = as_user(api, october.researcher)
    assert client.get("/api/v1/imports/").status_code == 403
    path = write_focus(tmp_path / "x.csv", [focus_line(cost="1")])
    with path.open("rb") as fh:
        assert client.post("/api/v1/imports/", {"file": fh}).status_code == 403


def test_imports_api_upload_runs_the_import(
    api, october, tmp_path, django_capture_on_commit_callbacks
):
    client = as_user(api, october.finance)
    path = write_focus(
        tmp_path / "nov.csv", [focus_line(cost="9.99", period="2026-11-01", day="2026-11-02")]
    )
    with django_capture_on_commit_callbacks(execute=True), path.open("rb") as fh:
        response = client.post("/api/v1/imports/", {"file": fh, "format": "auto"})
    assert response.status_code == 202
    record = BillingImport.objects.get(pk=response.json()["id"])
    assert record.status == "succeeded", record.error
    detail = client.get(f"/api/v1/imports/{record.pk}/").json()
    assert detail["billed_totals"] == {"USD": "9.990000000000000000"}


def test_imports_api_list_has_no_n_plus_one(api, october, tmp_path, django_assert_max_num_queries):
    from costs import services

    for n in range(3):
        services.billing_import(path=write_focus(tmp_path / f"{n}.csv", [focus_line(cost="1")]))
    client = as_user(api, october.finance)
    with django_assert_max_num_queries(5):
        assert client.get("/api/v1/imports/").json()["count"] == 4


def test_allocation_rules_api_creates_a_rule_and_reattributes(api, october):
    client = as_user(api, october.finance)
    response = client.post(
        "/api/v1/allocation-rules/",
        {"business_unit": "RES", "tag_key": "team", "tag_values": ["mystery"], "priority": 1},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = client.get("/api/v1/chargeback/?month=2026-10").json()
    assert body["currencies"]["USD"]["business_units"] == {"ADS": "10.01", "RES": "5.75"}
    patch = client.patch(
        f"/api/v1/allocation-rules/{response.json()['id']}/", {"is_active": False}, format="json"
    )
    assert patch.status_code == 200
    assert AllocationRule.objects.get(pk=response.json()["id"]).tag_values == ["mystery"]


def test_allocation_rules_api_is_for_cost_managers_only(api, october):
    client = as_user(api, october.researcher)
    assert client.get("/api/v1/allocation-rules/").status_code == 403


def test_business_units_api_lists_only_visible_units(api, october):
    codes = [
        u["code"]
        for u in as_user(api, october.ads_engineer).get("/api/v1/business-units/").json()["results"]
    ]
    assert codes == ["ADS"]


def test_openapi_schema_is_served_to_signed_in_callers(api, october):
    assert api.get("/api/schema/").status_code == 401
    response = as_user(api, october.researcher).get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/v1/chargeback/" in response.content


def test_costs_api_rejects_a_month_that_is_not_one(api, october):
    response = as_user(api, october.finance).get("/api/v1/costs/?month=2026-13")
    assert response.status_code == 400
    assert "YYYY-MM" in str(response.json()["month"])
