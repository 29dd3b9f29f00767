"""Forms for the registry pages. They parse input; the services decide what it means."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django import forms
from django.db.models import QuerySet

from governance.choices import Role
from governance.models import BusinessUnit
from governance.uploads import TEXT, UploadKind
from registry import gate
from registry.benchmarks.metrics import METRICS
from registry.choices import SLO_METRICS, ModelSource, Precision, RequirementCode, RiskTier, Task
from registry.lifecycle import MOVES
from registry.models import (
    BenchmarkProtocol,
    CapacityPool,
    EfficiencyBenchmark,
    HardwareProfile,
    ModelVersion,
)

WORKLOAD_EXAMPLE = (
    '{"input_tokens": {"distribution": "normal", "mean": 512, "stddev": 128},\n'
    ' "output_tokens": {"distribution": "fixed", "value": 256}}'
)


def _any(label: str) -> list[tuple[str, str]]:
    return [("", label)]


class DateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)


class PageForm(forms.Form):
    """A form whose element ids carry a prefix, so several forms share one page."""

    id_prefix = "id"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"{self.id_prefix}_%s")
        super().__init__(*args, **kwargs)


# --- models and versions ----------------------------------------------------------------


class ModelFilterForm(forms.Form):
    """The filters of the model list (GET); an empty field filters nothing."""

    q = forms.CharField(required=False, label="Name contains", max_length=200)
    business_unit = forms.ModelChoiceField(
        queryset=BusinessUnit.objects.none(), required=False, empty_label="Any unit"
    )
    task = forms.ChoiceField(choices=_any("Any task") + Task.choices, required=False)
    source = forms.ChoiceField(choices=_any("Any source") + ModelSource.choices, required=False)
    risk_tier = forms.ChoiceField(choices=_any("Any tier") + RiskTier.choices, required=False)

    def __init__(self, *args: Any, units: QuerySet[BusinessUnit], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["business_unit"].queryset = units


class RegisteredModelForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="Unique in the registry, e.g. ranker.")
    business_unit = forms.ModelChoiceField(
        queryset=BusinessUnit.objects.none(), help_text="The unit that owns and pays for it."
    )
    task = forms.ChoiceField(choices=Task.choices)
    source = forms.ChoiceField(choices=ModelSource.choices, initial=ModelSource.IN_HOUSE)
    vendor = forms.CharField(
        max_length=200,
        required=False,
        label="Vendor or upstream project",
        help_text="Required for vendor and open-weights models.",
    )
    risk_tier = forms.ChoiceField(choices=RiskTier.choices, initial=RiskTier.MEDIUM)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args: Any, units: QuerySet[BusinessUnit], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["business_unit"].queryset = units
        if units.count() == 1:
            self.fields["business_unit"].initial = units.first()


class VersionForm(forms.Form):
    version = forms.CharField(max_length=64, help_text="e.g. 2.1-int8")
    artifact_uri = forms.CharField(
        max_length=1000, label="Artifact URI", help_text="e.g. s3://models/ranker/2.1-int8/"
    )
    framework = forms.CharField(max_length=64, help_text="e.g. PyTorch, TensorRT-LLM, ONNX")
    parameter_count = forms.IntegerField(
        min_value=1, required=False, label="Parameters", help_text="e.g. 7000000000"
    )
    precision = forms.ChoiceField(choices=Precision.choices)
    serving_runtime = forms.CharField(max_length=64, help_text="e.g. vLLM 0.8, Triton 24.05")
    hardware_profile = forms.ModelChoiceField(
        queryset=HardwareProfile.objects.all(),
        label="Hardware profile",
        help_text="What one replica runs on.",
    )
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


class TransitionForm(forms.Form):
    action = forms.ChoiceField(choices=[(m.action, m.label) for m in MOVES.values()])
    comment = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=5000
    )
    alternatives = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=5000,
        label="Alternatives considered",
    )


# --- benchmarks -------------------------------------------------------------------------

# What a benchmark upload (page and API) takes: the tool is told from the content, so any
# JSON or CSV name will do, but a spreadsheet, archive or trace dump will not.
BENCHMARK_RESULT = UploadKind(
    label="benchmark result",
    extensions={".json": TEXT, ".csv": TEXT},
    described="a JSON or CSV result file (.json, .csv)",
    fix="Upload the result file exactly as the benchmark tool wrote it (vLLM, Triton "
    "perf_analyzer, GenAI-Perf, AIPerf) or as capgov benchmark JSON.",
    too_large="Upload the summary file, not the traces.",
)


class BenchmarkUploadForm(PageForm):
    id_prefix = "upload"

    file = forms.FileField(
        label="Result file",
        help_text="vLLM bench serve / benchmark_latency / benchmark_throughput JSON, Triton "
        "perf_analyzer CSV, GenAI-Perf or AIPerf export, or Capgov JSON. The tool is detected "
        "from the content.",
    )
    protocol = forms.ModelChoiceField(
        queryset=BenchmarkProtocol.objects.none(),
        label="Benchmark protocol",
        help_text="Only approved protocols count towards the gate.",
    )
    hardware_profile = forms.ModelChoiceField(
        queryset=HardwareProfile.objects.all(), label="Measured on"
    )
    measured_at = forms.DateTimeField(
        required=False,
        label="Measured at (UTC)",
        widget=DateTimeInput(),
        help_text="Leave empty to take it from the file (or now).",
    )
    cold_start_s = forms.DecimalField(
        required=False,
        min_value=Decimal(0),
        max_digits=15,
        decimal_places=6,
        label="Cold start (s)",
        help_text="If the tool does not measure it.",
    )
    peak_memory_gb = forms.DecimalField(
        required=False,
        min_value=Decimal(0),
        max_digits=15,
        decimal_places=6,
        label="Peak accelerator memory (GB)",
        help_text="If the tool does not measure it.",
    )

    def __init__(
        self,
        *args: Any,
        version: ModelVersion,
        protocols: QuerySet[BenchmarkProtocol],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["protocol"].queryset = protocols
        self.fields["hardware_profile"].initial = version.hardware_profile_id
        self.missing: list[str] = []

    def missing_metrics(self) -> list[dict[str, str]]:
        """The metrics the last refused file lacked, with their labels and units."""
        return [
            {
                "code": code,
                "label": METRICS[code].label if code in METRICS else code,
                "unit": METRICS[code].unit if code in METRICS else "",
            }
            for code in self.missing
        ]


# --- assessments, waivers, approvals ------------------------------------------------------


class AssessmentForm(PageForm):
    id_prefix = "assess"

    benchmark = forms.ModelChoiceField(queryset=EfficiencyBenchmark.objects.none())
    pool = forms.ModelChoiceField(
        queryset=CapacityPool.objects.none(),
        required=False,
        label="Capacity pool",
        empty_label="No shared pool",
        help_text="The pool it would take capacity from; its provider sets the price.",
    )
    peak_rps = forms.DecimalField(
        min_value=Decimal("0.001"),
        max_digits=16,
        decimal_places=3,
        label="Peak traffic (req/s)",
    )
    daily_requests = forms.IntegerField(min_value=0, label="Daily requests")
    slo_metric = forms.ChoiceField(
        choices=list(SLO_METRICS.items()), initial="latency_p95_ms", label="SLO metric"
    )
    slo_threshold_ms = forms.DecimalField(
        min_value=Decimal("0.001"),
        max_digits=16,
        decimal_places=3,
        label="SLO threshold (ms)",
        help_text="The metric must stay at or below this.",
    )
    headroom_pct = forms.DecimalField(
        min_value=Decimal(0),
        max_digits=6,
        decimal_places=2,
        initial=Decimal(30),
        label="Headroom (%)",
    )
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(
        self,
        *args: Any,
        benchmarks: QuerySet[EfficiencyBenchmark],
        pools: QuerySet[CapacityPool],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["benchmark"].queryset = benchmarks
        self.fields["pool"].queryset = pools
        self.fields["benchmark"].label_from_instance = lambda b: (
            f"#{b.pk} · {b.tool_label} on {b.hardware_profile} ({b.measured_at:%Y-%m-%d})"
        )


class AssessmentDecideForm(PageForm):
    id_prefix = "decide"

    decision = forms.ChoiceField(
        choices=[("approve", "Approve"), ("reject", "Reject")], widget=forms.RadioSelect
    )
    rationale = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=5000,
        help_text="Kept with the decision.",
    )
    alternatives = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=5000,
        label="Alternatives considered",
    )


class WaiverForm(PageForm):
    id_prefix = "waiver"

    requirement = forms.ChoiceField(
        choices=[(c, label) for c, label in RequirementCode.choices if c in gate.WAIVABLE]
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=5000)
    expires_at = forms.DateTimeField(
        label="Expires at (UTC)", widget=DateTimeInput(), help_text="At most 180 days away."
    )


class DeploymentApprovalForm(PageForm):
    id_prefix = "approval"

    role = forms.ChoiceField(label="Approve as")
    rationale = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=5000)

    def __init__(self, *args: Any, roles: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [(r, Role(r).label) for r in roles]


# --- protocols and comparison ---------------------------------------------------------------


class ProtocolForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="Reusing a name makes the next revision of that protocol."
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    workload = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        initial=WORKLOAD_EXAMPLE,
        label="Workload (JSON)",
        help_text="input_tokens, output_tokens and/or request_bytes, each with a distribution. "
        f"Example: {WORKLOAD_EXAMPLE}",
    )
    concurrency_levels = forms.CharField(
        max_length=200, help_text="Comma-separated, e.g. 4, 8, 16", initial="4, 8, 16"
    )
    warmup_s = forms.IntegerField(min_value=0, initial=60, label="Warm-up (s)")
    measurement_s = forms.IntegerField(min_value=1, initial=300, label="Measurement (s)")
    hardware_profile = forms.ModelChoiceField(
        queryset=HardwareProfile.objects.all(),
        required=False,
        empty_label="Any hardware",
        label="Hardware profile",
    )
    required_metrics = forms.MultipleChoiceField(
        choices=[(m.code, f"{m.label} ({m.unit})") for m in METRICS.values()],
        initial=["requests_per_s", "latency_p95_ms"],
        widget=forms.SelectMultiple(attrs={"size": 10}),
        label="Required metrics",
        help_text="Request throughput is always required.",
    )

    def clean_workload(self) -> dict[str, Any]:
        try:
            value = json.loads(self.cleaned_data["workload"])
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"Not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
            ) from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("The workload is a JSON object, e.g. " + WORKLOAD_EXAMPLE)
        return value

    def clean_concurrency_levels(self) -> list[int]:
        raw = [p.strip() for p in self.cleaned_data["concurrency_levels"].split(",")]
        try:
            levels = [int(p) for p in raw if p]
        except ValueError as exc:
            raise forms.ValidationError(
                "Whole numbers separated by commas, e.g. 4, 8, 16."
            ) from exc
        if not levels or min(levels) < 1:
            raise forms.ValidationError("List at least one concurrency level, each 1 or more.")
        return levels


class RationaleForm(PageForm):
    id_prefix = "approve"

    rationale = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=5000)


class CompareForm(PageForm):
    id_prefix = "compare"

    versions = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple, required=False, label="Versions to compare"
    )

    def __init__(self, *args: Any, versions: list[ModelVersion], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["versions"].choices = [
            (str(v.pk), f"{v.version} ({v.get_precision_display()}, {v.hardware_profile})")
            for v in versions
        ]


# --- capacity conflicts ------------------------------------------------------------------


class ConflictForm(PageForm):
    id_prefix = "conflict"

    title = forms.CharField(max_length=300)
    pool = forms.ModelChoiceField(
        queryset=CapacityPool.objects.order_by("name"),
        required=False,
        label="Contested pool",
        help_text="The shared capacity both units want.",
    )
    business_units = forms.ModelMultipleChoiceField(
        queryset=BusinessUnit.objects.order_by("code"),
        widget=forms.CheckboxSelectMultiple,
        label="Business units involved",
    )
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=10000,
        help_text="What each unit needs, by when, and why they collide.",
    )


class ConflictResolveForm(PageForm):
    id_prefix = "resolve"

    resolution = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=5000,
        help_text="What is decided: who gets what capacity, until when, and why.",
    )
    alternatives = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=5000,
        required=False,
        label="Alternatives considered",
    )


class BoardVoteForm(forms.Form):
    """A board member's vote for or against (a waiver, a conflict's proposed resolution)."""

    decision = forms.ChoiceField(choices=[("approve", "For"), ("reject", "Against")])
    rationale = forms.CharField(max_length=5000)
