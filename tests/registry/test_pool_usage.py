"""GPU-hours per pool, business unit and day in: CSV and JSON rows, the endpoint derivation,
the command and the API."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from governance.exceptions import DomainError, PermissionDeniedError
from registry import services
from registry.models import CapacityPool, HardwarePrice, HardwareProfile, PoolUsage
from registry.pool_usage_csv import UsageFileError, pool_usage_csv_read, pool_usage_json_read
from registry.tasks import pool_usage_from_endpoints_task

POOLS = {"h100-shared", "a100-batch"}
UNITS = {"RES", "ADS"}
OCT5, OCT6, OCT7 = date(2026, 10, 5), date(2026, 10, 6), date(2026, 10, 7)
GOOD_FILE = (
    "\ufeffpool , business_unit , day , gpu_hours\n"
    " h100-shared , RES , 2026-10-05 , 384\n"
    "\n"
    "h100-shared,ads,2026-10-05,12.5\n"
)


def stored() -> list[tuple]:
    return list(
        PoolUsage.objects.order_by("pool__code", "business_unit__code", "day").values_list(
            "pool__code", "business_unit__code", "day", "gpu_hours", "source"
        )
    )


# --- the pure parser -------------------------------------------------------------------------


def test_pool_usage_csv_read_takes_a_header_whitespace_and_a_bom():
    rows = pool_usage_csv_read(GOOD_FILE.encode(), pools=POOLS, units=UNITS)
    assert [(r.pool, r.business_unit, r.day, r.gpu_hours) for r in rows] == [
        ("h100-shared", "RES", OCT5, Decimal(384)),
        ("h100-shared", "ADS", OCT5, Decimal("12.5")),  # unit codes ignore case
    ]
    headless = pool_usage_csv_read("a100-batch,RES,2026-10-06,0\n", pools=POOLS, units=UNITS)
    assert headless[0].gpu_hours == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "h100-share,RES,2026-10-05,1\n",
            "line 1, column pool: no capacity pool has the code 'h100-share' (did you mean "
            "'h100-shared'?); use the code of a pool defined in Capgov.",
        ),
        (
            "pool,business_unit,day,gpu_hours\nh100-shared,RES,2026-10-05,1\n"
            "h100-shared,FIN,2026-10-05,1\n",
            "line 3, column business_unit: no business unit has the code 'FIN' (there are ADS, "
            "RES); use the code of a business unit defined in Capgov.",
        ),
        (
            "h100-shared,RES,2026/10/05,1\n",
            "line 1, column day: '2026/10/05' is not a date written YYYY-MM-DD (e.g. 2026-10-05).",
        ),
        (
            "h100-shared,RES,2026-10-05,-0.5\n",
            "line 1, column gpu_hours: '-0.5' is negative; give the GPU-hours used that day, "
            "0 or more.",
        ),
        (
            "h100-shared,RES,2026-10-05,1.2345\n",
            "line 1, column gpu_hours: '1.2345' has more than 3 decimal places; round it to 3.",
        ),
        (
            "h100-shared,RES,2026-10-05,\n",
            "line 1, column gpu_hours: empty; give the GPU-hours used that day.",
        ),
        (
            "h100-shared,RES,2026-10-05,1\nh100-shared,res,2026-10-05,2\n",
            "line 2: RES on pool h100-shared on 2026-10-05 is already on line 1; give one row "
            "per day.",
        ),
        (
            "h100-shared,RES,2026-10-05\n",
            "line 1: 3 values where 4 are expected (pool, business_unit, day, gpu_hours); check "
            "for a missing or extra comma.",
        ),
        (
            "pool,unit,day,gpu_hours\n",
            "line 1: the header names an unknown column 'unit'; the columns are pool, "
            "business_unit, day, gpu_hours.",
        ),
        ("", "The file holds no rows"),
    ],
)
def test_pool_usage_csv_read_refuses_the_file_naming_line_column_and_fix(text, message):
    with pytest.raises(UsageFileError) as refused:
        pool_usage_csv_read(text, pools=POOLS, units=UNITS)
    assert str(refused.value).startswith(message)


def test_pool_usage_json_read_names_the_row_and_field():
    with pytest.raises(UsageFileError, match=r"^row 1, field gpu_hours: 'lots' is not a number"):
        pool_usage_json_read(
            [
                {
                    "pool": "h100-shared",
                    "business_unit": "RES",
                    "day": "2026-10-05",
                    "gpu_hours": "lots",
                }
            ],
            pools=POOLS,
            units=UNITS,
        )


# --- the services ------------------------------------------------------------------------------


def test_pool_usage_import_upserts_the_same_pool_unit_and_day(registry):
    assert services.pool_usage_import(data=GOOD_FILE) == 2
    assert services.pool_usage_import(data="h100-shared,RES,2026-10-05,100.25\n") == 1
    assert stored() == [
        ("h100-shared", "ADS", OCT5, Decimal("12.500"), "upload"),
        ("h100-shared", "RES", OCT5, Decimal("100.250"), "upload"),
    ]


def test_pool_usage_import_stores_nothing_when_one_row_is_bad(registry):
    services.pool_usage_import(data="h100-shared,RES,2026-10-05,1\n")
    with pytest.raises(DomainError, match=r"^line 2, column pool: no capacity pool"):
        services.pool_usage_import(data="h100-shared,RES,2026-10-05,50\nnope,RES,2026-10-06,1\n")
    assert stored() == [("h100-shared", "RES", OCT5, Decimal("1.000"), "upload")]


def test_pool_usage_record_takes_json_rows_for_finance_and_admins_only(registry):
    org = registry.org
    rows = [{"pool": "h100-shared", "business_unit": "RES", "day": "2026-10-05", "gpu_hours": 7}]
    with pytest.raises(PermissionDeniedError, match="finance and platform admins"):
        services.pool_usage_record(rows=rows, source="api", by=org.researcher)
    with pytest.raises(PermissionDeniedError):
        services.pool_usage_import(data=GOOD_FILE, by=org.ads_engineer)
    assert services.pool_usage_record(rows=rows, source="api", by=org.finance) == 1
    assert services.pool_usage_import(data=GOOD_FILE, by=org.admin) == 2
    assert not services.pool_usage_record(rows=[], source="api")


# --- derived from the endpoints ---------------------------------------------------------------


@pytest.fixture
def eight_gpu(registry) -> CapacityPool:
    """A pool of 8 x H100 nodes, priced at AWS as ml.p5.48xlarge."""
    profile = HardwareProfile.objects.create(
        name="8 x H100 80GB", accelerator="NVIDIA H100 80GB", accelerator_count=8
    )
    HardwarePrice.objects.create(
        hardware_profile=profile,
        provider="aws",
        instance_type="ml.p5.48xlarge",
        hourly_price=Decimal("98.32"),
        effective_from=timezone.now() - timezone.timedelta(days=30),
    )
    return CapacityPool.objects.create(
        code="p5-nodes",
        name="P5 nodes",
        provider="aws",
        hardware_profile=profile,
        accelerator_count=64,
    )


def endpoint(
    registry,
    name="ranker",
    *,
    unit="research",
    instance_type="ml.p5.48xlarge",
    count=2,
    provider="aws",
):
    return services.endpoint_upsert(
        provider=provider,
        account_id="111122223333",
        region="us-east-1",
        name=name,
        resource_id=f"arn:aws:sagemaker:us-east-1:111122223333:endpoint/{name}",
        instance_type=instance_type,
        instance_count=count,
        business_unit=getattr(registry.org, unit) if unit else None,
    )[0]


def test_two_instances_of_eight_gpus_use_384_gpu_hours_a_day(registry, eight_gpu):
    ranker = endpoint(registry)
    services.endpoint_usage_record(endpoint=ranker, invocations={OCT5: 1000, OCT6: 0})
    assert services.pool_usage_from_endpoints(days=[OCT5, OCT6, OCT7]) == 2
    # Oct 6 served nothing but held the GPUs; Oct 7 has no usage row, so it is unknown.
    assert stored() == [
        ("p5-nodes", "RES", OCT5, Decimal("384.000"), "endpoints"),
        ("p5-nodes", "RES", OCT6, Decimal("384.000"), "endpoints"),
    ]


def test_a_units_endpoints_on_a_pool_add_up_and_others_are_left_out(registry, eight_gpu):
    for name, kwargs in {
        "ranker": {},
        "embedder": {"count": 1},
        "ads-ranker": {"unit": "ads", "count": 3},
        "untagged": {"unit": None},
        "cpu-box": {"instance_type": "ml.m5.xlarge"},
        "gcp-twin": {"provider": "gcp"},
    }.items():
        services.endpoint_usage_record(
            endpoint=endpoint(registry, name, **kwargs), invocations={OCT5: 10}
        )
    services.pool_usage_from_endpoints(days=[OCT5])
    assert stored() == [
        ("p5-nodes", "ADS", OCT5, Decimal("576.000"), "endpoints"),
        ("p5-nodes", "RES", OCT5, Decimal("576.000"), "endpoints"),
    ]


def test_an_instance_type_that_fits_two_pools_is_left_out(registry, eight_gpu):
    CapacityPool.objects.create(
        code="p5-spare",
        name="Spare P5",
        provider="aws",
        hardware_profile=eight_gpu.hardware_profile,
        accelerator_count=16,
    )
    services.endpoint_usage_record(endpoint=endpoint(registry), invocations={OCT5: 10})
    assert services.pool_usage_from_endpoints(days=[OCT5]) == 0


def test_the_derivation_never_overwrites_an_upload_and_replaces_its_own(registry, eight_gpu):
    services.pool_usage_import(data="p5-nodes,RES,2026-10-05,200\n")
    ranker = endpoint(registry)
    services.endpoint_usage_record(endpoint=ranker, invocations={OCT5: 10, OCT6: 10})
    assert services.pool_usage_from_endpoints(days=[OCT5, OCT6]) == 1
    # The endpoint moves to Ads: re-running moves its hours, it does not count them twice.
    endpoint(registry, unit="ads")
    assert services.pool_usage_from_endpoints(days=[OCT5, OCT6]) == 2
    assert services.pool_usage_from_endpoints(days=[OCT5, OCT6]) == 2
    assert stored() == [
        ("p5-nodes", "ADS", OCT5, Decimal("384.000"), "endpoints"),
        ("p5-nodes", "ADS", OCT6, Decimal("384.000"), "endpoints"),
        ("p5-nodes", "RES", OCT5, Decimal("200.000"), "upload"),
    ]


def test_the_daily_task_works_out_the_three_days_before_today(
    registry, eight_gpu, time_machine, settings
):
    time_machine.move_to(datetime(2026, 10, 8, 2, 0, tzinfo=UTC), tick=False)
    services.endpoint_usage_record(
        endpoint=endpoint(registry),
        invocations={date(2026, 10, 4): 1, OCT5: 1, OCT7: 1, date(2026, 10, 8): 1},
    )
    assert pool_usage_from_endpoints_task.delay().get() == 2
    assert [row[2] for row in stored()] == [OCT5, OCT7]
    entry = settings.CAPGOV_SCHEDULES["pool-usage-from-endpoints"]
    assert entry["task"] == pool_usage_from_endpoints_task.name
    assert entry["schedule"] == 24 * 3600


def test_endpoint_usage_record_keeps_error_counts_within_invocations(registry):
    ranker = endpoint(registry)
    services.endpoint_usage_record(endpoint=ranker, invocations={OCT5: 10}, errors={OCT5: 2})
    assert ranker.usage.get().errors == 2
    with pytest.raises(DomainError, match="between 0 and that day's invocations"):
        services.endpoint_usage_record(endpoint=ranker, invocations={OCT5: 10}, errors={OCT5: 11})


# --- the command -------------------------------------------------------------------------------


def test_load_pool_usage_prints_the_rows_stored(registry, tmp_path, capsys):
    path = tmp_path / "usage.csv"
    path.write_text(GOOD_FILE, encoding="utf-8")
    call_command("load_pool_usage", str(path))
    assert "2 pool usage rows stored from usage.csv." in capsys.readouterr().out
    path.write_text("h100-shared,RES,2026-10-06,-3\n")
    with pytest.raises(
        CommandError, match=r"^usage.csv: line 1, column gpu_hours: '-3' is negative"
    ):
        call_command("load_pool_usage", str(path))
    assert len(stored()) == 2


# --- the API -----------------------------------------------------------------------------------


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_api_posts_a_csv_file_or_json_rows(registry):
    finance = client_for(registry.org.finance)
    upload = SimpleUploadedFile("usage.csv", GOOD_FILE.encode(), content_type="text/csv")
    response = finance.post("/api/v1/pool-usage/", {"file": upload}, format="multipart")
    assert response.status_code == 200, response.json()
    assert response.json() == {"stored": 2}
    rows = [{"pool": "h100-shared", "business_unit": "RES", "day": "2026-10-06", "gpu_hours": 3.5}]
    response = client_for(registry.org.admin).post("/api/v1/pool-usage/", rows, format="json")
    assert response.json() == {"stored": 1}
    assert stored()[-1] == ("h100-shared", "RES", OCT6, Decimal("3.500"), "api")


def test_api_answers_a_bad_file_with_400_and_its_message(registry):
    bad = SimpleUploadedFile(
        "usage.csv", b"h100-shared,RES,2026-10-05,1\nh100-shared,RES,2026-10-32,1\n"
    )
    response = client_for(registry.org.finance).post(
        "/api/v1/pool-usage/", {"file": bad}, format="multipart"
    )
    assert response.status_code == 400
    assert response.json() == {
        "detail": "line 2, column day: '2026-10-32' is not a date written YYYY-MM-DD "
        "(e.g. 2026-10-05)."
    }
    assert not PoolUsage.objects.exists()


def test_api_a_business_unit_member_cannot_post(registry):
    member = client_for(registry.org.researcher)
    rows = [{"pool": "h100-shared", "business_unit": "RES", "day": "2026-10-06", "gpu_hours": 1}]
    assert member.post("/api/v1/pool-usage/", rows, format="json").status_code == 403
    upload = SimpleUploadedFile("usage.csv", GOOD_FILE.encode())
    assert (
        member.post("/api/v1/pool-usage/", {"file": upload}, format="multipart").status_code == 403
    )
    assert not PoolUsage.objects.exists()


def test_api_list_shows_a_member_only_their_units_rows(registry):
    services.pool_usage_import(
        data="h100-shared,RES,2026-10-05,10\nh100-shared,ADS,2026-10-05,20\n"
        "h100-shared,ADS,2026-11-01,30\n"
    )

    def codes(user, query=""):
        body = client_for(user).get(f"/api/v1/pool-usage/{query}").json()
        return [(r["business_unit"], r["day"], r["gpu_hours"]) for r in body["results"]]

    assert codes(registry.org.researcher) == [("RES", "2026-10-05", "10.000")]
    assert codes(registry.org.ads_engineer, "?month=2026-10") == [("ADS", "2026-10-05", "20.000")]
    assert codes(registry.org.researcher, "?business_unit=ADS") == []
    assert len(codes(registry.org.finance)) == 3
    assert codes(registry.org.finance, "?business_unit=ads&month=2026-11") == [
        ("ADS", "2026-11-01", "30.000")
    ]
    assert (
        client_for(registry.org.finance).get("/api/v1/pool-usage/?month=11-2026").status_code == 400
    )


@pytest.mark.parametrize("who", ["finance", "researcher"])
def test_api_list_reads_in_a_bounded_number_of_queries(
    registry, eight_gpu, who, django_assert_max_num_queries
):
    lines = "".join(
        f"{pool},{unit},2026-10-{day:02d},{day}\n"
        for pool in ("h100-shared", "p5-nodes")
        for unit in ("RES", "ADS")
        for day in range(1, 29)
    )
    services.pool_usage_import(data=lines)
    client = client_for(getattr(registry.org, who))
    with django_assert_max_num_queries(5):
        response = client.get("/api/v1/pool-usage/?month=2026-10")
    assert response.json()["count"] == (112 if who == "finance" else 56)


def test_admin_lists_pool_usage_for_platform_admins_without_editing(registry, client):
    services.pool_usage_import(data=GOOD_FILE)
    admin = registry.org.admin
    admin.is_staff = True
    admin.save()
    client.force_login(admin)
    page = client.get("/admin/registry/poolusage/")
    assert page.status_code == 200
    assert b"Shared H100 pool" in page.content
    assert client.get("/admin/registry/poolusage/add/").status_code == 403
    finance = registry.org.finance
    finance.is_staff = True
    finance.save()
    client.force_login(finance)
    assert client.get("/admin/registry/poolusage/").status_code == 403
