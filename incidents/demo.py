"""Demo incident: the shared H100 pool ran out of capacity just now; its post-mortem is
being written, with the records from the week before suggested as contributing factors and
a *prevent* action on the Ads ranker that shows on its versions' gate."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from governance.models import User
from incidents import actions, services
from incidents.models import Incident, IncidentType, Runbook
from registry.models import CapacityPool, Endpoint, RegisteredModel


def seed_incidents(*, people: dict[str, User]) -> str:
    if Incident.objects.exists():
        return "Incidents: the demo incident is already there."
    Runbook.objects.get_or_create(
        incident_type=IncidentType.POOL_EXHAUSTION,
        title="Shared GPU pool exhausted",
        defaults={
            "summary": "Requests queue on a shared pool because no replica can be placed.",
            "steps": [
                {
                    "text": "Page the pool owner (Platform) and open an incident",
                    "role": "commander",
                },
                {"text": "Find who grew: pool usage by unit, recent deployments", "role": "scribe"},
                {"text": "Freeze non-urgent deployments on the pool", "role": "commander"},
                {
                    "text": "Move batch work off the pool; scale the latency-critical endpoints",
                    "role": "sme",
                },
            ],
            "roles": ["commander", "scribe", "sme"],
        },
    )
    ines, fiona = people["ines"], people["fiona"]
    pool = CapacityPool.objects.get(code="h100-shared")
    affected = [pool, *Endpoint.objects.filter(name="recsys-prod")]
    now = timezone.now()
    incident = services.incident_create(
        by=ines,
        title="Shared H100 pool exhausted",
        severity="sev2",
        incident_type=IncidentType.POOL_EXHAUSTION,
        commander=ines,
        # Just now: the week before it holds the demo's deployments and approvals.
        started_at=now,
        detected_at=now,
        affected=affected,
        description="recsys-prod could not place replicas on the shared H100 pool; p95 "
        "latency went from 180 ms to 2.4 s while the queue grew.",
    )
    services.role_add(incident=incident, by=ines, person=people["mark"], role="scribe")
    for seconds, metric, value, unit in (
        (0, "queue_depth", "12", "requests"),
        (1, "queue_depth", "840", "requests"),
        (1, "latency_p95_ms", "2400", "ms"),
        (1, "pool_utilisation", "100", "%"),
    ):
        services.evidence_add(
            incident=incident,
            by=ines,
            at=now + dt.timedelta(seconds=seconds),
            metric=metric,
            value=Decimal(value),
            unit=unit,
        )
    postmortem = services.postmortem_open(incident=incident, by=ines)
    services.postmortem_update(
        postmortem=postmortem,
        by=ines,
        summary="A new deployment and a large batch job landed on the shared H100 pool within "
        "a day of each other; the pool had no headroom left for recsys-prod's replicas.",
        approvers=[fiona],
        root_cause_tags=["no-pool-headroom"],
    )
    ranker = RegisteredModel.objects.filter(name="ads-ranker").first()
    actions.action_create(
        postmortem=postmortem,
        by=ines,
        title="Reserve headroom for ads-ranker on the shared pool before its next version",
        kind="prevent",
        owner=people["priya"],
        due=(now + dt.timedelta(days=10)).date(),
        subject=ranker,
    )
    factors = postmortem.factors.count()
    return (
        f"Incidents: '{incident.title}' is active, its post-mortem suggests {factors} "
        "contributing record(s), and a prevent action shows on ads-ranker's gate."
    )
