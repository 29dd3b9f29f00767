import datetime as dt

import pytest

from costs import services
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
