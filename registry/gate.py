"""The deployment gate's rules over plain facts. Pure: ``registry.services`` gathers the facts.

Apps above the registry add requirements (and warnings) by registering a provider in their
``AppConfig.ready()``; the registry never imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from governance.money import money_format
from registry.benchmarks.metrics import METRICS as METRIC_INFO

STATE = "state"
BENCHMARK = "benchmark"
BENCHMARK_AGE = "benchmark_age"
METRICS = "metrics"
ASSESSMENT = "assessment"
APPROVALS = "approvals"
FREEZE = "freeze"
# Open *prevent* action items (from incidents) on the version's model or a pool it uses: a
# warning, or an unmet requirement where the registration requirement blocks on them.
PREVENT_ITEMS = "prevent_items"
WAIVABLE = frozenset({BENCHMARK, BENCHMARK_AGE, METRICS, ASSESSMENT, APPROVALS})


@dataclass(frozen=True)
class CostTier:
    min_monthly_cost: Decimal
    currency: str
    role: str
    role_label: str


@dataclass(frozen=True)
class Policy:
    """The registration requirement that applies to one version."""

    name: str
    mandatory_metrics: tuple[str, ...]
    max_benchmark_age_days: int
    assessment_required: bool
    cost_tiers: tuple[CostTier, ...] = ()
    # Warning codes that this requirement turns into unmet requirements (not waivable).
    blocking_warnings: frozenset[str] = frozenset()


DEFAULT_POLICY = Policy(
    name="Built-in default",
    mandatory_metrics=("requests_per_s", "latency_p95_ms"),
    max_benchmark_age_days=90,
    assessment_required=True,
)


@dataclass(frozen=True)
class BenchmarkFacts:
    id: int
    measured_at: datetime
    protocol: str
    protocol_approved: bool
    hardware: str
    on_version_hardware: bool
    reported_metrics: frozenset[str]


@dataclass(frozen=True)
class AssessmentFacts:
    id: int
    status: str  # submitted / approved / rejected
    monthly_cost: Decimal
    currency: str


@dataclass(frozen=True)
class WaiverFacts:
    id: int
    requirement: str
    expires_at: datetime
    reason: str
    granted_by: str


@dataclass(frozen=True)
class FreezeFacts:
    business_unit: str
    reason: str
    since: datetime


@dataclass(frozen=True)
class GateFacts:
    state: str
    state_label: str
    hardware: str
    policy: Policy
    benchmarks: tuple[BenchmarkFacts, ...]
    assessment: AssessmentFacts | None
    approved_roles: frozenset[str]
    freeze: FreezeFacts | None
    waivers: tuple[WaiverFacts, ...]
    now: datetime


@dataclass(frozen=True)
class Unmet:
    code: str
    message: str
    waivable: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "waivable": self.waivable}


@dataclass(frozen=True)
class GateWarning:
    """Something the gate shows beside its verdict that does not hold the version back."""

    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class GateVerdict:
    policy: str
    unmet: tuple[Unmet, ...]
    waivers_used: tuple[WaiverFacts, ...] = ()
    benchmark_id: int | None = None
    assessment_id: int | None = None
    # Roles the cost tier asks to approve the deployment, and those not yet given.
    roles_asked: tuple[str, ...] = ()
    roles_missing: tuple[str, ...] = ()
    warnings: tuple[GateWarning, ...] = ()

    @property
    def open(self) -> bool:
        return not self.unmet

    def as_dict(self) -> dict[str, Any]:
        return {
            "deployable": self.open,
            "policy": self.policy,
            "unmet": [u.as_dict() for u in self.unmet],
            "waivers_used": [
                {
                    "id": w.id,
                    "requirement": w.requirement,
                    "reason": w.reason,
                    "expires_at": w.expires_at.isoformat(),
                    "granted_by": w.granted_by,
                }
                for w in self.waivers_used
            ],
            "benchmark": self.benchmark_id,
            "assessment": self.assessment_id,
            "warnings": [w.as_dict() for w in self.warnings],
        }


_STATE_MESSAGES = {
    "draft": "The version is still a draft: submit it, and the review board must approve it.",
    "submitted": "The version is waiting for the review board, which must approve it.",
    "under_review": "The review board is reviewing the version; it must approve it first.",
    "rejected": "The review board rejected the version: reopen it, revise and resubmit.",
    "deployed": "The version is already deployed.",
    "deprecated": "The version is deprecated; deploy a live version instead.",
    "retired": "The version is retired.",
    "other": "The review board must approve the version before it deploys.",
}


def _label(code: str) -> str:
    label = METRIC_INFO[code].label if code in METRIC_INFO else code
    return label[:1].lower() + label[1:]


def _benchmark_unmet(facts: GateFacts) -> tuple[list[Unmet], BenchmarkFacts | None]:
    policy = facts.policy
    usable = [b for b in facts.benchmarks if b.protocol_approved and b.on_version_hardware]
    if not usable:
        if not facts.benchmarks:
            why = "No benchmark has been uploaded for this version."
        elif not any(b.on_version_hardware for b in facts.benchmarks):
            others = ", ".join(sorted({b.hardware for b in facts.benchmarks}))
            why = (
                f"No benchmark on {facts.hardware}, the hardware it deploys on "
                f"(there are results on {others})."
            )
        else:
            protocols = ", ".join(
                sorted({b.protocol for b in facts.benchmarks if b.on_version_hardware})
            )
            why = (
                f"Its benchmarks on {facts.hardware} were run under {protocols}, which is no "
                "longer approved (a newer revision replaced it): re-run under the approved one."
            )
        return [Unmet(BENCHMARK, why, waivable=True)], None
    latest = max(usable, key=lambda b: (b.measured_at, b.id))
    unmet = []
    age_days = (facts.now - latest.measured_at).days
    if age_days > policy.max_benchmark_age_days:
        unmet.append(
            Unmet(
                BENCHMARK_AGE,
                f"The newest benchmark is {age_days} days old (measured "
                f"{latest.measured_at:%Y-%m-%d}); {policy.name} allows "
                f"{policy.max_benchmark_age_days}. Re-run it.",
                waivable=True,
            )
        )
    missing = [m for m in policy.mandatory_metrics if m not in latest.reported_metrics]
    if missing:
        named = "; ".join(_label(m) for m in missing)
        unmet.append(
            Unmet(
                METRICS,
                f"The newest benchmark does not report {named}, which "
                f"{policy.name} makes mandatory.",
                waivable=True,
            )
        )
    return unmet, latest


def _assessment_unmet(facts: GateFacts) -> list[Unmet]:
    a = facts.assessment
    if not facts.policy.assessment_required:
        return []
    if a is None:
        why = "No capacity impact assessment has been filed."
    elif a.status == "submitted":
        why = "The capacity impact assessment is waiting for the review board."
    elif a.status == "rejected":
        why = "The review board rejected the capacity impact assessment: file a new one."
    else:
        return []
    return [Unmet(ASSESSMENT, why, waivable=True)]


def tiers_applying(policy: Policy, assessment: AssessmentFacts | None) -> list[CostTier]:
    """The cost tiers whose approvals a version needs: free ones always, the others once its
    assessed monthly cost (in the tier's currency) reaches them."""
    a = assessment
    return [
        t
        for t in policy.cost_tiers
        if t.min_monthly_cost == 0
        or (a is not None and a.currency == t.currency and a.monthly_cost >= t.min_monthly_cost)
    ]


def _approvals_missing(facts: GateFacts) -> dict[str, CostTier]:
    missing: dict[str, CostTier] = {}
    for tier in tiers_applying(facts.policy, facts.assessment):
        if tier.role not in facts.approved_roles:
            missing.setdefault(tier.role, tier)
    return missing


def _approvals_unmet(facts: GateFacts) -> list[Unmet]:
    a = facts.assessment
    missing = _approvals_missing(facts)
    if not missing:
        return []
    names = ", ".join(t.role_label for t in missing.values())
    top = max(missing.values(), key=lambda t: t.min_monthly_cost)
    basis = (
        f" (monthly cost {money_format(a.monthly_cost, a.currency)} ≥ "
        f"{money_format(top.min_monthly_cost, top.currency)})"
        if a is not None and top.min_monthly_cost
        else ""
    )
    return [Unmet(APPROVALS, f"Needs deployment approval from: {names}{basis}.", waivable=True)]


def evaluate(facts: GateFacts) -> GateVerdict:
    """Every requirement that applies and does not hold, after waivers in force."""
    unmet: list[Unmet] = []
    if facts.state != "approved":
        unmet.append(Unmet(STATE, _STATE_MESSAGES.get(facts.state, _STATE_MESSAGES["other"])))
    if facts.freeze is not None:
        unmet.append(
            Unmet(
                FREEZE,
                f"{facts.freeze.business_unit} is under a deployment freeze since "
                f"{facts.freeze.since:%Y-%m-%d %H:%M} UTC: {facts.freeze.reason}",
            )
        )
    bench_unmet, latest = _benchmark_unmet(facts)
    unmet += bench_unmet
    unmet += _assessment_unmet(facts)
    unmet += _approvals_unmet(facts)

    in_force = {}
    for w in sorted(facts.waivers, key=lambda w: w.expires_at, reverse=True):
        if w.expires_at > facts.now:
            in_force.setdefault(w.requirement, w)
    kept, used = [], []
    for u in unmet:
        waiver = in_force.get(u.code) if u.waivable else None
        if waiver is None:
            kept.append(u)
        else:
            used.append(waiver)
    return GateVerdict(
        policy=facts.policy.name,
        unmet=tuple(kept),
        waivers_used=tuple(used),
        benchmark_id=latest.id if latest else None,
        assessment_id=facts.assessment.id if facts.assessment else None,
        roles_asked=tuple(
            dict.fromkeys(t.role for t in tiers_applying(facts.policy, facts.assessment))
        ),
        roles_missing=tuple(_approvals_missing(facts)),
    )


# Providers, registered by apps above the registry: called once with every version being
# judged (so a provider reads what it needs in one query), they answer
# {version id: [Unmet, ...]} for the versions they hold back.
RequirementProvider = Callable[[Sequence[Any], datetime], Mapping[int, list[Unmet]]]
_providers: list[RequirementProvider] = []


def register_requirement_provider(provider: RequirementProvider) -> None:
    if provider not in _providers:
        _providers.append(provider)


def requirement_providers() -> tuple[RequirementProvider, ...]:
    return tuple(_providers)


# Warning providers have the same shape and answer {version id: [GateWarning, ...]}. A warning
# whose code the version's policy lists in ``blocking_warnings`` holds the version back.
WarningProvider = Callable[[Sequence[Any], datetime], Mapping[int, list[GateWarning]]]
_warning_providers: list[WarningProvider] = []


def register_warning_provider(provider: WarningProvider) -> None:
    if provider not in _warning_providers:
        _warning_providers.append(provider)


def warning_providers() -> tuple[WarningProvider, ...]:
    return tuple(_warning_providers)


def with_provided(
    verdict: GateVerdict,
    policy: Policy,
    *,
    unmet: Sequence[Unmet] = (),
    warnings: Sequence[GateWarning] = (),
) -> GateVerdict:
    """The verdict with what providers answered: their unmet requirements are added; each
    warning is kept as a warning, or, where ``policy`` blocks on its code, becomes unmet."""
    blocking = [w for w in warnings if w.code in policy.blocking_warnings]
    return replace(
        verdict,
        unmet=verdict.unmet + tuple(unmet) + tuple(Unmet(w.code, w.message) for w in blocking),
        warnings=verdict.warnings
        + tuple(w for w in warnings if w.code not in policy.blocking_warnings),
    )
