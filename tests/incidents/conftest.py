"""Shared incidents fixtures: a pinned clock and a small world of people, a pool, a model and
its endpoint; and the incidents and post-mortems the tests start from."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from governance.choices import Role
from governance.models import BusinessUnit, User
from incidents import services
from incidents.models import Incident, PostMortem
from registry import services as registry_services
from registry.models import CapacityPool, Endpoint, HardwareProfile, ModelVersion, RegisteredModel
from tests.factories import Org, OrgFactory, UserFactory

NOW = dt.datetime(2026, 10, 14, 18, 0, tzinfo=dt.UTC)
T = dt.datetime(2026, 10, 14, 14, 5, tzinfo=dt.UTC)


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(NOW, tick=False)
    return time_machine


@dataclass
class World:
    org: Org
    commander: User
    scribe: User
    stranger: User
    approver: User
    second_approver: User
    pool: CapacityPool
    model: RegisteredModel
    version: ModelVersion
    endpoint: Endpoint
    other_endpoint: Endpoint


@pytest.fixture
def world(db, clock) -> World:
    org = OrgFactory.build_org()
    h100 = HardwareProfile.objects.create(
        name="1 x H100 80GB", accelerator="NVIDIA H100 80GB", accelerator_count=1
    )
    pool = CapacityPool.objects.create(
        code="h100-shared",
        name="Shared H100 pool",
        provider="aws",
        hardware_profile=h100,
        accelerator_count=80,
        owner=BusinessUnit.objects.create(code="PLAT", name="Platform"),
    )
    model = registry_services.model_register(
        by=org.researcher,
        name="ranker",
        business_unit=org.research,
        task="ranking",
        source="in-house",
        risk_tier="medium",
    )
    version = registry_services.version_create(
        by=org.researcher,
        model=model,
        version="3.0",
        artifact_uri="s3://models/ranker/3.0/",
        framework="PyTorch",
        precision="fp16",
        serving_runtime="vLLM 0.8",
        hardware_profile=h100,
        parameter_count=7_000_000_000,
    )
    endpoint = Endpoint.objects.create(
        provider="aws",
        account_id="111122223333",
        region="eu-west-1",
        name="ranker-prod",
        resource_id="arn:aws:sagemaker:eu-west-1:111122223333:endpoint/ranker-prod",
        model_version=version,
    )
    other = Endpoint.objects.create(
        provider="aws",
        account_id="111122223333",
        region="eu-west-1",
        name="ads-ctr",
        resource_id="arn:aws:sagemaker:eu-west-1:111122223333:endpoint/ads-ctr",
        business_unit=org.ads,
    )
    return World(
        org=org,
        commander=UserFactory(username="cora", roles=[Role.ML_ENGINEER]),
        scribe=UserFactory(username="sam"),
        stranger=UserFactory(username="stan"),
        approver=UserFactory(username="april", roles=[Role.BOARD_INFRA]),
        second_approver=UserFactory(username="bert", roles=[Role.BOARD_ML]),
        pool=pool,
        model=model,
        version=version,
        endpoint=endpoint,
        other_endpoint=other,
    )


def open_incident(w: World, **kwargs) -> Incident:
    """An active SEV2 on the shared pool and the ranker's endpoint, commanded by ``w.commander``."""
    values = {
        "by": w.commander,
        "title": "Shared H100 pool exhausted",
        "severity": "sev2",
        "incident_type": "pool_exhaustion",
        "commander": w.commander,
        "started_at": T,
        "detected_at": T + dt.timedelta(minutes=10),
        "affected": [w.pool, w.endpoint],
    }
    values.update(kwargs)
    return services.incident_create(**values)


def resolved_incident(w: World, **kwargs) -> Incident:
    return services.incident_update(
        incident=open_incident(w, **kwargs),
        by=w.commander,
        mitigated_at=T + dt.timedelta(minutes=45),
        resolved_at=T + dt.timedelta(hours=2),
    )


def ready_postmortem(w: World, incident: Incident | None = None, approvers=None) -> PostMortem:
    """A draft with a summary and named approvers (``w.approver`` unless given): ready to submit."""
    pm = services.postmortem_open(incident=incident or resolved_incident(w), by=w.commander)
    return services.postmortem_update(
        postmortem=pm,
        by=w.commander,
        summary="The shared pool ran out of GPUs after the ranker 3.0 roll-out.",
        approvers=approvers or [w.approver],
    )
