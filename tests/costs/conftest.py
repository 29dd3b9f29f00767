import datetime as dt

import botocore.retries.standard
import pytest
from moto.server import ThreadedMotoServer

from costs import services
from tests.costs.aws_server import PriceListServer, moto_reset
from tests.factories import focus_line, write_focus

OCT = dt.date(2026, 10, 1)
CHECKOUT = "arn:aws:sagemaker:us-east-1:111122223333:endpoint/checkout"


@pytest.fixture
def october(org, tmp_path):
    """An October bill: Research 3.75, Ads 10.01, Unallocated 2.00 (USD), all attributed."""
    services.allocation_rule_save(
        business_unit=org.research, tag_key="team", tag_values=["research"], priority=10
    )
    services.allocation_rule_save(
        business_unit=org.ads, tag_key="cost-center", tag_values=["4410"], priority=20
    )
    path = write_focus(
        tmp_path / "october.csv",
        [
            focus_line(cost="1.25", tags={"team": "research"}, resource="res-gpu-1"),
            focus_line(
                cost="2.50", tags={"Team": "Research"}, resource="res-gpu-2", day="2026-10-06"
            ),
            focus_line(
                cost="10.005",
                tags={"cost-center": "4410"},
                resource="ads-ranker",
                service="Amazon EC2",
            ),
            focus_line(cost="2.00", tags={"team": "mystery"}, resource="orphan"),
        ],
    )
    result = services.billing_import(path=path)
    assert result.status == "succeeded", result.error
    return org


def import_file(path, lines):
    result = services.billing_import(path=write_focus(path, lines))
    assert result.status == "succeeded", result.error
    return result


DUMMY_KEY_ID = "AKIACAPGOVDUMMY00001"
DUMMY_SECRET = "capgov-dummy-secret-7Qx2+Vr9/Lm"


@pytest.fixture(scope="session")
def moto_url():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def price_server():
    server = PriceListServer().start()
    yield server
    server.stop()


@pytest.fixture
def moto_aws(moto_url, price_server, settings, monkeypatch, tmp_path):
    """A clean moto in server mode, dummy credentials, Capgov's clients pointed at it and
    retries kept short (three attempts, millisecond back-off) so throttling tests stay fast."""
    moto_reset(moto_url)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(
        botocore.retries.standard.ExponentialBackoff,
        "_DEFAULT_BACKOFF_CONFIG",
        {"throttling_base_scale": 0.01, "non_throttling_base_scale": 0.01},
    )
    settings.CAPGOV_AWS_ENDPOINT_URL = moto_url
    settings.CAPGOV_AWS_ENDPOINT_URLS = {"pricing": price_server.url}
    settings.CAPGOV_AWS_MAX_ATTEMPTS = 3
    return moto_url
