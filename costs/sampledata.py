"""Deterministic FOCUS 1.0 billing data for demos, tests and benchmarks. Pure: polars + stdlib.

The same ``seed`` always gives the same rows, on any machine and any polars version: the
randomness is a SplitMix64 mixer written as integer polars expressions (and mirrored in
Python for the small lookup tables), not polars' own ``hash``, whose values may change
between releases.

Every usage row is one hour of one resource and SKU, the way FOCUS exports arrive. Rows are
spread evenly over the hours of the requested months; which resource a row belongs to is
drawn by weight from a catalogue of resource groups (GPU instances, inference endpoints,
foundation-model tokens, storage, networking). Money is computed as integers — quantities in
1e-4 units times unit prices in 1e-6 units gives costs in exact 1e-10 units — and only turned
into ``Decimal`` columns at the end, so the CSV carries exact decimal text with no float noise.

Profiles:

``demo``
    A realistic AI platform: AWS (two billing accounts), Google Cloud, Microsoft (a USD and a
    small EUR account), ~90 resources, tags with the mess real bills carry (``Team``,
    ``user:team``, `` team``, ``Research``) and ~10 % untagged rows. At 20,000 rows per month
    a month bills roughly $450k-$500k (USD) plus ~EUR 3k.
``bench``
    The same content with resources drawn from a pool of ~50,000 and tags from a few hundred
    distinct tag sets, so aggregating to a daily grain still leaves many rows; 33 columns
    (:data:`BENCH_COLUMNS`: the mandatory ones and those an importer needs).

Besides usage, each month carries a commitment purchase (one-time, large), the commitment's
unused remainder, and a few credits — see :func:`focus_frame`.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import polars as pl

from costs.sources import focus

__all__ = ["BENCH_COLUMNS", "FOCUS_COLUMNS", "PROFILES", "focus_frame", "write_focus_csv"]

# The 43 columns of FOCUS 1.0, in the alphabetical order providers' exports use.
FOCUS_COLUMNS: tuple[str, ...] = focus.COLUMNS_1_0
# The bench profile's leaner file: the 21 columns FOCUS 1.0 makes mandatory and the
# conditional ones an importer needs to place a cost (resource, SKU, region, tags, account,
# commitment) - the ~30-column shape the reference speeds in DESIGN.md are quoted for.
BENCH_COLUMNS: tuple[str, ...] = tuple(
    c
    for c in FOCUS_COLUMNS
    if c
    not in {
        "AvailabilityZone",
        "CommitmentDiscountCategory",
        "CommitmentDiscountName",
        "CommitmentDiscountType",
        "ConsumedUnit",
        "ContractedUnitPrice",
        "ListUnitPrice",
        "RegionName",
        "ResourceType",
        "SkuPriceId",
    }
)
PROFILES = ("demo", "bench")

# Fixed-point scales of the integer columns: cost = quantity x unit price, exactly.
_QTY_SCALE = 4
_PRICE_SCALE = 6
_COST_SCALE = _QTY_SCALE + _PRICE_SCALE
_CENT = 10 ** (_COST_SCALE - 2)

_BENCH_RESOURCES = 50_000
_BENCH_TAG_SETS = 300
# Below this many rows per month the frame holds usage only: a purchase sized from a handful
# of usage rows would be noise, and tiny frames are for shape tests.
_MIN_ROWS_PER_MONTH_FOR_SPECIALS = 20
_FORMAT = "%Y-%m-%d %H:%M:%S"

# Load through the day, in percent, for usage that follows people (tokens, traffic).
_DAY_CURVE = (60, 55, 50, 50, 55, 65, 80, 95, 110, 120, 125, 130,
              130, 128, 125, 120, 115, 110, 105, 100, 90, 80, 72, 65)  # fmt: skip

# --------------------------------------------------------------------------- randomness

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB


def _mix_int(x: int) -> int:
    """SplitMix64 of ``x`` (Python side, for the lookup tables)."""
    z = (x + _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * _M1) & _MASK
    z = ((z ^ (z >> 27)) * _M2) & _MASK
    return z ^ (z >> 31)


def _mix(expr: pl.Expr) -> pl.Expr:
    """SplitMix64 of a UInt64 expression; polars integer arithmetic wraps like the C original.

    Floor division by a power of two is the right shift, which polars has no operator for.
    """
    z = expr + pl.lit(_GOLDEN, dtype=pl.UInt64)
    z = z.xor(z // (1 << 30)) * pl.lit(_M1, dtype=pl.UInt64)
    z = z.xor(z // (1 << 27)) * pl.lit(_M2, dtype=pl.UInt64)
    return z.xor(z // (1 << 31))


def _stream_key(seed: int, salt: str) -> int:
    return _mix_int((seed & _MASK) ^ _mix_int(zlib.crc32(salt.encode())))


def _random(index: pl.Expr, seed: int, salt: str, below: int) -> pl.Expr:
    """A pseudo-random Int64 in [0, below) for every row, independent per ``salt``."""
    key = pl.lit(_stream_key(seed, salt), dtype=pl.UInt64)
    return (_mix(index + key) % below).cast(pl.Int64)


class _Stream:
    """Counter-based random integers for building lookup tables in Python."""

    def __init__(self, seed: int, salt: str) -> None:
        self._key = _stream_key(seed, salt)
        self._counter = 0

    def next(self) -> int:
        self._counter += 1
        return _mix_int((self._key + self._counter) & _MASK)

    def below(self, n: int) -> int:
        return self.next() % n

    def hex(self, digits: int) -> str:
        return "".join(f"{self.next():016x}" for _ in range(-(-digits // 16)))[:digits]

    def code(self, length: int) -> str:
        """An upper-case code like AWS SKU ids (base-32 alphabet without look-alikes)."""
        alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
        return "".join(alphabet[self.below(len(alphabet))] for _ in range(length))


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class _Account:
    provider: str
    publisher: str
    issuer: str
    account_id: str
    account_name: str
    currency: str
    # Negotiated discount off list in basis points (enterprise agreements).
    discount_bp: int


@dataclass(frozen=True)
class _SubAccount:
    account: str
    sub_id: str
    name: str


@dataclass(frozen=True)
class _Product:
    service: str
    category: str
    description: str
    pricing_unit: str
    consumed_unit: str
    list_price: str
    resource_type: str
    id_template: str
    # ConsumedQuantity / PricingQuantity, e.g. 1000 tokens per "1K tokens".
    consumed_factor: int = 1
    spot_description: str = ""


@dataclass(frozen=True)
class _Commitment:
    sub: str
    commitment_id: str
    name: str
    category: str
    kind: str
    # Commitment rate as a share of list, in basis points.
    rate_bp: int
    # Share of the commitment the covered usage uses; the rest is billed as Unused.
    utilisation_bp: int


@dataclass(frozen=True)
class _Group:
    """Resources of one product in one sub-account and region, and their share of rows."""

    sub: str
    product: str
    region: str
    prefix: str
    count: int
    weight: int
    tags: tuple[Mapping[str, object] | None, ...]
    quantity: str = "1"
    jitter_pct: int = 0
    follows_day: bool = False
    commitment: str = ""
    committed_pct: int = 0
    spot_pct: int = 0


@dataclass(frozen=True)
class _Credit:
    sub: str
    service: str
    category: str
    description: str
    # Size as basis points of the sub-account's billed usage that month.
    share_bp: int
    tags: Mapping[str, object] | None


_AWS = ("AWS", "Amazon Web Services, Inc.", "Amazon Web Services, Inc.")
_GCP = ("Google Cloud", "Google Cloud", "Google Cloud")
_AZURE = ("Microsoft", "Microsoft", "Microsoft")

_ACCOUNTS: dict[str, _Account] = {
    # The leading zero is deliberate: account ids are text and must survive as such.
    "aws-main": _Account(*_AWS, "004518273645", "northwind-ai-payer", "USD", 600),
    "aws-labs": _Account(*_AWS, "739104628553", "northwind-ai-labs", "USD", 0),
    "gcp": _Account(*_GCP, "01A2B3-C4D5E6-F7A8B9", "Northwind AI (GCP)", "USD", 300),
    "azure": _Account(*_AZURE, "75300481", "Northwind AI EA", "USD", 500),
    "azure-eu": _Account(*_AZURE, "75300977", "Northwind AI Europe GmbH", "EUR", 0),
}

_SUBS: dict[str, _SubAccount] = {
    "payer": _SubAccount("aws-main", "004518273645", "payer-management"),
    "mlr-prod": _SubAccount("aws-main", "310927461185", "ml-research-prod"),
    "ads-prod": _SubAccount("aws-main", "527410938264", "ads-ranking-prod"),
    "search-prod": _SubAccount("aws-main", "648203195577", "search-prod"),
    "platform": _SubAccount("aws-main", "772016439058", "platform-shared"),
    "mlr-dev": _SubAccount("aws-labs", "139582047716", "ml-research-dev"),
    "ads-staging": _SubAccount("aws-labs", "281946650327", "ads-ranking-staging"),
    "gcp-research": _SubAccount("gcp", "nw-research-training", "Research Training"),
    "gcp-search": _SubAccount("gcp", "nw-search-serving", "Search Serving"),
    "gcp-platform": _SubAccount("gcp", "nw-platform-data", "Platform Data"),
    "az-ads": _SubAccount(
        "azure", "/subscriptions/3b8f2c1d-5e6a-4f7b-9c0d-1e2f3a4b5c6d", "ads-ml-prod"
    ),
    "az-research": _SubAccount(
        "azure", "/subscriptions/8d2e4f60-71a9-4b3c-8e5d-0f1a2b3c4d5e", "research-azure"
    ),
    "az-eu-search": _SubAccount(
        "azure-eu", "/subscriptions/c4a1e9b7-2d3f-4e5a-9b8c-7d6e5f4a3b2c", "search-eu-prod"
    ),
}

_REGIONS = {
    "us-east-1": "US East (N. Virginia)",
    "us-west-2": "US West (Oregon)",
    "us-central1": "Iowa",
    "eastus": "East US",
    "westeurope": "West Europe",
}

_EC2_ID = "arn:aws:ec2:{region}:{sub_id}:instance/i-{hex}"
_SM_ID = "arn:aws:sagemaker:{region}:{sub_id}:endpoint/{name}"
_BEDROCK_ID = "arn:aws:bedrock:{region}:{sub_id}:application-inference-profile/{name}"
_GCE_ID = "//compute.googleapis.com/projects/{sub_id}/zones/{region}-a/instances/{name}"
_VERTEX_ID = "//aiplatform.googleapis.com/projects/{sub_id}/locations/{region}/endpoints/{name}"
_AML_ID = (
    "{sub_id}/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices"
    "/workspaces/ml-workspace/onlineEndpoints/{name}"
)


def _ec2(size: str, price: str, gpu: str) -> _Product:
    return _Product(
        "Amazon Elastic Compute Cloud",
        "Compute",
        f"${price} per On Demand Linux {size} Instance Hour ({gpu})",
        "Hours",
        "Hours",
        price,
        "Instance",
        _EC2_ID,
        spot_description=f"Linux/UNIX {size} Spot Instance-hour",
    )


def _sagemaker(size: str, price: str) -> _Product:
    return _Product(
        "Amazon SageMaker",
        "AI and Machine Learning",
        f"${price} per Hosting {size} hour in US East (N. Virginia)",
        "Hours",
        "Hours",
        price,
        "Endpoint",
        _SM_ID,
    )


def _tokens(service: str, description: str, price: str, kind: str, template: str) -> _Product:
    return _Product(
        service,
        "AI and Machine Learning",
        description,
        "1K tokens",
        "Tokens",
        price,
        kind,
        template,
        consumed_factor=1000,
    )


_PRODUCTS: dict[str, _Product] = {
    "ec2-p5": _ec2("p5.48xlarge", "98.32", "8x NVIDIA H100"),
    "ec2-p4d": _ec2("p4d.24xlarge", "32.7726", "8x NVIDIA A100"),
    "ec2-g5-12x": _ec2("g5.12xlarge", "5.672", "4x NVIDIA A10G"),
    "ec2-g5-x": _ec2("g5.xlarge", "1.006", "1x NVIDIA A10G"),
    "ec2-m6i": _ec2("m6i.4xlarge", "0.768", "no GPU"),
    "sm-g5-12x": _sagemaker("ml.g5.12xlarge", "7.09"),
    "sm-g5-2x": _sagemaker("ml.g5.2xlarge", "1.515"),
    "sm-g5-x": _sagemaker("ml.g5.xlarge", "1.408"),
    "sm-p4d": _sagemaker("ml.p4d.24xlarge", "37.688"),
    "sm-m5": _sagemaker("ml.m5.xlarge", "0.23"),
    "bedrock-in": _tokens(
        "Amazon Bedrock",
        "Claude 3.5 Sonnet input tokens (per 1K) in US East (N. Virginia)",
        "0.003",
        "Inference Profile",
        _BEDROCK_ID,
    ),
    "bedrock-out": _tokens(
        "Amazon Bedrock",
        "Claude 3.5 Sonnet output tokens (per 1K) in US East (N. Virginia)",
        "0.015",
        "Inference Profile",
        _BEDROCK_ID,
    ),
    "s3": _Product(
        "Amazon Simple Storage Service",
        "Storage",
        "$0.021 per GB - storage used per month over 500 TB",
        "GB-Mo",
        "GB-Mo",
        "0.021",
        "Bucket",
        "arn:aws:s3:::{name}",
    ),
    "nat": _Product(
        "Amazon Virtual Private Cloud",
        "Networking",
        "$0.045 per GB Data Processed by NAT Gateways",
        "GB",
        "GB",
        "0.045",
        "NAT Gateway",
        "arn:aws:ec2:{region}:{sub_id}:natgateway/nat-{hex}",
    ),
    "elb": _Product(
        "Elastic Load Balancing",
        "Networking",
        "$0.008 per used Application load balancer capacity unit-hour (or partial hour)",
        "LCU-Hours",
        "LCU-Hours",
        "0.008",
        "Load Balancer",
        "arn:aws:elasticloadbalancing:{region}:{sub_id}:loadbalancer/app/{name}/{hex}",
    ),
    "eks": _Product(
        "Amazon Elastic Kubernetes Service",
        "Compute",
        "$0.10 per hour per EKS cluster",
        "Hours",
        "Hours",
        "0.10",
        "Cluster",
        "arn:aws:eks:{region}:{sub_id}:cluster/{name}",
    ),
    "gce-a3-gpu": _Product(
        "Compute Engine",
        "Compute",
        "Nvidia H100 80GB GPU running in Americas",
        "Hours",
        "Hours",
        "11.0612",
        "Compute Engine Instance",
        _GCE_ID,
    ),
    "gce-a3-core": _Product(
        "Compute Engine",
        "Compute",
        "A3 Instance Core running in Americas",
        "Hours",
        "Hours",
        "0.031611",
        "Compute Engine Instance",
        _GCE_ID,
    ),
    "vertex-l4": _Product(
        "Vertex AI",
        "AI and Machine Learning",
        "Vertex AI Prediction: G2 instance with NVIDIA L4 running in Americas",
        "Hours",
        "Hours",
        "1.384",
        "Vertex AI Endpoint",
        _VERTEX_ID,
    ),
    "vertex-a100": _Product(
        "Vertex AI",
        "AI and Machine Learning",
        "Custom training: a2-highgpu-8g (8x NVIDIA A100 40GB) running in Americas",
        "Hours",
        "Hours",
        "33.8611",
        "Vertex AI Custom Job",
        "//aiplatform.googleapis.com/projects/{sub_id}/locations/{region}/customJobs/{name}",
    ),
    "vertex-gemini": _tokens(
        "Vertex AI",
        "Gemini 1.5 Pro input tokens (per 1K) in Americas",
        "0.00125",
        "Vertex AI Endpoint",
        _VERTEX_ID,
    ),
    "gcs": _Product(
        "Cloud Storage",
        "Storage",
        "Standard Storage US Regional",
        "GiB-Mo",
        "GiB-Mo",
        "0.020",
        "Bucket",
        "//storage.googleapis.com/projects/_/buckets/{name}",
    ),
    "gcp-egress": _Product(
        "Networking",
        "Networking",
        "Network Internet Data Transfer Out from Americas to Americas",
        "GiB",
        "GiB",
        "0.12",
        "Network",
        "//compute.googleapis.com/projects/{sub_id}/global/networks/{name}",
    ),
    "aml-a100": _Product(
        "Azure Machine Learning",
        "AI and Machine Learning",
        "NC A100 v4 Series - NC24ads A100 v4",
        "Hours",
        "Hours",
        "3.673",
        "Online Endpoint",
        _AML_ID,
    ),
    "aml-nd96": _Product(
        "Azure Machine Learning",
        "AI and Machine Learning",
        "NDasr A100 v4 Series - ND96asr A100 v4",
        "Hours",
        "Hours",
        "27.197",
        "Compute Cluster",
        "{sub_id}/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices"
        "/workspaces/ml-workspace/computes/{name}",
    ),
    "aoai": _tokens(
        "Azure OpenAI",
        "gpt-4o-0806 Input global Tokens (per 1K)",
        "0.0025",
        "Cognitive Services Account",
        "{sub_id}/resourceGroups/rg-genai/providers/Microsoft.CognitiveServices/accounts/{name}",
    ),
    "blob": _Product(
        "Storage",
        "Storage",
        "Hot LRS Data Stored",
        "GB-Mo",
        "GB-Mo",
        "0.0184",
        "Storage Account",
        "{sub_id}/resourceGroups/rg-data/providers/Microsoft.Storage/storageAccounts/{name}",
    ),
    "aml-a100-eu": _Product(
        "Azure Machine Learning",
        "AI and Machine Learning",
        "NC A100 v4 Series - NC24ads A100 v4 (West Europe)",
        "Hours",
        "Hours",
        "3.396",
        "Online Endpoint",
        _AML_ID,
    ),
}

_COMMITMENTS: dict[str, _Commitment] = {
    "aws-sp": _Commitment(
        "payer",
        "arn:aws:savingsplans::004518273645:savingsplan/9f1c7b52-3e8a-4d0b-a6c1-5e2f8b7d4a10",
        "Compute Savings Plan - GPU fleet (1 year)",
        "Spend",
        "Compute Savings Plan",
        6600,
        9200,
    ),
}

# Tag sets as teams really write them: the allocation rules key on `team` / `cost-center`,
# and the variants below are the mess they must normalise.
_RESEARCH = {"team": "research", "cost-center": "4410", "env": "prod", "project": "llm-pretrain"}
_RESEARCH_CAPS = {"Team": "Research", "cost-center": "4410", "project": "llm-pretrain"}
_RESEARCH_FLAG = {"team": "research", "env": "prod", "gpu-reserved": True}
_ML_RESEARCH = {"team": "ml-research", "cost-center": "4410", "env": "prod", "project": "evals"}
_ADS = {"team": "ads", "cost-center": "5520", "env": "prod", "service": "recsys"}
_ADS_CUR = {"user:team": "ads", "user:cost-center": "5520", "env": "prod"}
_ADS_CANARY = {"team": "ads", "cost-center": "5520", "env": "canary", "service": "recsys"}
_SEARCH = {"team": "search", "cost-center": "6630", "env": "prod", "service": "rerank"}
_SEARCH_SPACE = {" team": "search", "env": "prod"}
_SEARCH_CASE = {"team": "Search", "cost-center": "6630", "env": "Prod"}
_SEARCH_EU = {"team": "search", "cost-center": "6630", "env": "prod", "region": "eu"}
_PLATFORM = {"team": "platform", "cost-center": "7700", "env": "prod", "component": "gpu-pool"}
_PLATFORM_CAPS = {"Team": "platform", "cost-center": "7700"}

# Weights are relative shares of usage rows; quantities are per row (one hour).
_GROUPS: tuple[_Group, ...] = (
    # Research: the big pre-training fleet, mostly under the Savings Plan.
    _Group("mlr-prod", "ec2-p5", "us-east-1", "research-p5-train", 4, 85,
           (_RESEARCH, _RESEARCH, _RESEARCH_CAPS, _RESEARCH_FLAG),
           commitment="aws-sp", committed_pct=75),
    _Group("mlr-prod", "ec2-p4d", "us-east-1", "mlr-p4d-eval", 3, 50, (_ML_RESEARCH,),
           commitment="aws-sp", committed_pct=60),
    _Group("mlr-prod", "sm-g5-12x", "us-east-1", "llm-summarize-beta", 1, 15, (_RESEARCH_CAPS,)),
    _Group("mlr-prod", "bedrock-in", "us-east-1", "research-assistant", 1, 15, (_RESEARCH,),
           quantity="900", jitter_pct=60, follows_day=True),
    _Group("mlr-prod", "bedrock-out", "us-east-1", "research-assistant", 1, 15, (_RESEARCH,),
           quantity="180", jitter_pct=60, follows_day=True),
    _Group("mlr-prod", "s3", "us-east-1", "nw-training-datasets", 1, 10, (_RESEARCH,),
           quantity="547.9452", jitter_pct=2),
    _Group("mlr-dev", "ec2-g5-12x", "us-east-1", "mlr-dev-g5", 4, 30, (_ML_RESEARCH, None),
           spot_pct=70),
    _Group("gcp-research", "gce-a3-gpu", "us-central1", "a3-pretrain", 3, 45,
           (_RESEARCH, _RESEARCH_CAPS), quantity="8"),
    _Group("gcp-research", "gce-a3-core", "us-central1", "a3-pretrain", 3, 45,
           (_RESEARCH, _RESEARCH_CAPS), quantity="208"),
    _Group("gcp-research", "vertex-a100", "us-central1", "finetune-job", 2, 25, (_RESEARCH,)),
    _Group("az-research", "aml-nd96", "eastus", "azure-pretrain", 1, 15, (_RESEARCH,)),
    # Ads: ranking models trained on GPUs and served from SageMaker and Azure ML.
    _Group("ads-prod", "ec2-p5", "us-east-1", "ads-p5-ranker", 2, 55, (_ADS, _ADS_CUR),
           commitment="aws-sp", committed_pct=50),
    _Group("ads-prod", "ec2-p4d", "us-east-1", "ads-p4d-train", 2, 80, (_ADS, _ADS_CUR),
           commitment="aws-sp", committed_pct=60),
    _Group("ads-prod", "ec2-g5-12x", "us-east-1", "ads-g5-features", 4, 30, (_ADS,)),
    _Group("ads-prod", "sm-g5-12x", "us-east-1", "recsys-prod", 1, 60, (_ADS,)),
    _Group("ads-prod", "sm-g5-2x", "us-east-1", "recsys-canary", 1, 15, (_ADS_CANARY,)),
    _Group("ads-prod", "sm-p4d", "us-east-1", "ads-ctr-v7", 1, 40, (_ADS_CUR,)),
    _Group("ads-prod", "s3", "us-east-1", "nw-ads-features", 1, 10, (_ADS,),
           quantity="82.1918", jitter_pct=2),
    _Group("ads-prod", "elb", "us-east-1", "recsys-alb", 1, 10, (_ADS,),
           quantity="42", jitter_pct=40, follows_day=True),
    _Group("az-ads", "aml-a100", "eastus", "ads-bidder", 2, 30, (_ADS, _ADS_CUR)),
    _Group("az-ads", "aoai", "eastus", "ads-copywriter", 1, 20, (_ADS,),
           quantity="6000", jitter_pct=60, follows_day=True),
    # Search: rerankers and embeddings, LLM answers, one European endpoint billed in EUR.
    _Group("search-prod", "ec2-p4d", "us-east-1", "search-p4d-ltr", 2, 75,
           (_SEARCH, _SEARCH_CASE), commitment="aws-sp", committed_pct=40),
    _Group("search-prod", "ec2-g5-12x", "us-west-2", "search-g5-embed", 6, 40,
           (_SEARCH, _SEARCH_SPACE, _SEARCH_CASE)),
    _Group("search-prod", "sm-g5-12x", "us-east-1", "search-rerank-v3", 1, 20, (_SEARCH,)),
    _Group("search-prod", "bedrock-in", "us-east-1", "search-answers", 1, 15, (_SEARCH,),
           quantity="4800", jitter_pct=50, follows_day=True),
    _Group("search-prod", "bedrock-out", "us-east-1", "search-answers", 1, 15, (_SEARCH,),
           quantity="600", jitter_pct=50, follows_day=True),
    _Group("gcp-search", "vertex-l4", "us-central1", "search-ltr-endpoint", 2, 30,
           (_SEARCH, _SEARCH_CASE), quantity="4"),
    _Group("gcp-search", "vertex-a100", "us-central1", "search-ltr-train", 1, 30, (_SEARCH,)),
    _Group("gcp-search", "vertex-gemini", "us-central1", "query-rewrite", 1, 20, (_SEARCH,),
           quantity="12000", jitter_pct=50, follows_day=True),
    _Group("az-eu-search", "aml-a100-eu", "westeurope", "search-eu-rerank", 1, 30,
           (_SEARCH_EU,), quantity="2"),
    # Platform: the shared inference pool and cluster, artefacts and feature store.
    _Group("platform", "ec2-p4d", "us-east-1", "platform-gpu-pool", 4, 60,
           (_PLATFORM, _PLATFORM_CAPS), commitment="aws-sp", committed_pct=60),
    _Group("platform", "ec2-g5-12x", "us-east-1", "platform-inference-pool", 8, 60,
           (_PLATFORM, _PLATFORM, _PLATFORM_CAPS)),
    _Group("platform", "ec2-m6i", "us-east-1", "platform-eks-node", 10, 30,
           (_PLATFORM, _PLATFORM, _PLATFORM_CAPS)),
    _Group("platform", "eks", "us-east-1", "platform-ml", 2, 10, (_PLATFORM,)),
    _Group("platform", "sm-g5-x", "us-east-1", "embeddings-bge-large", 1, 15, (_PLATFORM,)),
    _Group("platform", "s3", "us-east-1", "nw-model-artifacts", 1, 10, (_PLATFORM,),
           quantity="493.1507", jitter_pct=2),
    _Group("gcp-platform", "gcs", "us-central1", "nw-feature-store", 1, 10, (_PLATFORM,),
           quantity="287.6712", jitter_pct=2),
    # Untagged: what the allocation rules cannot claim and the shared-cost split must.
    _Group("mlr-dev", "ec2-p4d", "us-east-1", "jupyter-gpu-adhoc", 1, 40, (None,)),
    _Group("ads-prod", "sm-m5", "us-east-1", "fraud-detector-v2", 1, 10, (None,)),
    _Group("ads-staging", "sm-g5-2x", "us-east-1", "recsys-staging", 1, 10, (None,)),
    _Group("platform", "s3", "us-east-1", "nw-platform-logs", 1, 5, (None,),
           quantity="41.0959", jitter_pct=5),
    _Group("platform", "nat", "us-east-1", "nat-shared", 2, 35, (None,),
           quantity="380", jitter_pct=50, follows_day=True),
    _Group("gcp-platform", "gcp-egress", "us-central1", "default-vpc", 1, 15, (None,),
           quantity="120", jitter_pct=60, follows_day=True),
    _Group("az-research", "blob", "eastus", "nwresearchblob", 1, 10, (None,),
           quantity="68.4932", jitter_pct=3),
)  # fmt: skip

_CREDITS: tuple[_Credit, ...] = (
    _Credit("ads-prod", "Amazon SageMaker", "AI and Machine Learning",
            "SLA credit: Amazon SageMaker real-time inference availability", 80,
            {"team": "ads", "cost-center": "5520"}),
    _Credit("mlr-prod", "Amazon Bedrock", "AI and Machine Learning",
            "Promotional credit: AWS Generative AI Accelerator", 150, None),
    _Credit("gcp-research", "Vertex AI", "AI and Machine Learning",
            "Promotion: Vertex AI committed spend incentive", 120, None),
)  # fmt: skip


# --------------------------------------------------------------------------- helpers


def _fixed(value: str, scale: int) -> int:
    """Decimal text -> integer in units of 10**-scale, refusing anything inexact."""
    scaled = Decimal(value).scaleb(scale)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than {scale} decimals")
    return int(scaled)


def _tags_json(tags: Mapping[str, object] | None) -> str | None:
    # json.dumps' default separators give the '{"k": "v", ...}' spacing providers write.
    return None if tags is None else json.dumps(dict(tags))


def _sku(provider: str, key: str) -> tuple[str, str | None]:
    """SKU id (and SKU price id) per product in each provider's own style.

    Independent of the seed: a provider's SKU for a product does not change between bills.
    """
    stream = _Stream(0, f"sku:{key}")
    if provider == "AWS":
        sku = stream.code(16)
        return sku, f"{sku}.JRTCKXETXF.{stream.code(10)}"
    if provider == "Google Cloud":
        sku = "-".join(stream.hex(4).upper() for _ in range(3))
        return sku, None
    sku = f"DZH318Z0{stream.code(4)}"
    return sku, f"{sku}/{stream.code(4)}"


def _parse_months(months: tuple[str, ...]) -> list[tuple[dt.datetime, dt.datetime]]:
    """("YYYY-MM", ...) -> sorted half-open UTC billing periods [month start, next start)."""
    if not months:
        raise ValueError("months must name at least one month")
    if len(set(months)) != len(months):
        raise ValueError(f"months has duplicates: {months}")
    periods = []
    for month in sorted(months):
        match = re.fullmatch(r"(\d{4})-(\d{2})", month)
        if not match or not 1 <= int(match[2]) <= 12:
            raise ValueError(f"month {month!r} is not YYYY-MM")
        year, number = int(match[1]), int(match[2])
        start = dt.datetime(year, number, 1, tzinfo=dt.UTC)
        days = calendar.monthrange(year, number)[1]
        periods.append((start, start + dt.timedelta(days=days)))
    return periods


def _hours(periods: list[tuple[dt.datetime, dt.datetime]]) -> pl.DataFrame:
    """One row per hour of the months: the charge and billing period texts, and the load."""
    frames = []
    for index, (start, end) in enumerate(periods):
        hours = pl.datetime_range(start, end, "1h", closed="left", eager=True)
        frames.append(
            pl.DataFrame({"_start": hours}).with_columns(
                _month=pl.lit(index, dtype=pl.Int64),
                ChargePeriodStart=pl.col("_start").dt.strftime(_FORMAT),
                ChargePeriodEnd=(pl.col("_start") + pl.duration(hours=1)).dt.strftime(_FORMAT),
                BillingPeriodStart=pl.lit(start.strftime(_FORMAT)),
                BillingPeriodEnd=pl.lit(end.strftime(_FORMAT)),
                _load=pl.col("_start")
                .dt.hour()
                .cast(pl.Int64)
                .replace_strict(dict(enumerate(_DAY_CURVE)), return_dtype=pl.Int64),
            )
        )
    return pl.concat(frames).drop("_start").with_columns(pl.col(pl.String).cast(pl.Categorical))


def _bench_tag_pool(seed: int) -> list[Mapping[str, object] | None]:
    """A few hundred distinct tag sets with the same kinds of mess as the demo ones."""
    stream = _Stream(seed, "bench-tags")
    teams = ["research", "ml-research", "ads", "search", "platform", "speech", "vision"]
    centres = {"research": "4410", "ml-research": "4410", "ads": "5520", "search": "6630"}
    apps = [f"{a}-{b}" for a in ("recsys", "ranker", "embed", "llm", "asr", "ocr")
            for b in ("api", "batch", "train", "eval", "canary")]  # fmt: skip
    keys = ["team"] * 12 + ["Team", "user:team", " team"]
    pool: dict[str, Mapping[str, object] | None] = {}
    for _ in range(_BENCH_TAG_SETS * 4):
        if len(pool) >= _BENCH_TAG_SETS:
            break
        team = teams[stream.below(len(teams))]
        value = team.capitalize() if stream.below(10) == 0 else team
        tags: dict[str, object] = {keys[stream.below(len(keys))]: value}
        if stream.below(4):
            tags["cost-center"] = centres.get(team, "7700")
        tags["env"] = ("prod", "prod", "staging", "dev")[stream.below(4)]
        tags["app"] = apps[stream.below(len(apps))]
        if stream.below(20) == 0:
            tags["gpu-reserved"] = True
        pool[json.dumps(tags, sort_keys=True)] = tags
    # One untagged entry in ten: the share of spend real bills leave untagged.
    entries: list[Mapping[str, object] | None] = list(pool.values())
    return entries + [None] * (len(entries) // 9)


def _catalog(seed: int, profile: str) -> pl.DataFrame:
    """One row per resource and SKU with everything static about it, and its row weight.

    Text columns are ``Categorical``: a million-row frame gathered from ~50k resources then
    holds small integer codes instead of copies of every string, which keeps generation fast
    and its memory small.
    """
    if profile == "bench":
        total_weight = sum(g.weight for g in _GROUPS)
        counts = [max(1, _BENCH_RESOURCES * g.weight // total_weight) for g in _GROUPS]
        tag_pool = [_tags_json(t) for t in _bench_tag_pool(seed)]
    else:
        counts = [g.count for g in _GROUPS]
        tag_pool = []
    group_rows = [_group_row(index, group) for index, group in enumerate(_GROUPS)]
    owners: list[int] = []
    names: list[str] = []
    resource_ids: list[str] = []
    tags: list[str | None] = []
    zones: list[str | None] = []
    zone_picks = _Stream(seed, "zones")
    tag_picks = _Stream(seed, "resource-tags")
    for index, (group, count) in enumerate(zip(_GROUPS, counts, strict=True)):
        product = _PRODUCTS[group.product]
        sub_id = _SUBS[group.sub].sub_id
        has_zone = product.resource_type == "Instance"
        # Two SKUs of one instance (GPU + cores) share a prefix and must name the same
        # resources, so id randomness is keyed by sub-account and prefix, not by group.
        id_stream = _Stream(seed, f"ids:{group.sub}:{group.prefix}")
        group_tags = [_tags_json(t) for t in group.tags]
        for k in range(count):
            if profile == "bench":
                name = f"{group.prefix}-{k:05d}"
                tags.append(tag_pool[tag_picks.below(len(tag_pool))])
            else:
                name = group.prefix if count == 1 else f"{group.prefix}-{k + 1:02d}"
                tags.append(group_tags[k % len(group_tags)])
            owners.append(index)
            names.append(name)
            resource_ids.append(
                product.id_template.format(
                    region=group.region, sub_id=sub_id, name=name, hex=id_stream.hex(17)
                )
            )
            zones.append(f"{group.region}{'abcd'[zone_picks.below(4)]}" if has_zone else None)
    schema = {
        name: pl.Boolean()
        if name == "_follows_day"
        else pl.Int64()
        if name.startswith("_") and name != "_spot_description"
        else pl.String()
        for name in group_rows[0]
    }
    frame = pl.DataFrame(group_rows, schema=schema)[pl.Series(owners)].with_columns(
        AvailabilityZone=pl.Series(zones, dtype=pl.String),
        ResourceId=pl.Series(resource_ids, dtype=pl.String),
        ResourceName=pl.Series(names, dtype=pl.String),
        Tags=pl.Series(tags, dtype=pl.String),
    )
    return frame.with_columns(pl.col(pl.String).cast(pl.Categorical))


def _group_row(index: int, group: _Group) -> dict[str, object]:
    """What every resource of ``group`` shares: account, product, prices, weight, options."""
    product = _PRODUCTS[group.product]
    sub = _SUBS[group.sub]
    account = _ACCOUNTS[sub.account]
    commitment = _COMMITMENTS.get(group.commitment)
    list_price = _fixed(product.list_price, _PRICE_SCALE)
    sku, sku_price = _sku(account.provider, group.product)
    return {
        "_group": index,
        "_weight": group.weight,
        "_list": list_price,
        "_contract": list_price * (10_000 - account.discount_bp) // 10_000,
        "_commit_rate": list_price * commitment.rate_bp // 10_000 if commitment else None,
        "_qty": _fixed(group.quantity, _QTY_SCALE),
        "_jitter": group.jitter_pct,
        "_follows_day": group.follows_day,
        "_committed_pct": group.committed_pct,
        "_spot_pct": group.spot_pct,
        "_consumed_factor": product.consumed_factor,
        "_spot_description": product.spot_description or product.description,
        "BillingAccountId": account.account_id,
        "BillingAccountName": account.account_name,
        "BillingCurrency": account.currency,
        "ChargeDescription": product.description,
        "CommitmentDiscountCategory": commitment.category if commitment else None,
        "CommitmentDiscountId": commitment.commitment_id if commitment else None,
        "CommitmentDiscountName": commitment.name if commitment else None,
        "CommitmentDiscountType": commitment.kind if commitment else None,
        "ConsumedUnit": product.consumed_unit,
        "InvoiceIssuerName": account.issuer,
        "PricingUnit": product.pricing_unit,
        "ProviderName": account.provider,
        "PublisherName": account.publisher,
        "RegionId": group.region,
        "RegionName": _REGIONS[group.region],
        "ResourceType": product.resource_type,
        "ServiceCategory": product.category,
        "ServiceName": product.service,
        "SkuId": sku,
        "SkuPriceId": sku_price,
        "SubAccountId": sub.sub_id,
        "SubAccountName": sub.name,
    }


def _pick_resources(catalog: pl.DataFrame, index: pl.DataFrame, seed: int) -> pl.Series:
    """Row -> catalogue row: a group by weight, then one of its resources uniformly."""
    groups = catalog.group_by("_group", maintain_order=True).agg(
        _weight=pl.col("_weight").first(), _count=pl.len().cast(pl.Int64)
    )
    cumulative = groups["_weight"].cum_sum()
    offsets = groups["_count"].cum_sum() - groups["_count"]
    draw = index.select(
        g=_random(pl.col("_i"), seed, "group", int(cumulative[-1])),
        r=_random(pl.col("_i"), seed, "resource", 1 << 40),
    )
    group = cumulative.search_sorted(draw["g"], side="right")
    return (
        pl.DataFrame(
            {"o": offsets.gather(group), "c": groups["_count"].gather(group), "r": draw["r"]}
        )
        .select(pl.col("o") + pl.col("r") % pl.col("c"))
        .to_series()
    )


def _usage(*, rows: int, seed: int, catalog: pl.DataFrame, hours: pl.DataFrame) -> pl.DataFrame:
    """Hourly usage rows with integer money columns (see the module docstring for scales)."""
    index = pl.DataFrame({"_i": pl.int_range(rows, dtype=pl.UInt64, eager=True)})
    slot = index.select((pl.col("_i") * hours.height // max(rows, 1)).cast(pl.Int64)).to_series()
    frame = pl.concat(
        [catalog[_pick_resources(catalog, index, seed)], hours[slot], index], how="horizontal"
    )
    i = pl.col("_i")
    roll = _random(i, seed, "pricing", 100)
    committed = roll < pl.col("_committed_pct")
    spot = ~committed & (roll >= 100 - pl.col("_spot_pct"))
    swing = 2 * pl.col("_jitter") + 1
    percent = 100 - pl.col("_jitter") + _random(i, seed, "quantity", 1 << 40) % swing
    load = pl.when(pl.col("_follows_day")).then(pl.col("_load")).otherwise(100)
    spot_price = pl.col("_list") * (30 + _random(i, seed, "spot", 11)) // 100
    frame = frame.with_columns(
        _committed=committed,
        _spot=spot,
        _qty=pl.col("_qty") * percent * load // 10_000,
        _list_unit=pl.when(spot).then(spot_price).otherwise(pl.col("_list")),
        _contract_unit=pl.when(spot).then(spot_price).otherwise(pl.col("_contract")),
    ).with_columns(
        _list_cost=pl.col("_qty") * pl.col("_list_unit"),
        _contracted_cost=pl.col("_qty") * pl.col("_contract_unit"),
    )
    covered = pl.col("_committed")
    return frame.with_columns(
        _billed=pl.when(covered).then(0).otherwise(pl.col("_contracted_cost")),
        _effective=pl.when(covered)
        .then(pl.col("_qty") * pl.col("_commit_rate"))
        .otherwise(pl.col("_contracted_cost")),
        ChargeCategory=pl.lit("Usage"),
        ChargeClass=pl.lit(None, dtype=pl.String),
        ChargeFrequency=pl.lit("Usage-Based"),
        ChargeDescription=pl.when(pl.col("_spot"))
        .then(pl.col("_spot_description"))
        .otherwise(pl.col("ChargeDescription")),
        PricingCategory=pl.when(covered)
        .then(pl.lit("Committed"))
        .when(pl.col("_spot"))
        .then(pl.lit("Dynamic"))
        .otherwise(pl.lit("Standard")),
        CommitmentDiscountStatus=pl.when(covered).then(pl.lit("Used")),
        **{
            name: pl.when(covered).then(pl.col(name))
            for name in (
                "CommitmentDiscountCategory",
                "CommitmentDiscountId",
                "CommitmentDiscountName",
                "CommitmentDiscountType",
            )
        },
    )


_INT_COLUMNS = (
    "_qty",
    "_consumed_factor",
    "_list_unit",
    "_contract_unit",
    "_list_cost",
    "_contracted_cost",
    "_billed",
    "_effective",
)
_TEXT_COLUMNS = tuple(
    c
    for c in FOCUS_COLUMNS
    if c
    not in {
        "BilledCost",
        "ConsumedQuantity",
        "ContractedCost",
        "ContractedUnitPrice",
        "EffectiveCost",
        "ListCost",
        "ListUnitPrice",
        "PricingQuantity",
    }
)


def _special_rows(
    *,
    usage: pl.DataFrame,
    periods: list[tuple[dt.datetime, dt.datetime]],
) -> pl.DataFrame:
    """Per month: each commitment's purchase and unused remainder, and the credits.

    Sizes come from the month's usage, so the commitment's used and unused effective cost
    add up to its purchase exactly, and credits stay a plausible share at any row count.
    """
    per_month = usage.group_by("_month", "SubAccountId", "CommitmentDiscountId").agg(
        billed=pl.col("_billed").sum(), effective=pl.col("_effective").sum()
    )
    totals: dict[tuple[int, str, str | None], tuple[int, int]] = {
        (r["_month"], r["SubAccountId"], r["CommitmentDiscountId"]): (r["billed"], r["effective"])
        for r in per_month.iter_rows(named=True)
    }
    records: list[dict[str, object]] = []
    for month, (start, end) in enumerate(periods):
        period = {
            "BillingPeriodStart": start.strftime(_FORMAT),
            "BillingPeriodEnd": end.strftime(_FORMAT),
            "ChargePeriodStart": start.strftime(_FORMAT),
            "ChargePeriodEnd": end.strftime(_FORMAT),
            "_month": month,
        }
        for commitment in _COMMITMENTS.values():
            used = sum(
                effective
                for (m, _, cid), (_, effective) in totals.items()
                if m == month and cid == commitment.commitment_id
            )
            # Round the purchase up to whole dollars, as commitments are bought.
            dollars = 10**_COST_SCALE
            purchase = -(-used * 10_000 // commitment.utilisation_bp // dollars) * dollars
            base = _owner(commitment.sub) | period
            commitment_cols = {
                "CommitmentDiscountCategory": commitment.category,
                "CommitmentDiscountId": commitment.commitment_id,
                "CommitmentDiscountName": commitment.name,
                "CommitmentDiscountType": commitment.kind,
                "ResourceId": commitment.commitment_id,
                "ResourceName": commitment.name,
                "ResourceType": "Savings Plan",
                "ServiceName": "AWS Savings Plans",
                "ServiceCategory": "Compute",
            }
            records.append(
                base
                | commitment_cols
                | {
                    "ChargeCategory": "Purchase",
                    "ChargeFrequency": "One-Time",
                    "ChargeDescription": f"Savings Plan purchase: {commitment.name}",
                    "PricingUnit": "Commitment",
                    "_qty": 10**_QTY_SCALE,
                    "_list_unit": purchase // 10**_QTY_SCALE,
                    "_contract_unit": purchase // 10**_QTY_SCALE,
                    "_list_cost": purchase,
                    "_contracted_cost": purchase,
                    "_billed": purchase,
                    # Amortised into the covered usage rows, so not effective here.
                    "_effective": 0,
                }
            )
            records.append(
                base
                | commitment_cols
                | {
                    "ChargeCategory": "Usage",
                    "ChargeFrequency": "Recurring",
                    "ChargeDescription": f"Unused commitment: {commitment.name}",
                    "PricingCategory": "Committed",
                    "CommitmentDiscountStatus": "Unused",
                    "_list_cost": 0,
                    "_contracted_cost": 0,
                    "_billed": 0,
                    "_effective": purchase - used,
                }
            )
        for credit in _CREDITS:
            sub_id = _SUBS[credit.sub].sub_id
            billed = sum(b for (m, s, _), (b, _) in totals.items() if m == month and s == sub_id)
            amount = -(billed * credit.share_bp // 10_000 // _CENT * _CENT)
            records.append(
                _owner(credit.sub)
                | period
                | {
                    "ChargeCategory": "Credit",
                    "ChargeFrequency": "One-Time",
                    "ChargeDescription": credit.description,
                    "ServiceName": credit.service,
                    "ServiceCategory": credit.category,
                    "Tags": _tags_json(credit.tags),
                    "_list_cost": 0,
                    "_contracted_cost": amount,
                    "_billed": amount,
                    "_effective": amount,
                }
            )
    schema = dict.fromkeys(_TEXT_COLUMNS, pl.String) | dict.fromkeys(_INT_COLUMNS, pl.Int64)
    schema["_month"] = pl.Int64
    # No _consumed_factor: purchases and credits consume nothing, so ConsumedQuantity is null.
    return pl.DataFrame(records, schema=schema)


def _owner(sub_key: str) -> dict[str, object]:
    """The account columns of a sub-account, for rows built outside the catalogue."""
    sub = _SUBS[sub_key]
    account = _ACCOUNTS[sub.account]
    return {
        "BillingAccountId": account.account_id,
        "BillingAccountName": account.account_name,
        "BillingCurrency": account.currency,
        "InvoiceIssuerName": account.issuer,
        "ProviderName": account.provider,
        "PublisherName": account.publisher,
        "SubAccountId": sub.sub_id,
        "SubAccountName": sub.name,
    }


def _decimal(value: str | pl.Expr, scale: int) -> pl.Expr:
    """Integers in units of 10**-scale -> an exact Decimal column."""
    expr = pl.col(value) if isinstance(value, str) else value
    unit = pl.lit(Decimal(1).scaleb(-scale), dtype=pl.Decimal(38, scale))
    return expr.cast(pl.Decimal(38, 0)) * unit


def _finish(frame: pl.DataFrame, columns: tuple[str, ...]) -> pl.DataFrame:
    """Internal integer columns -> the FOCUS ``columns``, in FOCUS order."""
    money = {
        "BilledCost": _decimal("_billed", _COST_SCALE),
        "EffectiveCost": _decimal("_effective", _COST_SCALE),
        "ListCost": _decimal("_list_cost", _COST_SCALE),
        "ContractedCost": _decimal("_contracted_cost", _COST_SCALE),
        "ListUnitPrice": _decimal("_list_unit", _PRICE_SCALE),
        "ContractedUnitPrice": _decimal("_contract_unit", _PRICE_SCALE),
        "PricingQuantity": _decimal("_qty", _QTY_SCALE),
        "ConsumedQuantity": _decimal(pl.col("_qty") * pl.col("_consumed_factor"), _QTY_SCALE),
    }
    return frame.select(money[c].alias(c) if c in money else pl.col(c) for c in columns)


# --------------------------------------------------------------------------- public API


def focus_frame(
    *,
    rows: int,
    seed: int = 7,
    months: tuple[str, ...] = ("2026-10",),
    profile: str = "demo",
) -> pl.DataFrame:
    """Generate ``rows`` FOCUS 1.0 charge rows over ``months`` ("YYYY-MM"), deterministically.

    Columns are :data:`FOCUS_COLUMNS` (:data:`BENCH_COLUMNS` for the bench profile): text
    columns as ``String`` (dates already formatted ``YYYY-MM-DD HH:MM:SS`` UTC, ``Tags`` as
    JSON object text or null), money and quantities as exact ``Decimal`` columns. Usage rows
    are hourly and spread evenly over the hours of the months. Within ``rows``, each month
    also carries, charged over the whole month: one Savings Plan purchase (One-Time,
    BilledCost = the commitment, EffectiveCost 0), the commitment's unused remainder
    (EffectiveCost only) and three credits (negative BilledCost). Usage the commitment covers
    is ``PricingCategory = Committed`` with BilledCost 0 and EffectiveCost > 0. Frames with
    fewer than 20 rows per month hold usage rows only.
    """
    frame = _generate(rows=rows, seed=seed, months=months, profile=profile)
    return frame.with_columns(pl.col(pl.Categorical).cast(pl.String))


def write_focus_csv(
    path: Path,
    *,
    rows: int,
    seed: int = 7,
    months: tuple[str, ...] = ("2026-10",),
    profile: str = "demo",
) -> int:
    """Write :func:`focus_frame` to ``path`` as a FOCUS CSV export; returns the rows written.

    Quoted like providers' exports: text quoted, numbers bare, nulls as bare ``NULL``.
    """
    frame = _generate(rows=rows, seed=seed, months=months, profile=profile)
    frame.write_csv(path, quote_style="non_numeric", null_value="NULL")
    return frame.height


def _generate(*, rows: int, seed: int, months: tuple[str, ...], profile: str) -> pl.DataFrame:
    """:func:`focus_frame` with its text columns still ``Categorical``."""
    if rows < 0:
        raise ValueError("rows must be >= 0")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    periods = _parse_months(months)
    specials = len(periods) * (2 * len(_COMMITMENTS) + len(_CREDITS))
    if rows < _MIN_ROWS_PER_MONTH_FOR_SPECIALS * len(periods):
        specials = 0
    catalog = _catalog(seed, profile)
    usage = _usage(rows=rows - specials, seed=seed, catalog=catalog, hours=_hours(periods))
    columns = [*_TEXT_COLUMNS, *_INT_COLUMNS, "_month"]
    text = [pl.col(c).cast(pl.Categorical) for c in _TEXT_COLUMNS]
    usage = usage.select(columns).with_columns(text)
    if specials:
        extra = _special_rows(usage=usage, periods=periods).select(columns).with_columns(text)
        usage = pl.concat([usage, extra])
    return _finish(usage, BENCH_COLUMNS if profile == "bench" else FOCUS_COLUMNS)
