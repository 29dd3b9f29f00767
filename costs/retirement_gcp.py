"""Retirement on Google Cloud: Vertex AI endpoints, through the Vertex AI REST API v1.

A Vertex endpoint costs money only while models are deployed on it, so retiring one means
*undeploying* its models (``delete``): the endpoint resource and the models stay, and what
was deployed — model and version, machine, replica counts, traffic split — is returned
under ``"kept"`` so that ``restore`` can deploy it again. ``scale_min`` lowers the minimum
replica count of each deployed model in place (``mutateDeployedModel``) and records the
counts before under ``"previous"``; ``plan`` describes the calls an action would make
without making any (dry runs), and never raises.

Calls go out one at a time through google-auth's ``AuthorizedSession`` with the
credentials of the endpoint's cloud account (``costs.clients``). Undeploy, deploy and mutate
are long-running operations: when a further call on the same endpoint follows, the
operation is waited for first (so traffic is moved off a model before it is undeployed,
and a restored model exists before the split names it); the last operation of an action
is returned without waiting. Every failure — an HTTP error, no connection, credentials
that do not load or refresh, an operation that ends in error — raises ``ActuatorError``
with what Google answered; credentials never appear in messages or logs. When an action
fails after some of its calls succeeded, the error is a :class:`PartialActuatorError`
whose ``partial`` is the result so far (with ``"kept"``), so nothing needed to restore is
lost.

``restore`` expects as ``evidence`` the dict ``delete`` or ``scale_min`` returned (extra
keys are ignored). After ``scale_min`` it is ``{"action": "scale_min", "previous":
{DEPLOYED_MODEL_ID: {"resources": "dedicatedResources", "minReplicaCount": 2, ...}}}`` and
each model still below its former minimum gets it back. After ``delete``::

    {"kept": {
        "endpoint": "projects/P/locations/L/endpoints/E",   # optional; must match
        "deployedModels": [                                   # required, may be empty
            {"id": "111",                                     # the old deployed model id
             "model": "projects/P/locations/L/models/M",      # required
             "modelVersionId": "2",                           # optional: redeploys M@2
             "displayName": "...",
             "dedicatedResources": {"machineSpec": {...},     # or automaticResources /
                                    "minReplicaCount": 1,     # sharedResources: one is
                                    "maxReplicaCount": 3},    # required
             "serviceAccount": "...", "enableAccessLogging": false, ...},
        ],
        "trafficSplit": {"111": 100},                         # optional: old id -> percent
    }}
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from costs import clients
from costs.models import CloudAccount, SyncKind, SyncStatus
from costs.sync import scrub
from registry.extensions import ActuatorError, EndpointActuator

log = logging.getLogger(__name__)

CALL_TIMEOUT = 60.0
# Waiting for an operation before the next call on the same endpoint (tests shorten them).
OPERATION_TIMEOUT = 1200.0
POLL_INITIAL = 2.0
POLL_MAXIMUM = 30.0

_ENDPOINT_NAME = re.compile(
    r"projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/endpoints/(?P<id>[^/:?#\s]+)"
)
_RESOURCES = ("dedicatedResources", "automaticResources", "sharedResources")
# What deployModel accepts of a DeployedModel (besides "model"), as the GET returned it.
_DEPLOY_FIELDS = (
    "displayName",
    *_RESOURCES,
    "serviceAccount",
    "enableAccessLogging",
    "disableContainerLogging",
    "disableExplanations",
    "explanationSpec",
)
_KEPT_FIELDS = ("id", "model", "modelVersionId", *_DEPLOY_FIELDS)
_PLAN_VERBS = {
    "delete": "endpoints.undeployModel (each deployed model)",
    "scale_min": "endpoints.mutateDeployedModel (each deployed model above the minimum)",
    "restore": "endpoints.deployModel (each kept model)",
}
_ACTIONS = {
    "delete": "delete",
    "undeploy": "delete",
    "scale_min": "scale_min",
    "restore": "restore",
}


class PartialActuatorError(ActuatorError):
    """An action failed after some of its calls had changed the endpoint; ``partial`` is
    the result so far (for ``delete``, with ``"kept"``)."""

    def __init__(self, message: str, partial: dict):
        super().__init__(message)
        self.partial = partial


@dataclass(frozen=True)
class _Target:
    project: str
    location: str
    name: str  # projects/P/locations/L/endpoints/E
    base: str  # ends with /v1/

    def url(self, suffix: str = "") -> str:
        return f"{self.base}{self.name}{suffix}"


def _target(endpoint) -> _Target:
    resource = (endpoint.resource_id or "").strip()
    match = _ENDPOINT_NAME.search(resource)
    if match:
        project, location, endpoint_id = match["project"], match["location"], match["id"]
    elif resource.isdigit() and endpoint.account_id and endpoint.region:
        project, location, endpoint_id = endpoint.account_id, endpoint.region, resource
    else:
        raise ActuatorError(
            f"Endpoint {endpoint.name}: its resource id {resource!r} is not a Vertex AI "
            "endpoint name (projects/PROJECT/locations/LOCATION/endpoints/ID)."
        )
    override = settings.CAPGOV_VERTEX_API_ENDPOINT.strip().rstrip("/")
    if override:
        base = override if override.endswith("/v1") else f"{override}/v1"
    elif location == "global":
        base = "https://aiplatform.googleapis.com/v1"
    else:
        base = f"https://{location}-aiplatform.googleapis.com/v1"
    name = f"projects/{project}/locations/{location}/endpoints/{endpoint_id}"
    return _Target(project, location, name, f"{base}/")


def _account(endpoint, target: _Target) -> CloudAccount:
    """The active GCP account for the endpoint's project: the one whose ``gcp_project`` it
    is, else one whose last billing-accounts sync listed the project."""
    projects = list(dict.fromkeys(p for p in (endpoint.account_id, target.project) if p))
    accounts = CloudAccount.objects.filter(provider="gcp", is_active=True).order_by("pk")
    account = accounts.filter(gcp_project__in=projects).first()
    if account is not None:
        return account
    for candidate in accounts:
        run = candidate.runs.filter(
            kind=SyncKind.BILLING_ACCOUNTS, status=SyncStatus.SUCCEEDED
        ).first()
        listed = (
            {p.get("project_id") for p in (run.detail or {}).get("projects", [])} if run else ()
        )
        if any(p in listed for p in projects):
            return candidate
    project = projects[0]
    raise ActuatorError(
        f"No active Google Cloud account reaches project {project}: add one in the admin "
        f"(Costs > Cloud accounts) with provider Google Cloud and GCP project {project}, whose "
        "credentials may deploy and undeploy its Vertex AI models (e.g. the Vertex AI User "
        "role)."
    )


def _percentages(shares: dict[str, float]) -> dict[str, int]:
    """Whole percentages in the proportions of ``shares``, adding up to 100 (largest
    remainder); empty when nothing has a share."""
    shares = {k: float(v) for k, v in shares.items() if v and float(v) > 0}
    total = sum(shares.values())
    if total <= 0:
        return {}
    exact = {k: v * 100 / total for k, v in shares.items()}
    whole = {k: int(v) for k, v in exact.items()}
    order = sorted(exact, key=lambda k: whole[k] - exact[k])  # largest remainder first
    for key in order[: 100 - sum(whole.values())]:
        whole[key] += 1
    return {k: v for k, v in whole.items() if v > 0}


def _split(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(k): int(float(v)) for k, v in value.items() if isinstance(v, int | float)}


def _kept(deployed: dict) -> dict:
    return {k: deployed[k] for k in _KEPT_FIELDS if k in deployed}


def _model_ref(kept: dict) -> str:
    """The model to deploy, pinned to the version that was deployed."""
    model = kept["model"]
    version = kept.get("modelVersionId")
    return model if "@" in model or not version else f"{model}@{version}"


def _same_model(deployed: dict, kept: dict) -> bool:
    if deployed.get("model", "").split("@")[0] != kept["model"].split("@")[0]:
        return False
    version = kept.get("modelVersionId") or (kept["model"].partition("@")[2] or None)
    return not version or deployed.get("modelVersionId", version) == version


def _deploy_body(kept: dict, split: dict[str, int] | None) -> dict:
    body: dict[str, Any] = {
        "deployedModel": {
            "model": _model_ref(kept),
            **{k: kept[k] for k in _DEPLOY_FIELDS if k in kept},
        }
    }
    if split:
        body["trafficSplit"] = split
    return body


class _Api:
    """One endpoint's calls, with Google's answers turned into ActuatorError."""

    def __init__(self, account: CloudAccount, target: _Target):
        self.account = account
        self.target = target
        try:
            self.session = clients.gcp_authorized_session(account)
        except Exception as exc:  # key files, application defaults: any failure to load
            raise ActuatorError(
                f"Cannot load the Google credentials of cloud account {account.name}: "
                f"{scrub(str(exc)) or type(exc).__name__}"
            ) from None

    def call(self, method: str, url: str, body: dict | None, *, doing: str) -> dict:
        import requests
        from google.auth import exceptions as auth_exceptions

        log.info("Vertex AI: %s (%s %s)", doing, method, url)
        try:
            response = self.session.request(method, url, json=body, timeout=CALL_TIMEOUT)
        except auth_exceptions.GoogleAuthError as exc:
            raise ActuatorError(
                f"{doing.capitalize()}: the credentials of cloud account {self.account.name} "
                f"were refused or could not be refreshed: {scrub(str(exc))}"
            ) from None
        except requests.Timeout:
            raise ActuatorError(
                f"{doing.capitalize()}: Vertex AI did not answer {method} {url} within "
                f"{CALL_TIMEOUT:.0f} s."
            ) from None
        except requests.RequestException as exc:
            raise ActuatorError(
                f"{doing.capitalize()}: could not reach Vertex AI at {url} "
                f"({type(exc).__name__}); check the network, or CAPGOV_VERTEX_API_ENDPOINT."
            ) from None
        if response.status_code >= 400:
            raise ActuatorError(self._refusal(response, method, url, doing))
        try:
            return response.json() if response.content else {}
        except ValueError:
            raise ActuatorError(
                f"{doing.capitalize()}: Vertex AI answered {method} {url} with HTTP "
                f"{response.status_code} but not JSON."
            ) from None

    def _refusal(self, response, method: str, url: str, doing: str) -> str:
        status = response.status_code
        try:
            error = response.json().get("error") or {}
        except ValueError:
            error = {}
        if not isinstance(error, dict):
            error = {"message": str(error)}
        message = error.get("message") or response.reason or "no message"
        code = f" {error['status']}" if error.get("status") else ""
        text = f"{doing.capitalize()}: Vertex AI answered HTTP {status}{code}: {message}"
        if status in (401, 403):
            text += (
                f" — the credentials of cloud account {self.account.name} need the Vertex AI "
                f"permissions on project {self.target.project} (e.g. the Vertex AI User role)."
            )
        elif status == 404:
            text += f" — {method} {url} found nothing: was the endpoint or model deleted?"
        elif status == 429 or status >= 500:
            text += " — Google failed or throttled the call; try again later."
        return scrub(text)

    def __enter__(self) -> _Api:
        return self

    def __exit__(self, *exc_info) -> None:
        self.session.close()

    def get_endpoint(self) -> dict:
        return self.call(
            "GET", self.target.url(), None, doing=f"reading endpoint {self.target.name}"
        )

    def wait(self, operation: dict, doing: str) -> dict:
        """The operation once done; ActuatorError if it failed or took too long."""
        name = operation.get("name", "")
        deadline = time.monotonic() + OPERATION_TIMEOUT
        delay = POLL_INITIAL
        while not operation.get("done"):
            left = deadline - time.monotonic()
            if left <= 0 or not name:
                raise ActuatorError(
                    f"{doing.capitalize()} was still running after {OPERATION_TIMEOUT:.0f} s "
                    f"(operation {name or 'without a name'}); check it in the console."
                )
            time.sleep(min(delay, left))
            delay = min(delay * 2, POLL_MAXIMUM)
            operation = self.call(
                "GET", f"{self.target.base}{name}", None, doing=f"checking on {doing}"
            )
        if operation.get("error"):
            error = operation["error"]
            raise ActuatorError(
                scrub(
                    f"{doing.capitalize()} failed (operation {name}): "
                    f"{error.get('message') or 'no message'} (code {error.get('code', '?')})."
                )
            )
        return operation


class VertexActuator(EndpointActuator):
    """Undeploys, scales down and redeploys the models of Vertex AI endpoints."""

    provider = "gcp"

    # --- dry runs ------------------------------------------------------------------------

    def plan(
        self, endpoint, action: str, *, min_instances: int = 1, evidence: dict | None = None
    ) -> dict:
        """The calls ``action`` would make, without making any (nor reading anything from
        Google). It never raises: what would stop the action before it reaches Google (no
        account, a resource id that is not a Vertex endpoint, a minimum below one, evidence
        without what was kept) is returned as ``"problem"``; an unknown action has
        ``"call": None``."""
        kind = _ACTIONS.get(action)
        base = {"provider": self.provider, "action": action, "dry_run": True}
        if kind is None:
            return {
                **base,
                "call": None,
                "calls": [],
                "problem": f"Vertex AI endpoints have no action {action!r}: one of "
                f"{', '.join(sorted(_ACTIONS))}.",
            }
        verb = _PLAN_VERBS[kind]
        if kind == "restore" and isinstance(evidence, dict) and _was_scaled(evidence):
            verb = _PLAN_VERBS["scale_min"]
        try:
            return {
                **base,
                "action": kind,
                "call": verb,
                **self._plan(endpoint, kind, min_instances, evidence),
            }
        except ActuatorError as exc:
            return {
                **base,
                "action": kind,
                "call": verb,
                "calls": [],
                "problem": str(exc),
                "text": f"Would fail before calling Vertex AI: {exc}",
            }

    def _plan(self, endpoint, kind: str, min_instances: int, evidence: dict | None) -> dict:
        target = _target(endpoint)
        account = _account(endpoint, target)
        read = {"method": "GET", "url": target.url(), "body": None}
        if kind == "delete":
            text = (
                f"Would undeploy every model deployed on Vertex AI endpoint {target.name} "
                "(the one with the most traffic last, moving traffic to those still "
                "deployed), keeping the endpoint and its models so it can be restored."
            )
            calls = [
                read,
                {
                    "method": "POST",
                    "url": target.url(":undeployModel"),
                    "body": {"deployedModelId": "<each deployed model>"},
                },
            ]
        elif kind == "scale_min":
            _check_minimum(min_instances)
            text = (
                f"Would lower the minimum replica count of each model deployed on Vertex AI "
                f"endpoint {target.name} to {min_instances} (models already at or below it "
                "are left alone)."
            )
            calls = [
                read,
                _mutate_call(
                    target,
                    "<each deployed model above the minimum>",
                    "dedicatedResources",
                    min_instances,
                ),
            ]
        elif evidence is None:
            text = f"Would deploy again the models kept when {target.name} was undeployed."
            calls = [
                read,
                {
                    "method": "POST",
                    "url": target.url(":deployModel"),
                    "body": {"deployedModel": "<each kept deployed model>"},
                },
            ]
        elif _was_scaled(evidence):
            previous = _previous(evidence)
            text = (
                f"Would give each model on {target.name} that was scaled down its minimum "
                "replica count back."
            )
            calls = [read] + [
                _mutate_call(target, model_id, was["resources"], was["minReplicaCount"])
                for model_id, was in previous.items()
            ]
        else:
            models, split = _kept_models(evidence, target)
            text = (
                f"Would deploy {len(models)} kept model(s) again on {target.name}, with "
                "the same machines and replica counts, and restore the traffic split."
            )
            calls = [read]
            placeholders: dict[str, str] = {}
            for item in _by_share(models, split):
                share = split.get(item.get("id", ""), 0)
                wanted = {placeholders[k]: split[k] for k in placeholders if split.get(k)}
                if share:
                    wanted["0"] = share
                calls.append(
                    {
                        "method": "POST",
                        "url": target.url(":deployModel"),
                        "body": _deploy_body(item, _percentages(wanted)),
                    }
                )
                placeholders[item.get("id", "")] = f"<new id of {item.get('id', '?')}>"
        return {"endpoint": target.name, "account": account.name, "text": text, "calls": calls}

    # --- actions -------------------------------------------------------------------------

    def delete(self, endpoint) -> dict:
        """Undeploy every deployed model; the endpoint and the models stay. Returns what was
        deployed under ``"kept"`` (see the module's docstring), the deployed model ids
        undeployed and the names of the operations."""
        with self._api(endpoint) as api:
            return self._delete(api)

    def _delete(self, api: _Api) -> dict:
        name = api.target.name
        current = api.get_endpoint()
        deployed = [m for m in current.get("deployedModels") or [] if m.get("id")]
        split = _split(current.get("trafficSplit"))
        result: dict[str, Any] = {
            "provider": self.provider,
            "action": "delete",
            "endpoint": name,
            "kept": {
                "endpoint": name,
                "displayName": current.get("displayName", ""),
                "deployedModels": [_kept(m) for m in deployed],
                "trafficSplit": split,
            },
            "undeployed": [],
            "operations": [],
        }
        # Least traffic first: each undeploy moves the model's traffic to those still
        # deployed, and the busiest goes last (the last one may keep its traffic).
        order = sorted(deployed, key=lambda m: split.get(m["id"], 0))
        remaining = [m["id"] for m in order]
        traffic = dict(split)
        for item in order:
            model_id = item["id"]
            remaining.remove(model_id)
            body: dict[str, Any] = {"deployedModelId": model_id}
            if remaining and traffic.get(model_id, 0) > 0:
                moved = _percentages({k: traffic.get(k, 0) for k in remaining})
                traffic = moved or {remaining[-1]: 100}
                body["trafficSplit"] = traffic
            doing = (
                f"undeploying deployed model {model_id} ({item.get('model', '?')}) from "
                f"endpoint {name}"
            )
            try:
                operation = api.call("POST", api.target.url(":undeployModel"), body, doing=doing)
                result["operations"].append(operation.get("name", ""))
                if remaining:
                    api.wait(operation, doing)
            except ActuatorError as exc:
                raise _partial(exc, result, "undeployed") from None
            result["undeployed"].append(model_id)
        result["text"] = (
            f"Undeployed {len(order)} model(s) from Vertex AI endpoint {name}; the endpoint "
            "and its models stay, and what was deployed is kept to restore it."
            if order
            else f"Nothing was deployed on Vertex AI endpoint {name}: nothing to undeploy."
        )
        return result

    def scale_min(self, endpoint, *, min_instances: int) -> dict:
        """Lower each deployed model's minimum replica count to ``min_instances`` (never
        raising one); ``"previous"`` records the counts before of those lowered, per
        deployed model id, for ``restore``."""
        _check_minimum(min_instances)
        with self._api(endpoint) as api:
            return self._scale_min(api, min_instances)

    def _scale_min(self, api: _Api, min_instances: int) -> dict:
        name = api.target.name
        current = api.get_endpoint()
        result: dict[str, Any] = {
            "provider": self.provider,
            "action": "scale_min",
            "endpoint": name,
            "min_instances": min_instances,
            "previous": {},
            "scaled": [],
            "unchanged": [],
            "skipped": [],
            "operations": [],
        }
        changes = []
        for item in current.get("deployedModels") or []:
            model_id = item.get("id", "")
            kind = next((k for k in _RESOURCES[:2] if k in item), None)
            if kind is None:
                result["skipped"].append(
                    {"id": model_id, "reason": "uses a shared deployment resource pool"}
                )
                continue
            resources = item[kind] or {}
            low = int(resources.get("minReplicaCount") or 1)
            if low <= min_instances:
                result["unchanged"].append(model_id)
                continue
            result["previous"][model_id] = {
                "resources": kind,
                "minReplicaCount": low,
                "maxReplicaCount": int(resources.get("maxReplicaCount") or low),
            }
            changes.append((model_id, kind))
        self._mutate_all(api, [(i, k, min_instances) for i, k in changes], result, "scaled")
        result["text"] = (
            f"Lowered the minimum replica count of {len(changes)} deployed model(s) on "
            f"{name} to {min_instances}."
            if changes
            else f"Every model deployed on {name} already runs at most {min_instances} "
            "replica(s) at minimum: nothing to scale."
        )
        return result

    def restore(self, endpoint, *, evidence: dict) -> dict:
        """Deploy again each model ``evidence["kept"]`` lists (see the module's docstring)
        with the same resources, and give back the traffic split. Models already deployed
        again (a second restore, or one after a partial failure) are not deployed twice."""
        target = _target(endpoint)
        if isinstance(evidence, dict) and _was_scaled(evidence):
            previous = _previous(evidence)
            with self._api(endpoint, target) as api:
                return self._unscale(api, previous)
        models, split = _kept_models(evidence, target)
        with self._api(endpoint, target) as api:
            return self._restore(api, models, split)

    def _unscale(self, api: _Api, previous: dict[str, dict]) -> dict:
        """Give the models scale_min lowered their minimum replica counts back."""
        name = api.target.name
        current = api.get_endpoint()
        result: dict[str, Any] = {
            "provider": self.provider,
            "action": "restore",
            "endpoint": name,
            "restored": [],
            "unchanged": [],
            "missing": [],
            "operations": [],
        }
        changes = []
        present = {m.get("id"): m for m in current.get("deployedModels") or []}
        for model_id, was in previous.items():
            item = present.get(model_id)
            if item is None or was["resources"] not in item:
                result["missing"].append(model_id)
                continue
            low = int((item[was["resources"]] or {}).get("minReplicaCount") or 1)
            if low >= was["minReplicaCount"]:
                result["unchanged"].append(model_id)
                continue
            changes.append((model_id, was["resources"], was["minReplicaCount"]))
        self._mutate_all(api, changes, result, "restored")
        result["text"] = (
            f"Gave {len(changes)} deployed model(s) on {name} their minimum replica count back."
            if changes
            else f"No model on {name} runs below its former minimum: nothing to restore."
        )
        if result["missing"]:
            result["text"] += f" No longer deployed there: {', '.join(result['missing'])}."
        return result

    def _restore(self, api: _Api, models: list[dict], split: dict[str, int]) -> dict:
        target = api.target
        name = target.name
        current = api.get_endpoint()
        available = list(current.get("deployedModels") or [])
        now: dict[str, str] = {}  # kept deployed model id -> its id on the endpoint now
        result: dict[str, Any] = {
            "provider": self.provider,
            "action": "restore",
            "endpoint": name,
            "deployed": [],
            "already_deployed": [],
            "operations": [],
            "trafficSplit": None,
        }
        missing = []
        for item in models:
            match = next((d for d in available if _same_model(d, item)), None)
            if match is None:
                missing.append(item)
                continue
            available.remove(match)
            now[item.get("id", "")] = match.get("id", "")
            result["already_deployed"].append(
                {"from": item.get("id"), "deployedModelId": match.get("id")}
            )
        ordered = _by_share(missing, split)
        for position, item in enumerate(ordered):
            old_id = item.get("id", "")
            share = split.get(old_id, 0)
            wanted = {now[k]: split[k] for k in now if split.get(k) and now[k]}
            if share:
                wanted["0"] = share
            traffic = _percentages(wanted) if share else None
            body = _deploy_body(item, traffic)
            doing = f"deploying model {_model_ref(item)} again on endpoint {name}"
            entry = {"from": old_id, "model": _model_ref(item), "deployedModelId": None}
            try:
                operation = api.call("POST", target.url(":deployModel"), body, doing=doing)
                entry["operation"] = operation.get("name", "")
                result["operations"].append(entry["operation"])
                if position < len(ordered) - 1:
                    done = api.wait(operation, doing)
                    new_id = ((done.get("response") or {}).get("deployedModel") or {}).get("id")
                    entry["deployedModelId"] = new_id or self._find(api, item, now)
                    now[old_id] = entry["deployedModelId"]
            except ActuatorError as exc:
                raise _partial(exc, result, "deployed") from None
            if traffic:
                result["trafficSplit"] = traffic
            result["deployed"].append(entry)
        already = len(result["already_deployed"])
        result["text"] = (
            f"Deploying {len(ordered)} kept model(s) again on {name}"
            + (f" ({already} already were)." if already else ".")
            if ordered
            else f"Every kept model is deployed on {name} already: nothing to restore."
        )
        return result

    # --- helpers -------------------------------------------------------------------------

    @staticmethod
    def _mutate_all(
        api: _Api, changes: list[tuple[str, str, int]], result: dict, done_key: str
    ) -> None:
        """Set each (deployed model id, resources, minimum), one at a time."""
        for position, (model_id, kind, minimum) in enumerate(changes):
            call = _mutate_call(api.target, model_id, kind, minimum)
            doing = (
                f"setting the minimum replica count of deployed model {model_id} on endpoint "
                f"{api.target.name} to {minimum}"
            )
            try:
                operation = api.call(call["method"], call["url"], call["body"], doing=doing)
                result["operations"].append(operation.get("name", ""))
                if position < len(changes) - 1:
                    api.wait(operation, doing)
            except ActuatorError as exc:
                raise _partial(exc, result, done_key) from None
            result[done_key].append(model_id)

    def _api(self, endpoint, target: _Target | None = None) -> _Api:
        target = target or _target(endpoint)
        return _Api(_account(endpoint, target), target)

    @staticmethod
    def _find(api: _Api, kept: dict, taken: dict[str, str]) -> str:
        """The id a just-deployed model got, when its operation did not say."""
        used = set(taken.values())
        for item in api.get_endpoint().get("deployedModels") or []:
            if item.get("id") not in used and _same_model(item, kept):
                return item["id"]
        raise ActuatorError(
            f"Deployed {_model_ref(kept)} again on {api.target.name}, but the endpoint does "
            "not list it: check the endpoint in the console."
        )


def _mutate_call(target: _Target, model_id: str, kind: str, minimum: int) -> dict:
    return {
        "method": "POST",
        "url": target.url(":mutateDeployedModel"),
        "body": {
            "deployedModel": {"id": model_id, kind: {"minReplicaCount": minimum}},
            "updateMask": f"{kind}.minReplicaCount",
        },
    }


def _was_scaled(evidence: dict) -> bool:
    """Evidence that scale_min returned (rather than delete)."""
    return "kept" not in evidence and evidence.get("action") == "scale_min"


def _previous(evidence: dict) -> dict[str, dict]:
    previous = evidence.get("previous")
    if not isinstance(previous, dict):
        raise ActuatorError(
            'Nothing to restore from: the evidence of scaling down needs "previous", the '
            "minimum replica counts before, as scale_min recorded them."
        )
    for model_id, was in previous.items():
        if (
            not isinstance(was, dict)
            or was.get("resources") not in _RESOURCES[:2]
            or not isinstance(was.get("minReplicaCount"), int)
            or was["minReplicaCount"] < 1
        ):
            raise ActuatorError(f"The former minimum of deployed model {model_id} is unreadable.")
    return previous


def _check_minimum(min_instances: int) -> None:
    if min_instances < 1:
        raise ActuatorError(
            "Vertex AI keeps at least one replica of a deployed model: scale to a minimum of "
            "1 or more, or undeploy the models (delete) to stop paying for them."
        )


def _kept_models(evidence: Any, target: _Target) -> tuple[list[dict], dict[str, int]]:
    kept = evidence.get("kept") if isinstance(evidence, dict) else None
    models = kept.get("deployedModels") if isinstance(kept, dict) else None
    if not isinstance(models, list):
        raise ActuatorError(
            'Nothing to restore from: the evidence needs "kept" with "deployedModels", as '
            "undeploying the endpoint (delete) recorded them."
        )
    recorded = _ENDPOINT_NAME.search(str(kept.get("endpoint") or ""))
    if recorded and recorded.group(0) != target.name:
        raise ActuatorError(
            f"The kept models were recorded for endpoint {recorded.group(0)}, not "
            f"{target.name}: restore them there."
        )
    for item in models:
        if not isinstance(item, dict) or not item.get("model"):
            raise ActuatorError(f"A kept deployed model has no model to deploy: {item!r}.")
        if not any(k in item for k in _RESOURCES):
            raise ActuatorError(
                f"Kept deployed model {item.get('id', '?')} ({item['model']}) has no "
                "resources (dedicatedResources, automaticResources or sharedResources)."
            )
    return models, _split(kept.get("trafficSplit"))


def _by_share(models: list[dict], split: dict[str, int]) -> list[dict]:
    """Most traffic first: the first restored model takes all the traffic, and each next
    one its share of it."""
    return sorted(models, key=lambda m: -split.get(m.get("id", ""), 0))


def _partial(exc: ActuatorError, result: dict, done_key: str) -> ActuatorError:
    """``exc`` as is when nothing had changed yet; else with what had, and the result."""
    done = result.get(done_key) or []
    if not done:
        return exc
    if done_key == "undeployed":
        models = {m["id"]: m.get("model", "?") for m in result["kept"]["deployedModels"]}
        what = ", ".join(f"{i} ({models.get(i, '?')})" for i in done)
        tail = f"already undeployed: {what}; the error's record keeps them, to restore"
    elif done_key == "deployed":
        tail = "already deployed again: " + ", ".join(str(d["model"]) for d in done)
    else:
        tail = f"already {done_key}: " + ", ".join(done)
    return PartialActuatorError(f"{exc} ({tail}).", result)
