"""Savings and sprawl: the numbers of a seeded example, on the selectors and on the pages.

The clock is pinned at 15 November 2026, 12:00 UTC. Prices: ml.g5.xlarge 3.00/h (2,190.00 a
month per instance), ml.c5.large 0.50/h (365.00 a month); nothing is billed, so every cost is
the estimate hourly price x instances x 730 h.

Savings (Research unless said otherwise):
    ranker-old   deleted   10 Aug 2026  2,190.00/month  3 whole months  6,570.00 saved
    feature-svc  scaled    1 Sep 2026     500.00/month  2 whole months  1,000.00 saved
    ocr-batch    restored  1 Jun 2026 to 15 Aug 2026, 800.00/month  2 months  1,600.00 saved
    notebook     dry run   (not counted)
    ads-scorer   deleted   15 Oct 2026 (Ads)  300.00/month  1 month  300.00 saved

Sprawl:
    ranker (Research) 3.0, 3.1, 3.2 deployed; 3.0 on ranker-30-a (1 x g5, 2,190.00) and
        ranker-30-b (2 x g5, 4,380.00); 3.1 on ranker-31 (1 x c5, 365.00) and a deleted
        endpoint (not counted); 3.2 on ranker-32 (no instance type: unpriced).
    embedder (Ads) 1.0 deprecated on embedder-10 (1 x g5, 2,190.00), 1,234 requests
        yesterday; 0.9 deprecated on embedder-09, 0 requests; 0.8 retired, no usage rows.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from governance.choices import Role
from registry import sprawl
from registry.choices import LifecycleState
from registry.models import (
    CaseKind,
    CaseStatus,
    Endpoint,
    EndpointUsage,
    HardwarePrice,
    HardwareProfile,
    ModelVersion,
    RegisteredModel,
    RetirementCase,
    RetirementPolicy,
    RetirementStep,
)
from tests.factories import PASSWORD, UserFactory

NOW = dt.datetime(2026, 11, 15, 12, 0, tzinfo=dt.UTC)
TODAY = NOW.date()
G5, C5 = "ml.g5.xlarge", "ml.c5.large"


def at(year: int, month: int, day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(year, month, day, hour, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(NOW, tick=False)
    return time_machine


@pytest.fixture
def signed_in(client):
    def sign_in(user):
        client.logout()
        assert client.login(username=user.username, password=PASSWORD)
        return client

    return sign_in


@pytest.fixture
def prices(registry):
    profile = HardwareProfile.objects.create(name="1 x A10G 24GB", accelerator="NVIDIA A10G")
    cpu = HardwareProfile.objects.create(name="2 vCPU", accelerator="", accelerator_count=0)
    since = at(2025, 1, 1)
    HardwarePrice.objects.create(
        hardware_profile=profile,
        provider="aws",
        instance_type=G5,
        hourly_price=Decimal("3.00"),
        effective_from=since,
    )
    HardwarePrice.objects.create(
        hardware_profile=cpu,
        provider="aws",
        instance_type=C5,
        hourly_price=Decimal("0.50"),
        effective_from=since,
    )
    return profile


def endpoint(name: str, unit, *, version=None, instance_type=G5, count=1, status="InService"):
    return Endpoint.objects.create(
        provider="aws",
        account_id="111122223333",
        region="us-east-1",
        name=name,
        resource_id=f"arn:aws:sagemaker:us-east-1:111122223333:endpoint/{name}",
        status=status,
        instance_type=instance_type,
        instance_count=count,
        business_unit=unit,
        model_version=version,
    )


def version(model: RegisteredModel, name: str, state: str, profile) -> ModelVersion:
    return ModelVersion.objects.create(
        model=model,
        version=name,
        artifact_uri=f"s3://models/{model.name}/{name}/",
        framework="PyTorch",
        precision="bf16",
        serving_runtime="vLLM 0.8",
        hardware_profile=profile,
        state=state,
        created_by=model.created_by,
    )


def retired_case(unit, name: str, saving: str, retired_at, *, kind="delete", status="retired"):
    ep = endpoint(name, unit, status="Deleted (configuration kept)")
    case = RetirementCase.objects.create(
        kind=CaseKind.IDLE,
        endpoint=ep,
        business_unit=unit,
        status=status,
        opened_at=retired_at - dt.timedelta(days=10),
        monthly_cost=Decimal(saving),
        monthly_saving=Decimal(saving),
        currency="USD",
        retired_at=retired_at,
        summary=f"{name} is idle",
    )
    RetirementStep.objects.create(case=case, at=retired_at, kind=kind, text="done")
    return case


@pytest.fixture
def savings_seed(registry, clock):
    org = registry.org
    policy = RetirementPolicy.objects.create(name="Idle GPUs", action="delete", dry_run=False)
    deleted = retired_case(org.research, "ranker-old", "2190.00", at(2026, 8, 10))
    scaled = retired_case(
        org.research, "feature-svc", "500.00", at(2026, 9, 1, 0), kind="scale_min"
    )
    restored = retired_case(
        org.research, "ocr-batch", "800.00", at(2026, 6, 1), status=CaseStatus.RESTORED
    )
    RetirementStep.objects.create(case=restored, at=at(2026, 8, 15), kind="restore")
    dry = RetirementCase.objects.create(
        kind=CaseKind.IDLE,
        endpoint=endpoint("notebook", org.research),
        policy=policy,
        business_unit=org.research,
        status=CaseStatus.DRY_RUN,
        opened_at=at(2026, 10, 1),
        monthly_cost=Decimal("999.00"),
        monthly_saving=Decimal("999.00"),
        currency="USD",
        retired_at=at(2026, 10, 8),
    )
    RetirementStep.objects.create(case=dry, at=at(2026, 10, 8), kind="delete", dry_run=True)
    ads = retired_case(org.ads, "ads-scorer", "300.00", at(2026, 10, 15))
    return {"deleted": deleted, "scaled": scaled, "restored": restored, "dry": dry, "ads": ads}


@pytest.fixture
def sprawl_seed(registry, prices, clock):
    org = registry.org
    ranker = registry.model
    v30 = version(ranker, "3.0", LifecycleState.DEPLOYED, prices)
    v31 = version(ranker, "3.1", LifecycleState.DEPLOYED, prices)
    v32 = version(ranker, "3.2", LifecycleState.DEPLOYED, prices)
    endpoint("ranker-30-a", org.research, version=v30)
    endpoint("ranker-30-b", org.research, version=v30, count=2)
    endpoint("ranker-31", org.research, version=v31, instance_type=C5)
    endpoint("ranker-31-old", org.research, version=v31, status="Deleted (configuration kept)")
    endpoint("ranker-32", org.research, version=v32, instance_type="")
    embedder = RegisteredModel.objects.create(
        name="embedder",
        business_unit=org.ads,
        task="embedding",
        source="in-house",
        created_by=org.ads_engineer,
    )
    v10 = version(embedder, "1.0", LifecycleState.DEPRECATED, prices)
    v09 = version(embedder, "0.9", LifecycleState.DEPRECATED, prices)
    v08 = version(embedder, "0.8", LifecycleState.RETIRED, prices)
    busy = endpoint("embedder-10", org.ads, version=v10)
    quiet = endpoint("embedder-09", org.ads, version=v09, instance_type=C5)
    endpoint("embedder-08", org.ads, version=v08)
    yesterday = TODAY - dt.timedelta(days=1)
    EndpointUsage.objects.create(endpoint=busy, day=yesterday, invocations=1234)
    EndpointUsage.objects.create(
        endpoint=busy, day=TODAY - dt.timedelta(days=8), invocations=5000
    )  # before the 7 days
    EndpointUsage.objects.create(endpoint=busy, day=TODAY, invocations=77)  # today: not counted
    EndpointUsage.objects.create(endpoint=quiet, day=yesterday, invocations=0)
    return {"ranker": ranker, "v30": v30, "embedder": embedder, "v10": v10}


# --- savings ----------------------------------------------------------------------------------


def test_whole_months_count_only_complete_months():
    assert sprawl.whole_months(at(2026, 8, 10), NOW) == 3
    assert sprawl.whole_months(at(2026, 10, 20), NOW) == 0
    assert sprawl.whole_months(at(2026, 10, 15, 12), NOW) == 1
    assert sprawl.whole_months(at(2026, 10, 15, 13), NOW) == 0
    assert sprawl.whole_months(at(2026, 1, 31), at(2026, 2, 28)) == 0
    assert sprawl.whole_months(NOW, at(2026, 1, 1)) == 0


def test_savings_counts_retired_cases_and_stops_restored_ones_at_the_restore(
    registry, savings_seed, clock
):
    report = sprawl.savings(user=registry.org.researcher)
    assert [(r.case.endpoint.name, r.action) for r in report.retired] == [
        ("feature-svc", "Scaled to the minimum"),
        ("ranker-old", "Deleted"),
    ]
    rows = {r.case.endpoint.name: r for r in report.retired + report.restored}
    assert (rows["ranker-old"].months, rows["ranker-old"].saved_so_far) == (3, Decimal("6570.00"))
    assert (rows["feature-svc"].months, rows["feature-svc"].saved_so_far) == (
        2,
        Decimal("1000.00"),
    )
    assert [r.case.endpoint.name for r in report.restored] == ["ocr-batch"]
    assert rows["ocr-batch"].restored_at == at(2026, 8, 15)
    assert (rows["ocr-batch"].months, rows["ocr-batch"].saved_so_far) == (2, Decimal("1600.00"))
    assert "notebook" not in rows  # a dry run saves nothing
    assert report.monthly_totals == {"USD": Decimal("2690.00")}
    assert report.saved_totals == {"USD": Decimal("9170.00")}
    assert report.unknown == 0


def test_savings_of_another_unit_are_not_shown(registry, savings_seed, clock):
    ads = sprawl.savings(user=registry.org.ads_engineer)
    assert [r.case.endpoint.name for r in ads.retired] == ["ads-scorer"]
    assert ads.restored == []
    assert ads.monthly_totals == {"USD": Decimal("300.00")}
    everyone = sprawl.savings(user=registry.org.finance)
    assert everyone.monthly_totals == {"USD": Decimal("2990.00")}
    assert everyone.saved_totals == {"USD": Decimal("9470.00")}


def test_savings_with_an_unknown_saving_are_left_out_of_the_totals(registry, clock):
    case = retired_case(registry.org.research, "mystery", "1.00", at(2026, 9, 15))
    RetirementCase.objects.filter(pk=case.pk).update(monthly_saving=None)
    report = sprawl.savings(user=registry.org.researcher)
    assert report.retired[0].saved_so_far is None
    assert (report.monthly_totals, report.unknown) == ({}, 1)


# --- sprawl -----------------------------------------------------------------------------------


def test_sprawl_flags_a_model_with_more_than_k_deployed_versions(registry, sprawl_seed):
    report = sprawl.sprawl(user=registry.org.admin, k=2, today=TODAY)
    [item] = report.too_many_versions
    assert item.model == sprawl_seed["ranker"]
    assert [line.version.version for line in item.lines] == ["3.0", "3.1", "3.2"]
    assert item.costs == {"USD": Decimal("6935.00")}
    assert item.unpriced == 1
    assert item.open_case is None
    assert item.summary == (
        "ranker has 3 versions deployed at once (more than 2); they cost $6,935.00 "
        "(and 1 endpoint unpriced) a month"
    )
    assert item.evidence["monthly_cost"] == "6935.00"
    assert item.evidence["currency"] == "USD"
    assert sprawl.sprawl(user=registry.org.admin, k=3, today=TODAY).too_many_versions == []


def test_sprawl_lists_a_version_on_two_endpoints_with_each_cost(registry, sprawl_seed):
    report = sprawl.sprawl(user=registry.org.admin, today=TODAY)
    [item] = report.duplicates  # ranker 3.1's deleted endpoint no longer counts
    assert item.version == sprawl_seed["v30"]
    assert [(e.endpoint.name, e.monthly_cost) for e in item.lines[0].endpoints] == [
        ("ranker-30-a", Decimal("2190.00")),
        ("ranker-30-b", Decimal("4380.00")),
    ]
    assert item.lines[0].endpoints[0].how == "estimated: 1 x ml.g5.xlarge at 3.00 USD/h x 730 h"
    assert item.costs == {"USD": Decimal("6570.00")}
    assert item.summary == "ranker 3.0 is deployed on 2 endpoints; they cost $6,570.00 a month"


def test_sprawl_lists_deprecated_versions_that_served_traffic_in_the_last_7_days(
    registry, sprawl_seed
):
    report = sprawl.sprawl(user=registry.org.admin, today=TODAY)
    [item] = report.out_of_service  # 0.9 had no requests, 0.8 has no usage at all
    assert item.version == sprawl_seed["v10"]
    assert item.invocations == 1234
    assert item.costs == {"USD": Decimal("2190.00")}
    assert item.summary == (
        "embedder 1.0 is deprecated but served 1,234 requests in the last 7 days; its "
        "endpoints cost $2,190.00 a month"
    )
    assert item.evidence["invocations_7d"] == 1234


def test_sprawl_follows_the_registry_scoping(registry, sprawl_seed):
    research = sprawl.sprawl(user=registry.org.researcher, today=TODAY)
    assert [i.model.name for i in research.too_many_versions + research.duplicates] == [
        "ranker",
        "ranker",
    ]
    assert research.out_of_service == []
    ads = sprawl.sprawl(user=registry.org.ads_engineer, today=TODAY)
    assert (ads.too_many_versions, ads.duplicates) == ([], [])
    assert [i.model.name for i in ads.out_of_service] == ["embedder"]
    board = sprawl.sprawl(user=registry.board_ml, today=TODAY)
    assert len(board.too_many_versions + board.duplicates + board.out_of_service) == 3


def test_sprawl_refuses_k_out_of_range(registry):
    with pytest.raises(ValueError, match="k must be"):
        sprawl.sprawl(user=registry.org.admin, k=0)


# --- pages ------------------------------------------------------------------------------------


def page(client, name: str, **params):
    response = client.get(reverse(f"registry:{name}"), params)
    return response, response.content.decode()


def test_savings_page_shows_rows_and_totals(registry, savings_seed, clock, signed_in):
    response, html = page(signed_in(registry.org.researcher), "retirement-savings")
    assert response.status_code == 200
    for figure in ("2,190.00 USD", "6,570.00 USD", "500.00 USD", "1,000.00 USD", "1,600.00 USD"):
        assert figure in html
    assert '<td class="num">2,690.00 USD</td><td class="num">9,170.00 USD</td>' in html
    assert "ranker-old" in html
    assert "ocr-batch" in html
    assert "notebook" not in html
    assert "ads-scorer" not in html


def test_savings_page_empty_state(registry, signed_in):
    _, html = page(signed_in(registry.org.researcher), "retirement-savings")
    assert "Nothing retired yet —" in html


def test_sprawl_page_shows_the_three_sections_and_the_button(registry, sprawl_seed, signed_in):
    response, html = page(signed_in(registry.org.admin), "retirement-sprawl")
    assert response.status_code == 200
    for figure in ("6,935.00 USD", "2,190.00 USD", "4,380.00 USD", "365.00 USD", "6,570.00 USD"):
        assert figure in html
    assert "1,234" in html
    assert "embedder-09" not in html
    assert html.count("Open a consolidation case") == 3
    assert 'name="csrfmiddlewaretoken"' in html
    _, html = page(signed_in(registry.org.admin), "retirement-sprawl", k=3)
    assert "No model has more than 3 versions deployed at once." in html
    assert html.count("Open a consolidation case") == 2


def test_sprawl_page_validates_k(registry, signed_in):
    client = signed_in(registry.org.admin)
    for bad in ("0", "51", "two"):
        response, html = page(client, "retirement-sprawl", k=bad)
        assert response.status_code == 400
        assert "K must be a whole number from 1 to 50" in html


def test_sprawl_page_offers_no_button_to_an_engineer(registry, sprawl_seed, signed_in):
    _, html = page(signed_in(registry.org.researcher), "retirement-sprawl")
    assert "6,935.00 USD" in html
    assert "Open a consolidation case</button>" not in html


def consolidate(client, **data):
    return client.post(reverse("registry:retirement-consolidate"), data)


def test_consolidation_opens_one_case_and_refuses_a_second(registry, sprawl_seed, signed_in):
    client = signed_in(registry.org.admin)
    ranker = sprawl_seed["ranker"]
    response = consolidate(client, kind="versions", model=ranker.pk, k=2)
    case = RetirementCase.objects.get(kind=CaseKind.CONSOLIDATION)
    assert response.status_code == 302
    assert response["Location"] == f"/registry/retirement/cases/{case.pk}/"
    assert (case.model, case.status, case.business_unit) == (ranker, "open", ranker.business_unit)
    assert case.summary.startswith("ranker has 3 versions deployed at once (more than 2)")
    assert (case.monthly_cost, case.currency) == (Decimal("6935.00"), "USD")
    assert [v["version"] for v in case.evidence["versions"]] == ["3.0", "3.1", "3.2"]

    again = consolidate(client, kind="duplicates", model=ranker.pk, version=sprawl_seed["v30"].pk)
    assert again.status_code == 302
    assert again["Location"] == reverse("registry:retirement-sprawl")
    _, html = page(client, "retirement-sprawl")
    assert f"Consolidation case #{case.pk} is already open for ranker." in html
    assert f"Consolidation case #{case.pk} is open" in html
    assert html.count("Open a consolidation case</button>") == 1  # only embedder's is left
    assert RetirementCase.objects.filter(kind=CaseKind.CONSOLIDATION).count() == 1


def test_consolidation_is_refused_to_an_engineer(registry, sprawl_seed, signed_in):
    client = signed_in(registry.org.researcher)
    response = consolidate(client, kind="versions", model=sprawl_seed["ranker"].pk)
    assert response.status_code == 403
    assert not RetirementCase.objects.filter(kind=CaseKind.CONSOLIDATION).exists()


def test_consolidation_of_a_finding_no_longer_shown_opens_nothing(registry, sprawl_seed, signed_in):
    client = signed_in(registry.org.finance)
    response = consolidate(client, kind="versions", model=sprawl_seed["ranker"].pk, k=5)
    assert response.status_code == 302
    assert response["Location"] == reverse("registry:retirement-sprawl") + "?k=5"
    assert not RetirementCase.objects.exists()


def test_consolidation_needs_post(registry, signed_in):
    response = signed_in(registry.org.admin).get(reverse("registry:retirement-consolidate"))
    assert response.status_code == 405


# --- query counts -----------------------------------------------------------------------------


def _more(registry, prices, n: int) -> None:
    """``n`` more sprawling models and ``n`` more retired endpoints, in Research."""
    unit = registry.org.research
    for i in range(n):
        model = RegisteredModel.objects.create(
            name=f"model-{i}",
            business_unit=unit,
            task="ranking",
            source="in-house",
            created_by=registry.org.researcher,
        )
        for j in range(3):
            v = version(model, f"{j}.0", LifecycleState.DEPLOYED, prices)
            endpoint(f"model-{i}-{j}-a", unit, version=v)
            endpoint(f"model-{i}-{j}-b", unit, version=v, instance_type=C5)
        old = version(model, "0.1", LifecycleState.DEPRECATED, prices)
        served = endpoint(f"model-{i}-old", unit, version=old)
        EndpointUsage.objects.create(
            endpoint=served, day=TODAY - dt.timedelta(days=2), invocations=9
        )
        retired_case(unit, f"idle-{i}", "100.00", at(2026, 9, 1))
    restored = retired_case(unit, "back-again", "10.00", at(2026, 7, 1), status="restored")
    RetirementStep.objects.create(case=restored, at=at(2026, 8, 1), kind="restore")


# Session, user, roles, then the page's own reads; the researcher's unit scope adds one.
PAGE_QUERIES = {
    "savings-researcher": ("retirement-savings", "researcher", 6),
    "savings-finance": ("retirement-savings", "finance", 5),
    "sprawl-researcher": ("retirement-sprawl", "researcher", 11),
    "sprawl-admin": ("retirement-sprawl", "admin", 10),
}


@pytest.mark.parametrize("case", list(PAGE_QUERIES))
def test_pages_read_a_fixed_number_of_queries(
    registry, prices, clock, signed_in, django_assert_max_num_queries, case
):
    """Six sprawling models (18 deployed versions, 36 endpoints, 6 deprecated ones serving)
    and seven retired endpoints: still a handful of queries."""
    name, who, bound = PAGE_QUERIES[case]
    _more(registry, prices, 6)
    client = signed_in(getattr(registry.org, who))
    with django_assert_max_num_queries(bound):
        response, html = page(client, name)
    assert response.status_code == 200
    assert ("model-5-2-b" if "sprawl" in name else "idle-5") in html


def test_a_board_member_may_open_cases_from_the_page(registry, sprawl_seed, signed_in):
    board = UserFactory(username="bo", roles=[Role.BOARD_PRODUCT])
    _, html = page(signed_in(board), "retirement-sprawl")
    assert html.count("Open a consolidation case</button>") == 3
