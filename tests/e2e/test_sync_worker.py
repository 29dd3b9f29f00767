"""A cloud sync queued from the app is run by a real Celery worker over Redis, against moto."""

from __future__ import annotations

import time
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from costs import sync
from costs.models import CloudAccount, SyncRun
from registry.models import Endpoint
from tests.e2e.conftest import celery_worker

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-never-logged",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture
def moto(monkeypatch):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def sync_worker(transactional_db, moto):
    with celery_worker({**AWS_ENV, "CAPGOV_AWS_ENDPOINT_URL": moto}):
        yield moto


def test_endpoint_sync_runs_on_the_worker(sync_worker):
    from tests.factories import OrgFactory

    org = OrgFactory.build_org()
    sm = boto3.client("sagemaker", endpoint_url=sync_worker, region_name="us-east-1")
    sm.create_model(
        ModelName="ranker",
        ExecutionRoleArn="arn:aws:iam::111122223333:role/sm",
        PrimaryContainer={"Image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/ranker:1"},
    )
    sm.create_endpoint_config(
        EndpointConfigName="ranker-config",
        ProductionVariants=[
            {
                "VariantName": "primary",
                "ModelName": "ranker",
                "InstanceType": "ml.g4dn.xlarge",
                "InitialInstanceCount": 2,
            }
        ],
    )
    sm.create_endpoint(
        EndpointName="ranker",
        EndpointConfigName="ranker-config",
        Tags=[{"Key": "team", "Value": "x"}],
    )
    account = CloudAccount.objects.create(
        name="ML production", provider="aws", account_id="111122223333", aws_region="us-east-1"
    )
    run = sync.sync_run_create(account=account, kind="endpoints", by=org.admin)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in ("succeeded", "failed"):
            break
        time.sleep(0.3)
    assert run.status == "succeeded", run.error
    endpoint = Endpoint.objects.get(name="ranker")
    assert (endpoint.instance_type, endpoint.instance_count) == ("ml.g4dn.xlarge", 2)
    assert "testing-secret-never-logged" not in (run.error + str(run.detail))
    assert SyncRun.objects.count() == 1
