"""The registry part of the demo organisation: hardware, pools, a protocol, models in flight.

Everything is written through ``registry.services`` so the demo's history and decisions are
the same records a real organisation would have.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from governance.choices import Role
from governance.models import BoardMembership, BusinessUnit, ReviewBoard, User
from registry import services
from registry.models import (
    CapacityPool,
    CostTierApproval,
    HardwarePrice,
    HardwareProfile,
    RegisteredModel,
    RegistrationRequirement,
)


def _benchmark(points: list[tuple[int, str, str, str, str]], *, memory: str) -> bytes:
    """A Capgov JSON result: (concurrency, req/s, output tok/s, p95 ms, ttft p95 ms)."""
    return json.dumps(
        {
            "capgov_benchmark": 1,
            "tool": "vllm bench serve (converted)",
            "hardware": "1 x H100 80GB",
            "points": [
                {
                    "label": f"concurrency {c}",
                    "concurrency": c,
                    "completed": 2000,
                    "failed": 0,
                    "metrics": {
                        "requests_per_s": float(rps),
                        "output_tokens_per_s": float(tps),
                        "latency_p50_ms": float(p95) * 0.6,
                        "latency_p95_ms": float(p95),
                        "latency_p99_ms": float(p95) * 1.3,
                        "ttft_p95_ms": float(ttft),
                        "peak_memory_gb": float(memory),
                    },
                }
                for c, rps, tps, p95, ttft in points
            ],
        }
    ).encode()


FP16 = [
    (4, "4.1", "1050", "240", "60"),
    (8, "7.6", "1950", "450", "95"),
    (16, "9.8", "2500", "820", "180"),
]
INT8 = [
    (4, "6.5", "1660", "210", "48"),
    (8, "12", "3070", "480", "80"),
    (16, "15.2", "3890", "950", "150"),
]


@transaction.atomic
def seed_registry(people: dict[str, User], units: dict[str, BusinessUnit]) -> None:
    """Create the demo registry once; a second run leaves it as it is."""
    if RegisteredModel.objects.exists():
        return
    since = timezone.now() - timedelta(days=400)
    h100 = HardwareProfile.objects.create(
        name="1 x H100 80GB",
        accelerator="NVIDIA H100 80GB",
        accelerator_count=1,
        accelerator_memory_gb=Decimal(80),
    )
    l4 = HardwareProfile.objects.create(
        name="1 x L4 24GB",
        accelerator="NVIDIA L4",
        accelerator_count=1,
        accelerator_memory_gb=Decimal(24),
    )
    HardwarePrice.objects.create(
        hardware_profile=h100,
        provider="aws",
        instance_type="p5 (per GPU)",
        region="us-east-1",
        hourly_price=Decimal("4.10"),
        effective_from=since,
    )
    HardwarePrice.objects.create(
        hardware_profile=l4,
        provider="gcp",
        instance_type="g2-standard-8",
        region="europe-west4",
        hourly_price=Decimal("0.85"),
        effective_from=since,
    )
    CapacityPool.objects.create(
        code="h100-shared",
        name="Shared H100 pool",
        provider="aws",
        hardware_profile=h100,
        accelerator_count=80,
        owner=units["PLAT"],
    )
    CapacityPool.objects.create(
        code="l4-inference",
        name="L4 inference pool",
        provider="gcp",
        hardware_profile=l4,
        accelerator_count=40,
        owner=units["PLAT"],
    )
    requirement = RegistrationRequirement.objects.create(
        name="Organisation default",
        mandatory_metrics=["requests_per_s", "latency_p95_ms"],
        max_benchmark_age_days=90,
    )
    CostTierApproval.objects.create(
        requirement=requirement, min_monthly_cost=Decimal(25000), role=Role.APPROVER
    )
    ines, mark, rhea, adam = (people[n] for n in ("ines", "mark", "rhea", "adam"))
    protocol = services.protocol_create(
        by=ines,
        name="Online chat serving",
        description="ShareGPT-like chat traffic at rising concurrency.",
        workload={
            "input_tokens": {"distribution": "normal", "mean": 512, "stddev": 160},
            "output_tokens": {"distribution": "normal", "mean": 256, "stddev": 96},
        },
        concurrency_levels=[4, 8, 16],
        warmup_s=60,
        measurement_s=600,
        required_metrics=["requests_per_s", "latency_p95_ms", "latency_p99_ms"],
    )
    services.protocol_approve(protocol=protocol, by=mark, rationale="Matches production mix.")
    protocol.refresh_from_db()
    # What `vllm bench serve` writes by default (p99 only): results import under this one;
    # the organisation's requirement still asks for p95 at the gate.
    quick = services.protocol_create(
        by=ines,
        name="vLLM serving, default percentiles",
        description="Any vllm bench serve run; p95 needs --metric-percentiles 50,95,99.",
        workload={"input_tokens": {"distribution": "sharegpt"}},
        concurrency_levels=[1, 8, 32],
        required_metrics=["requests_per_s", "ttft_p99_ms"],
    )
    services.protocol_approve(protocol=quick, by=mark, rationale="Lets teams start measuring.")

    assistant = services.model_register(
        by=rhea,
        name="support-assistant",
        business_unit=units["RES"],
        task="text-generation",
        source="open-weights",
        vendor="Meta Llama 3.1 8B",
        risk_tier="medium",
        description="Answers customer questions from the help centre.",
    )
    fp16 = services.version_create(
        by=rhea,
        model=assistant,
        version="2.0-fp16",
        artifact_uri="s3://models/assistant/2.0/",
        framework="PyTorch",
        precision="fp16",
        serving_runtime="vLLM 0.8",
        hardware_profile=h100,
        parameter_count=8_030_000_000,
    )
    services.version_transition(version=fp16, action="submit", by=rhea, comment="First release")
    bench = services.benchmark_upload(
        version=fp16,
        protocol=protocol,
        hardware_profile=h100,
        data=_benchmark(FP16, memory="71.2"),
        file_name="assistant-2.0-fp16.json",
        by=rhea,
    )
    assessment = services.assessment_file(
        version=fp16,
        benchmark=bench,
        by=rhea,
        peak_rps=Decimal(60),
        daily_requests=2_500_000,
        slo_metric="latency_p95_ms",
        slo_threshold_ms=Decimal(500),
        headroom_pct=Decimal(30),
        pool=CapacityPool.objects.get(code="h100-shared"),
    )
    services.assessment_decide(
        assessment=assessment,
        by=ines,
        approve=True,
        rationale="Fits the H100 pool.",
    )
    services.version_transition(version=fp16, action="approve", by=mark, comment="Good launch.")
    services.deployment_approve(
        version=fp16, by=people["alex"], role=Role.APPROVER, rationale="Within the RES budget."
    )
    services.version_transition(version=fp16, action="deploy", by=rhea)

    int8 = services.version_create(
        by=rhea,
        model=assistant,
        version="2.1-int8",
        artifact_uri="s3://models/assistant/2.1/",
        framework="PyTorch",
        precision="int8",
        serving_runtime="vLLM 0.8",
        hardware_profile=h100,
        parameter_count=8_030_000_000,
        notes="SmoothQuant W8A8.",
    )
    int8_bench = services.benchmark_upload(
        version=int8,
        protocol=protocol,
        hardware_profile=h100,
        data=_benchmark(INT8, memory="42.8"),
        file_name="assistant-2.1-int8.json",
        by=rhea,
    )
    services.version_transition(version=int8, action="submit", by=rhea, comment="Quantised")
    # Journey 2: 100 req/s at peak, p95 under 500 ms, 30 % headroom -> 11 replicas.
    services.assessment_file(
        version=int8,
        benchmark=int8_bench,
        by=rhea,
        peak_rps=Decimal(100),
        daily_requests=4_000_000,
        slo_metric="latency_p95_ms",
        slo_threshold_ms=Decimal(500),
        headroom_pct=Decimal(30),
        pool=CapacityPool.objects.get(code="h100-shared"),
    )

    # From now on the board decides by quorum: one member of each function must vote.
    board = ReviewBoard.objects.create(
        name="Capacity review board",
        description="Meets on Thursdays; decides on deployments, assessments and conflicts.",
        quorum_rule="one_of_each",
    )
    for username, function in (("ines", "infra"), ("mark", "ml"), ("priya", "product")):
        BoardMembership.objects.create(board=board, user=people[username], function=function)

    ranker = services.model_register(
        by=adam,
        name="ads-ranker",
        business_unit=units["ADS"],
        task="ranking",
        source="in-house",
        risk_tier="high",
    )
    services.version_create(
        by=adam,
        model=ranker,
        version="3.0",
        artifact_uri="s3://models/ads-ranker/3.0/",
        framework="TensorRT",
        precision="fp16",
        serving_runtime="Triton 24.05",
        hardware_profile=l4,
        parameter_count=350_000_000,
    )
