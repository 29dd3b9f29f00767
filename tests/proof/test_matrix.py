"""The permission matrix: every URL the project routes, tried as an anonymous visitor, as a
person holding one role in unit A, and (for unit A's objects) as the same role in unit B.

What each should get is declared in ``tests/proof/matrix.py``; a route missing from it
fails here, so a new endpoint must say who may use it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.settings import api_settings

from governance.choices import Role
from tests.proof import matrix
from tests.proof.conftest import SUMMARY, UNIT_A

# CAPGOV_MATRIX_DUMP=file.json writes what every route answered (and tries more) by hand.
DISCOVER = os.environ.get("CAPGOV_MATRIX_DUMP", "")
ONLY = os.environ.get("CAPGOV_MATRIX_ONLY", "")  # a regex on URL names, with the dump


def _probe(name: str) -> matrix.Rule:
    """While discovering: the declared record of the route, if any, and nothing expected."""
    declared = matrix.rule_for(name, "GET") or matrix.rule_for(name, "POST")
    return matrix.Rule(obj=declared.obj if declared else name.split(":")[-1].rsplit("-", 1)[0])


def _methods(pattern) -> tuple[str, ...]:
    """The methods an API route answers (a viewset's actions, an APIView's handlers)."""
    actions = getattr(pattern.callback, "actions", None)
    if actions:
        # HEAD answers as GET does (DRF maps it to the same action): GET stands for both.
        return tuple(sorted(m.upper() for m in actions if m not in ("head", "options")))
    view = getattr(pattern.callback, "cls", None)
    if view is not None:
        names = [m for m in view.http_method_names if m not in ("head", "options", "trace")]
        return tuple(sorted(m.upper() for m in names if hasattr(view, m)))
    return ()


def _routes() -> dict[str, tuple[list[str], tuple[str, ...]]]:
    """Every named route: URL name (with namespaces) -> (keyword names, API methods)."""
    found: dict[str, tuple[list[str], tuple[str, ...]]] = {}

    def walk(resolver, namespace: str | None) -> None:
        for pattern in resolver.url_patterns:
            if isinstance(pattern, URLResolver):
                inner = namespace
                if pattern.namespace:
                    inner = f"{namespace}:{pattern.namespace}" if namespace else pattern.namespace
                walk(pattern, inner)
            elif isinstance(pattern, URLPattern) and pattern.name:
                name = f"{namespace}:{pattern.name}" if namespace else pattern.name
                keywords = sorted(pattern.pattern.regex.groupindex)
                # DRF adds a `.json` twin of each route under the same name: keep the plain one.
                if "format" in keywords:
                    continue
                found.setdefault(name, (keywords, _methods(pattern)))

    walk(get_resolver(), None)
    return found


def _principals(world) -> dict[str, object]:
    people: dict[str, object] = {matrix.ANONYMOUS: None}
    people.update(world.by_role)
    people.update({f"{matrix.OUTSIDER}{role}": user for role, user in world.outsiders.items()})
    return people


def _objects(world) -> dict[str, dict]:
    """Unit A's records (or the organisation's, where a record has no unit) by table key."""
    from costs.models import (
        AllocationRule,
        BillingImport,
        Budget,
        BusinessEvent,
        CapacityPlan,
        CapacityQuota,
        CloudAccount,
        CommitmentOffer,
        CommitmentRecommendation,
        CostAnomaly,
        CostRow,
        Forecast,
        ForecastExclusion,
        PlanLine,
        PlanningCycle,
        RetentionPolicy,
        RetentionRun,
        SyncRun,
        TcoScenario,
    )
    from governance.models import (
        ApprovalRequest,
        CapacityConflict,
        Decision,
        DeploymentFreeze,
        ServiceLevelObjective,
    )
    from incidents.models import ActionItem, ContributingFactor, Incident, PostMortem, Runbook
    from registry.models import (
        BenchmarkProtocol,
        CapacityAssessment,
        CapacityPool,
        EfficiencyBenchmark,
        HardwareProfile,
        ModelVersion,
        RegisteredModel,
        RequirementWaiver,
        RetirementCase,
        RetirementPolicy,
    )

    unit = world.units[UNIT_A]
    picks = {
        "model": RegisteredModel.objects.filter(business_unit=unit),
        "version": ModelVersion.objects.filter(model__business_unit=unit),
        "benchmark": EfficiencyBenchmark.objects.filter(version__model__business_unit=unit),
        "assessment": CapacityAssessment.objects.filter(version__model__business_unit=unit),
        "waiver": RequirementWaiver.objects.filter(version__model__business_unit=unit),
        "protocol": BenchmarkProtocol.objects.all(),
        "hardware": HardwareProfile.objects.all(),
        "pool": CapacityPool.objects.all(),
        "request": ApprovalRequest.objects.filter(business_unit=unit),
        "decision": Decision.objects.filter(business_unit=unit),
        "freeze": DeploymentFreeze.objects.filter(business_unit=unit),
        "conflict": CapacityConflict.objects.filter(business_units=unit),
        "slo": ServiceLevelObjective.objects.all(),
        "budget": Budget.objects.filter(business_unit=unit),
        "rule": AllocationRule.objects.filter(business_unit=unit),
        "cost": CostRow.objects.filter(tag_set__business_unit=unit),
        "import": BillingImport.objects.all(),
        "quota": CapacityQuota.objects.all(),
        "account": CloudAccount.objects.all(),
        "sync": SyncRun.objects.all(),
        "case": RetirementCase.objects.filter(business_unit=unit),
        "retirement-policy": RetirementPolicy.objects.all(),
        "incident": Incident.objects.all(),
        "postmortem": PostMortem.objects.all(),
        "factor": ContributingFactor.objects.all(),
        "action": ActionItem.objects.all(),
        "runbook": Runbook.objects.all(),
        "tco": TcoScenario.objects.filter(business_unit=unit),
        "cycle": PlanningCycle.objects.all(),
        "plan": CapacityPlan.objects.filter(business_unit=unit),
        "line": PlanLine.objects.filter(plan__business_unit=unit),
        "commitment": CommitmentRecommendation.objects.filter(status="open"),
        "offer": CommitmentOffer.objects.all(),
        "retention-run": RetentionRun.objects.all(),
        "retention-policy": RetentionPolicy.objects.all(),
        "forecast": Forecast.objects.filter(business_unit=unit),
        "anomaly": CostAnomaly.objects.filter(forecast__business_unit=unit),
        "event": BusinessEvent.objects.filter(business_unit=unit),
        "exclusion": ForecastExclusion.objects.filter(business_unit=unit),
    }
    objects: dict[str, dict] = {}
    for key, queryset in picks.items():
        record = queryset.order_by("pk").first()
        if record is not None:
            objects[key] = {"pk": record.pk}
    line = objects.get("line")
    if line is not None:
        # The plan pages name a line by its plan and itself.
        plan_id = PlanLine.objects.values_list("plan_id", flat=True).get(pk=line["pk"])
        objects["plan-line"] = {"pk": plan_id, "line_pk": line["pk"]}
    objects["unit"] = {"code": UNIT_A}
    objects["month"] = {"month": world.months[-1]}
    # The closed month: a unit's people read their own statements once published.
    objects["statement"] = {"month": world.months[0], "code": UNIT_A}
    objects["token"] = {"token": "not-a-real-link"}
    objects.update(_owned_records(world))
    return objects


def _owned_records(world) -> dict[str, dict]:
    """Records that belong to one person: an API token of unit A's ML engineer (the owner and
    platform admins may see it) and an entry of the audit log."""
    import datetime as dt
    import secrets

    from django.utils import timezone

    from governance.models import ApiToken, AuditEntry

    found: dict[str, dict] = {}
    now = timezone.now()
    token = ApiToken.objects.create(
        user=world.by_role[Role.ML_ENGINEER],
        name="Proof: CI deploy",
        prefix="proof",
        key_hash=secrets.token_hex(32),
        created_at=now,
        expires_at=now + dt.timedelta(days=30),
    )
    found["api-token"] = {"pk": token.pk}
    entry = AuditEntry.objects.order_by("pk").first()
    if entry is not None:
        found["audit"] = {"pk": entry.pk}
    return found


def _anonymous_api_status() -> int:
    """401 when the first authentication class asks for credentials, else DRF's 403."""
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    first = api_settings.DEFAULT_AUTHENTICATION_CLASSES[0]()
    request = Request(APIRequestFactory().get("/api/v1/"))
    return 401 if first.authenticate_header(request) else 403


def _undeclared(routes) -> list[str]:
    missing = []
    for name, (_, api_methods) in sorted(routes.items()):
        if name not in matrix.TABLE and not name.startswith("admin:"):
            missing.append(name)
            continue
        for method in api_methods:
            if matrix.rule_for(name, method) is None:
                missing.append(f"{name} {method}")
    return missing


def test_every_route_answers_each_role_as_declared(proof_db, world):
    routes = _routes()
    if ONLY:
        routes = {name: route for name, route in routes.items() if re.search(ONLY, name)}
    missing = _undeclared(routes)
    assert DISCOVER or not missing, (
        "These routes have no entry in tests/proof/matrix.py; add one saying who may use "
        "each (anonymous, each role in its unit, a person of another unit):\n  "
        + "\n  ".join(missing)
    )
    objects = _objects(world)
    clients = {}
    for who, user in _principals(world).items():
        client = Client()
        if user is not None:
            client.force_login(user)
        clients[who] = client
    anonymous_api = _anonymous_api_status()
    observed: dict[str, dict] = {}
    problems: list[str] = []
    pairs = 0
    for name, (keywords, api_methods) in sorted(routes.items()):
        if name.startswith("admin:"):
            continue
        kwargs = {}
        methods = api_methods or matrix.methods_declared(name)
        if DISCOVER and not api_methods and name != "logout":
            methods = ("GET", "POST")
        for method in methods:
            rule = matrix.rule_for(name, method) or _probe(name)
            if rule.skip:
                continue
            if keywords:
                picked = objects.get(rule.obj or "", {})
                if any(k not in picked for k in keywords):
                    problems.append(f"{name}: no seeded record {rule.obj!r} for {keywords}")
                    continue
                kwargs = {k: picked[k] for k in keywords}
            url = reverse(name, kwargs=kwargs)
            row = observed.setdefault(f"{name} {method}", {"url": url})
            for who, client in clients.items():
                if who.startswith(matrix.OUTSIDER) and not (rule.unit or (DISCOVER and keywords)):
                    continue
                expected = rule.expect(
                    who, api=url.startswith("/api/"), anonymous_api=anonymous_api
                )
                # Rate limits count what came before; each answer here must stand alone.
                cache.clear()
                with transaction.atomic():
                    response = _send(client, method, url, rule.data)
                    transaction.set_rollback(True)
                pairs += 1
                row[who] = response.status_code
                if DISCOVER and response.status_code in (400, 403, 409):
                    row[f"{who} says"] = _body(response)
                if not _matches(response, expected):
                    problems.append(
                        f"{name} {method} {url} as {who}: expected {expected}, "
                        f"got {response.status_code}{_where(response)}"
                        f" {_body(response)!r}"
                    )
    if DISCOVER:
        Path(DISCOVER).write_text(json.dumps(observed, indent=1))
    SUMMARY["matrix"] = (
        f"permission matrix: {pairs} role x endpoint pairs checked over "
        f"{len(observed)} route x method, {len(problems)} wrong"
    )
    print(SUMMARY["matrix"])
    if problems:
        pytest.fail(
            f"{len(problems)} answers differ from tests/proof/matrix.py:\n  "
            + "\n  ".join(problems)
        )


def _send(client, method: str, url: str, data: dict | None):
    if data is None:
        return getattr(client, method.lower())(url)
    if url.startswith("/api/"):
        return getattr(client, method.lower())(url, data, content_type="application/json")
    return getattr(client, method.lower())(url, data)


def _body(response) -> str:
    if response.streaming:
        return "(a file)"
    return response.content[:120].decode("utf-8", "replace")


def _matches(response, expected: int | str) -> bool:
    if expected == matrix.LOGIN:
        login = resolve_url(settings.LOGIN_URL)
        return response.status_code == 302 and response["Location"].startswith(login)
    return response.status_code == expected


def _where(response) -> str:
    if response.status_code in (301, 302):
        return f" → {response['Location']}"
    return ""


UNIT_KEYS = ("business_unit", "business_units", "unit", "units")


def _unit_codes(item) -> set[str]:
    """The business-unit codes one listed record names (``business_unit``, ``units``…)."""
    codes: set[str] = set()
    if not isinstance(item, dict):
        return codes
    for key in UNIT_KEYS:
        value = item.get(key)
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, str):
                codes.add(v)
            elif isinstance(v, dict) and isinstance(v.get("code"), str):
                codes.add(v["code"])
    return codes


def test_no_api_list_shows_unit_a_to_unit_b(proof_db, world):
    """Each API list, read by unit B's ML engineer (who sees only unit B), names no record of
    unit A unless the table says the list is the organisation's by design."""
    routes = _routes()
    client = Client()
    client.force_login(world.outsiders[Role.ML_ENGINEER])
    checked, leaks = 0, []
    for name, (keywords, api_methods) in sorted(routes.items()):
        if keywords or "GET" not in api_methods or not name.startswith("api:"):
            continue
        rule = matrix.rule_for(name, "GET")
        if rule is None or rule.skip or Role.ML_ENGINEER not in rule.who:
            continue
        response = client.get(reverse(name))
        if response.status_code != 200 or not response.get("Content-Type", "").startswith(
            "application/json"
        ):
            continue
        body = response.json()
        items = body.get("results", body) if isinstance(body, dict) else body
        if not isinstance(items, list):
            continue
        checked += 1
        named = set().union(*(_unit_codes(item) for item in items)) if items else set()
        if UNIT_A in named and not rule.organisation_wide:
            leaks.append(f"{name}: lists records of {UNIT_A} to a member of another unit")
    SUMMARY["lists"] = f"unit scoping: {checked} API lists read as unit B, {len(leaks)} leaking"
    assert checked > 10, "too few lists to say anything"
    assert not leaks, "\n".join(leaks)
