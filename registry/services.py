"""Every write in the registry, and the deployment gate.

Who may do what: an *owner* is an ML engineer of the model's business unit (or a platform
admin); the *board* is anyone holding a review-board role. Nobody decides on what they
submitted themselves.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from governance.celery import enqueue
from governance.choices import BOARD_ROLES, DecisionKind, DecisionOutcome, Role, SloIndicator
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.models import BusinessUnit, Decision, ServiceLevelObjective, User
from governance.selectors import freezes_in_force, manages_costs
from governance.services import (
    VoteOutcome,
    board_vote,
    decision_record,
    slo_measurements_record,
)
from registry import capacity, gate, lifecycle, pool_usage_csv
from registry.benchmarks import METRICS, BenchmarkFileError, ParsedBenchmark, parse_benchmark
from registry.benchmarks import missing_metrics as benchmark_missing_metrics
from registry.choices import (
    SLO_METRICS,
    AssessmentStatus,
    LifecycleState,
    ProtocolStatus,
    RequirementCode,
    WaiverStatus,
)
from registry.models import (
    POINT_COLUMNS,
    BenchmarkPoint,
    BenchmarkProtocol,
    CapacityAssessment,
    CapacityPool,
    EfficiencyBenchmark,
    Endpoint,
    EndpointUsage,
    HardwarePrice,
    HardwareProfile,
    ModelVersion,
    PoolUsage,
    RegisteredModel,
    RegistrationRequirement,
    RequirementWaiver,
    VersionTransition,
)

MAX_WAIVER_DAYS = 180
# Versions whose deployment a cost-tier approver may still approve.
APPROVABLE_STATES = (LifecycleState.SUBMITTED, LifecycleState.UNDER_REVIEW, LifecycleState.APPROVED)
MAX_BENCHMARK_BYTES = 20 * 1024 * 1024
MAX_POINTS = 1000
# What the point columns hold (24 digits, 9 after the point) and the count columns.
MEASURE_LIMIT = Decimal(10) ** 15
MEASURE_STEP = Decimal("0.000000001")
COUNT_LIMITS = {"concurrency": 2**31 - 1, "completed": 2**63 - 1, "failed": 2**63 - 1}
THROUGHPUTS = ("requests_per_s", "output_tokens_per_s", "total_tokens_per_s")
EARLIEST_MEASUREMENT = datetime(2015, 1, 1, tzinfo=UTC)
MAX_REPLICAS = 100_000
MAX_PEAK_RPS = Decimal(10) ** 9


class GateClosedError(ConflictError):
    """A deploy refused by the gate; ``verdict`` lists what is unmet."""

    def __init__(self, verdict: gate.GateVerdict) -> None:
        reasons = "; ".join(u.message for u in verdict.unmet)
        already = [u for u in verdict.unmet if u.code == gate.STATE] and all(
            u.code == gate.STATE for u in verdict.unmet
        )
        lead = "This version cannot deploy" if already else "This version cannot deploy yet"
        super().__init__(f"{lead}: {reasons}")
        self.verdict = verdict

    def payload(self) -> dict:
        return {"detail": self.message, **self.verdict.as_dict()}


class BenchmarkRejectedError(DomainError):
    """A benchmark file that cannot be accepted; ``missing`` lists absent required metrics."""

    def __init__(self, message: str, *, missing: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.missing = list(missing)

    def payload(self) -> dict:
        return {"detail": self.message, "missing": self.missing}


# --- who may do what -------------------------------------------------------------------


def is_owner(user: User, model: RegisteredModel) -> bool:
    """An ML engineer of the model's business unit, or a platform admin."""
    if user.has_role(Role.PLATFORM_ADMIN):
        return True
    return user.has_role(Role.ML_ENGINEER) and model.business_unit_id in (
        user.scoped_business_unit_ids
    )


def _require_owner(user: User, model: RegisteredModel, doing: str) -> None:
    if not is_owner(user, model):
        raise PermissionDeniedError(
            f"Only ML engineers of {model.business_unit.name} (or a platform admin) can "
            f"{doing} {model.name}."
        )


def board_role(user: User) -> str:
    """The board role a person acts in (the first they hold), or '' if none."""
    if user.is_superuser and not (user.role_set & BOARD_ROLES):
        return Role.BOARD_INFRA.value
    for role in (Role.BOARD_INFRA, Role.BOARD_ML, Role.BOARD_PRODUCT):
        if role in user.role_set:
            return role.value
    return ""


def _require_board(user: User, doing: str) -> str:
    role = board_role(user)
    if not role:
        raise PermissionDeniedError(f"Only members of the capacity review board can {doing}.")
    return role


# --- hardware and prices ---------------------------------------------------------------


def hardware_price_current(
    *, hardware_profile: HardwareProfile, provider: str = "", at: datetime | None = None
) -> HardwarePrice | None:
    """The price in force at ``at`` (now): the given provider's, else the newest of any."""
    prices = HardwarePrice.objects.filter(
        hardware_profile=hardware_profile, effective_from__lte=at or timezone.now()
    )
    if provider:
        prices = prices.filter(provider=provider)
    return prices.order_by("-effective_from", "hourly_price").first()


# --- models and versions -----------------------------------------------------------------


@transaction.atomic
def model_register(
    *,
    by: User,
    name: str,
    business_unit: BusinessUnit,
    task: str,
    source: str,
    risk_tier: str,
    vendor: str = "",
    description: str = "",
) -> RegisteredModel:
    """Register a model for a business unit the person works in."""
    model = RegisteredModel(
        name=name.strip(),
        business_unit=business_unit,
        task=task,
        source=source,
        risk_tier=risk_tier,
        vendor=vendor.strip(),
        description=description.strip(),
        created_by=by,
    )
    _require_owner(by, model, "register models such as")
    if source != "in-house" and not model.vendor:
        raise DomainError("Name the vendor or the upstream project of a model not built in-house.")
    if RegisteredModel.objects.filter(name__iexact=model.name).exists():
        raise ConflictError(f"A model named {model.name!r} is already registered.")
    model.full_clean()
    model.save()
    return model


_VERSION_FIELDS = (
    "artifact_uri",
    "framework",
    "parameter_count",
    "precision",
    "serving_runtime",
    "hardware_profile",
    "notes",
)


@transaction.atomic
def version_create(
    *,
    by: User,
    model: RegisteredModel,
    version: str,
    artifact_uri: str,
    framework: str,
    precision: str,
    serving_runtime: str,
    hardware_profile: HardwareProfile,
    parameter_count: int | None = None,
    notes: str = "",
) -> ModelVersion:
    """A new draft version; its history starts with who registered it."""
    _require_owner(by, model, "add versions to")
    version = version.strip()
    if model.versions.filter(version=version).exists():
        raise ConflictError(f"{model.name} already has a version {version!r}.")
    obj = ModelVersion(
        model=model,
        version=version,
        artifact_uri=artifact_uri.strip(),
        framework=framework.strip(),
        precision=precision,
        serving_runtime=serving_runtime.strip(),
        hardware_profile=hardware_profile,
        parameter_count=parameter_count,
        notes=notes,
        created_by=by,
    )
    obj.full_clean()
    now = timezone.now()
    obj.state_changed_at = now
    obj.save()
    VersionTransition.objects.create(
        version=obj, from_state="", to_state=obj.state, by=by, at=now, comment="Registered."
    )
    return obj


@transaction.atomic
def version_update(*, version: ModelVersion, by: User, **changes: Any) -> ModelVersion:
    """Edit a draft; once submitted, what the board reviews no longer changes."""
    _require_owner(by, version.model, "edit")
    version = _lock(version)
    if version.state != LifecycleState.DRAFT:
        raise ConflictError(
            f"Only a draft can be edited; this version is {version.get_state_display().lower()}."
            " Withdraw it (or reopen it) first."
        )
    unknown = set(changes) - set(_VERSION_FIELDS)
    if unknown:
        raise DomainError(f"These fields cannot be edited: {', '.join(sorted(unknown))}.")
    for name, value in changes.items():
        setattr(version, name, value)
    version.full_clean()
    version.save()
    return version


def _lock(version: ModelVersion) -> ModelVersion:
    return (
        ModelVersion.objects.select_for_update()
        .select_related("model__business_unit")
        .get(pk=version.pk)
    )


@transaction.atomic
def version_transition(
    *, version: ModelVersion, action: str, by: User, comment: str = "", alternatives: str = ""
) -> ModelVersion:
    """Move a version along its lifecycle, if the move exists and ``by`` may make it.

    Deploying asks the gate first. The board's approve and reject record a Decision.
    """
    locked = _lock(version)
    asked = lifecycle.MOVES.get(action)
    if asked is not None and asked.actor is lifecycle.Actor.OWNER:
        _require_owner(by, locked.model, asked.label.lower())
    elif asked is not None:
        _require_board(by, f"{asked.label.lower()} model versions")
    if action == "deploy" and locked.state != LifecycleState.APPROVED:
        # CI asks to deploy: answer with the whole gate, whatever the state.
        raise GateClosedError(deployment_gate(locked))
    try:
        move = lifecycle.move_for(action, state=locked.state)
    except lifecycle.TransitionError as exc:
        raise ConflictError(str(exc)) from exc
    comment = comment.strip()
    target = move.target
    decision = None
    # Who may make the move was checked above, before the state; here only what the board's
    # moves add.
    if move.actor is lifecycle.Actor.BOARD:
        if not may_review(by, locked):
            raise PermissionDeniedError("Nobody reviews a version they registered or submitted.")
        if move.needs_comment and not comment:
            raise DomainError(f"Say why you {move.label.lower()} it: the rationale is kept.")
        if move.target in (LifecycleState.APPROVED, LifecycleState.REJECTED):
            vote = board_vote(
                subject=locked,
                by=by,
                approve=move.target == LifecycleState.APPROVED,
                rationale=comment,
                alternatives=alternatives,
                kind=DecisionKind.VERSION_REVIEW,
                title=f"Review of {locked}",
                business_unit=locked.model.business_unit,
                evidence={"gate": deployment_gate(locked).as_dict()},
            )
            decision = vote.decision
            if decision is None:
                # The vote is kept; the version waits for the rest of the board.
                if locked.state == LifecycleState.UNDER_REVIEW:
                    return locked
                target = LifecycleState.UNDER_REVIEW
                comment = f"{by} voted; waiting for {vote.quorum.waiting_for}."
            else:
                target = (
                    LifecycleState.APPROVED
                    if decision.outcome == DecisionOutcome.APPROVED
                    else LifecycleState.REJECTED
                )
    if move.action == "deploy":
        verdict = deployment_gate(locked)
        if not verdict.open:
            raise GateClosedError(verdict)
        if verdict.waivers_used:
            used = ", ".join(w.requirement for w in verdict.waivers_used)
            comment = f"{comment} (deployed under waivers: {used})".strip()
    now = timezone.now()
    VersionTransition.objects.create(
        version=locked,
        from_state=locked.state,
        to_state=target,
        by=by,
        at=now,
        comment=comment,
        decision=decision,
    )
    locked.state = target
    locked.state_changed_at = now
    locked.save(update_fields=["state", "state_changed_at"])
    # The caller's instance follows, so it never shows a state the version has left.
    version.state, version.state_changed_at = locked.state, now
    return locked


def _submitted_by(version: ModelVersion) -> int | None:
    return (
        version.transitions.filter(to_state=LifecycleState.SUBMITTED)
        .order_by("-at", "-pk")
        .values_list("by_id", flat=True)
        .first()
    )


# --- benchmark protocols ---------------------------------------------------------------


def _clean_protocol_fields(
    *, workload: dict[str, Any], concurrency_levels: Iterable[int], required_metrics: Iterable[str]
) -> tuple[dict[str, Any], list[int], list[str]]:
    shapes = {"input_tokens", "output_tokens", "request_bytes"}
    if not isinstance(workload, dict) or not shapes & set(workload):
        raise DomainError(
            "Describe the workload: at least one of input_tokens, output_tokens or "
            'request_bytes, e.g. {"input_tokens": {"distribution": "normal", "mean": 512, '
            '"stddev": 128}}.'
        )
    unknown = set(workload) - shapes
    if unknown:
        raise DomainError(f"Unknown workload keys: {', '.join(sorted(unknown))}.")
    for key, shape in workload.items():
        if not isinstance(shape, dict) or "distribution" not in shape:
            raise DomainError(f"workload.{key} needs a distribution (fixed, uniform, normal…).")
    levels = sorted({int(c) for c in concurrency_levels})
    if not levels or levels[0] < 1:
        raise DomainError("List the concurrency levels to measure, each 1 or more.")
    metrics = list(dict.fromkeys(required_metrics))
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        raise DomainError(
            f"Unknown metric(s) {', '.join(bad)}; the metrics are {', '.join(METRICS)}."
        )
    if "requests_per_s" not in metrics:
        metrics.insert(0, "requests_per_s")
    return workload, levels, metrics


@transaction.atomic
def protocol_create(
    *,
    by: User,
    name: str,
    workload: dict[str, Any],
    concurrency_levels: Iterable[int],
    required_metrics: Iterable[str],
    warmup_s: int = 60,
    measurement_s: int = 300,
    hardware_profile: HardwareProfile | None = None,
    description: str = "",
) -> BenchmarkProtocol:
    """A new protocol, or the next revision of one with this name (as a draft)."""
    if not (by.has_role(Role.PLATFORM_ADMIN) or board_role(by)):
        raise PermissionDeniedError("Benchmark protocols are written by the board or admins.")
    workload, levels, metrics = _clean_protocol_fields(
        workload=workload, concurrency_levels=concurrency_levels, required_metrics=required_metrics
    )
    if measurement_s < 1:
        raise DomainError("The measurement must last at least one second.")
    last = BenchmarkProtocol.objects.filter(name=name.strip()).order_by("-revision").first()
    return BenchmarkProtocol.objects.create(
        name=name.strip(),
        revision=(last.revision + 1) if last else 1,
        workload=workload,
        concurrency_levels=levels,
        required_metrics=metrics,
        warmup_s=warmup_s,
        measurement_s=measurement_s,
        hardware_profile=hardware_profile,
        description=description,
        created_by=by,
    )


@transaction.atomic
def protocol_approve(*, protocol: BenchmarkProtocol, by: User, rationale: str) -> Decision:
    """The board approves a protocol; earlier approved revisions of it are retired."""
    role = _require_board(by, "approve benchmark protocols")
    protocol = BenchmarkProtocol.objects.select_for_update().get(pk=protocol.pk)
    if protocol.status != ProtocolStatus.DRAFT:
        raise ConflictError(f"{protocol} is {protocol.get_status_display().lower()}, not a draft.")
    decision = decision_record(
        subject=protocol,
        kind=DecisionKind.PROTOCOL,
        outcome=DecisionOutcome.APPROVED,
        title=f"Approve benchmark protocol {protocol}",
        rationale=rationale,
        by=by,
        decided_as=role,
    )
    BenchmarkProtocol.objects.filter(name=protocol.name, status=ProtocolStatus.APPROVED).update(
        status=ProtocolStatus.RETIRED
    )
    protocol.status = ProtocolStatus.APPROVED
    protocol.approved_by = by
    protocol.approved_at = decision.decided_at
    protocol.save(update_fields=["status", "approved_by", "approved_at"])
    return decision


# --- efficiency benchmarks ---------------------------------------------------------------


def _point_row(point: Any, position: int) -> BenchmarkPoint:
    metrics: dict[str, Decimal] = dict(point.metrics)
    row = BenchmarkPoint(
        position=position,
        label=point.label[:200],
        concurrency=point.concurrency,
        request_rate=point.request_rate,
        completed=point.completed,
        failed=point.failed,
        metrics={k: str(v) for k, v in metrics.items()},
    )
    for column in POINT_COLUMNS:
        setattr(row, column, metrics.get(column))
    return row


def _point_problems(parsed: ParsedBenchmark) -> list[str]:
    """What in the parsed points the database cannot hold, or capacity cannot use."""
    problems = []
    if len(parsed.points) > MAX_POINTS:
        problems.append(
            f"the file has {len(parsed.points):,} points; the limit is {MAX_POINTS:,} "
            "(one per concurrency level or request rate)"
        )
        return problems
    for p in parsed.points:
        for name, limit in COUNT_LIMITS.items():
            value = getattr(p, name)
            if value is not None and value > limit:
                problems.append(f"{p.label}: {name} {value} is larger than any real run")
        if p.request_rate is not None and p.request_rate >= MEASURE_LIMIT:
            problems.append(f"{p.label}: request_rate {p.request_rate} is too large")
        for code, value in p.metrics.items():
            if value >= MEASURE_LIMIT:
                problems.append(f"{p.label}: {code} {value} is too large to be a measurement")
            elif 0 < value < MEASURE_STEP:
                problems.append(
                    f"{p.label}: {code} {value} is below 0.000000001 and cannot be kept"
                )
            elif code in THROUGHPUTS and value == 0:
                problems.append(
                    f"{p.label}: {code} is 0 — a point that served nothing cannot size capacity"
                )
    return problems


def _missing_message(
    file_name: str, parsed: ParsedBenchmark, protocol: BenchmarkProtocol, missing: list[str]
) -> str:
    """Which metrics are missing, and how to get them from the tool that wrote the file."""
    labels = ", ".join(f"{METRICS[m].label} ({m})" for m in missing)
    hints = []
    if parsed.tool.startswith("vllm") and any(
        "_p9" in m or m.startswith("latency") for m in missing
    ):
        hints.append(
            "vLLM writes p95 and end-to-end latency only when asked: run `vllm bench serve` "
            "with --percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,95,99"
        )
    elif parsed.tool.startswith("triton") and any("latency" in m for m in missing):
        hints.append("perf_analyzer reports percentiles with -f FILE and --percentile=95")
    else:
        hints.append("re-run the benchmark so it reports them")
    if {"cold_start_s", "peak_memory_gb"} & set(missing):
        hints.append("cold start and peak memory can be entered with the upload")
    return (
        f"{file_name} ({parsed.tool_label}) lacks metrics that {protocol} requires: {labels}. "
        f"{'; '.join(hints).capitalize()}."
    )


def _with_supplements(parsed: ParsedBenchmark, supplements: dict[str, Decimal]) -> ParsedBenchmark:
    """Add figures measured outside the tool (cold start, peak memory) to every point."""
    if not supplements:
        return parsed
    points = tuple(replace(p, metrics={**supplements, **p.metrics}) for p in parsed.points)
    return replace(parsed, points=points)


@transaction.atomic
def benchmark_upload(
    *,
    version: ModelVersion,
    protocol: BenchmarkProtocol,
    hardware_profile: HardwareProfile,
    data: bytes,
    file_name: str,
    by: User,
    measured_at: datetime | None = None,
    cold_start_s: Decimal | None = None,
    peak_memory_gb: Decimal | None = None,
) -> EfficiencyBenchmark:
    """Parse a result file, check it against its protocol, keep it and its points.

    Refused whole, with the reason, if the file cannot be read, no request completed, or a
    metric the protocol requires is missing (the error lists them).
    """
    _require_owner(by, version.model, "upload benchmarks for")
    if version.state == LifecycleState.RETIRED:
        raise ConflictError("This version is retired; benchmark a live version instead.")
    if protocol.status != ProtocolStatus.APPROVED:
        raise BenchmarkRejectedError(
            f"{protocol} is {protocol.get_status_display().lower()}: results count only under "
            "an approved protocol. Pick the approved revision."
        )
    if protocol.hardware_profile_id and protocol.hardware_profile_id != hardware_profile.pk:
        raise BenchmarkRejectedError(
            f"{protocol} is for {protocol.hardware_profile}, not {hardware_profile}."
        )
    if len(data) > MAX_BENCHMARK_BYTES:
        raise BenchmarkRejectedError(
            f"{file_name} is {len(data) // (1024 * 1024)} MiB; the limit is "
            f"{MAX_BENCHMARK_BYTES // (1024 * 1024)} MiB. Upload the summary file, not the traces."
        )
    try:
        parsed = parse_benchmark(data, filename=file_name)
    except BenchmarkFileError as exc:
        raise BenchmarkRejectedError(str(exc)) from exc
    supplements = {
        code: value
        for code, value in (("cold_start_s", cold_start_s), ("peak_memory_gb", peak_memory_gb))
        if value is not None
    }
    if any(v < 0 for v in supplements.values()):
        raise BenchmarkRejectedError("Cold start and peak memory cannot be negative.")
    parsed = _with_supplements(parsed, supplements)
    problems = _point_problems(parsed)
    if problems:
        more = f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise BenchmarkRejectedError(
            f"{file_name}: {'; '.join(problems[:10])}{more}. Correct the file and upload it again."
        )
    missing = benchmark_missing_metrics(parsed, protocol.required_metrics)
    if missing:
        raise BenchmarkRejectedError(
            _missing_message(file_name, parsed, protocol, missing), missing=missing
        )
    now = timezone.now()
    if (
        measured_at
        and parsed.measured_at
        and abs(measured_at - parsed.measured_at) > timedelta(days=1)
    ):
        raise BenchmarkRejectedError(
            f"{file_name} says it was measured on {parsed.measured_at:%Y-%m-%d %H:%M} UTC; "
            "the file's own date counts, so leave “measured at” empty."
        )
    when = parsed.measured_at or measured_at or now
    if when < EARLIEST_MEASUREMENT:
        raise BenchmarkRejectedError(
            f"The measurement date {when:%Y-%m-%d} is implausibly old; check the date."
        )
    if when > now + timedelta(minutes=5):
        raise BenchmarkRejectedError(
            f"The measurement date {when:%Y-%m-%d %H:%M} is in the future."
        )
    benchmark = EfficiencyBenchmark(
        version=version,
        protocol=protocol,
        hardware_profile=hardware_profile,
        tool=parsed.tool,
        tool_label=parsed.tool_label,
        model_name_in_file=parsed.model_name[:300],
        hardware_in_file=parsed.hardware[:300],
        measured_at=when,
        file_name=file_name[:255],
        raw_sha256=hashlib.sha256(data).hexdigest(),
        run_settings=dict(parsed.settings),
        warnings=list(parsed.warnings),
        uploaded_by=by,
    )
    benchmark.raw_file.save(file_name, ContentFile(data), save=False)
    # A failed insert must not leave the raw file behind.
    try:
        benchmark.save()
        rows = [_point_row(p, i) for i, p in enumerate(parsed.points)]
        for row in rows:
            row.benchmark = benchmark
        BenchmarkPoint.objects.bulk_create(rows)
    except Exception:
        benchmark.raw_file.delete(save=False)
        raise
    return benchmark


# --- capacity impact assessments -----------------------------------------------------------


def _operating_points(benchmark: EfficiencyBenchmark) -> list[capacity.OperatingPoint]:
    return [
        capacity.OperatingPoint(
            key=p.pk,
            label=p.label,
            concurrency=p.concurrency,
            requests_per_s=p.requests_per_s,
            latencies_ms={
                code: getattr(p, code) for code in SLO_METRICS if getattr(p, code) is not None
            },
        )
        for p in benchmark.points.all()
    ]


@transaction.atomic
def assessment_file(
    *,
    version: ModelVersion,
    benchmark: EfficiencyBenchmark,
    by: User,
    peak_rps: Decimal,
    daily_requests: int,
    slo_metric: str,
    slo_threshold_ms: Decimal,
    headroom_pct: Decimal,
    pool: CapacityPool | None = None,
    notes: str = "",
) -> CapacityAssessment:
    """Compute what the version would take and put it in front of the board.

    A new assessment supersedes the version's earlier ones, decided or not.
    """
    _require_owner(by, version.model, "file assessments for")
    if benchmark.version_id != version.pk:
        raise DomainError("That benchmark is not one of this version's.")
    if benchmark.hardware_profile_id != version.hardware_profile_id:
        raise DomainError(
            f"That benchmark ran on {benchmark.hardware_profile}; assess the version on "
            f"{version.hardware_profile}, the hardware it deploys on."
        )
    if not 0 < peak_rps <= MAX_PEAK_RPS:
        raise DomainError(f"Peak traffic must be above 0 and at most {MAX_PEAK_RPS:,} req/s.")
    if daily_requests > 10**15:
        raise DomainError("Daily traffic must be at most 10^15 requests.")
    if version.state in (LifecycleState.RETIRED, LifecycleState.DEPRECATED):
        raise ConflictError(f"This version is {version.get_state_display().lower()}.")
    if slo_metric not in SLO_METRICS:
        raise DomainError(f"The SLO metric must be one of {', '.join(SLO_METRICS)}.")
    if daily_requests < 0:
        raise DomainError("Daily traffic cannot be negative.")
    if pool is not None and pool.hardware_profile_id != benchmark.hardware_profile_id:
        raise DomainError(
            f"{pool} runs {pool.hardware_profile}; this benchmark was run on "
            f"{benchmark.hardware_profile}. Pick a benchmark on the pool's hardware."
        )
    price = hardware_price_current(
        hardware_profile=benchmark.hardware_profile, provider=pool.provider if pool else ""
    )
    if price is None:
        where = f" at {pool.get_provider_display()}" if pool else ""
        raise DomainError(
            f"No hourly price for {benchmark.hardware_profile}{where}: a platform admin adds "
            "one under Hardware prices (or the price sync fills it)."
        )
    try:
        plan = capacity.capacity_plan(
            _operating_points(benchmark),
            slo_metric=slo_metric,
            slo_threshold_ms=slo_threshold_ms,
            peak_rps=peak_rps,
            headroom_pct=headroom_pct,
            daily_requests=daily_requests,
            accelerators_per_replica=benchmark.hardware_profile.accelerator_count,
            hourly_price=price.hourly_price,
            pool_accelerators=pool.accelerator_count if pool else None,
        )
    except capacity.CapacityError as exc:
        raise DomainError(str(exc)) from exc
    if plan.replicas > MAX_REPLICAS or plan.accelerators > 10 * MAX_REPLICAS:
        raise DomainError(
            f"This needs {plan.replicas:,} replicas ({plan.accelerators:,} accelerators), more "
            "than any pool holds: check the peak traffic and the benchmark."
        )
    CapacityAssessment.objects.filter(version=version).exclude(
        status=AssessmentStatus.SUPERSEDED
    ).update(status=AssessmentStatus.SUPERSEDED)
    source = f"{price.get_provider_display()} {price.instance_type or price.hardware_profile}"
    return CapacityAssessment.objects.create(
        version=version,
        benchmark=benchmark,
        pool=pool,
        peak_rps=peak_rps,
        daily_requests=daily_requests,
        slo_metric=slo_metric,
        slo_threshold_ms=slo_threshold_ms,
        headroom_pct=headroom_pct,
        point_id=plan.point_key,
        point_throughput_rps=plan.throughput_rps,
        replicas=plan.replicas,
        accelerators=plan.accelerators,
        hourly_price=price.hourly_price,
        currency=price.currency,
        price_source=f"{source}, from {price.effective_from:%Y-%m-%d}"[:200],
        monthly_cost=plan.monthly_cost,
        pool_share_pct=plan.pool_share_pct,
        cost_per_1k_requests=plan.cost_per_1k_requests,
        notes=notes,
        submitted_by=by,
        submitted_at=timezone.now(),
    )


@transaction.atomic
def assessment_decide(
    *,
    assessment: CapacityAssessment,
    by: User,
    approve: bool,
    rationale: str,
    alternatives: str = "",
) -> VoteOutcome:
    """A review board member votes on an assessment; the board's Decision settles it."""
    _require_board(by, "decide on capacity assessments")
    assessment = (
        # Lock only the assessment row: PostgreSQL refuses FOR UPDATE on the outer join to pool.
        CapacityAssessment.objects.select_for_update(of=("self",))
        .select_related("version__model__business_unit", "pool")
        .get(pk=assessment.pk)
    )
    if by.pk in (assessment.submitted_by_id, assessment.version.created_by_id):
        raise PermissionDeniedError("Nobody decides on an assessment they filed or registered.")
    if assessment.status != AssessmentStatus.SUBMITTED:
        raise ConflictError(
            f"This assessment is already {assessment.get_status_display().lower()}."
        )
    vote = board_vote(
        subject=assessment,
        by=by,
        approve=approve,
        rationale=rationale,
        alternatives=alternatives,
        kind=DecisionKind.ASSESSMENT,
        title=f"Capacity assessment of {assessment.version}",
        business_unit=assessment.version.model.business_unit,
        evidence=assessment_evidence(assessment),
    )
    decision = vote.decision
    if decision is not None:
        approved = decision.outcome == DecisionOutcome.APPROVED
        assessment.status = AssessmentStatus.APPROVED if approved else AssessmentStatus.REJECTED
        assessment.decision = decision
        assessment.save(update_fields=["status", "decision"])
    return vote


def assessment_evidence(a: CapacityAssessment) -> dict[str, str | int | None]:
    """The numbers a decision on an assessment was taken on."""
    return {
        "peak_rps": str(a.peak_rps),
        "headroom_pct": str(a.headroom_pct),
        "slo": f"{a.slo_metric} <= {a.slo_threshold_ms} ms",
        "throughput_rps": str(a.point_throughput_rps),
        "replicas": a.replicas,
        "accelerators": a.accelerators,
        "monthly_cost": str(a.monthly_cost),
        "currency": a.currency,
        "pool": a.pool.name if a.pool else None,
        "pool_share_pct": str(a.pool_share_pct) if a.pool_share_pct is not None else None,
    }


# --- waivers and cost-tier approvals -------------------------------------------------------


_UNREAD = object()


def may_review(user: User, version: ModelVersion, *, submitted_by: object = _UNREAD) -> bool:
    """A board member who neither registered nor submitted the version.

    A page that asks several of these passes ``submitted_by`` (``version_submitter``) once.
    """
    if submitted_by is _UNREAD:
        submitted_by = _submitted_by(version)
    return bool(board_role(user)) and user.pk not in (version.created_by_id, submitted_by)


def may_vote_waivers(user: User, version: ModelVersion, *, submitted_by: object = _UNREAD) -> bool:
    """A board member not close to the version, while it is on its way to production."""
    return (
        bool(board_role(user))
        and not _conflicted(user, version, submitted_by=submitted_by)
        and version.state in WAIVABLE_STATES
    )


def version_submitter(version: ModelVersion) -> int | None:
    """Who last submitted the version (their id), if anyone."""
    return _submitted_by(version)


def _conflicted(by: User, version: ModelVersion, *, submitted_by: object = _UNREAD) -> bool:
    """Registered, submitted or owns the version: too close to judge its exceptions."""
    if submitted_by is _UNREAD:
        submitted_by = _submitted_by(version)
    return (
        by.pk == version.created_by_id
        or submitted_by == by.pk
        or (
            by.has_role(Role.ML_ENGINEER)
            and version.model.business_unit_id in by.scoped_business_unit_ids
        )
    )


WAIVABLE_STATES = (
    LifecycleState.DRAFT,
    LifecycleState.SUBMITTED,
    LifecycleState.UNDER_REVIEW,
    LifecycleState.APPROVED,
)


@transaction.atomic
def waiver_grant(
    *, version: ModelVersion, requirement: str, reason: str, expires_at: datetime, by: User
) -> RequirementWaiver:
    """A board member proposes (and votes for) letting one version skip one requirement.

    With a review board configured the waiver is granted when the board's votes make quorum
    (others vote with ``waiver_vote``); without one, the member's word grants it.
    """
    _require_board(by, "grant waivers")
    if requirement not in gate.WAIVABLE:
        names = ", ".join(sorted(gate.WAIVABLE))
        raise DomainError(f"{requirement!r} cannot be waived; waivable requirements: {names}.")
    if _conflicted(by, version):
        raise PermissionDeniedError(
            "Nobody waives a requirement for a version they registered, submitted or own."
        )
    if version.state not in WAIVABLE_STATES:
        raise ConflictError(
            f"This version is {version.get_state_display().lower()}: waivers are for versions "
            "on their way to production."
        )
    now = timezone.now()
    if expires_at <= now:
        raise DomainError("A waiver must expire in the future.")
    if expires_at > now + timedelta(days=MAX_WAIVER_DAYS):
        raise DomainError(f"A waiver lasts at most {MAX_WAIVER_DAYS} days; pick an earlier date.")
    if not reason.strip():
        raise DomainError("Say why the requirement may be skipped: the reason is kept.")
    proposed = version.waivers.filter(requirement=requirement, status=WaiverStatus.PROPOSED)
    if proposed.exists():
        raise ConflictError(
            "A waiver of this requirement is already before the board: vote on it instead."
        )
    waiver = RequirementWaiver.objects.create(
        version=version,
        requirement=requirement,
        reason=reason.strip(),
        expires_at=expires_at,
        granted_by=by,
        granted_at=now,
    )
    return waiver_vote(waiver=waiver, by=by, approve=True, rationale=reason)


@transaction.atomic
def waiver_vote(
    *, waiver: RequirementWaiver, by: User, approve: bool, rationale: str
) -> RequirementWaiver:
    """A board member's vote on a proposed waiver; the board's Decision grants or refuses it."""
    _require_board(by, "vote on waivers")
    waiver = (
        RequirementWaiver.objects.select_for_update()
        .select_related("version__model__business_unit")
        .get(pk=waiver.pk)
    )
    version = waiver.version
    if waiver.status != WaiverStatus.PROPOSED:
        raise ConflictError(f"This waiver is already {waiver.get_status_display().lower()}.")
    if _conflicted(by, version):
        raise PermissionDeniedError(
            "Nobody votes on a waiver for a version they registered, submitted or own."
        )
    label = RequirementCode(waiver.requirement).label
    vote = board_vote(
        subject=waiver,
        by=by,
        approve=approve,
        rationale=rationale,
        kind=DecisionKind.WAIVER,
        title=f"Waive “{label}” for {version} until {waiver.expires_at:%Y-%m-%d}",
        business_unit=version.model.business_unit,
        evidence={"requirement": waiver.requirement, "expires_at": waiver.expires_at.isoformat()},
    )
    if vote.decision is not None:
        granted = vote.decision.outcome == DecisionOutcome.APPROVED
        waiver.status = WaiverStatus.GRANTED if granted else WaiverStatus.REFUSED
        waiver.decision = vote.decision
        waiver.granted_at = vote.decision.decided_at
        waiver.save(update_fields=["status", "decision", "granted_at"])
    return waiver


def _live_assessment(version: ModelVersion) -> CapacityAssessment | None:
    return (
        version.assessments.exclude(status=AssessmentStatus.SUPERSEDED)
        .order_by("-submitted_at", "-pk")
        .first()
    )


@transaction.atomic
def deployment_approve(*, version: ModelVersion, by: User, role: str, rationale: str) -> Decision:
    """A person holding a role the cost tier asks for approves deploying the version.

    The approval is bound to the assessment it was given on: a new assessment (a new cost)
    needs new approvals.
    """
    if role not in Role.values:
        raise DomainError(f"Unknown role {role!r}.")
    if role not in by.role_set:
        raise PermissionDeniedError(f"You do not hold the role {Role(role).label}.")
    if by.pk == version.created_by_id or _submitted_by(version) == by.pk:
        raise PermissionDeniedError(
            "Nobody approves the deployment of a version they registered or submitted."
        )
    if version.state not in APPROVABLE_STATES:
        raise ConflictError(f"This version is {version.get_state_display().lower()}.")
    verdict = deployment_gate(version)
    if role not in verdict.roles_asked:
        raise DomainError(f"The version's cost tier does not ask for {Role(role).label} approval.")
    if role not in verdict.roles_missing:
        raise ConflictError(f"{Role(role).label} approval is already given for this cost.")
    assessment = (
        CapacityAssessment.objects.get(pk=verdict.assessment_id) if verdict.assessment_id else None
    )
    return decision_record(
        subject=version,
        kind=DecisionKind.DEPLOYMENT_APPROVAL,
        outcome=DecisionOutcome.APPROVED,
        title=f"Approve deploying {version} ({Role(role).label})",
        rationale=rationale,
        by=by,
        decided_as=role,
        business_unit=version.model.business_unit,
        # The gate counts the approval for this assessment only (None: no assessment yet).
        evidence={
            "assessment": assessment.pk if assessment else None,
            "monthly_cost": str(assessment.monthly_cost) if assessment else None,
            "currency": assessment.currency if assessment else None,
        },
    )


# --- the gate ------------------------------------------------------------------------------


def requirement_for(
    version: ModelVersion, requirements: Sequence[RegistrationRequirement] | None = None
) -> gate.Policy:
    """The most specific requirement for the version's unit and risk tier, as a Policy."""
    if requirements is None:
        requirements = list(RegistrationRequirement.objects.prefetch_related("cost_tiers"))
    unit, tier = version.model.business_unit_id, version.model.risk_tier

    def rank(r: RegistrationRequirement) -> int | None:
        if r.business_unit_id not in (None, unit) or r.risk_tier not in ("", tier):
            return None
        return (2 if r.business_unit_id else 0) + (1 if r.risk_tier else 0)

    ranked = [(rank(r), r) for r in requirements]
    applicable = [(k, r) for k, r in ranked if k is not None]
    if not applicable:
        return gate.DEFAULT_POLICY
    best = max(applicable, key=lambda kr: (kr[0], kr[1].pk))[1]
    return gate.Policy(
        name=best.name,
        mandatory_metrics=tuple(best.mandatory_metrics),
        max_benchmark_age_days=best.max_benchmark_age_days,
        assessment_required=best.assessment_required,
        blocking_warnings=(
            frozenset({gate.PREVENT_ITEMS}) if best.block_on_prevent_items else frozenset()
        ),
        cost_tiers=tuple(
            gate.CostTier(
                min_monthly_cost=t.min_monthly_cost,
                currency=t.currency,
                role=t.role,
                role_label=t.get_role_display(),
            )
            for t in best.cost_tiers.all()
        ),
    )


def deployment_gates(
    versions: Sequence[ModelVersion], *, now: datetime | None = None
) -> dict[int, gate.GateVerdict]:
    """The gate's verdict for each version, in a fixed number of queries however many.

    ``versions`` need ``model`` loaded (``select_related("model__business_unit",
    "hardware_profile")`` avoids a query each).
    """
    now = now or timezone.now()
    ids = [v.pk for v in versions]
    requirements = list(RegistrationRequirement.objects.prefetch_related("cost_tiers"))
    benchmarks: dict[int, list[gate.BenchmarkFacts]] = defaultdict(list)
    reported: dict[int, set[str] | None] = {}
    points = BenchmarkPoint.objects.filter(benchmark__version_id__in=ids).values_list(
        "benchmark_id", "metrics"
    )
    for benchmark_id, metrics in points:
        # A metric counts as reported only if every point of the benchmark reports it.
        have = set(metrics)
        reported[benchmark_id] = (
            have if benchmark_id not in reported else reported[benchmark_id] & have
        )
    versions_by_id = {v.pk: v for v in versions}
    for b in EfficiencyBenchmark.objects.filter(version_id__in=ids).select_related(
        "protocol", "hardware_profile"
    ):
        v = versions_by_id[b.version_id]
        benchmarks[b.version_id].append(
            gate.BenchmarkFacts(
                id=b.pk,
                measured_at=b.measured_at,
                protocol=str(b.protocol),
                protocol_approved=b.protocol.status == ProtocolStatus.APPROVED,
                hardware=b.hardware_profile.name,
                on_version_hardware=b.hardware_profile_id == v.hardware_profile_id,
                reported_metrics=frozenset(reported.get(b.pk) or ()),
            )
        )
    assessments: dict[int, gate.AssessmentFacts] = {}
    for a in (
        CapacityAssessment.objects.filter(version_id__in=ids)
        .exclude(status=AssessmentStatus.SUPERSEDED)
        .order_by("version_id", "submitted_at", "pk")
    ):
        assessments[a.version_id] = gate.AssessmentFacts(
            id=a.pk, status=a.status, monthly_cost=a.monthly_cost, currency=a.currency
        )
    approved_roles: dict[int, set[str]] = defaultdict(set)
    for subject_id, role, evidence in Decision.objects.filter(
        # The content type by name: no lookup of its id first (a query on a cold cache).
        subject_type__app_label=ModelVersion._meta.app_label,
        subject_type__model=ModelVersion._meta.model_name,
        subject_id__in=ids,
        kind=DecisionKind.DEPLOYMENT_APPROVAL,
        outcome=DecisionOutcome.APPROVED,
    ).values_list("subject_id", "decided_as", "evidence"):
        live = assessments.get(subject_id)
        # An approval counts for the cost it was given on (None: before any assessment).
        if evidence.get("assessment") == (live.id if live else None):
            approved_roles[subject_id].add(role)
    waivers: dict[int, list[gate.WaiverFacts]] = defaultdict(list)
    for w in RequirementWaiver.objects.filter(
        version_id__in=ids, revoked_at=None, status=WaiverStatus.GRANTED
    ).select_related("granted_by"):
        waivers[w.version_id].append(
            gate.WaiverFacts(
                id=w.pk,
                requirement=w.requirement,
                expires_at=w.expires_at,
                reason=w.reason,
                granted_by=str(w.granted_by),
            )
        )
    freezes = {
        unit_id: gate.FreezeFacts(
            business_unit=f.business_unit.name, reason=f.reason, since=f.started_at
        )
        for unit_id, f in freezes_in_force(
            business_unit_ids={v.model.business_unit_id for v in versions}
        ).items()
    }
    provided = [provider(versions, now) for provider in gate.requirement_providers()]
    warned = [provider(versions, now) for provider in gate.warning_providers()]
    verdicts = {}
    for v in versions:
        policy = requirement_for(v, requirements)
        facts = gate.GateFacts(
            state=v.state,
            state_label=v.get_state_display(),
            hardware=str(v.hardware_profile),
            policy=policy,
            benchmarks=tuple(benchmarks[v.pk]),
            assessment=assessments.get(v.pk),
            approved_roles=frozenset(approved_roles[v.pk]),
            freeze=freezes.get(v.model.business_unit_id),
            waivers=tuple(waivers[v.pk]),
            now=now,
        )
        verdict = gate.evaluate(facts)
        extra = [u for answers in provided for u in answers.get(v.pk, ())]
        warnings = [w for answers in warned for w in answers.get(v.pk, ())]
        if extra or warnings:
            verdict = gate.with_provided(verdict, policy, unmet=extra, warnings=warnings)
        verdicts[v.pk] = verdict
    return verdicts


def deployment_gate(version: ModelVersion, *, now: datetime | None = None) -> gate.GateVerdict:
    """What still stands between this version and production (empty ``unmet``: nothing)."""
    return deployment_gates([version], now=now)[version.pk]


# --- endpoints and prices from the clouds -----------------------------------------------------


def endpoint_upsert(
    *,
    provider: str,
    account_id: str,
    region: str,
    name: str,
    resource_id: str,
    status: str = "",
    instance_type: str = "",
    instance_count: int = 0,
    config_name: str = "",
    tags: dict[str, str] | None = None,
    business_unit: BusinessUnit | None = None,
    created_in_cloud_at: datetime | None = None,
    seen_at: datetime | None = None,
) -> tuple[Endpoint, bool]:
    """Create or update an endpoint as the cloud describes it; (endpoint, created)."""
    return Endpoint.objects.update_or_create(
        provider=provider,
        account_id=account_id,
        region=region,
        name=name,
        defaults={
            "resource_id": resource_id[:1000],
            "status": status[:64],
            "instance_type": instance_type[:100],
            "instance_count": instance_count,
            "config_name": config_name[:300],
            "tags": tags or {},
            "business_unit": business_unit,
            "created_in_cloud_at": created_in_cloud_at,
            "last_seen_at": seen_at or timezone.now(),
        },
    )


@transaction.atomic
def endpoint_usage_record(
    *,
    endpoint: Endpoint,
    invocations: dict[date, int],
    source: str = "sync",
    errors: dict[date, int] | None = None,
) -> int:
    """Set the invocations of these days (re-reading a day replaces it); returns days written.

    Only days the source reported are written: a day it did not report stays unknown.
    ``errors`` are the failed invocations of those days, where the source counts them; a day
    without an error count keeps ``errors`` unknown (and gets no availability measurement).
    """
    errors = errors or {}
    if any(count < 0 for count in invocations.values()):
        raise DomainError("Invocations cannot be negative.")
    for day, failed in errors.items():
        if day not in invocations or not 0 <= failed <= invocations[day]:
            raise DomainError(
                f"Errors on {day:%Y-%m-%d} must be between 0 and that day's invocations."
            )
    EndpointUsage.objects.filter(endpoint=endpoint, day__in=list(invocations)).delete()
    EndpointUsage.objects.bulk_create(
        EndpointUsage(
            endpoint=endpoint, day=day, invocations=count, errors=errors.get(day), source=source
        )
        for day, count in sorted(invocations.items())
    )
    return len(invocations)


def hardware_price_record(
    *,
    hardware_profile: HardwareProfile,
    provider: str,
    hourly_price: Decimal,
    currency: str,
    effective_from: datetime,
    instance_type: str = "",
    region: str = "",
    source: str = "sync",
) -> tuple[HardwarePrice, bool]:
    """Record a price from the provider's price list; the same start date is updated."""
    if hourly_price < 0:
        raise DomainError("An hourly price cannot be negative.")
    return HardwarePrice.objects.update_or_create(
        hardware_profile=hardware_profile,
        provider=provider,
        region=region,
        effective_from=effective_from,
        defaults={
            "hourly_price": hourly_price,
            "currency": currency,
            "instance_type": instance_type,
            "source": source,
        },
    )


def deployment_approvers_ask(*, version: ModelVersion, by: User) -> list[str]:
    """E-mail the people who hold the roles the cost tier still needs, with a link to the
    version, so a deployment approval is not left to someone happening to look.

    Returns the roles asked for. The mails go out through a Celery task after the commit.
    """
    _require_owner(by, version.model, "ask for approvals of")
    roles = list(deployment_gate(version).roles_missing)
    if not roles:
        raise ConflictError("The gate does not ask for any deployment approval right now.")
    from registry.tasks import deployment_approvers_mail_task

    transaction.on_commit(lambda: enqueue(deployment_approvers_mail_task, version.pk, roles, by.pk))
    return roles


def deployment_approvers_mail(*, version_id: int, roles: list[str], asked_by_id: int) -> int:
    """Send the approval asks; nobody who registered or submitted the version is asked."""
    from governance.emails import absolute_url, mail_send

    version = ModelVersion.objects.select_related("model__business_unit").get(pk=version_id)
    assessment = _live_assessment(version)
    skip = {version.created_by_id, _submitted_by(version), asked_by_id}
    people = (
        User.objects.filter(role_assignments__role__in=roles, is_active=True)
        .exclude(pk__in=[p for p in skip if p])
        .exclude(email="")
        .distinct()
        .order_by("pk")
    )
    recipients = [p.email for p in people]
    if recipients:
        mail_send(
            to=recipients,
            subject=f"Deployment approval asked: {version}",
            template="deployment_approval",
            context={
                "version": version,
                "assessment": assessment,
                "roles": ", ".join(Role(r).label for r in roles),
                "url": absolute_url(version.get_absolute_url() + "#gate"),
            },
        )
    return len(recipients)


# --- usage data for chargeback: pool GPU-hours, SLO measurements from endpoint usage ----------

USAGE_SOURCE = "usage"
ENDPOINTS_SOURCE = "endpoints"
HOURS_PER_DAY = 24
AVAILABILITY_STEP = Decimal("0.0001")
BATCH = 1000


def _pool_usage_may_record(by: User | None) -> None:
    if not manages_costs(by):
        raise PermissionDeniedError("Only finance and platform admins record pool usage.")


def _usage_source(source: str) -> str:
    source = source.strip()
    if not source or len(source) > PoolUsage._meta.get_field("source").max_length:
        raise DomainError("Name the usage's source in 1 to 32 characters, e.g. upload.")
    return source


def _pool_usage_read(
    read: Callable[..., list[pool_usage_csv.PoolUsageRow]], data: object
) -> list[PoolUsage]:
    pools = dict(CapacityPool.objects.values_list("code", "pk"))
    units = dict(BusinessUnit.objects.values_list("code", "pk"))
    try:
        rows = read(data, pools=pools, units=units)
    except pool_usage_csv.UsageFileError as exc:
        raise DomainError(str(exc)) from exc
    return [
        PoolUsage(
            pool_id=pools[r.pool],
            business_unit_id=units[r.business_unit],
            day=r.day,
            gpu_hours=r.gpu_hours,
        )
        for r in rows
    ]


def _pool_usage_upsert(rows: list[PoolUsage], source: str) -> int:
    for row in rows:
        row.source = source
    PoolUsage.objects.bulk_create(
        rows,
        batch_size=BATCH,
        update_conflicts=True,
        unique_fields=["pool", "business_unit", "day"],
        update_fields=["gpu_hours", "source"],
    )
    return len(rows)


@transaction.atomic
def pool_usage_record(
    *, rows: Iterable[Mapping[str, object]], source: str, by: User | None = None
) -> int:
    """Store GPU-hours per pool, business unit and day, all or none; returns rows stored.

    ``rows`` are mappings with ``pool`` (its code), ``business_unit`` (its code), ``day``
    and ``gpu_hours``, as text or values (JSON posted to the API). A row for a pool, unit
    and day already stored replaces it, whatever its source. Any bad row refuses them all
    with a ``DomainError`` naming the row and the field. Finance and platform admins only;
    ``by=None`` is the system.
    """
    _pool_usage_may_record(by)
    source = _usage_source(source)
    if isinstance(rows, str | bytes | Mapping):
        raise DomainError("Send a list of rows, each with pool, business_unit, day, gpu_hours.")
    rows = list(rows)
    if not rows:
        return 0
    return _pool_usage_upsert(_pool_usage_read(pool_usage_csv.pool_usage_json_read, rows), source)


@transaction.atomic
def pool_usage_import(*, data: str | bytes, source: str = "upload", by: User | None = None) -> int:
    """Store the GPU-hours of a CSV file ``pool,business_unit,day,gpu_hours``, all or none.

    Read by ``registry.pool_usage_csv``; a bad row refuses the file with a ``DomainError``
    naming line and column, and nothing is stored. Returns the rows stored.
    """
    _pool_usage_may_record(by)
    source = _usage_source(source)
    return _pool_usage_upsert(_pool_usage_read(pool_usage_csv.pool_usage_csv_read, data), source)


def _pools_by_instance_type() -> dict[tuple[str, str], list[CapacityPool]]:
    """The pools an endpoint of each (provider, instance type) runs on."""
    pools = list(CapacityPool.objects.select_related("hardware_profile").order_by("code"))
    prices = (
        HardwarePrice.objects.exclude(instance_type="")
        .values_list("hardware_profile_id", "provider", "instance_type")
        .distinct()
    )
    found: dict[tuple[str, str], list[CapacityPool]] = defaultdict(list)
    for profile_id, provider, instance_type in prices:
        for pool in pools:
            key = (provider, instance_type)
            if (
                pool.hardware_profile_id == profile_id
                and pool.provider == provider
                and pool not in found[key]
            ):
                found[key].append(pool)
    return found


@transaction.atomic
def pool_usage_from_endpoints(*, days: Iterable[date]) -> int:
    """Work out GPU-hours per pool, business unit and day from the endpoints; rows written.

    How an endpoint's hours are counted:

    - it runs on a pool when its provider is the pool's and its instance type is the instance
      type of a price of the pool's hardware profile at that provider. An endpoint whose
      instance type fits more than one pool is left out (nobody could tell which one it
      uses: upload its usage instead), and so is one without a business unit;
    - it uses ``instance_count x accelerators per replica x 24`` GPU-hours on each day it
      has an ``EndpointUsage`` row, idle or not (it held the GPUs); a day without a usage row
      is unknown and counts nothing. The instance count and business unit are the endpoint's
      current ones, which is why the daily task only works out the last few days;
    - the endpoints of a unit on the same pool and day add up.

    A system write, idempotent: the rows this derivation wrote for ``days`` (source
    ``endpoints``) are replaced, so an endpoint moved to another unit does not count twice.
    A row of any other source (an upload) for the same pool, unit and day is never
    overwritten: that day keeps the uploaded figure.
    """
    days = sorted(set(days))
    if not days:
        return 0
    pools = _pools_by_instance_type()
    usage = EndpointUsage.objects.filter(
        day__in=days, endpoint__business_unit__isnull=False
    ).values_list(
        "day",
        "endpoint__provider",
        "endpoint__instance_type",
        "endpoint__instance_count",
        "endpoint__business_unit_id",
    )
    hours: dict[tuple[int, int, date], Decimal] = defaultdict(Decimal)
    for day, provider, instance_type, instance_count, unit_id in usage:
        matches = pools.get((provider, instance_type), [])
        if len(matches) != 1:
            continue
        pool = matches[0]
        gpus = instance_count * pool.hardware_profile.accelerator_count
        hours[pool.pk, unit_id, day] += Decimal(gpus * HOURS_PER_DAY)
    PoolUsage.objects.filter(day__in=days, source=ENDPOINTS_SOURCE).delete()
    uploaded = set(
        PoolUsage.objects.select_for_update()
        .filter(day__in=days)
        .values_list("pool_id", "business_unit_id", "day")
    )
    rows = [
        PoolUsage(
            pool_id=pool_id,
            business_unit_id=unit_id,
            day=day,
            gpu_hours=gpu_hours,
            source=ENDPOINTS_SOURCE,
        )
        for (pool_id, unit_id, day), gpu_hours in sorted(hours.items())
        if (pool_id, unit_id, day) not in uploaded
    ]
    # An upload committed meanwhile wins: its row is there, ours is not inserted.
    PoolUsage.objects.bulk_create(rows, batch_size=BATCH, ignore_conflicts=True)
    return len(rows)


def slo_measurements_from_usage(*, days: Iterable[date]) -> int:
    """Work out availability measurements from endpoint usage; returns the rows written.

    For each availability SLO whose ``service`` is the name of registry endpoints, each day
    of ``days`` on which those endpoints served (invocations > 0) with error counts known:
    ``good = invocations - errors``, ``total = invocations`` and ``value = good / total x
    100`` as a Decimal rounded down to 4 places (so a day with an error never reads 100 %).
    Endpoints of the same name (one service in several regions or accounts) add up, and a
    day counts only when every one of them has its errors counted.

    Missing data is not a perfect day: a day without usage, without traffic or without error
    counts gets no measurement (nor does one whose errors exceed its invocations). A system
    write through ``governance.services.slo_measurements_record`` (source ``usage``):
    re-running replaces what it wrote, and a measurement another source stored (an upload)
    for the same SLO and day is never overwritten.
    """
    days = sorted(set(days))
    slos = list(
        ServiceLevelObjective.objects.filter(indicator=SloIndicator.AVAILABILITY).values_list(
            "name", "service"
        )
    )
    if not days or not slos:
        return 0
    counted: dict[tuple[str, date], list[int]] = {}
    unknown: set[tuple[str, date]] = set()
    usage = EndpointUsage.objects.filter(
        day__in=days, endpoint__name__in={service for _, service in slos}
    ).values_list("endpoint__name", "day", "invocations", "errors")
    for name, day, invocations, errors in usage:
        if errors is None:
            unknown.add((name, day))
            continue
        total = counted.setdefault((name, day), [0, 0])
        total[0] += invocations
        total[1] += errors
    rows = []
    for slo, service in slos:
        for day in days:
            key = (service, day)
            if key in unknown or key not in counted:
                continue
            total, errors = counted[key]
            if total == 0 or errors > total:
                continue
            good = total - errors
            value = (Decimal(good) * 100 / Decimal(total)).quantize(
                AVAILABILITY_STEP, rounding=ROUND_FLOOR
            )
            rows.append({"slo": slo, "day": day, "value": value, "good": good, "total": total})
    return slo_measurements_record(rows=rows, source=USAGE_SOURCE, keep_other_sources=True)
