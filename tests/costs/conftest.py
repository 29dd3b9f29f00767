import datetime as dt

import pytest

from costs import services
from costs.models import AllocationPolicy, SharedPool
from governance.choices import Role
from tests.factories import BusinessUnitFactory, UserFactory, focus_line, write_focus

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


@pytest.fixture
def abc(db, tmp_path):
    """A 600, B 300 (all on the checkout endpoint), C 100, platform overhead 200 (USD)."""
    units = {code: BusinessUnitFactory(code=code, name=f"Unit {code}") for code in "ABC"}
    units["PLAT"] = BusinessUnitFactory(code="PLAT", name="Platform")
    for code, unit in units.items():
        unit.owner = UserFactory(username=f"owner-{code.lower()}", units=[unit])
        unit.save()
        services.allocation_rule_save(
            business_unit=unit, tag_key="team", tag_values=[code.lower()], priority=10
        )
    lines = [
        focus_line(cost="600.00", tags={"team": "a"}, resource="a-gpu"),
        focus_line(cost="300.00", tags={"team": "b"}, resource=CHECKOUT),
        focus_line(cost="100.00", tags={"team": "c"}, resource="c-gpu"),
        focus_line(cost="200.00", tags={"team": "plat"}, resource="control-plane"),
    ]
    import_file(tmp_path / "oct.csv", lines)
    policy = AllocationPolicy.objects.create(name="FY26", first_month=OCT, basis="billed")
    SharedPool.objects.create(
        policy=policy, name="Platform overhead", source_unit=units["PLAT"], method="proportional"
    )
    units["finance"] = UserFactory(username="fin", roles=[Role.FINANCE])
    return units


def import_file(path, lines):
    result = services.billing_import(path=write_focus(path, lines))
    assert result.status == "succeeded", result.error
    return result
