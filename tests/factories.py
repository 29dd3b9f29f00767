"""Factories with realistic defaults, and a small FOCUS file writer for tests."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import factory

from governance.choices import Role
from governance.models import BusinessUnit, RoleAssignment, User

PASSWORD = "correct-horse-battery"


class BusinessUnitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BusinessUnit
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"BU{n}")
    name = factory.LazyAttribute(lambda o: f"Business unit {o.code}")
    cost_centre = factory.Sequence(lambda n: f"{4400 + n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"person{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        for role in extracted or ():
            RoleAssignment.objects.create(user=self, role=role)

    @factory.post_generation
    def units(self, create, extracted, **kwargs):
        if extracted:
            self.business_units.set(extracted)


@dataclass
class Org:
    research: BusinessUnit
    ads: BusinessUnit
    finance: User
    admin: User
    researcher: User
    ads_engineer: User


class OrgFactory:
    @staticmethod
    def build_org() -> Org:
        research = BusinessUnitFactory(code="RES", name="Research")
        ads = BusinessUnitFactory(code="ADS", name="Ads Ranking")
        return Org(
            research=research,
            ads=ads,
            finance=UserFactory(username="fiona", roles=[Role.FINANCE]),
            admin=UserFactory(username="pat", roles=[Role.PLATFORM_ADMIN]),
            researcher=UserFactory(username="rhea", roles=[Role.ML_ENGINEER], units=[research]),
            ads_engineer=UserFactory(username="adam", roles=[Role.ML_ENGINEER], units=[ads]),
        )


FOCUS_HEADER = [
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargeCategory",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ProviderName",
    "ServiceName",
    "ServiceCategory",
    "ResourceId",
    "SkuId",
    "RegionId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
]


def focus_line(
    *,
    cost: str,
    tags: dict[str, str] | None = None,
    day: str = "2026-10-05",
    period: str = "2026-10-01",
    category: str = "Usage",
    account: str = "111122223333",
    currency: str = "USD",
    service: str = "Amazon SageMaker",
    resource: str = "arn:aws:sagemaker:us-east-1:111122223333:endpoint/ranker",
    effective: str | None = None,
) -> dict[str, str]:
    year, month = int(period[:4]), int(period[5:7])
    end = f"{year + month // 12}-{month % 12 + 1:02d}-01"
    return {
        "BilledCost": cost,
        "EffectiveCost": effective if effective is not None else cost,
        "ListCost": cost,
        "BillingAccountId": account,
        "BillingAccountName": "Capgov Demo",
        "BillingCurrency": currency,
        "BillingPeriodStart": f"{period} 00:00:00",
        "BillingPeriodEnd": f"{end} 00:00:00",
        "ChargeCategory": category,
        "ChargePeriodStart": f"{day} 10:00:00",
        "ChargePeriodEnd": f"{day} 11:00:00",
        "ProviderName": "AWS",
        "ServiceName": service,
        "ServiceCategory": "AI and Machine Learning",
        "ResourceId": resource,
        "SkuId": "SKU-1",
        "RegionId": "us-east-1",
        "SubAccountId": "444455556666",
        "SubAccountName": "ml-prod",
        "Tags": json.dumps(tags) if tags is not None else "NULL",
    }


def write_focus(path: Path, lines: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FOCUS_HEADER, quoting=csv.QUOTE_MINIMAL)
        writer.writeheader()
        writer.writerows(lines)
    return path
