"""Reading a column label or JSON key by meaning: which quantity, which statistic, which unit.

Tools rename and reorder their columns between versions ("p99_latency_ms" became
"p99_e2el_ms", "Avg latency" appeared in later perf_analyzer builds, GenAI-Perf moved from
nanoseconds to milliseconds). Matching fixed headers would break on each of those, so a label
is split into words, the statistic and unit are taken off, and what remains must be one of a
known set of phrases for a quantity. Exact phrase matching (not substring matching) is what
keeps look-alikes such as "time to second token" or "output token throughput per user" out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from .metrics import TIMING_QUANTITIES, TIMING_STATS

# Time units as powers of ten relative to one second, so conversion is an exact scaleb().
TIME_EXPONENT: dict[str, int] = {"ns": -9, "us": -6, "ms": -3, "s": 0}
_TIME_WORDS: dict[str, str] = {
    "ns": "ns",
    "nsec": "ns",
    "nanosecond": "ns",
    "nanoseconds": "ns",
    "us": "us",
    "usec": "us",
    "usecs": "us",
    "microsecond": "us",
    "microseconds": "us",
    "ms": "ms",
    "msec": "ms",
    "msecs": "ms",
    "millisecond": "ms",
    "milliseconds": "ms",
    "s": "s",
    "sec": "s",
    "secs": "s",
    "second": "s",
    "seconds": "s",
}
# Memory units as an exact multiplier to gigabytes (10^9 bytes).
MEMORY_TO_GB: dict[str, Decimal] = {
    "bytes": Decimal("1E-9"),
    "kb": Decimal("1E-6"),
    "mb": Decimal("1E-3"),
    "gb": Decimal(1),
    "tb": Decimal(1000),
    "kib": Decimal(1024) * Decimal("1E-9"),
    "mib": Decimal(1024**2) * Decimal("1E-9"),
    "gib": Decimal(1024**3) * Decimal("1E-9"),
}
_MEMORY_WORDS: dict[str, str] = {
    "b": "bytes",
    "byte": "bytes",
    "bytes": "bytes",
    **{unit: unit for unit in MEMORY_TO_GB},
}
_PERCENT_WORDS = {"pct", "percent", "percentage"}
_FRACTION_WORDS = {"fraction", "ratio"}
_COUNT_WORDS = {"token", "request", "count", "inference"}

# Word-level synonyms applied before phrase matching.
_CANONICAL_WORD: dict[str, str] = {
    "tokens": "token",
    "tok": "token",
    "toks": "token",
    "requests": "request",
    "req": "request",
    "reqs": "request",
    "inferences": "inference",
    "utilization": "utilisation",
    "util": "utilisation",
    "tput": "throughput",
    "thru": "throughput",
    "usage": "used",
    "latencies": "latency",
    "intertoken": "inter token",
}

_STAT_WORDS: dict[str, str] = {
    "mean": "mean",
    "avg": "mean",
    "average": "mean",
    "median": "p50",
    "max": "max",
    "maximum": "max",
    "peak": "max",
    "min": "min",
    "minimum": "min",
    "std": "std",
    "stddev": "std",
    "stdev": "std",
    "sd": "std",
}
_PERCENTILE = re.compile(r"^p(\d+)$")

_TIMING_PHRASES: dict[str, str] = {
    "ttft": "ttft",
    "time to first token": "ttft",
    "first token latency": "ttft",
    "itl": "itl",
    "inter token latency": "itl",
    "tpot": "tpot",
    "time per output token": "tpot",
    "latency": "latency",
    "e2el": "latency",
    "e2e latency": "latency",
    "end to end latency": "latency",
    "request latency": "latency",
    "e2e request latency": "latency",
    "end to end request latency": "latency",
}
_COLD_START_PHRASES = {"cold start", "cold start time", "cold start latency"}
_MEMORY_PHRASES = {"memory", "memory used", "gpu memory", "gpu memory used", "gpu used memory"}
_UTILISATION_PHRASES = {"utilisation", "gpu utilisation"}

# Input token rate is not a canonical metric; it only serves to derive the total.
INPUT_RATE = "input_tokens_per_s"

# Rate subjects: the words left once "throughput" and the "/s" are removed.
_RATE_SUBJECTS: dict[frozenset[str], str] = {
    frozenset({"request"}): "requests_per_s",
    frozenset({"inference"}): "requests_per_s",
    frozenset({"output"}): "output_tokens_per_s",
    frozenset({"output", "token"}): "output_tokens_per_s",
    frozenset({"generation", "token"}): "output_tokens_per_s",
    frozenset({"token"}): "total_tokens_per_s",
    frozenset({"total", "token"}): "total_tokens_per_s",
    frozenset({"input"}): INPUT_RATE,
    frozenset({"input", "token"}): INPUT_RATE,
    frozenset({"prompt", "token"}): INPUT_RATE,
}

# Which statistics may stand for a metric, best first. Lower rank wins when a file has both.
_MEMORY_RANK = {"max": 0, None: 1, "p99": 2}
_UTILISATION_RANK = {"mean": 0, None: 1, "p99": 2}
_RATE_RANK = {None: 0, "mean": 0}


@dataclass(frozen=True)
class Unit:
    """A unit read from a label: its kind, its canonical name, and a rate's subject words."""

    kind: str  # "time", "rate", "memory", "percent", "fraction", "count" or "other"
    name: str
    subject: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Reading:
    """What a label means: a quantity, an optional statistic and an optional unit."""

    quantity: str  # a timing quantity, "cold_start", "memory", "utilisation" or a rate code
    stat: str | None
    unit: Unit | None


@dataclass(frozen=True)
class Defaults:
    """Units a tool uses when a label does not say (e.g. Triton latencies are microseconds)."""

    time: str | None = None
    memory: str | None = None
    utilisation: str | None = None  # "percent" or "fraction"


def words(text: str) -> list[str]:
    """Split a label into lower-case words, with synonyms folded to one spelling.

    "/" becomes "per" so "Inferences/Second" and "requests_per_second" read alike; "#"
    becomes "num" so "# of req." keeps a word; a decimal point inside a number is kept so
    "p99.9" never reads as "p99".
    """
    text = text.replace("µ", "u").replace("μ", "u").replace("%", " pct ").replace("#", " num ")
    text = re.sub(r"(?<=\d)\.(?=\d)", "dot", text)
    text = text.replace("/", " per ")
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)
    result: list[str] = []
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        result.extend(_CANONICAL_WORD.get(word, word).split())
    return result


def normalise(text: str) -> str:
    """Return a label's canonical word string, for comparing non-metric column names."""
    return " ".join(words(text))


def parse_stat(text: str) -> str | None:
    """Read a statistic name ("avg", "Avg.", "median", "P99") as "mean", "p50", "max"..."""
    parts = words(text)
    if len(parts) != 1:
        return None
    word = parts[0]
    if word in _STAT_WORDS:
        return _STAT_WORDS[word]
    match = _PERCENTILE.match(word)
    if match:
        return f"p{int(match.group(1))}"
    return None


def parse_unit(text: str) -> Unit:
    """Read a unit string such as "ms", "usec", "tokens/sec", "(req/s)", "GB" or "%"."""
    unit_words = words(text)
    if "per" in unit_words:
        cut = unit_words.index("per")
        subject, per = unit_words[:cut], unit_words[cut + 1 :]
        # Anything but "per second" (e.g. tokens/sec/user) is not a throughput we know.
        if len(per) == 1 and _TIME_WORDS.get(per[0]) == "s":
            return Unit("rate", "per_s", frozenset(subject))
        return Unit("other", " ".join(unit_words))
    if len(unit_words) == 1:
        word = unit_words[0]
        if word in _TIME_WORDS:
            return Unit("time", _TIME_WORDS[word])
        if word in _MEMORY_WORDS:
            return Unit("memory", _MEMORY_WORDS[word])
        if word in _PERCENT_WORDS:
            return Unit("percent", "pct")
        if word in _FRACTION_WORDS:
            return Unit("fraction", "fraction")
        if word in _COUNT_WORDS:
            return Unit("count", word)
    return Unit("other", " ".join(unit_words))


_SUFFIX_UNITS = set(_TIME_WORDS) | set(_MEMORY_WORDS) | _PERCENT_WORDS
_TRAILING_UNIT = re.compile(r"[(\[]([^()\[\]]*)[)\]]\s*$")


def read_label(
    label: str,
    *,
    unit: str | None = None,
    stat: str | None = None,
    default_quantity: str | None = None,
) -> Reading | None:
    """Say what a label measures, or None if it is not one of the canonical metrics.

    `unit` and `stat` come from elsewhere when the label itself does not carry them (a JSON
    metric object's "unit", a CSV table's statistic column). `default_quantity` is used for
    a label that is only a statistic, e.g. a bare "P99" column right after "Mean TPOT (ms)".
    """
    unit_text = unit
    match = _TRAILING_UNIT.search(label)
    if match:
        label = label[: match.start()]
        if unit_text is None:
            unit_text = match.group(1)
    label_words = words(label)
    # A unit spelled as the last word of a key, as in vLLM's "mean_ttft_ms".
    if (
        unit_text is None
        and len(label_words) >= 2
        and label_words[-1] in _SUFFIX_UNITS
        and label_words[-2] != "per"
    ):
        unit_text = label_words.pop()
    if stat is None:
        for position in (0, -1):
            if label_words and parse_stat(label_words[position]) is not None:
                stat = parse_stat(label_words.pop(position))
                break
    else:
        stat = parse_stat(stat)
        if stat is None:
            return None
    parsed_unit = parse_unit(unit_text) if unit_text else None

    rate_in_label = (
        len(label_words) >= 2 and label_words[-2] == "per" and label_words[-1] in _TIME_WORDS
    )
    if rate_in_label:
        if _TIME_WORDS[label_words[-1]] != "s":
            return None
        label_words = label_words[:-2]
    phrase = " ".join(label_words)
    if not phrase and default_quantity is not None:
        phrase = default_quantity
    return _classify(phrase, label_words, stat, parsed_unit, rate_in_label=rate_in_label)


def _classify(
    phrase: str,
    label_words: list[str],
    stat: str | None,
    unit: Unit | None,
    *,
    rate_in_label: bool,
) -> Reading | None:
    unit_kind = unit.kind if unit else None
    if phrase in _TIMING_PHRASES or phrase in TIMING_QUANTITIES:
        if unit_kind not in (None, "time") or rate_in_label:
            return None
        return Reading(_TIMING_PHRASES.get(phrase, phrase), stat, unit)
    if phrase in _COLD_START_PHRASES:
        return Reading("cold_start", stat, unit) if unit_kind in (None, "time") else None
    if phrase in _MEMORY_PHRASES:
        return Reading("memory", stat, unit) if unit_kind in (None, "memory") else None
    if phrase in _UTILISATION_PHRASES:
        if unit_kind in (None, "percent", "fraction"):
            return Reading("utilisation", stat, unit)
        return None
    is_rate = "throughput" in label_words or rate_in_label or unit_kind == "rate"
    if not is_rate or unit_kind not in (None, "rate") or "per" in label_words:
        return None
    subject = frozenset(w for w in label_words if w != "throughput")
    if unit is not None:
        subject |= unit.subject
    code = _RATE_SUBJECTS.get(subject)
    return Reading(code, stat, unit) if code else None


def metric_code(reading: Reading) -> tuple[str, int] | None:
    """Return the canonical code a reading gives and its rank (lower is preferred)."""
    quantity, stat = reading.quantity, reading.stat
    if quantity in TIMING_QUANTITIES:
        return (f"{quantity}_{stat}_ms", 0) if stat in TIMING_STATS else None
    if quantity == "cold_start":
        return ("cold_start_s", 0) if stat in (None, "mean") else None
    if quantity == "memory":
        return ("peak_memory_gb", _MEMORY_RANK[stat]) if stat in _MEMORY_RANK else None
    if quantity == "utilisation":
        rank = _UTILISATION_RANK.get(stat)
        return ("utilisation_pct", rank) if rank is not None else None
    if stat in _RATE_RANK:
        return quantity, _RATE_RANK[stat]
    return None


def convert(reading: Reading, value: Decimal, defaults: Defaults) -> Decimal | None:
    """Convert a value to its metric's canonical unit exactly; None if the unit is unknown."""
    unit = reading.unit
    quantity = reading.quantity
    if quantity in TIMING_QUANTITIES or quantity == "cold_start":
        name = unit.name if unit else defaults.time
        if name not in TIME_EXPONENT:
            return None
        target = 0 if quantity == "cold_start" else TIME_EXPONENT["ms"]
        return value.scaleb(TIME_EXPONENT[name] - target)
    if quantity == "memory":
        name = unit.name if unit else defaults.memory
        if name not in MEMORY_TO_GB:
            return None
        return value * MEMORY_TO_GB[name]
    if quantity == "utilisation":
        kind = unit.kind if unit else defaults.utilisation
        if kind == "fraction":
            return value.scaleb(2)
        return value if kind == "percent" else None
    # Rates: only "per second" is accepted when a unit is given (see parse_unit).
    return value
