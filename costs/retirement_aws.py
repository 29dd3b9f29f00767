"""Acting on SageMaker endpoints for the registry's retirement: scale to the minimum, delete
while keeping what restores it, and restore. Registered in ``costs.apps`` (the registry may
not import costs, where the cloud accounts and clients live).

Deleting an endpoint leaves its endpoint configuration and models in place — SageMaker keeps
them until someone deletes them — so restoring is ``CreateEndpoint`` from the kept
configuration with the endpoint's tags.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from costs import clients
from costs.models import CloudAccount
from costs.sync import scrub
from registry.extensions import ActuatorError, EndpointActuator


def _answer(response: dict[str, Any]) -> dict[str, Any]:
    """What to keep of an API response: JSON-able, without the HTTP noise."""
    meta = response.get("ResponseMetadata") or {}
    out = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    out["http_status"] = meta.get("HTTPStatusCode")
    out["request_id"] = meta.get("RequestId")
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in out.items()}


class SageMakerActuator(EndpointActuator):
    provider = "aws"

    def _client(self, endpoint):
        account = CloudAccount.objects.filter(
            provider="aws", account_id=endpoint.account_id, is_active=True
        ).first()
        if account is None:
            raise ActuatorError(
                f"No active AWS cloud account {endpoint.account_id} is set up; add it under "
                "Syncs (admin → Cloud accounts) so Capgov can act on its endpoints."
            )
        try:
            return clients.aws_client(account, "sagemaker", region=endpoint.region or None)
        except (BotoCoreError, ClientError) as exc:  # a missing profile, a refused role
            raise ActuatorError(scrub(f"Could not reach SageMaker for {account}: {exc}")) from exc

    def _call(self, what: str, call, **kwargs) -> dict[str, Any]:
        try:
            return _answer(call(**kwargs))
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise ActuatorError(
                scrub(f"SageMaker {what} failed: {error.get('Code')}: {error.get('Message')}")
            ) from exc
        except BotoCoreError as exc:
            raise ActuatorError(scrub(f"SageMaker {what} failed: {exc}")) from exc

    def plan(self, endpoint, action: str, *, min_instances: int = 1) -> dict:
        if action == "delete":
            return {
                "call": "DeleteEndpoint",
                "params": {"EndpointName": endpoint.name},
                "keeps": {"EndpointConfigName": endpoint.config_name},
            }
        if action == "scale_min":
            return {
                "call": "UpdateEndpointWeightsAndCapacities",
                "params": {
                    "EndpointName": endpoint.name,
                    "DesiredWeightsAndCapacities": [
                        {"VariantName": "(each variant)", "DesiredInstanceCount": min_instances}
                    ],
                },
            }
        if action == "restore":
            return {
                "call": "CreateEndpoint",
                "params": {
                    "EndpointName": endpoint.name,
                    "EndpointConfigName": endpoint.config_name,
                },
            }
        return {"call": None}

    def scale_min(self, endpoint, *, min_instances: int) -> dict:
        sm = self._client(endpoint)
        described = self._call("DescribeEndpoint", sm.describe_endpoint, EndpointName=endpoint.name)
        variants = [
            {
                "VariantName": v["VariantName"],
                "DesiredInstanceCount": min_instances,
            }
            for v in described.get("ProductionVariants") or []
        ]
        if not variants:
            raise ActuatorError(f"SageMaker reports no production variants on {endpoint.name}.")
        before = {
            v["VariantName"]: v.get("CurrentInstanceCount")
            for v in described.get("ProductionVariants") or []
        }
        answer = self._call(
            "UpdateEndpointWeightsAndCapacities",
            sm.update_endpoint_weights_and_capacities,
            EndpointName=endpoint.name,
            DesiredWeightsAndCapacities=variants,
        )
        return {**answer, "variants_before": before, "variants_after": variants}

    def delete(self, endpoint) -> dict:
        sm = self._client(endpoint)
        described = self._call("DescribeEndpoint", sm.describe_endpoint, EndpointName=endpoint.name)
        config = described.get("EndpointConfigName") or endpoint.config_name
        arn = described.get("EndpointArn", endpoint.resource_id)
        tags, token = [], None
        while True:  # every page; "aws:" tags (CloudFormation's) cannot be given back
            page = self._call(
                "ListTags", sm.list_tags, ResourceArn=arn, **({"NextToken": token} if token else {})
            )
            tags += [t for t in page.get("Tags", []) if not t.get("Key", "").startswith("aws:")]
            token = page.get("NextToken")
            if not token:
                break
        answer = self._call("DeleteEndpoint", sm.delete_endpoint, EndpointName=endpoint.name)
        return {**answer, "kept": {"EndpointConfigName": config, "Tags": tags}}

    def restore(self, endpoint, *, evidence: dict) -> dict:
        sm = self._client(endpoint)
        before = evidence.get("variants_before")
        if before:  # it was scaled down: scale it back up
            return self._call(
                "UpdateEndpointWeightsAndCapacities",
                sm.update_endpoint_weights_and_capacities,
                EndpointName=endpoint.name,
                DesiredWeightsAndCapacities=[
                    {"VariantName": name, "DesiredInstanceCount": count or 1}
                    for name, count in before.items()
                ],
            )
        kept = evidence.get("kept") or {}
        config = kept.get("EndpointConfigName") or endpoint.config_name
        if not config:
            raise ActuatorError(
                f"No endpoint configuration was kept for {endpoint.name}; it cannot be restored."
            )
        params: dict[str, Any] = {"EndpointName": endpoint.name, "EndpointConfigName": config}
        if kept.get("Tags"):
            params["Tags"] = kept["Tags"]
        return self._call("CreateEndpoint", sm.create_endpoint, **params)
