"""Issue 7's flow against moto in server mode: three SageMaker endpoints — busy, idle and
costly, idle but tagged keep — synced, scored, one case opened and mailed, deleted after the
grace period (the configuration kept), the saving recorded, and restored; with dry-run on,
nothing that changes the cloud is called."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import boto3
import botocore.client
import pytest
import time_machine

from costs import sync_aws
from costs.models import CloudAccount, SyncKind
from costs.sync import SYNCS, sync_run_create
from governance.choices import Role
from registry.models import CaseStatus, Endpoint, RetirementCase, RetirementPolicy
from registry.retirement_services import case_restore, retirement_cases_due, retirement_evaluate
from registry.tasks import retirement_evaluate_task
from tests.costs.conftest import import_file
from tests.factories import UserFactory, focus_line

UTC = dt.UTC
ACCOUNT_ID = "123456789012"  # moto's
CREATED = dt.datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
NOW = dt.datetime(2026, 10, 20, 6, 0, tzinfo=UTC)
ARN = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/{}"
CHANGES = {
    "DeleteEndpoint",
    "UpdateEndpointWeightsAndCapacities",
    "CreateEndpoint",
    "DeleteEndpointConfig",
    "DeleteModel",
    "UpdateEndpoint",
}


def boto(url: str, service: str):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1")


@pytest.fixture
def three(moto_aws, org, monkeypatch, tmp_path, django_capture_on_commit_callbacks):
    """busy (1,000 requests a day), idle-costly (none, 2,190.00 a month), idle-keep (none,
    tagged capgov:keep=true); all created on 1 October, synced on the 20th."""
    monkeypatch.setitem(SYNCS, ("aws", SyncKind.ENDPOINTS), sync_aws.aws_endpoints_sync)
    org.ads.owner = UserFactory(username="ada", email="ada@example.com", units=[org.ads])
    org.ads.save()
    from costs import services

    services.allocation_rule_save(
        business_unit=org.ads, tag_key="team", tag_values=["ads"], priority=10
    )
    with time_machine.travel(CREATED, tick=False):
        sm = boto(moto_aws, "sagemaker")
        for name, tags in (
            ("busy", {"team": "ads"}),
            ("idle-costly", {"team": "ads"}),
            ("idle-keep", {"team": "ads", "capgov:keep": "true"}),
        ):
            sm.create_model(
                ModelName=f"{name}-model",
                ExecutionRoleArn="arn:aws:iam::123456789012:role/sagemaker",
                PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/s:1"},
            )
            sm.create_endpoint_config(
                EndpointConfigName=f"{name}-config",
                ProductionVariants=[
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": f"{name}-model",
                        "InitialInstanceCount": 1,
                        "InstanceType": "ml.g4dn.xlarge",
                    }
                ],
            )
            sm.create_endpoint(
                EndpointName=name,
                EndpointConfigName=f"{name}-config",
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            )
    cw = boto(moto_aws, "cloudwatch")
    cw.put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {
                "MetricName": "Invocations",
                "Dimensions": [
                    {"Name": "EndpointName", "Value": "busy"},
                    {"Name": "VariantName", "Value": "AllTraffic"},
                ],
                "Timestamp": dt.datetime(2026, 10, day, 12, tzinfo=UTC),
                "Value": 1000,
                "Unit": "None",
            }
            for day in range(2, 20)
        ],
    )
    account = CloudAccount.objects.create(
        name="ML production", provider="aws", account_id=ACCOUNT_ID, aws_region="us-east-1"
    )
    # The bill: each endpoint 73.00 a day over the last 30 days = 2,190.00 a month.
    import_file(
        tmp_path / "oct.csv",
        [
            focus_line(
                cost="73.00",
                tags={"team": "ads"},
                resource=ARN.format(name),
                day=f"2026-10-{day:02d}",
                account=ACCOUNT_ID,
            )
            for name in ("busy", "idle-costly", "idle-keep")
            for day in range(1, 20)
        ]
        + [
            focus_line(
                cost="73.00",
                tags={"team": "ads"},
                resource=ARN.format(name),
                day=f"2026-09-{day:02d}",
                period="2026-09-01",
                account=ACCOUNT_ID,
            )
            for name in ("busy", "idle-costly", "idle-keep")
            for day in range(20, 31)
        ],
    )
    with time_machine.travel(NOW, tick=False), django_capture_on_commit_callbacks(execute=True):
        run = sync_run_create(
            account=account,
            kind=SyncKind.ENDPOINTS,
            start=dt.date(2026, 10, 1),
            end=dt.date(2026, 10, 20),
        )
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    return moto_aws


def policy(*, dry_run: bool) -> RetirementPolicy:
    return RetirementPolicy.objects.create(
        name="Idle inference",
        window_days=14,
        max_daily_invocations=1,
        min_monthly_cost=D("1000.00"),
        currency="USD",
        grace_days=7,
        action="delete",
        dry_run=dry_run,
    )


def test_one_case_then_delete_keeping_the_config_then_restore(
    three, org, mailoutbox, django_capture_on_commit_callbacks
):
    policy(dry_run=False)
    with time_machine.travel(NOW, tick=False), django_capture_on_commit_callbacks(execute=True):
        assert retirement_evaluate_task.delay().get() == 1
    case = RetirementCase.objects.get()
    assert case.endpoint.name == "idle-costly"
    assert case.monthly_cost == D("2190.00")
    assert case.evidence["days_since_last_request"] is None
    assert [d["invocations"] for d in case.evidence["window"]] == [0] * 14
    verdicts = {e.name: e.retirement_verdict["reason"] for e in Endpoint.objects.all()}
    assert verdicts["busy"].startswith("In use: up to 1,000 requests a day")
    assert verdicts["idle-keep"] == "Tagged capgov:keep=true: exempt from retirement."
    (mail,) = mailoutbox
    assert mail.to == ["ada@example.com"]
    assert "idle-costly had 0 requests in 14 days and costs $2,190.00 a month" in mail.subject
    assert "/registry/retirement/link/" in mail.body

    # The grace period runs out (pinned clock): the endpoint is deleted, its config kept.
    with time_machine.travel(NOW + dt.timedelta(days=7, hours=1), tick=False):
        assert retirement_cases_due().acted == [case.pk]
    case.refresh_from_db()
    assert case.status == CaseStatus.RETIRED
    assert case.monthly_saving == D("2190.00")
    sm = boto(three, "sagemaker")
    names = {e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]}
    assert names == {"busy", "idle-keep"}
    assert sm.describe_endpoint_config(EndpointConfigName="idle-costly-config")
    step = case.steps.get(kind="delete")
    assert (step.dry_run, step.succeeded) == (False, True)
    assert step.response["kept"]["EndpointConfigName"] == "idle-costly-config"
    assert step.response["http_status"] == 200

    # And back.
    admin = UserFactory(username="root", roles=[Role.PLATFORM_ADMIN])
    case_restore(case=case, by=admin)
    case.refresh_from_db()
    assert case.status == CaseStatus.RESTORED
    restored = sm.describe_endpoint(EndpointName="idle-costly")
    assert restored["EndpointConfigName"] == "idle-costly-config"
    tags = sm.list_tags(ResourceArn=restored["EndpointArn"])["Tags"]
    assert {"Key": "team", "Value": "ads"} in tags


def test_dry_run_calls_nothing_that_changes_the_cloud(
    three, org, monkeypatch, django_capture_on_commit_callbacks
):
    policy(dry_run=True)
    called: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def spy(self, operation, params):
        called.append(operation)
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", spy)
    with time_machine.travel(NOW, tick=False), django_capture_on_commit_callbacks(execute=True):
        retirement_evaluate()
    with time_machine.travel(NOW + dt.timedelta(days=8), tick=False):
        retirement_cases_due()
    case = RetirementCase.objects.get()
    assert case.status == CaseStatus.DRY_RUN
    assert not CHANGES & set(called)
    step = case.steps.get(kind="delete")
    assert step.dry_run
    assert step.request == {
        "call": "DeleteEndpoint",
        "params": {"EndpointName": "idle-costly"},
        "keeps": {"EndpointConfigName": "idle-costly-config"},
    }
    assert (
        "Dry run: would have called DeleteEndpoint on idle-costly; nothing was changed" in step.text
    )
    names = {e["EndpointName"] for e in boto(three, "sagemaker").list_endpoints()["Endpoints"]}
    assert names == {"busy", "idle-costly", "idle-keep"}
    # A dry run does not open a second case the next day.
    with time_machine.travel(NOW + dt.timedelta(days=9), tick=False):
        assert retirement_evaluate().opened == []


def test_a_failed_call_leaves_the_case_open_with_the_error(
    three, org, django_capture_on_commit_callbacks
):
    policy(dry_run=False)
    with time_machine.travel(NOW, tick=False), django_capture_on_commit_callbacks(execute=True):
        retirement_evaluate()
    boto(three, "sagemaker").delete_endpoint(EndpointName="idle-costly")  # gone behind our back
    with time_machine.travel(NOW + dt.timedelta(days=8), tick=False):
        retirement_cases_due()
    case = RetirementCase.objects.get()
    assert case.status == CaseStatus.OPEN
    assert "SageMaker DescribeEndpoint failed" in case.last_error
    assert not case.steps.get(kind="delete").succeeded
