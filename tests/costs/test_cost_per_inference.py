"""Cost per inference: a month's endpoint cost over its invocations, beside the prediction."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal as D

import pytest
from django.urls import reverse
from django.utils import timezone

from costs import inference, services
from governance.choices import Role
from governance.models import User
from registry import selectors as registry_selectors
from registry import services as registry_services
from registry.extensions import ActualCost, actual_costs
from registry.models import Endpoint, HardwarePrice, HardwareProfile, ModelVersion
from tests.costs.conftest import OCT
from tests.factories import PASSWORD, Org, UserFactory, focus_line, write_focus
from tests.registry.conftest import capgov_benchmark

NOV = dt.date(2026, 11, 1)
ACCOUNT = "111122223333"


def arn(name: str, account: str = ACCOUNT, region: str = "us-east-1") -> str:
    return f"arn:aws:sagemaker:{region}:{account}:endpoint/{name}"


@dataclass
class Fleet:
    org: Org
    board: User
    ranker_int8: ModelVersion  # two endpoints: ranker-prod and Ranker-Canary
    ranker_fp16: ModelVersion  # one endpoint, with cost and no usage
    ctr: ModelVersion  # Ads' model
    prod: Endpoint
    canary: Endpoint
    shadow: Endpoint
    ads: Endpoint
    bill: list[dict[str, str]]  # October's FOCUS lines, for a test that adds to them


def _version(by: User, model, version: str, hardware: HardwareProfile) -> ModelVersion:
    return registry_services.version_create(
        by=by,
        model=model,
        version=version,
        artifact_uri=f"s3://models/{model.name}/{version}/",
        framework="PyTorch",
        precision="int8",
        serving_runtime="vLLM 0.8",
        hardware_profile=hardware,
    )


def _endpoint(name: str, version: ModelVersion, unit, *, resource_id: str | None = None):
    endpoint, _ = registry_services.endpoint_upsert(
        provider="aws",
        account_id=ACCOUNT,
        region="us-east-1",
        name=name,
        resource_id=arn(name) if resource_id is None else resource_id,
        business_unit=unit,
    )
    endpoint.model_version = version
    endpoint.save(update_fields=["model_version"])
    return endpoint


def _usage(endpoint: Endpoint, days: dict[str, int]) -> None:
    registry_services.endpoint_usage_record(
        endpoint=endpoint,
        invocations={dt.date.fromisoformat(day): count for day, count in days.items()},
    )


@pytest.fixture
def fleet(org, tmp_path) -> Fleet:
    """October: Research's ranker 2.1 on two endpoints, 2.0 on one, Ads' ctr on one.

    ranker-prod    300.00 (effective 240.00) over 1,500,000 invocations -> 0.20 per 1k
    Ranker-Canary  150.00 over 500,000 -> 0.30 (its cost rows name it by ARN, lower-case)
    ranker-shadow   50.00, no usage day recorded -> no figure
    ads-ctr         80.00 over 400,000 -> 0.20
    """
    board = UserFactory(username="ines", roles=[Role.BOARD_INFRA])
    board_ml = UserFactory(username="mark", roles=[Role.BOARD_ML])
    h100 = HardwareProfile.objects.create(
        name="1 x H100 80GB", accelerator="NVIDIA H100 80GB", accelerator_count=1
    )
    HardwarePrice.objects.create(
        hardware_profile=h100,
        provider="aws",
        hourly_price=D("4.10"),
        effective_from=timezone.now() - dt.timedelta(days=365),
    )
    protocol = registry_services.protocol_create(
        by=board,
        name="Online serving",
        workload={"input_tokens": {"distribution": "fixed", "value": 512}},
        concurrency_levels=[4, 8, 16],
        required_metrics=["requests_per_s"],
    )
    registry_services.protocol_approve(protocol=protocol, by=board_ml, rationale="Fine.")
    protocol.refresh_from_db()
    ranker = registry_services.model_register(
        by=org.researcher,
        name="ranker",
        business_unit=org.research,
        task="ranking",
        source="in-house",
        risk_tier="medium",
    )
    ctr_model = registry_services.model_register(
        by=org.ads_engineer,
        name="ads-ctr",
        business_unit=org.ads,
        task="ranking",
        source="in-house",
        risk_tier="medium",
    )
    int8 = _version(org.researcher, ranker, "2.1-int8", h100)
    fp16 = _version(org.researcher, ranker, "2.0-fp16", h100)
    ctr = _version(org.ads_engineer, ctr_model, "1.0", h100)
    registry_services.benchmark_upload(
        version=int8,
        protocol=protocol,
        hardware_profile=h100,
        data=capgov_benchmark(),
        file_name="bench.json",
        by=org.researcher,
    )
    prod = _endpoint("ranker-prod", int8, org.research)
    # Entered by hand under its display name; the bill names it by its ARN.
    canary = _endpoint("Ranker-Canary", int8, org.research, resource_id="Ranker-Canary")
    shadow = _endpoint("ranker-shadow", fp16, org.research)
    ads = _endpoint("ads-ctr", ctr, org.ads)
    _usage(prod, {"2026-10-05": 1_000_000, "2026-10-06": 500_000, "2026-09-30": 999})
    _usage(canary, {"2026-10-05": 500_000})
    _usage(ads, {"2026-10-05": 400_000})

    services.allocation_rule_save(
        business_unit=org.research, tag_key="team", tag_values=["research"], priority=10
    )
    services.allocation_rule_save(
        business_unit=org.ads, tag_key="team", tag_values=["ads"], priority=20
    )
    research = {"team": "research"}
    bill = [
        focus_line(cost="100.00", effective="80.00", tags=research, resource=arn("ranker-prod")),
        focus_line(
            cost="200.00",
            effective="160.00",
            tags=research,
            resource=arn("ranker-prod").upper(),
            day="2026-10-06",
        ),
        focus_line(cost="150.00", tags=research, resource=arn("ranker-canary")),
        focus_line(cost="50.00", tags=research, resource=arn("ranker-shadow")),
        focus_line(cost="80.00", tags={"team": "ads"}, resource=arn("ads-ctr")),
        # Same name, another account: not ours.
        focus_line(
            cost="999.00", tags=research, resource=arn("ranker-prod", account="999999999999")
        ),
        # Another resource of the same name: not an endpoint.
        focus_line(
            cost="7.00",
            tags=research,
            resource="arn:aws:sagemaker:us-east-1:111122223333:endpoint-config/ranker-prod",
        ),
    ]
    result = services.billing_import(path=write_focus(tmp_path / "october.csv", bill))
    assert result.status == "succeeded", result.error
    return Fleet(org, board, int8, fp16, ctr, prod, canary, shadow, ads, bill)


def _by_name(lines):
    return {line.endpoint.name: line for line in lines}


def test_endpoint_inference_list_divides_the_months_cost_by_its_invocations(fleet):
    lines = _by_name(inference.endpoint_inference_list(user=None, month=OCT))
    prod = lines["ranker-prod"]
    assert (prod.cost, prod.currency, prod.invocations, prod.days_with_usage) == (
        D("300.00"),
        "USD",
        1_500_000,
        2,
    )
    assert prod.cost_per_1k == D("0.200000")
    assert lines["ads-ctr"].cost_per_1k == D("0.200000")


def test_endpoint_cost_rows_match_by_arn_suffix_case_insensitively_in_its_own_account(fleet):
    canary = _by_name(inference.endpoint_inference_list(user=None, month=OCT))["Ranker-Canary"]
    assert (canary.cost, canary.invocations, canary.cost_per_1k) == (
        D("150.00"),
        500_000,
        D("0.300000"),
    )


def test_endpoint_without_usage_has_no_cost_per_1k_rather_than_zero(fleet):
    shadow = _by_name(inference.endpoint_inference_list(user=None, month=OCT))["ranker-shadow"]
    assert shadow.cost == D("50.00")
    assert shadow.invocations is None
    assert shadow.days_with_usage == 0
    assert shadow.cost_per_1k is None
    (fp16,) = [
        v
        for v in inference.version_inference_list(
            endpoints=inference.endpoint_inference_list(user=None, month=OCT)
        )
        if v.version == fleet.ranker_fp16
    ]
    assert (fp16.cost, fp16.invocations, fp16.cost_per_1k, fp16.left_out) == (
        D("50.00"),
        None,
        None,
        1,
    )


def test_an_idle_endpoint_counts_in_its_versions_figure_but_has_none_of_its_own(fleet, tmp_path):
    idle = _endpoint("ranker-idle", fleet.ranker_int8, fleet.org.research)
    _usage(idle, {"2026-10-05": 0, "2026-10-06": 0})
    bill = [
        *fleet.bill,
        focus_line(cost="90.00", tags={"team": "research"}, resource=arn(idle.name)),
    ]
    # A re-import of the month replaces its rows: the whole bill, with the idle endpoint.
    assert services.billing_import(path=write_focus(tmp_path / "idle.csv", bill)).status == (
        "succeeded"
    )
    lines = inference.endpoint_inference_list(user=None, month=OCT)
    assert _by_name(lines)["ranker-idle"].invocations == 0
    assert _by_name(lines)["ranker-idle"].cost_per_1k is None
    (int8,) = [
        v
        for v in inference.version_inference_list(endpoints=lines)
        if v.version == fleet.ranker_int8
    ]
    assert (int8.cost, int8.invocations, int8.cost_per_1k, int8.left_out) == (
        D("540.00"),
        2_000_000,
        D("0.270000"),
        0,
    )


def test_effective_basis_divides_the_effective_cost(fleet):
    lines = _by_name(inference.endpoint_inference_list(user=None, month=OCT, basis="effective"))
    assert lines["ranker-prod"].cost == D("240.00")
    assert lines["ranker-prod"].cost_per_1k == D("0.160000")


def test_version_inference_list_sums_its_endpoints_beside_the_comparison_pages_prediction(fleet):
    versions = inference.version_inference_list(
        endpoints=inference.endpoint_inference_list(user=None, month=OCT)
    )
    assert [(v.version.model.name, v.version.version) for v in versions] == [
        ("ads-ctr", "1.0"),
        ("ranker", "2.0-fp16"),
        ("ranker", "2.1-int8"),
    ]
    int8 = versions[2]
    assert (int8.cost, int8.invocations, int8.cost_per_1k) == (
        D("450.00"),
        2_000_000,
        D("0.225000"),
    )
    # 4.10 an hour at 15.2 req/s: 4.10 * 1000 / (15.2 * 3600)
    (row,) = registry_selectors.model_comparison(
        model=fleet.ranker_int8.model, version_ids=[fleet.ranker_int8.pk]
    )
    assert int8.predicted_per_1k == row.best.cost_per_1k_requests == D("0.074927")
    assert int8.ratio == D("3.00")  # 0.225 / 0.074927
    assert [(e.endpoint.name, ratio) for e, ratio in int8.endpoint_lines()] == [
        ("Ranker-Canary", D("4.00")),
        ("ranker-prod", D("2.67")),
    ]
    assert versions[0].predicted is None  # ads-ctr has no benchmark
    assert versions[0].ratio is None


def test_a_member_of_another_unit_sees_only_their_units_endpoints(fleet):
    ads_view = inference.endpoint_inference_list(user=fleet.org.ads_engineer, month=OCT)
    assert [line.endpoint.name for line in ads_view] == ["ads-ctr"]
    research_view = _by_name(
        inference.endpoint_inference_list(user=fleet.org.researcher, month=OCT)
    )
    assert set(research_view) == {"ranker-prod", "Ranker-Canary", "ranker-shadow"}
    assert research_view["ranker-prod"].cost_per_1k == D("0.200000")
    assert len(inference.endpoint_inference_list(user=fleet.org.finance, month=OCT)) == 4


def test_filters_narrow_to_a_model_and_a_business_unit(fleet):
    by_model = inference.endpoint_inference_list(user=None, month=OCT, model_id=fleet.ctr.model_id)
    assert [line.endpoint.name for line in by_model] == ["ads-ctr"]
    by_unit = inference.endpoint_inference_list(
        user=None, month=OCT, business_unit_id=fleet.org.research.pk
    )
    assert len(by_unit) == 3


def test_version_actual_latest_takes_the_newest_month_with_cost_and_usage(fleet):
    _usage(fleet.prod, {"2026-11-02": 10})  # November: usage, but no bill yet
    assert inference.version_actual_latest([fleet.ranker_int8.pk, fleet.ranker_fp16.pk]) == {
        fleet.ranker_int8.pk: ActualCost(D("0.225000"), "USD", OCT)
    }
    # The registry asks through its hook, which costs registered in its AppConfig.ready().
    assert actual_costs([fleet.ranker_int8.pk]) == {
        fleet.ranker_int8.pk: ActualCost(D("0.225000"), "USD", OCT)
    }


# --- pages ------------------------------------------------------------------------------------


@pytest.fixture
def signed_in(client):
    def sign_in(user):
        client.logout()
        assert client.login(username=user.username, password=PASSWORD)
        return client

    return sign_in


PAGE = "/costs/cost-per-inference/"


def test_the_page_needs_a_signed_in_person(client, db):
    assert reverse("costs:cost-per-inference") == PAGE
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response.url.startswith("/login/")


def test_the_page_shows_actual_beside_predicted_for_the_persons_units(fleet, signed_in):
    response = signed_in(fleet.org.researcher).get(PAGE, {"month": "2026-10", "basis": "billed"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "ranker 2.1-int8" in page
    assert "450.00 USD" in page
    assert "2,000,000" in page
    assert "0.2250 USD" in page  # actual
    assert "0.0749 USD" in page  # predicted
    assert "3.00\u00d7" in page  # the multiplication sign
    assert "no usage data" in page  # ranker-shadow
    assert "ads-ctr" not in page


def test_the_page_filters_by_model_and_business_unit(fleet, signed_in):
    client = signed_in(fleet.org.finance)
    page = client.get(PAGE, {"month": "2026-10", "model": fleet.ctr.model_id}).content.decode()
    assert "ads-ctr 1.0" in page
    assert "ranker 2.1-int8" not in page
    page = client.get(PAGE, {"month": "2026-10", "business_unit": "res"}).content.decode()
    assert "ranker 2.1-int8" in page
    assert "ads-ctr 1.0" not in page
    assert client.get(PAGE, {"model": "ranker"}).status_code == 404


def test_a_member_may_not_filter_to_another_units_model(fleet, signed_in):
    client = signed_in(fleet.org.ads_engineer)
    assert client.get(PAGE, {"model": fleet.ranker_int8.model_id}).status_code == 404
    assert client.get(PAGE, {"business_unit": "RES"}).status_code == 404


def test_the_comparison_page_shows_the_actual_cost_beside_the_predicted(fleet, signed_in):
    response = signed_in(fleet.board).get(
        reverse("registry:model-compare", args=[fleet.ranker_int8.model_id])
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "0.0749 USD" in page  # predicted, as before
    assert "0.2250 USD" in page  # actual, October
    assert f"{PAGE}?month=2026-10&amp;model={fleet.ranker_int8.model_id}" in page


def test_the_page_reads_a_constant_number_of_queries(
    fleet, signed_in, tmp_path, django_assert_max_num_queries
):
    client = signed_in(fleet.org.finance)
    lines = list(fleet.bill)
    for i in range(12):
        endpoint = _endpoint(f"ranker-extra-{i}", fleet.ranker_int8, fleet.org.research)
        _usage(endpoint, {"2026-10-07": 1000})
        lines.append(
            focus_line(
                cost="1.00",
                tags={"team": "research"},
                resource=arn(endpoint.name),
                day="2026-10-07",
            )
        )
    # A re-import of the month replaces its rows: the whole bill, with the new endpoints.
    result = services.billing_import(path=write_focus(tmp_path / "more.csv", lines))
    assert result.status == "succeeded", result.error
    # 13: the endpoints every reader's cost rows are matched against are one query of them.
    with django_assert_max_num_queries(13):
        response = client.get(PAGE, {"month": "2026-10"})
    assert response.status_code == 200
    assert response.content.decode().count('data-endpoint="') == 16
