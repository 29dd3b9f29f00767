"""TCO pages and API: calculate, save, read, edit, attach, and who may do which."""

import json
import re
from decimal import Decimal as D

import pytest
from rest_framework.test import APIClient

from costs.models import TcoScenario
from costs.tco_services import tco_scenario_attach, tco_scenario_save
from governance.choices import Role
from registry import services as registry_services
from tests.factories import PASSWORD, UserFactory
from tests.registry.conftest import assess, registry, upload  # noqa: F401

WORKED = {
    "currency": "USD",
    "capex": "300000",
    "depreciation_years": "4",
    "power_kw": "10.2",
    "pue": "1.4",
    "price_per_kwh": "0.12",
    "operations_per_year": "20000",
    "utilisation_percent": "100",
    "hours_per_year": "8760",
    "cloud_on_demand_hourly": "98.32",
}


def _inputs(**change):
    data = {
        "capex": D("300000"),
        "depreciation_years": 4,
        "power_kw": D("10.2"),
        "pue": D("1.4"),
        "price_per_kwh": D("0.12"),
        "operations_per_year": D("20000"),
        "cloud_on_demand_hourly": D("98.32"),
    }
    data.update(change)
    return data


@pytest.fixture(autouse=True)
def _no_lockout_records(settings):
    # django-axes records each sign-in with the client's address; the test client sends none,
    # and PostgreSQL refuses the "unknown" that governance.throttle.client_ip puts in its place.
    settings.AXES_ENABLED = False


@pytest.fixture
def world(registry):  # noqa: F811
    """The registry's org (RES, ADS; fiona, pat, rhea, adam), a board, a benchmark with an
    approved assessment (and its decision), and a RES and an ADS scenario."""
    org = registry.org
    benchmark = upload(registry)
    assessment = assess(registry, benchmark)
    registry_services.assessment_decide(
        assessment=assessment, by=registry.board_infra, approve=True, rationale="Fits."
    )
    assessment.refresh_from_db()
    res = tco_scenario_save(
        scenario=None,
        by=org.finance,
        name="RES H100 node vs p5",
        business_unit=org.research,
        benchmark=benchmark,
        **_inputs(),
    )
    ads = tco_scenario_save(
        scenario=None,
        by=org.finance,
        name="ADS ranker on-prem",
        business_unit=org.ads,
        **_inputs(utilisation_percent=D("50")),
    )
    registry.benchmark, registry.assessment, registry.res, registry.ads = (
        benchmark,
        assessment,
        res,
        ads,
    )
    return registry


@pytest.fixture
def signed_in(client):
    def sign_in(user):
        assert client.login(username=user.username, password=PASSWORD)
        return client

    return sign_in


def api_as(user) -> APIClient:
    api = APIClient()
    api.force_login(user)
    return api


def _no_inline_scripts(html: str) -> None:
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag


@pytest.mark.parametrize("url", ["/costs/tco/", "/costs/tco/1/", "/costs/tco/1/edit/"])
def test_tco_pages_require_sign_in(client, db, url):
    assert client.get(url).status_code == 302


def test_tco_finance_calculates_the_worked_example_without_saving(world, signed_in):
    client = signed_in(world.org.finance)
    before = TcoScenario.objects.count()
    page = client.post("/costs/tco/", {**WORKED, "action": "calculate"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "110,011.14 USD" in html
    assert "861,283.20 USD" in html
    assert "<strong>12.77 %</strong>" in html
    assert 'data-chart="tco-calculated"' in html
    figure = json.loads(re.search(r'id="tco-calculated"[^>]*>(.*?)</script>', html, re.S)[1])
    names = [trace["name"] for trace in figure["data"]]
    assert names == ["On-prem", "Cloud on-demand", "Break-even 12.77 %"]
    _no_inline_scripts(html)
    assert TcoScenario.objects.count() == before


def test_tco_save_computes_results_and_shows_the_scenario(world, signed_in):
    client = signed_in(world.org.finance)
    response = client.post(
        "/costs/tco/",
        {
            **WORKED,
            "action": "save",
            "name": "Worked example",
            "business_unit": world.org.research.pk,
            "cloud_committed_hourly": "60",
            "requests_per_second": "40",
        },
    )
    scenario = TcoScenario.objects.get(name="Worked example")
    assert response.status_code == 302
    assert response["Location"] == scenario.get_absolute_url()
    assert scenario.results["on_prem"]["total"] == "110011.14"
    assert scenario.results["break_even_percent"] == "12.77"
    assert scenario.results["per_million_requests"]["on_prem"] == "87.21"
    detail = client.get(scenario.get_absolute_url()).content.decode()
    assert "110,011.14 USD" in detail
    assert "525,600.00 USD" in detail  # committed: 60 x 8,760
    assert 'data-chart="tco-curve"' in detail
    _no_inline_scripts(detail)


def test_tco_bad_inputs_are_named_and_nothing_is_saved(world, signed_in):
    client = signed_in(world.org.finance)
    before = TcoScenario.objects.count()
    page = client.post("/costs/tco/", {**WORKED, "pue": "0.9", "action": "save", "name": "x"})
    assert page.status_code == 400
    assert "PUE is the facility&#x27;s power over the IT power, so it is 1 or more" in (
        page.content.decode()
    )
    page = client.post("/costs/tco/", {**WORKED, "utilisation_percent": "0", "action": "calculate"})
    assert page.status_code == 400
    assert "above 0 and at most 100" in page.content.decode()
    page = client.post("/costs/tco/", {**WORKED, "action": "save", "name": ""})
    assert page.status_code == 400
    assert "Give the scenario a name" in page.content.decode()
    assert TcoScenario.objects.count() == before


def test_tco_unit_people_see_and_file_only_their_units(world, signed_in):
    client = signed_in(world.org.researcher)
    page = client.get("/costs/tco/").content.decode()
    assert "RES H100 node vs p5" in page
    assert "ADS ranker on-prem" not in page
    assert client.get(world.ads.get_absolute_url()).status_code == 404
    refused = client.post(
        "/costs/tco/",
        {**WORKED, "action": "save", "name": "Sneaky", "business_unit": world.org.ads.pk},
    )
    assert refused.status_code == 400  # ADS is not among the units offered
    assert not TcoScenario.objects.filter(name="Sneaky").exists()
    none = client.post("/costs/tco/", {**WORKED, "action": "save", "name": "No unit"})
    assert none.status_code == 403
    ok = client.post(
        "/costs/tco/",
        {**WORKED, "action": "save", "name": "Mine", "business_unit": world.org.research.pk},
    )
    assert ok.status_code == 302
    mine = TcoScenario.objects.get(name="Mine")
    assert client.get(f"/costs/tco/{mine.pk}/edit/").status_code == 200


def test_tco_people_without_a_unit_or_role_are_refused(world, signed_in):
    stranger = UserFactory(username="stranger")
    assert signed_in(stranger).get("/costs/tco/").status_code == 403


def test_tco_board_member_sees_every_scenario(world, signed_in):
    page = signed_in(world.board_ml).get("/costs/tco/").content.decode()
    assert "RES H100 node vs p5" in page
    assert "ADS ranker on-prem" in page


def test_tco_edit_recomputes_and_delete_removes(world, signed_in):
    client = signed_in(world.org.finance)
    url = f"/costs/tco/{world.ads.pk}/edit/"
    form = client.get(url).content.decode()
    assert 'value="ADS ranker on-prem"' in form
    response = client.post(
        url,
        {
            **WORKED,
            "name": "ADS ranker on-prem",
            "business_unit": world.org.ads.pk,
            "utilisation_percent": "10",
        },
    )
    assert response.status_code == 302
    world.ads.refresh_from_db()
    assert world.ads.results["cloud_on_demand"] == "86128.32"
    assert world.ads.results["cheapest"] == "cloud_on_demand"
    assert client.post(f"/costs/tco/{world.ads.pk}/delete/").status_code == 302
    assert not TcoScenario.objects.filter(pk=world.ads.pk).exists()


def test_tco_other_units_cannot_edit_or_delete(world, signed_in):
    client = signed_in(world.org.ads_engineer)
    assert client.get(f"/costs/tco/{world.res.pk}/edit/").status_code == 404
    assert client.post(f"/costs/tco/{world.res.pk}/delete/").status_code == 404
    assert TcoScenario.objects.filter(pk=world.res.pk).exists()


def test_tco_attach_to_assessment_and_decision_shows_on_their_pages(world, signed_in):
    client = signed_in(world.board_ml)
    decision = world.assessment.decision
    detail = client.get(world.res.get_absolute_url()).content.decode()
    assert f'<option value="{world.assessment.pk}">' in detail
    response = client.post(
        f"/costs/tco/{world.res.pk}/attach/",
        {"assessment": world.assessment.pk, "decision": decision.pk},
    )
    assert response.status_code == 302
    assert list(world.res.assessments.all()) == [world.assessment]
    assert list(world.res.decisions.all()) == [decision]

    assessment_page = client.get(world.assessment.get_absolute_url()).content.decode()
    assert "TCO scenarios" in assessment_page
    assert world.res.get_absolute_url() in assessment_page
    assert "On-prem 110,011.14 USD a year" in assessment_page
    decision_page = client.get(f"/decisions/{decision.pk}/").content.decode()
    assert "TCO scenarios" in decision_page
    assert world.res.get_absolute_url() in decision_page

    # ADS people read the decision page of a RES decision? Not RES's scenario.
    detach = client.post(f"/costs/tco/{world.res.pk}/detach/", {"decision": decision.pk})
    assert detach.status_code == 302
    assert not world.res.decisions.exists()


def test_tco_attach_needs_a_choice(world, signed_in):
    client = signed_in(world.org.finance)
    response = client.post(f"/costs/tco/{world.res.pk}/attach/", {}, follow=True)
    assert "Choose an assessment or a decision" in response.content.decode()


def test_tco_decision_panel_hides_scenarios_the_reader_cannot_see(world):
    from governance.extensions import decision_related

    decision = world.assessment.decision
    tco_scenario_attach(scenario=world.ads, by=world.org.finance, decision=decision)
    assert [i.title for i in decision_related(decision, user=world.org.finance)] == [
        "ADS ranker on-prem"
    ]
    assert decision_related(decision, user=world.org.researcher) == []


def test_tco_list_page_queries_are_bounded(world, signed_in, django_assert_max_num_queries):
    for n in range(15):
        tco_scenario_save(
            scenario=None,
            by=world.org.finance,
            name=f"Scenario {n}",
            business_unit=world.org.research,
            **_inputs(),
        )
    client = signed_in(world.org.finance)
    with django_assert_max_num_queries(14):
        assert client.get("/costs/tco/").status_code == 200


# --- API ------------------------------------------------------------------------------------


def test_tco_api_calculate_answers_the_worked_example(world):
    response = api_as(world.org.finance).post("/api/v1/tco/calculate/", WORKED, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["on_prem"]["total"] == "110011.14"
    assert body["cloud_on_demand_full"] == "861283.20"
    assert body["break_even_percent"] == "12.77"
    assert body["per_million_requests"] is None
    assert TcoScenario.objects.count() == 2


def test_tco_api_calculate_with_a_benchmark(world):
    response = api_as(world.org.researcher).post(
        "/api/v1/tco/calculate/", {**WORKED, "benchmark": world.benchmark.pk}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["requests_per_second"] == "12.000000000"  # the assessment's operating point
    assert "assessment" in body["throughput_source"]


def test_tco_api_validation_names_each_field(world):
    response = api_as(world.org.finance).post(
        "/api/v1/tco/calculate/",
        {**WORKED, "pue": "0.8", "utilisation_percent": "0"},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert "1 or more" in body["pue"][0]
    assert "above 0" in body["utilisation_percent"][0]


def test_tco_api_crud_computes_results_and_ignores_posted_ones(world):
    api = api_as(world.org.finance)
    created = api.post(
        "/api/v1/tco-scenarios/",
        {
            **WORKED,
            "name": "From CI",
            "business_unit": "RES",
            "assessments": [world.assessment.pk],
            "results": {"on_prem": {"total": "1.00"}},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["results"]["on_prem"]["total"] == "110011.14"
    assert body["assessments"] == [world.assessment.pk]
    pk = body["id"]
    patched = api.patch(
        f"/api/v1/tco-scenarios/{pk}/", {"utilisation_percent": "10"}, format="json"
    )
    assert patched.status_code == 200, patched.content
    assert patched.json()["results"]["cloud_on_demand"] == "86128.32"
    assert patched.json()["assessments"] == [world.assessment.pk]
    bad = api.patch(f"/api/v1/tco-scenarios/{pk}/", {"pue": "0.5"}, format="json")
    assert bad.status_code == 400
    assert "pue" in bad.json()
    assert api.delete(f"/api/v1/tco-scenarios/{pk}/").status_code == 204
    assert not TcoScenario.objects.filter(pk=pk).exists()


def test_tco_api_scopes_to_the_callers_units(world):
    api = api_as(world.org.researcher)
    listed = api.get("/api/v1/tco-scenarios/").json()
    assert [s["name"] for s in listed["results"]] == ["RES H100 node vs p5"]
    assert api.get(f"/api/v1/tco-scenarios/{world.ads.pk}/").status_code == 404
    refused = api.post(
        "/api/v1/tco-scenarios/", {**WORKED, "name": "x", "business_unit": "ADS"}, format="json"
    )
    assert refused.status_code == 400
    assert "business_unit" in refused.json()
    stranger = api_as(UserFactory(username="nobody"))
    assert stranger.get("/api/v1/tco-scenarios/").status_code == 403
    assert stranger.post("/api/v1/tco/calculate/", WORKED, format="json").status_code == 403


def test_tco_api_filters_by_unit_and_attachment(world):
    tco_scenario_attach(scenario=world.res, by=world.org.finance, assessment=world.assessment)
    api = api_as(world.org.finance)
    by_unit = api.get("/api/v1/tco-scenarios/?business_unit=ads").json()
    assert [s["name"] for s in by_unit["results"]] == ["ADS ranker on-prem"]
    attached = api.get(f"/api/v1/tco-scenarios/?assessment={world.assessment.pk}").json()
    assert [s["name"] for s in attached["results"]] == ["RES H100 node vs p5"]


def test_tco_api_list_queries_are_bounded(world, django_assert_max_num_queries):
    for n in range(15):
        tco_scenario_save(
            scenario=None,
            by=world.org.finance,
            name=f"S{n}",
            business_unit=world.org.ads,
            **_inputs(),
        )
    api = api_as(world.org.finance)
    with django_assert_max_num_queries(10):
        response = api.get("/api/v1/tco-scenarios/")
    assert response.json()["count"] == 17


def test_tco_admin_roles_include_platform_admin(world):
    admin = UserFactory(username="plat2", roles=[Role.PLATFORM_ADMIN])
    assert api_as(admin).get("/api/v1/tco-scenarios/").json()["count"] == 2
