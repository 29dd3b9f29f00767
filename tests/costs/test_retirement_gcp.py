"""The Vertex AI actuator against a local fake of the Vertex AI REST API v1.

The fake (built on ``gcp_server.GoogleFake``: same recording, failure injection and error
bodies) keeps endpoints with their deployed models and traffic split, and enforces what
Vertex does: a model with traffic cannot be undeployed while others stay unless the
request moves its traffic, a traffic split adds up to 100 and names deployed models only.
Undeploy, deploy and mutate answer a pending operation; reading it says it is done.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from costs import retirement_gcp
from costs.models import CloudAccount, SyncKind, SyncRun, SyncStatus
from costs.retirement_gcp import PartialActuatorError, VertexActuator
from registry.extensions import ActuatorError, endpoint_actuator
from registry.models import Endpoint
from tests.costs.gcp_server import GoogleFake, Request, _error

PROJECT = "acme-ml"
LOCATION = "europe-west4"
NAME = f"projects/{PROJECT}/locations/{LOCATION}/endpoints/4242"
MODEL = f"projects/{PROJECT}/locations/{LOCATION}/models/ranker"
SHADOW = f"projects/{PROJECT}/locations/{LOCATION}/models/ranker-shadow"
L4 = {"machineType": "g2-standard-8", "acceleratorType": "NVIDIA_L4", "acceleratorCount": 1}


def dedicated(low: int, high: int, machine: dict | None = None) -> dict:
    return {
        "machineSpec": dict(machine or L4),
        "minReplicaCount": low,
        "maxReplicaCount": high,
    }


def deployed(model_id: str, model: str, version: str, resources: dict, **extra) -> dict:
    return {
        "id": model_id,
        "model": model,
        "modelVersionId": version,
        "displayName": f"{model.rsplit('/', 1)[1]}-v{version}",
        "dedicatedResources": resources,
        "createTime": "2026-09-01T10:00:00Z",
        "serviceAccount": "serving@acme-ml.iam.gserviceaccount.com",
        **extra,
    }


@dataclass
class VertexFake(GoogleFake):
    endpoints: dict[str, dict] = field(default_factory=dict)
    operations: dict[str, dict] = field(default_factory=dict)
    # Verb (undeployModel, deployModel, mutateDeployedModel) -> the error its operation ends in.
    operation_errors: dict[str, dict] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(9001))

    def add(self, name: str, models: list[dict], split: dict[str, int]) -> None:
        self.endpoints[name] = {
            "name": name,
            "displayName": "ranker-prod",
            "deployedModels": models,
            "trafficSplit": split,
            "etag": "abc",
        }

    def changes(self) -> list[Request]:
        return [r for r in self.requests if r.method != "GET"]

    def _routes(self):
        endpoint = r"/v1/(?P<name>projects/[^/]+/locations/[^/]+/endpoints/[^/:]+)"
        return [
            ("GET", endpoint, self._get),
            ("POST", endpoint + r":undeployModel", self._undeploy),
            ("POST", endpoint + r":deployModel", self._deploy),
            ("POST", endpoint + r":mutateDeployedModel", self._mutate),
            ("GET", r"/v1/(?P<name>projects/.+/operations/[^/]+)", self._operation),
        ]

    def _endpoint(self, name: str) -> dict | None:
        return self.endpoints.get(name)

    def _missing(self, name: str) -> tuple[int, dict]:
        return 404, _error(404, f'Endpoint "{name}" does not exist.', "notFound")

    def _invalid(self, message: str) -> tuple[int, dict]:
        return 400, _error(400, message, "badRequest")

    def _operation_for(self, name: str, verb: str, response: dict, apply) -> tuple[int, dict]:
        op = f"{name}/operations/{next(self._ids)}"
        if verb in self.operation_errors:
            self.operations[op] = {"name": op, "done": True, "error": self.operation_errors[verb]}
        else:
            apply()
            self.operations[op] = {"name": op, "done": True, "response": response}
        return 200, {"name": op, "metadata": {"@type": f"type.googleapis.com/{verb}Metadata"}}

    def _check_split(self, endpoint: dict, split: dict, *, new: bool = False) -> str | None:
        ids = {m["id"] for m in endpoint["deployedModels"]} | ({"0"} if new else set())
        if sum(split.values()) != 100:
            return f"The traffic split must add up to 100, not {sum(split.values())}."
        unknown = sorted(set(split) - ids)
        if unknown:
            return f"The traffic split names models that are not deployed: {unknown}."
        return None

    def _get(self, request: Request, name: str) -> tuple[int, dict]:
        endpoint = self._endpoint(name)
        return (200, endpoint) if endpoint else self._missing(name)

    def _undeploy(self, request: Request, name: str) -> tuple[int, dict]:
        endpoint = self._endpoint(name)
        if endpoint is None:
            return self._missing(name)
        body = request.body or {}
        model_id = body.get("deployedModelId")
        models = endpoint["deployedModels"]
        if model_id not in {m["id"] for m in models}:
            return 404, _error(404, f"Deployed model {model_id} not found.", "notFound")
        split = body.get("trafficSplit")
        others = [m for m in models if m["id"] != model_id]
        if split:
            problem = self._check_split(endpoint, split)
            if problem or split.get(model_id):
                return self._invalid(problem or f"The split still sends traffic to {model_id}.")
        elif others and endpoint["trafficSplit"].get(model_id, 0) > 0:
            return 400, _error(
                400,
                f"Deployed model {model_id} has traffic: move it before undeploying.",
                "failedPrecondition",
            )

        def apply():
            endpoint["deployedModels"] = others
            endpoint["trafficSplit"] = split or ({} if not others else endpoint["trafficSplit"])

        return self._operation_for(name, "undeployModel", {}, apply)

    def _deploy(self, request: Request, name: str) -> tuple[int, dict]:
        endpoint = self._endpoint(name)
        if endpoint is None:
            return self._missing(name)
        body = request.body or {}
        spec = dict(body.get("deployedModel") or {})
        if not spec.get("model") or "dedicatedResources" not in spec:
            return self._invalid("deployedModel needs a model and dedicatedResources.")
        new_id = str(next(self._ids))
        model, _, version = spec.pop("model").partition("@")
        item = {"id": new_id, "model": model, "modelVersionId": version or "1", **spec}
        split = body.get("trafficSplit")
        if split and (problem := self._check_split(endpoint, split, new=True)):
            return self._invalid(problem)

        def apply():
            endpoint["deployedModels"].append(item)
            if split:
                endpoint["trafficSplit"] = {
                    (new_id if k == "0" else k): v for k, v in split.items()
                }

        return self._operation_for(name, "deployModel", {"deployedModel": {"id": new_id}}, apply)

    def _mutate(self, request: Request, name: str) -> tuple[int, dict]:
        endpoint = self._endpoint(name)
        if endpoint is None:
            return self._missing(name)
        body = request.body or {}
        spec = body.get("deployedModel") or {}
        target = next((m for m in endpoint["deployedModels"] if m["id"] == spec.get("id")), None)
        if target is None:
            return 404, _error(404, f"Deployed model {spec.get('id')} not found.", "notFound")
        if not body.get("updateMask"):
            return self._invalid("updateMask is required.")

        def apply():
            for path in body["updateMask"].split(","):
                group, key = path.split(".")
                target[group][key] = spec[group][key]

        return self._operation_for(name, "mutateDeployedModel", {}, apply)

    def _operation(self, request: Request, name: str) -> tuple[int, dict]:
        if name not in self.operations:
            return 404, _error(404, f"Operation {name} not found.", "notFound")
        return 200, self.operations[name]


@pytest.fixture(autouse=True)
def _fast_polling(monkeypatch):
    monkeypatch.setattr(retirement_gcp, "POLL_INITIAL", 0.01)
    monkeypatch.setattr(retirement_gcp, "POLL_MAXIMUM", 0.02)
    monkeypatch.setattr(retirement_gcp, "OPERATION_TIMEOUT", 2.0)


@pytest.fixture
def vertex(settings):
    fake = VertexFake()
    url = fake.start()
    settings.CAPGOV_GCP_API_ENDPOINT = url  # anonymous credentials, as for the other fakes
    settings.CAPGOV_VERTEX_API_ENDPOINT = url
    yield fake
    fake.stop()


@pytest.fixture
def account(db):
    return CloudAccount.objects.create(
        name="Acme ML",
        provider="gcp",
        account_id="0A1B2C-3D4E5F-6A7B8C",
        gcp_project=PROJECT,
        cost_source="bigquery",
    )


@pytest.fixture
def endpoint(db):
    return Endpoint.objects.create(
        provider="gcp",
        account_id=PROJECT,
        region=LOCATION,
        name="ranker-prod",
        resource_id=f"//aiplatform.googleapis.com/{NAME}",
        instance_type="g2-standard-8",
        instance_count=2,
    )


@pytest.fixture
def single(vertex):
    """One model (version 3) on two to four L4 replicas, with all the traffic."""
    vertex.add(NAME, [deployed("111", MODEL, "3", dedicated(2, 4))], {"111": 100})
    return vertex


@pytest.fixture
def canary(vertex):
    """The ranker with 80 % of the traffic and a shadow model with 20 %."""
    vertex.add(
        NAME,
        [
            deployed("111", MODEL, "3", dedicated(2, 4)),
            deployed("222", SHADOW, "1", dedicated(1, 1, {"machineType": "n1-standard-4"})),
        ],
        {"111": 80, "222": 20},
    )
    return vertex


def test_registered_for_gcp():
    assert isinstance(endpoint_actuator("gcp"), VertexActuator)


def test_delete_undeploys_the_model_and_keeps_what_restores_it(single, account, endpoint):
    result = VertexActuator().delete(endpoint)

    (call,) = single.changes()
    assert call.path == f"/v1/{NAME}:undeployModel"
    assert call.body == {"deployedModelId": "111"}
    assert result["undeployed"] == ["111"]
    assert result["operations"] == [f"{NAME}/operations/9001"]
    assert result["kept"] == {
        "endpoint": NAME,
        "displayName": "ranker-prod",
        "deployedModels": [
            {
                "id": "111",
                "model": MODEL,
                "modelVersionId": "3",
                "displayName": "ranker-v3",
                "dedicatedResources": dedicated(2, 4),
                "serviceAccount": "serving@acme-ml.iam.gserviceaccount.com",
            }
        ],
        "trafficSplit": {"111": 100},
    }
    # The endpoint stays, with nothing deployed on it (nothing to pay for).
    assert single.endpoints[NAME]["deployedModels"] == []
    # A single undeploy is not waited for.
    assert not single.calls("GET", "/operations/")


def test_delete_moves_traffic_off_each_model_before_undeploying_it(canary, account, endpoint):
    result = VertexActuator().delete(endpoint)

    first, second = canary.changes()
    # The shadow (less traffic) goes first and hands its share to the ranker…
    assert first.body == {"deployedModelId": "222", "trafficSplit": {"111": 100}}
    # …which is undeployed once that operation is done.
    assert canary.calls("GET", f"{NAME}/operations/9001")
    assert second.body == {"deployedModelId": "111"}
    assert result["undeployed"] == ["222", "111"]
    assert len(result["operations"]) == 2
    assert result["kept"]["trafficSplit"] == {"111": 80, "222": 20}
    assert [m["id"] for m in result["kept"]["deployedModels"]] == ["111", "222"]
    assert canary.endpoints[NAME]["deployedModels"] == []


def test_delete_of_an_endpoint_with_nothing_deployed_changes_nothing(vertex, account, endpoint):
    vertex.add(NAME, [], {})
    result = VertexActuator().delete(endpoint)
    assert vertex.changes() == []
    assert result["kept"]["deployedModels"] == []
    assert "nothing to undeploy" in result["text"]


def test_restore_deploys_the_kept_model_again_with_the_same_resources(single, account, endpoint):
    evidence = VertexActuator().delete(endpoint)
    single.requests.clear()

    result = VertexActuator().restore(endpoint, evidence=evidence)

    (call,) = single.changes()
    assert call.path == f"/v1/{NAME}:deployModel"
    assert call.body == {
        "deployedModel": {
            "model": f"{MODEL}@3",
            "displayName": "ranker-v3",
            "dedicatedResources": dedicated(2, 4),
            "serviceAccount": "serving@acme-ml.iam.gserviceaccount.com",
        },
        "trafficSplit": {"0": 100},
    }
    (again,) = single.endpoints[NAME]["deployedModels"]
    assert (again["model"], again["modelVersionId"]) == (MODEL, "3")
    assert again["dedicatedResources"] == dedicated(2, 4)
    assert single.endpoints[NAME]["trafficSplit"] == {again["id"]: 100}
    assert result["deployed"] == [
        {
            "from": "111",
            "model": f"{MODEL}@3",
            "deployedModelId": None,  # not waited for: the last operation of the action
            "operation": result["operations"][0],
        }
    ]
    assert result["trafficSplit"] == {"0": 100}


def test_restore_gives_back_the_traffic_split(canary, account, endpoint):
    evidence = VertexActuator().delete(endpoint)
    canary.requests.clear()

    result = VertexActuator().restore(endpoint, evidence=evidence)

    first, second = canary.changes()
    assert first.body["deployedModel"]["model"] == f"{MODEL}@3"
    assert first.body["trafficSplit"] == {"0": 100}
    ranker = result["deployed"][0]["deployedModelId"]
    assert ranker
    assert second.body["deployedModel"]["model"] == f"{SHADOW}@1"
    assert second.body["deployedModel"]["dedicatedResources"] == dedicated(
        1, 1, {"machineType": "n1-standard-4"}
    )
    assert second.body["trafficSplit"] == {ranker: 80, "0": 20}
    now = {m["model"]: m["id"] for m in canary.endpoints[NAME]["deployedModels"]}
    assert canary.endpoints[NAME]["trafficSplit"] == {now[MODEL]: 80, now[SHADOW]: 20}


def test_restore_twice_deploys_nothing_twice(single, account, endpoint):
    evidence = VertexActuator().delete(endpoint)
    VertexActuator().restore(endpoint, evidence=evidence)
    single.requests.clear()

    result = VertexActuator().restore(endpoint, evidence=evidence)

    assert single.changes() == []
    assert result["deployed"] == []
    assert result["already_deployed"] == [{"from": "111", "deployedModelId": "9002"}]
    assert len(single.endpoints[NAME]["deployedModels"]) == 1


@pytest.mark.parametrize(
    ("evidence", "says"),
    [
        ({}, '"kept" with "deployedModels"'),
        ({"kept": {"deployedModels": [{"id": "1"}]}}, "has no model to deploy"),
        ({"kept": {"deployedModels": [{"id": "1", "model": MODEL}]}}, "has no resources"),
        (
            {
                "kept": {
                    "endpoint": f"projects/{PROJECT}/locations/{LOCATION}/endpoints/1",
                    "deployedModels": [],
                }
            },
            "recorded for endpoint",
        ),
    ],
)
def test_restore_needs_what_delete_kept(single, account, endpoint, evidence, says):
    with pytest.raises(ActuatorError, match=re.escape(says)):
        VertexActuator().restore(endpoint, evidence=evidence)
    assert single.requests == []


def test_scale_min_lowers_the_minimum_replica_count(canary, account, endpoint):
    result = VertexActuator().scale_min(endpoint, min_instances=1)

    # The shadow already runs one replica; only the ranker changes.
    (call,) = canary.changes()
    assert call.path == f"/v1/{NAME}:mutateDeployedModel"
    assert call.body == {
        "deployedModel": {"id": "111", "dedicatedResources": {"minReplicaCount": 1}},
        "updateMask": "dedicatedResources.minReplicaCount",
    }
    assert canary.endpoints[NAME]["deployedModels"][0]["dedicatedResources"] == dedicated(1, 4)
    assert result["scaled"] == ["111"]
    assert result["unchanged"] == ["222"]
    assert result["previous"]["111"] == {
        "resources": "dedicatedResources",
        "minReplicaCount": 2,
        "maxReplicaCount": 4,
    }


def test_scale_min_waits_between_two_changes_and_never_scales_up(vertex, account, endpoint):
    vertex.add(
        NAME,
        [
            deployed("111", MODEL, "3", dedicated(3, 4)),
            deployed("222", SHADOW, "1", dedicated(3, 3)),
            deployed("333", SHADOW, "2", dedicated(1, 1)),
        ],
        {"111": 100},
    )
    result = VertexActuator().scale_min(endpoint, min_instances=2)

    first, second = vertex.changes()
    assert [first.body["deployedModel"]["id"], second.body["deployedModel"]["id"]] == [
        "111",
        "222",
    ]
    assert second.body["deployedModel"]["dedicatedResources"] == {"minReplicaCount": 2}
    # The first operation was waited for before the second call; the last one was not.
    assert len(vertex.calls("GET", "/operations/")) == 1
    assert result["scaled"] == ["111", "222"]
    assert result["unchanged"] == ["333"]  # one replica stays one: never scaled up
    models = vertex.endpoints[NAME]["deployedModels"]
    assert [m["dedicatedResources"]["minReplicaCount"] for m in models] == [2, 2, 1]


def test_scale_min_below_one_replica_is_refused_before_any_call(single, account, endpoint):
    with pytest.raises(ActuatorError, match="at least one replica"):
        VertexActuator().scale_min(endpoint, min_instances=0)
    assert single.requests == []


def test_restore_after_scale_min_gives_the_minimum_back(canary, account, endpoint):
    evidence = VertexActuator().scale_min(endpoint, min_instances=1)
    assert evidence["previous"] == {
        "111": {"resources": "dedicatedResources", "minReplicaCount": 2, "maxReplicaCount": 4}
    }
    plan = VertexActuator().plan(endpoint, "restore", evidence=evidence)
    assert plan["calls"][1]["body"]["deployedModel"] == {
        "id": "111",
        "dedicatedResources": {"minReplicaCount": 2},
    }
    canary.requests.clear()

    result = VertexActuator().restore(endpoint, evidence=evidence)

    (call,) = canary.changes()
    assert call.path == f"/v1/{NAME}:mutateDeployedModel"
    assert call.body["deployedModel"]["dedicatedResources"] == {"minReplicaCount": 2}
    assert canary.endpoints[NAME]["deployedModels"][0]["dedicatedResources"] == dedicated(2, 4)
    assert result["restored"] == ["111"]
    # Again: nothing is below its former minimum any more.
    canary.requests.clear()
    assert VertexActuator().restore(endpoint, evidence=evidence)["unchanged"] == ["111"]
    assert canary.changes() == []


@pytest.mark.parametrize("action", ["delete", "undeploy", "scale_min", "restore"])
def test_plan_makes_no_call(single, account, endpoint, action):
    plan = VertexActuator().plan(endpoint, action, min_instances=1)

    assert single.requests == []
    assert plan["dry_run"] is True
    assert plan["endpoint"] == NAME
    assert plan["account"] == "Acme ML"
    assert plan["calls"][0] == {"method": "GET", "url": f"{single.url}/v1/{NAME}", "body": None}
    assert plan["text"].startswith("Would ")
    assert plan["call"].startswith("endpoints.")
    assert "problem" not in plan


def test_plan_describes_the_exact_calls(single, account, endpoint):
    actuator = VertexActuator()
    delete = actuator.plan(endpoint, "delete")
    assert delete["calls"][1]["url"] == f"{single.url}/v1/{NAME}:undeployModel"

    scale = actuator.plan(endpoint, "scale_min", min_instances=2)
    assert scale["calls"][1]["body"]["deployedModel"]["dedicatedResources"] == {
        "minReplicaCount": 2
    }
    assert scale["calls"][1]["body"]["updateMask"] == "dedicatedResources.minReplicaCount"

    evidence = {
        "kept": {
            "deployedModels": [deployed("111", MODEL, "3", dedicated(2, 4))],
            "trafficSplit": {"111": 100},
        }
    }
    restore = actuator.plan(endpoint, "restore", evidence=evidence)
    assert restore["calls"][1]["body"]["deployedModel"]["model"] == f"{MODEL}@3"
    assert restore["calls"][1]["body"]["trafficSplit"] == {"0": 100}
    assert single.requests == []

    unknown = actuator.plan(endpoint, "explode")
    assert unknown["call"] is None
    assert "no action 'explode'" in unknown["problem"]

    below = actuator.plan(endpoint, "scale_min", min_instances=0)
    assert "at least one replica" in below["problem"]
    assert below["text"].startswith("Would fail before calling Vertex AI")
    assert single.requests == []


def test_plan_uses_the_regional_api_without_an_override(settings, account, endpoint):
    settings.CAPGOV_VERTEX_API_ENDPOINT = ""
    plan = VertexActuator().plan(endpoint, "delete")
    assert plan["calls"][0]["url"] == f"https://{LOCATION}-aiplatform.googleapis.com/v1/{NAME}"


@pytest.mark.parametrize(
    ("status", "message", "says"),
    [
        (403, "Permission 'aiplatform.endpoints.undeploy' denied", "Vertex AI User role"),
        (404, f'Endpoint "{NAME}" does not exist.', "was the endpoint or model deleted?"),
        (500, "Internal error encountered.", "try again later"),
    ],
)
def test_refusals_become_readable_errors(single, account, endpoint, status, message, says):
    single.fail("POST", r":undeployModel$", status, message=message)

    with pytest.raises(ActuatorError) as caught:
        VertexActuator().delete(endpoint)

    text = str(caught.value)
    assert not isinstance(caught.value, PartialActuatorError)  # nothing changed
    assert f"HTTP {status}" in text
    assert message in text
    assert says in text
    assert "undeploying deployed model 111" in text.lower()
    assert len(single.endpoints[NAME]["deployedModels"]) == 1


def test_a_missing_endpoint_is_a_404_error(vertex, account, endpoint):
    with pytest.raises(ActuatorError, match=r"HTTP 404 NOT_FOUND: Endpoint .* does not exist"):
        VertexActuator().scale_min(endpoint, min_instances=1)


def test_credentials_in_an_answer_are_not_repeated(single, account, endpoint):
    single.fail("GET", r"/endpoints/", 403, message="Bad header: Authorization: Bearer ya29.abc")
    with pytest.raises(ActuatorError) as caught:
        VertexActuator().delete(endpoint)
    assert "ya29" not in str(caught.value)
    assert "HTTP 403 PERMISSION_DENIED: Bad header: Authorization: Bearer [redacted" in str(
        caught.value
    )


def test_a_401_the_credentials_cannot_answer_is_an_authentication_error(single, account, endpoint):
    # AuthorizedSession refreshes the credentials on a 401 (anonymous ones cannot be).
    single.fail("GET", r"/endpoints/", 401, message="Request had invalid credentials.")
    with pytest.raises(ActuatorError, match="credentials of cloud account Acme ML were refused"):
        VertexActuator().delete(endpoint)


def test_an_unreachable_api_is_an_error(settings, account, endpoint):
    settings.CAPGOV_GCP_API_ENDPOINT = "http://127.0.0.1:9"
    settings.CAPGOV_VERTEX_API_ENDPOINT = "http://127.0.0.1:9"
    with pytest.raises(ActuatorError, match="could not reach Vertex AI"):
        VertexActuator().delete(endpoint)


def test_a_failed_operation_midway_keeps_what_was_undeployed(canary, account, endpoint):
    canary.operation_errors["undeployModel"] = {"code": 9, "message": "Endpoint is busy."}
    with pytest.raises(ActuatorError, match=r"failed .*Endpoint is busy\. \(code 9\)"):
        VertexActuator().delete(endpoint)
    # The first undeploy's operation failed: nothing was undeployed, nothing more was sent.
    assert len(canary.changes()) == 1


def test_a_failure_after_a_change_returns_the_kept_record(canary, account, endpoint):
    canary.fail("POST", r":undeployModel$", 503, message="Backend unavailable.", after=1)
    with pytest.raises(PartialActuatorError) as caught:
        VertexActuator().delete(endpoint)

    assert "already undeployed: 222" in str(caught.value)
    kept = caught.value.partial["kept"]
    assert [m["id"] for m in kept["deployedModels"]] == ["111", "222"]
    assert caught.value.partial["undeployed"] == ["222"]


def test_a_missing_cloud_account_says_which_to_add(single, endpoint, db):
    CloudAccount.objects.create(
        name="Other", provider="gcp", account_id="111111-222222-333333", gcp_project="other"
    )
    CloudAccount.objects.create(
        name="Old",
        provider="gcp",
        account_id="444444-555555-666666",
        gcp_project=PROJECT,
        is_active=False,
    )
    for call in (
        lambda a: a.delete(endpoint),
        lambda a: a.scale_min(endpoint, min_instances=1),
        lambda a: a.restore(endpoint, evidence={"kept": {"deployedModels": []}}),
    ):
        with pytest.raises(ActuatorError, match=f"GCP project {PROJECT}"):
            call(VertexActuator())
    # A dry run says so rather than raising.
    plan = VertexActuator().plan(endpoint, "delete")
    assert f"No active Google Cloud account reaches project {PROJECT}" in plan["problem"]
    assert single.requests == []


def test_the_account_billing_the_project_is_found_by_its_last_sync(single, endpoint, db):
    billing = CloudAccount.objects.create(
        name="Billing", provider="gcp", account_id="111111-222222-333333", gcp_project="exports"
    )
    SyncRun.objects.create(
        account=billing,
        kind=SyncKind.BILLING_ACCOUNTS,
        status=SyncStatus.SUCCEEDED,
        detail={"projects": [{"project_id": PROJECT, "billing_enabled": True}]},
    )
    assert VertexActuator().plan(endpoint, "delete")["account"] == "Billing"


def test_credentials_that_do_not_load_are_an_error(settings, single, account, endpoint):
    settings.CAPGOV_GCP_API_ENDPOINT = ""  # real credentials, from the account's reference
    account.gcp_credentials = "env:CAPGOV_TEST_NO_SUCH_KEY"
    account.save()
    with pytest.raises(ActuatorError, match=r"\$CAPGOV_TEST_NO_SUCH_KEY is not set"):
        VertexActuator().delete(endpoint)
    assert single.requests == []


def test_a_resource_id_that_is_not_a_vertex_endpoint(account, endpoint):
    endpoint.resource_id = "arn:aws:sagemaker:us-east-1:111122223333:endpoint/x"
    with pytest.raises(ActuatorError, match="is not a Vertex AI endpoint name"):
        VertexActuator().delete(endpoint)
    assert (
        "is not a Vertex AI endpoint name" in VertexActuator().plan(endpoint, "delete")["problem"]
    )


def test_a_bare_endpoint_id_uses_the_rows_project_and_region(single, account, endpoint):
    endpoint.resource_id = "4242"
    assert VertexActuator().plan(endpoint, "delete")["endpoint"] == NAME
