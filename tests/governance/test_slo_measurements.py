"""Daily SLO measurements in: CSV and JSON rows, the usage derivation, command and API."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from governance import services
from governance.exceptions import DomainError, PermissionDeniedError
from governance.models import ServiceLevelObjective, SloMeasurement
from governance.slo_csv import UsageFileError, slo_csv_read, slo_json_read
from registry.services import endpoint_upsert, endpoint_usage_record, slo_measurements_from_usage
from registry.tasks import slo_measurements_from_usage_task

INDICATORS = {"ranker-availability": "availability", "ranker-latency": "latency_p95"}
OCT5, OCT6, OCT7 = date(2026, 10, 5), date(2026, 10, 6), date(2026, 10, 7)

GOOD_FILE = (
    "\ufeffslo, day, value, good, total\r\n"
    " ranker-availability , 2026-10-05 , 99.95 , 19990 , 20000 \r\n"
    "\r\n"
    "ranker-latency,2026-10-05,412.5\r\n"
)


@pytest.fixture
def slos(db) -> dict[str, ServiceLevelObjective]:
    return {
        "availability": ServiceLevelObjective.objects.create(
            name="ranker-availability",
            service="ranker",
            indicator="availability",
            target=Decimal("99.9"),
        ),
        "latency": ServiceLevelObjective.objects.create(
            name="ranker-latency", service="ranker", indicator="latency_p95", target=Decimal(500)
        ),
    }


def stored() -> list[tuple]:
    return list(
        SloMeasurement.objects.order_by("slo__name", "day").values_list(
            "slo__name", "day", "value", "good", "total", "source"
        )
    )


# --- the pure parser -------------------------------------------------------------------------


def test_slo_csv_read_takes_a_header_whitespace_a_bom_and_optional_counts():
    rows = slo_csv_read(GOOD_FILE.encode(), indicators=INDICATORS)
    assert [(r.slo, r.day, r.value, r.good, r.total) for r in rows] == [
        ("ranker-availability", OCT5, Decimal("99.95"), 19990, 20000),
        ("ranker-latency", OCT5, Decimal("412.5"), None, None),
    ]


def test_slo_csv_read_without_a_header_reads_columns_in_order():
    rows = slo_csv_read("ranker-availability,2026-10-05,99.5,995,1000\n", indicators=INDICATORS)
    assert (rows[0].value, rows[0].good, rows[0].total) == (Decimal("99.5"), 995, 1000)


def test_slo_csv_read_header_columns_may_come_in_any_order():
    rows = slo_csv_read("day,value,slo\n2026-10-06,410,ranker-latency\n", indicators=INDICATORS)
    assert (rows[0].slo, rows[0].day, rows[0].value) == ("ranker-latency", OCT6, Decimal(410))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "ranker-availabilty,2026-10-05,99.9\n",
            "line 1, column slo: no SLO is named 'ranker-availabilty' (did you mean "
            "'ranker-availability'?); use the name of an SLO defined in Capgov",
        ),
        (
            "slo,day,value\nranker-latency,2026-10-05,410\nranker-latency,5.10.2026,400\n",
            "line 3, column day: '5.10.2026' is not a date written YYYY-MM-DD (e.g. 2026-10-05).",
        ),
        (
            "ranker-latency,2026-02-30,410\n",
            "line 1, column day: '2026-02-30' is not a date written YYYY-MM-DD",
        ),
        (
            "ranker-latency,2026-10-05,-4\n",
            "line 1, column value: '-4' is negative; give the day's p95 latency in ms, 0 or more.",
        ),
        (
            "ranker-availability,2026-10-05,99,-1,10\n",
            "line 1, column good: '-1' is not a whole number 0 or more; good counts requests.",
        ),
        (
            "ranker-availability,2026-10-05,99,11,10\n",
            "line 1, column good: 11 is more than total 10; good counts the successful "
            "requests among the total.",
        ),
        (
            "ranker-availability,2026-10-05,100.01\n",
            "line 1, column value: '100.01' is outside 0-100; an availability is a percentage",
        ),
        (
            "ranker-latency,2026-10-05,410\nranker-latency,2026-10-06,411\n"
            "ranker-latency,2026-10-05,412\n",
            "line 3: SLO ranker-latency on 2026-10-05 is already on line 1; give one row per day.",
        ),
        (
            "ranker-availability,2026-10-05,99,990\n",
            "line 1, column total: empty; give both good and total, or neither.",
        ),
        (
            "ranker-latency,2026-10-05,abc\n",
            "line 1, column value: 'abc' is not a number; give the day's p95 latency in ms",
        ),
        (
            "ranker-latency,2026-10-05,410.12345\n",
            "line 1, column value: '410.12345' has more than 4 decimal places; round it to 4.",
        ),
        (
            "ranker-latency,2026-10-05\n",
            "line 1: 2 values where 3 to 5 are expected (slo, day, value[, good, total])",
        ),
        (
            "slo,day,valeu\n",
            "line 1: the header names an unknown column 'valeu'; the columns are slo, day, "
            "value[, good, total].",
        ),
        ("slo,day,value\n", "The file holds no rows; give one row per line"),
        ('ranker-latency,2026-10-05,"410\n', "line 1: unexpected end of data; check the quotes"),
    ],
)
def test_slo_csv_read_refuses_the_file_naming_line_column_and_fix(text, message):
    with pytest.raises(UsageFileError) as refused:
        slo_csv_read(text, indicators=INDICATORS)
    assert str(refused.value).startswith(message)


def test_slo_csv_read_refuses_a_file_that_is_not_utf8():
    with pytest.raises(UsageFileError, match=r"^line 2: the file is not UTF-8 text"):
        slo_csv_read(
            b"ranker-latency,2026-10-05,410\nranker-latency,2026-10-06,\xe94\n",
            indicators=INDICATORS,
        )


def test_slo_json_read_names_the_row_and_field():
    rows = slo_json_read(
        [{"slo": "ranker-latency", "day": "2026-10-05", "value": 410.5}], indicators=INDICATORS
    )
    assert rows[0].value == Decimal("410.5")
    with pytest.raises(UsageFileError, match=r"^row 2, field value: 101 is outside 0-100"):
        slo_json_read(
            [
                {"slo": "ranker-availability", "day": "2026-10-05", "value": 99},
                {"slo": "ranker-availability", "day": "2026-10-06", "value": 101},
            ],
            indicators=INDICATORS,
        )
    with pytest.raises(UsageFileError, match=r"^row 1: unknown field 'vaule'"):
        slo_json_read([{"slo": "x", "day": "2026-10-05", "vaule": 1}], indicators=INDICATORS)


# --- the services ------------------------------------------------------------------------------


def test_slo_measurements_import_stores_and_a_second_file_replaces_the_same_day(slos):
    assert services.slo_measurements_import(data=GOOD_FILE.encode()) == 2
    assert (
        services.slo_measurements_import(
            data="ranker-latency,2026-10-05,398.25\nranker-latency,2026-10-06,405\n"
        )
        == 2
    )
    assert stored() == [
        ("ranker-availability", OCT5, Decimal("99.9500"), 19990, 20000, "upload"),
        ("ranker-latency", OCT5, Decimal("398.2500"), None, None, "upload"),
        ("ranker-latency", OCT6, Decimal("405.0000"), None, None, "upload"),
    ]


def test_slo_measurements_import_stores_nothing_when_one_row_is_bad(slos):
    services.slo_measurements_import(data="ranker-latency,2026-10-05,400\n")
    with pytest.raises(DomainError, match=r"^line 3, column value: '-1' is negative"):
        services.slo_measurements_import(
            data="ranker-latency,2026-10-05,300\nranker-latency,2026-10-06,301\n"
            "ranker-latency,2026-10-07,-1\n"
        )
    assert stored() == [("ranker-latency", OCT5, Decimal("400.0000"), None, None, "upload")]


def test_slo_measurements_record_takes_values_and_text(slos):
    count = services.slo_measurements_record(
        rows=[
            {
                "slo": "ranker-availability",
                "day": OCT5,
                "value": Decimal("99.5"),
                "good": 199,
                "total": 200,
            },
            {"slo": "ranker-latency", "day": "2026-10-05", "value": "401"},
        ],
        source="api",
    )
    assert count == 2
    assert stored()[0] == ("ranker-availability", OCT5, Decimal("99.5000"), 199, 200, "api")


def test_slo_measurements_are_for_finance_and_platform_admins(org, slos):
    rows = [{"slo": "ranker-latency", "day": "2026-10-05", "value": "401"}]
    for person in (org.researcher, org.ads_engineer):
        with pytest.raises(PermissionDeniedError, match="finance and platform admins"):
            services.slo_measurements_record(rows=rows, source="api", by=person)
        with pytest.raises(PermissionDeniedError):
            services.slo_measurements_import(data=GOOD_FILE, by=person)
    assert services.slo_measurements_record(rows=rows, source="api", by=org.finance) == 1
    assert services.slo_measurements_import(data=GOOD_FILE, by=org.admin) == 2


def test_slo_measurements_record_refuses_what_is_not_a_list_of_rows(slos):
    with pytest.raises(DomainError, match="Send a list of rows"):
        services.slo_measurements_record(rows={"slo": "ranker-latency"}, source="api")
    assert services.slo_measurements_record(rows=[], source="api") == 0


# --- derived from endpoint usage ---------------------------------------------------------------


def endpoint(name: str = "ranker", region: str = "us-east-1"):
    return endpoint_upsert(
        provider="aws",
        account_id="111122223333",
        region=region,
        name=name,
        resource_id=f"arn:aws:sagemaker:{region}:111122223333:endpoint/{name}",
        instance_type="ml.p5.48xlarge",
        instance_count=2,
    )[0]


def test_availability_is_worked_out_exactly_from_invocations_and_errors(slos):
    endpoint_usage_record(
        endpoint=endpoint(),
        invocations={OCT5: 30_000, OCT6: 3, OCT7: 1000},
        errors={OCT5: 15, OCT6: 1},  # no error count on Oct 7
    )
    assert slo_measurements_from_usage(days=[OCT5, OCT6, OCT7]) == 2
    assert stored() == [
        ("ranker-availability", OCT5, Decimal("99.9500"), 29_985, 30_000, "usage"),
        # 2 / 3 = 66.666...: rounded down, so a day with errors never reads better than it was
        ("ranker-availability", OCT6, Decimal("66.6666"), 2, 3, "usage"),
    ]


def test_no_usage_or_no_traffic_gives_no_measurement(slos):
    endpoint_usage_record(endpoint=endpoint(), invocations={OCT5: 0}, errors={OCT5: 0})
    assert slo_measurements_from_usage(days=[OCT5, OCT6]) == 0
    assert not SloMeasurement.objects.exists()


def test_endpoints_of_one_name_add_up_and_need_every_error_count(slos):
    east, west = endpoint(), endpoint(region="eu-west-1")
    endpoint_usage_record(endpoint=east, invocations={OCT5: 900, OCT6: 10}, errors={OCT5: 9})
    endpoint_usage_record(
        endpoint=west, invocations={OCT5: 100, OCT6: 10}, errors={OCT5: 1, OCT6: 0}
    )
    slo_measurements_from_usage(days=[OCT5, OCT6])
    assert stored() == [("ranker-availability", OCT5, Decimal("99.0000"), 990, 1000, "usage")]


def test_the_derivation_never_overwrites_an_upload_but_replaces_its_own(slos):
    services.slo_measurements_import(data="ranker-availability,2026-10-05,99.99\n")
    ranker = endpoint()
    endpoint_usage_record(
        endpoint=ranker, invocations={OCT5: 100, OCT6: 100}, errors={OCT5: 50, OCT6: 10}
    )
    assert slo_measurements_from_usage(days=[OCT5, OCT6]) == 1
    endpoint_usage_record(endpoint=ranker, invocations={OCT6: 100}, errors={OCT6: 20})
    assert slo_measurements_from_usage(days=[OCT5, OCT6]) == 1
    assert stored() == [
        ("ranker-availability", OCT5, Decimal("99.9900"), None, None, "upload"),
        ("ranker-availability", OCT6, Decimal("80.0000"), 80, 100, "usage"),
    ]
    # An upload replaces what the derivation worked out.
    services.slo_measurements_import(data="ranker-availability,2026-10-06,99.5\n")
    assert stored()[1][-1] == "upload"


def test_latency_slos_and_other_services_are_not_derived(slos):
    endpoint_usage_record(endpoint=endpoint("search"), invocations={OCT5: 10}, errors={OCT5: 1})
    assert slo_measurements_from_usage(days=[OCT5]) == 0


def test_the_daily_task_works_out_the_three_days_before_today(slos, time_machine, settings):
    time_machine.move_to(datetime(2026, 10, 8, 2, 0, tzinfo=UTC), tick=False)
    endpoint_usage_record(
        endpoint=endpoint(),
        invocations={date(2026, 10, 4): 10, OCT5: 10, OCT7: 10, date(2026, 10, 8): 10},
        errors={date(2026, 10, 4): 0, OCT5: 0, OCT7: 1, date(2026, 10, 8): 0},
    )
    assert slo_measurements_from_usage_task.delay().get() == 2
    assert [row[1] for row in stored()] == [OCT5, OCT7]
    entry = settings.CAPGOV_SCHEDULES["slo-measurements-from-usage"]
    assert entry["task"] == slo_measurements_from_usage_task.name
    assert entry["schedule"] == 24 * 3600


# --- the command -------------------------------------------------------------------------------


def test_load_slo_measurements_prints_the_rows_stored(slos, tmp_path, capsys):
    path = tmp_path / "slo.csv"
    path.write_text(GOOD_FILE, encoding="utf-8")
    call_command("load_slo_measurements", str(path))
    assert "2 SLO measurements stored from slo.csv." in capsys.readouterr().out
    path.write_text("ranker-latency,2026-10-05,400\nranker-latncy,2026-10-06,400\n")
    with pytest.raises(CommandError, match=r"^slo.csv: line 2, column slo: no SLO is named"):
        call_command("load_slo_measurements", str(path))
    with pytest.raises(CommandError, match="cannot read"):
        call_command("load_slo_measurements", str(tmp_path / "missing.csv"))
    assert len(stored()) == 2


# --- the API -----------------------------------------------------------------------------------


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def csv_upload(text: str, name: str = "slo.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def test_api_posts_a_csv_file_and_lists_by_slo_and_month(org, slos):
    finance = client_for(org.finance)
    response = finance.post(
        "/api/v1/slo-measurements/", {"file": csv_upload(GOOD_FILE)}, format="multipart"
    )
    assert response.status_code == 200, response.json()
    assert response.json() == {"stored": 2}
    services.slo_measurements_import(data="ranker-latency,2026-11-01,420\n")
    listed = client_for(org.researcher).get(
        "/api/v1/slo-measurements/?slo=ranker-latency&month=2026-10"
    )
    assert listed.status_code == 200
    assert listed.json()["results"] == [
        {
            "slo": "ranker-latency",
            "day": "2026-10-05",
            "value": "412.5000",
            "good": None,
            "total": None,
            "source": "upload",
        }
    ]
    assert (
        client_for(org.researcher).get("/api/v1/slo-measurements/?month=2026-13").status_code == 400
    )


def test_api_posts_json_rows_all_or_none(org, slos):
    admin = client_for(org.admin)
    rows = [
        {
            "slo": "ranker-availability",
            "day": "2026-10-05",
            "value": 99.9,
            "good": 999,
            "total": 1000,
        },
        {"slo": "ranker-latency", "day": "2026-10-05", "value": "401.5"},
    ]
    response = admin.post("/api/v1/slo-measurements/", rows, format="json")
    assert response.json() == {"stored": 2}
    assert stored()[0] == ("ranker-availability", OCT5, Decimal("99.9000"), 999, 1000, "api")
    bad = admin.post(
        "/api/v1/slo-measurements/",
        [{"slo": "ranker-latency", "day": "2026-10-06", "value": "1"}, {**rows[1], "value": -1}],
        format="json",
    )
    assert bad.status_code == 400
    assert bad.json()["detail"].startswith("row 2, field value: -1 is negative")
    assert len(stored()) == 2
    not_a_list = admin.post("/api/v1/slo-measurements/", rows[0], format="json")
    assert not_a_list.status_code == 400
    assert "JSON list of rows" in not_a_list.json()["detail"]


def test_api_answers_a_bad_file_with_400_and_its_message(org, slos):
    response = client_for(org.finance).post(
        "/api/v1/slo-measurements/",
        {"file": csv_upload("ranker-availability,2026-10-05,99,101,100\n")},
        format="multipart",
    )
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "line 1, column good: 101 is more than total 100; good counts the successful requests "
        "among the total."
    )
    assert not SloMeasurement.objects.exists()


def test_api_a_business_unit_member_may_read_but_not_post(org, slos):
    member = client_for(org.researcher)
    rows = [{"slo": "ranker-latency", "day": "2026-10-05", "value": "401"}]
    assert member.post("/api/v1/slo-measurements/", rows, format="json").status_code == 403
    upload = {"file": csv_upload(GOOD_FILE)}
    assert member.post("/api/v1/slo-measurements/", upload, format="multipart").status_code == 403
    assert member.get("/api/v1/slo-measurements/").status_code == 200
    assert APIClient().get("/api/v1/slo-measurements/").status_code in (401, 403)
    assert not SloMeasurement.objects.exists()


def test_api_list_reads_in_a_bounded_number_of_queries(org, slos, django_assert_max_num_queries):
    for n in range(6):
        ServiceLevelObjective.objects.create(
            name=f"svc-{n}", service=f"svc-{n}", indicator="availability", target=Decimal(99)
        )
    lines = "".join(
        f"svc-{n},2026-10-{day:02d},99.{day}\n" for n in range(6) for day in range(1, 29)
    )
    services.slo_measurements_import(data=lines)
    client = client_for(org.researcher)
    with django_assert_max_num_queries(4):
        response = client.get("/api/v1/slo-measurements/?month=2026-10")
    assert response.json()["count"] == 6 * 28


def test_admin_lists_measurements_for_platform_admins_without_editing(org, slos, client):
    services.slo_measurements_import(data=GOOD_FILE)
    org.admin.is_staff = True
    org.admin.save()
    client.force_login(org.admin)
    page = client.get("/admin/governance/slomeasurement/")
    assert page.status_code == 200
    assert b"ranker-latency" in page.content
    assert client.get("/admin/governance/slomeasurement/add/").status_code == 403
