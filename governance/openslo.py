"""OpenSLO v1 YAML in and out for Capgov's SLO definitions. Pure: no ORM.

Capgov keeps two kinds of objective: availability (a ratio of good to total requests, target
e.g. 99.9 %) and p95 latency (a threshold metric with ``op: lte``, ``value`` in ms and
``target: 0.95``). The provider team rides along as the label ``capgov/provider``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

API_VERSION = "openslo/v1"
PROVIDER_LABEL = "capgov/provider"


class OpenSloError(ValueError):
    """A document that cannot become a Capgov SLO; the message names the document and key."""


@dataclass(frozen=True)
class SloSpec:
    name: str
    display_name: str
    description: str
    service: str
    indicator: str  # "availability" or "latency_p95"
    target: Decimal  # percent, or ms
    window_days: int
    provider: str  # business unit code, or ""


def _window_days(doc: str, spec: dict[str, Any]) -> int:
    windows = spec.get("timeWindow") or [{"duration": "30d"}]
    duration = str(windows[0].get("duration", ""))
    if not duration.endswith("d") or not duration[:-1].isdigit():
        raise OpenSloError(f"{doc}: timeWindow duration {duration!r} must be whole days, e.g. 30d.")
    return int(duration[:-1])


def _decimal(doc: str, key: str, value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise OpenSloError(f"{doc}: {key} must be a number, not {value!r}.") from exc


def parse(text: str) -> list[SloSpec]:
    """Every ``kind: SLO`` document of a (multi-document) OpenSLO YAML file."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise OpenSloError(f"Not valid YAML: {exc}") from exc
    specs = []
    for index, document in enumerate(documents, start=1):
        if not isinstance(document, dict):
            raise OpenSloError(f"document {index}: expected a mapping with apiVersion and kind.")
        if document.get("kind") != "SLO":
            continue
        name = str((document.get("metadata") or {}).get("name") or "")
        doc = f"document {index} ({name or 'no name'})"
        if document.get("apiVersion") != API_VERSION:
            raise OpenSloError(f"{doc}: apiVersion must be {API_VERSION}.")
        if not name:
            raise OpenSloError(f"{doc}: metadata.name is required.")
        spec = document.get("spec") or {}
        indicator = (spec.get("indicator") or {}).get("spec") or {}
        objectives = spec.get("objectives") or []
        if len(objectives) != 1:
            raise OpenSloError(f"{doc}: give exactly one objective (found {len(objectives)}).")
        objective = objectives[0]
        if "ratioMetric" in indicator:
            kind = "availability"
            target = _decimal(doc, "objectives[0].target", objective.get("target")) * 100
        elif "thresholdMetric" in indicator:
            kind = "latency_p95"
            if objective.get("op") != "lte" or _decimal(
                doc, "objectives[0].target", objective.get("target", "0.95")
            ) != Decimal("0.95"):
                raise OpenSloError(
                    f"{doc}: a latency objective needs op: lte and target: 0.95 (p95)."
                )
            target = _decimal(doc, "objectives[0].value", objective.get("value"))
        else:
            raise OpenSloError(
                f"{doc}: indicator.spec needs ratioMetric (availability) or thresholdMetric "
                "(p95 latency)."
            )
        if not spec.get("service"):
            raise OpenSloError(f"{doc}: spec.service is required.")
        labels = (document.get("metadata") or {}).get("labels") or {}
        provider = labels.get(PROVIDER_LABEL, "")
        if isinstance(provider, list):
            provider = provider[0] if provider else ""
        specs.append(
            SloSpec(
                name=name,
                display_name=str((document.get("metadata") or {}).get("displayName") or ""),
                description=str(spec.get("description") or ""),
                service=str(spec["service"]),
                indicator=kind,
                target=target.normalize(),
                window_days=_window_days(doc, spec),
                provider=str(provider).upper(),
            )
        )
    return specs


def render(specs: list[SloSpec]) -> str:
    """A multi-document OpenSLO YAML file for these SLOs."""
    documents = []
    for s in specs:
        metadata: dict[str, Any] = {"name": s.name}
        if s.display_name:
            metadata["displayName"] = s.display_name
        if s.provider:
            metadata["labels"] = {PROVIDER_LABEL: s.provider}
        if s.indicator == "availability":
            indicator_spec: dict[str, Any] = {
                "ratioMetric": {
                    "counter": True,
                    "good": {"metricSource": {"type": "capgov", "spec": {"query": "good"}}},
                    "total": {"metricSource": {"type": "capgov", "spec": {"query": "total"}}},
                }
            }
            objective: dict[str, Any] = {"target": float(s.target / 100)}
        else:
            indicator_spec = {
                "thresholdMetric": {
                    "metricSource": {"type": "capgov", "spec": {"query": "latency_p95_ms"}}
                }
            }
            objective = {"op": "lte", "value": float(s.target), "target": 0.95}
        documents.append(
            {
                "apiVersion": API_VERSION,
                "kind": "SLO",
                "metadata": metadata,
                "spec": {
                    "description": s.description,
                    "service": s.service,
                    "indicator": {"metadata": {"name": f"{s.name}-sli"}, "spec": indicator_spec},
                    "timeWindow": [{"duration": f"{s.window_days}d", "isRolling": True}],
                    "budgetingMethod": "Occurrences",
                    "objectives": [objective],
                },
            }
        )
    return yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True)
