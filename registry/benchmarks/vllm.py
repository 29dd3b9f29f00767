"""vLLM result files: serving (`benchmark_serving.py --save-result` / `vllm bench serve`),
the nightly-benchmarks summary, `benchmark_latency` and `benchmark_throughput`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .common import (
    MetricCollector,
    format_decimal,
    natural_key,
    no_request_completed,
    number,
    setting_text,
    whole_number,
)
from .labels import Defaults, normalise, read_label
from .metrics import TIMING_QUANTITIES
from .result import BenchmarkFileError, ParsedBenchmark, ParsedPoint

SERVING_LABEL = "vLLM benchmark_serving / bench serve"
NIGHTLY_LABEL = "vLLM nightly-benchmarks summary"
LATENCY_LABEL = "vLLM benchmark_latency / bench latency"
THROUGHPUT_LABEL = "vLLM benchmark_throughput / bench throughput"

_SERVING_METRIC_KEY = re.compile(
    r"^(mean|median|std|p\d+(\.\d+)?)_(ttft|tpot|itl|e2el|latency)_ms$"
)
_SERVING_CONTEXT_KEYS = ("date", "backend", "model_id", "num_prompts", "completed", "request_rate")
_SERVING_SETTINGS = (
    "backend",
    "endpoint_type",
    "label",
    "tokenizer_id",
    "num_prompts",
    "request_rate",
    "burstiness",
    "max_concurrency",
    "best_of",
    "use_beam_search",
    "duration",
    "total_input_tokens",
    "total_output_tokens",
)
# Per-request arrays: summary fields already aggregate them, and they may be truncated.
_PER_REQUEST_KEYS = ("input_lens", "output_lens", "ttfts", "itls", "generated_texts", "errors")


def looks_like_serving(data: Mapping[str, Any]) -> bool:
    """A serving result has vLLM summary keys plus some of the run's context keys."""
    has_metric = "request_throughput" in data or any(_SERVING_METRIC_KEY.match(key) for key in data)
    return has_metric and any(key in data for key in _SERVING_CONTEXT_KEYS)


def looks_like_latency(data: Mapping[str, Any]) -> bool:
    """benchmark_latency writes avg_latency with the latencies list or their percentiles."""
    return "avg_latency" in data and ("percentiles" in data or "latencies" in data)


def looks_like_throughput(data: Mapping[str, Any]) -> bool:
    """benchmark_throughput writes requests_per_second with elapsed time and token totals."""
    return "requests_per_second" in data and any(
        key in data for key in ("elapsed_time", "tokens_per_second", "num_requests")
    )


def looks_like_nightly(data: object) -> bool:
    """The nightly summary is a table (rows or pandas columns) with a "Test name" column."""
    return any(True for _ in _nightly_tables(data))


def _date(raw: object, warnings: list[str]) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        # vLLM writes datetime.now() without a zone; the contract reads it as UTC.
        return datetime.strptime(raw, "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        warnings.append(f'the "date" value "{raw}" is not in vLLM\'s YYYYMMDD-HHMMSS form; ignored')
        return None


def _request_rate(raw: object, where: str) -> Decimal | None:
    # "inf" means every request was sent at once: no rate to record.
    if isinstance(raw, str) and raw.strip().lower() in ("inf", "infinity"):
        return None
    if isinstance(raw, Decimal) and raw.is_infinite():
        return None
    rate = number(raw, where)
    if rate is not None and rate <= 0:
        raise BenchmarkFileError(f"{where}: a request rate must be positive (found {raw})")
    return rate


def _concurrency(raw: object, where: str) -> int | None:
    value = whole_number(raw, where)
    if value == 0:
        raise BenchmarkFileError(f"{where}: concurrency must be at least 1")
    return value


def _point_label(concurrency: int | None, rate: Decimal | None, rate_stated: bool) -> str:
    parts = []
    if concurrency is not None:
        parts.append(f"concurrency {concurrency}")
    if rate is not None:
        parts.append(f"qps {format_decimal(rate)}")
    elif rate_stated and concurrency is None:
        parts.append("qps inf")
    return ", ".join(parts) or "single run"


def parse_serving(data: Mapping[str, Any]) -> ParsedBenchmark:
    """Parse a serving result: one point, metrics from the mean/median/pNN summary keys."""
    warnings: list[str] = []
    completed = whole_number(data.get("completed"), 'key "completed"')
    failed = whole_number(data.get("failed"), 'key "failed"')
    if completed == 0:
        raise no_request_completed(failed)
    concurrency = _concurrency(data.get("max_concurrency"), 'key "max_concurrency"')
    rate = _request_rate(data.get("request_rate"), 'key "request_rate"')

    collector = MetricCollector(Defaults(time="ms"))
    for key, value in data.items():
        if isinstance(value, list | dict):
            continue
        collector.add(read_label(key), value, f'key "{key}"')
    metrics = collector.metrics()
    if not metrics:
        raise BenchmarkFileError(
            "no usable point: none of the summary keys (request_throughput, mean_ttft_ms, "
            "p99_e2el_ms, ...) holds a value; upload the complete file that --save-result wrote"
        )

    settings: dict[str, str] = {}
    for key in _SERVING_SETTINGS:
        text = setting_text(data.get(key))
        if text is not None and not (
            key == "tokenizer_id" and data.get(key) == data.get("model_id")
        ):
            settings[key] = text
    # vLLM itself misspelt this key as "request_goodput:" for several releases.
    goodput = setting_text(data.get("request_goodput", data.get("request_goodput:")))
    if goodput is not None:
        settings["request_goodput"] = goodput

    model = str(data.get("model_id") or "")
    if model.startswith(("/", "~", "./")):
        warnings.append(
            f"model_id is a local path ({model}); edit the model name if it should be the "
            "published model id"
        )
    if failed:
        of = f" of {completed + failed}" if completed is not None else ""
        warnings.append(
            f"{failed}{of} requests failed; the metrics describe only the requests that completed"
        )
    warnings.extend(_per_request_warnings(data, completed))

    point = ParsedPoint(
        label=_point_label(concurrency, rate, "request_rate" in data),
        concurrency=concurrency,
        request_rate=rate,
        completed=completed,
        failed=failed,
        metrics=metrics,
    )
    return ParsedBenchmark(
        tool="vllm-serving",
        tool_label=SERVING_LABEL,
        model_name=model,
        hardware="",
        measured_at=_date(data.get("date"), warnings),
        points=(point,),
        settings=settings,
        warnings=tuple(warnings),
    )


def _per_request_warnings(data: Mapping[str, Any], completed: int | None) -> list[str]:
    warnings: list[str] = []
    arrays = {key: data[key] for key in _PER_REQUEST_KEYS if isinstance(data.get(key), list)}
    if completed is not None:
        short = {key: len(value) for key, value in arrays.items() if len(value) < completed}
        if short:
            length = min(short.values())
            warnings.append(
                f"per-request arrays ({', '.join(short)}) hold {length} entries but completed "
                f"is {completed}; the file looks truncated, so only its summary fields were used"
            )
    output_lens = arrays.get("output_lens", [])
    empty = sum(1 for length in output_lens if length == 0)
    if empty:
        warnings.append(
            f"{empty} of the {len(output_lens)} listed requests returned no output tokens yet "
            "count as completed; their zero TTFT pulls the means and medians down"
        )
    return warnings


def parse_latency(data: Mapping[str, Any]) -> ParsedBenchmark:
    """Parse benchmark_latency: seconds in the file, one point with mean and percentiles."""
    collector = MetricCollector(Defaults(time="s"))
    collector.add(read_label("avg_latency"), data.get("avg_latency"), 'key "avg_latency"')
    warnings: list[str] = []
    percentiles = data.get("percentiles")
    latencies = data.get("latencies")
    if isinstance(percentiles, dict):
        for key, value in percentiles.items():
            match = re.fullmatch(r"[pP]?(\d+)(?:\.0+)?", str(key).strip())
            if match:
                reading = read_label("latency", stat=f"p{match.group(1)}")
                collector.add(reading, value, f'key "percentiles.{key}"')
    elif isinstance(latencies, list) and latencies:
        values = [number(v, f"latencies[{i}]") for i, v in enumerate(latencies)]
        present = sorted(v for v in values if v is not None)
        for pct in (50, 90, 99):
            reading = read_label("latency", stat=f"p{pct}")
            collector.add(reading, _percentile(present, pct), "latencies")
        warnings.append("the file has no percentiles; p50/p90/p99 were computed from latencies")
    metrics = collector.metrics()
    if not metrics:
        raise BenchmarkFileError(
            'no usable point: "avg_latency" and "percentiles" hold no number. '
            "Run benchmark_latency again with --output-json."
        )
    warnings.append(
        "benchmark_latency files do not record the model, batch size or input/output "
        "lengths; add them to the settings if they matter"
    )
    settings: dict[str, str] = {}
    if isinstance(latencies, list):
        settings["iterations"] = str(len(latencies))
    point = ParsedPoint("single run", None, None, None, None, metrics)
    return ParsedBenchmark(
        tool="vllm-latency",
        tool_label=LATENCY_LABEL,
        model_name="",
        hardware="",
        measured_at=None,
        points=(point,),
        settings=settings,
        warnings=tuple(warnings),
    )


def _percentile(values: list[Decimal], pct: int) -> Decimal | None:
    # Linear interpolation between ranks, the numpy default that vLLM itself uses.
    if not values:
        return None
    position = Decimal(pct) / 100 * (len(values) - 1)
    lower = int(position)
    upper = min(lower + 1, len(values) - 1)
    fraction = position - lower
    return values[lower] + (values[upper] - values[lower]) * fraction


def parse_throughput(data: Mapping[str, Any]) -> ParsedBenchmark:
    """Parse benchmark_throughput: requests/s and tokens/s (input + output) for one run."""
    collector = MetricCollector()
    for key, value in data.items():
        if not isinstance(value, list | dict):
            collector.add(read_label(key), value, f'key "{key}"')
    metrics = collector.metrics()
    if not metrics:
        raise BenchmarkFileError('no usable point: "requests_per_second" holds no number')
    completed = whole_number(data.get("num_requests"), 'key "num_requests"')
    if completed == 0:
        raise no_request_completed(None)
    settings = {
        key: text
        for key in ("num_requests", "total_num_tokens", "elapsed_time")
        if (text := setting_text(data.get(key))) is not None
    }
    point = ParsedPoint("single run", None, None, completed, None, metrics)
    return ParsedBenchmark(
        tool="vllm-throughput",
        tool_label=THROUGHPUT_LABEL,
        model_name=str(data.get("model") or data.get("model_id") or ""),
        hardware="",
        measured_at=None,
        points=(point,),
        settings=settings,
        warnings=(
            "benchmark_throughput runs the engine offline (no HTTP server) and does not "
            "record the model; tokens/s counts input and output tokens",
        ),
    )


# Nightly summary ---------------------------------------------------------------------------

_TEST_NAME = "test name"
_NIGHTLY_SETTINGS = {
    "dataset name": "dataset_name",
    "input len": "input_len",
    "output len": "output_len",
    "tp size": "tp_size",
    "pp size": "pp_size",
    "dtype": "dtype",
}
_QPS_IN_NAME = re.compile(r"qps_?(\d+(?:\.\d+)?|inf)(?![a-z0-9.])", re.IGNORECASE)
_CONCURRENCY_IN_NAME = re.compile(r"(?:max_?)?concurrency_?(\d+)(?!\d)", re.IGNORECASE)


def _is_test_name(key: object) -> bool:
    return isinstance(key, str) and normalise(key) == _TEST_NAME


def _rows_of(table: object) -> list[dict[str, Any]] | None:
    """Rows of one table, from a list of records or a pandas dict of columns."""
    if isinstance(table, list):
        rows = [row for row in table if isinstance(row, dict)]
        if rows and len(rows) == len(table) and any(_is_test_name(k) for k in rows[0]):
            return rows
        return None
    if isinstance(table, dict) and any(_is_test_name(k) for k in table):
        columns = {name: column for name, column in table.items() if isinstance(column, dict)}
        if len(columns) != len(table):
            return None
        index = sorted({key for column in columns.values() for key in column}, key=natural_key)
        return [{name: column[i] for name, column in columns.items() if i in column} for i in index]
    return None


def _nightly_tables(data: object) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    rows = _rows_of(data)
    if rows is not None:
        yield "", rows
        return
    if isinstance(data, dict) and data and set(data) <= {"latency", "throughput", "serving"}:
        for name, table in data.items():
            if isinstance(table, dict | list) and not table:
                continue
            rows = _rows_of(table)
            if rows is not None:
                yield name, rows


def parse_nightly(data: object) -> ParsedBenchmark:
    """Parse the nightly-benchmarks summary: one point per test row, human column labels."""
    points: list[ParsedPoint] = []
    settings_seen: dict[str, list[str]] = {}
    hardware: list[str] = []
    models: list[str] = []
    row_count = 0
    for table_name, rows in _nightly_tables(data):
        for index, row in enumerate(rows):
            row_count += 1
            where = f"{table_name or 'rows'}[{index}]"
            point = _nightly_point(row, where, table_name, hardware, models, settings_seen)
            if point is not None:
                points.append(point)
    if not points:
        raise BenchmarkFileError(
            f"no usable point: none of the {row_count} test rows has a recognised metric column "
            '(e.g. "Tput (req/s)", "Mean TTFT (ms)")'
        )
    warnings: list[str] = []
    if len(set(hardware)) > 1:
        warnings.append("the tests ran on different GPUs: " + "; ".join(dict.fromkeys(hardware)))
    labels = [point.label for point in points]
    if len(set(labels)) != len(labels):
        warnings.append("some test names appear more than once")
    settings = {
        key: values[0]
        for key, values in settings_seen.items()
        if len(values) == row_count and len(set(values)) == 1
    }
    return ParsedBenchmark(
        tool="vllm-nightly",
        tool_label=NIGHTLY_LABEL,
        model_name=", ".join(dict.fromkeys(models)),
        hardware="; ".join(dict.fromkeys(hardware)),
        measured_at=None,
        points=tuple(points),
        settings=settings,
        warnings=tuple(warnings),
    )


def _nightly_point(
    row: dict[str, Any],
    where: str,
    table_name: str,
    hardware: list[str],
    models: list[str],
    settings_seen: dict[str, list[str]],
) -> ParsedPoint | None:
    label = ""
    concurrency: int | None = None
    rate: Decimal | None = None
    completed: int | None = None
    # Nightly summaries convert every time to ms unless the label says "(s)".
    collector = MetricCollector(Defaults(time="ms"))
    # The newest summaries label the TPOT median and p99 columns just "Median" and "P99";
    # such a bare statistic belongs to the timing column before it.
    previous_quantity = "latency" if table_name == "latency" else None
    for key, value in row.items():
        cell = f'{where}, column "{key}"'
        name = normalise(key)
        if name == _TEST_NAME:
            label = str(value or "").strip()
        elif name in ("gpu", "gpu type"):
            if setting_text(value):
                hardware.append(str(value).strip())
        elif name == "model":
            if setting_text(value):
                models.append(str(value).strip())
        elif name in ("num of request", "completed"):
            completed = whole_number(value, cell)
        elif name in ("num of max concurrency", "max concurrency", "concurrency"):
            concurrency = _concurrency(value, cell)
        elif name in ("qps", "request rate", "request rate request per s"):
            rate = _request_rate(value, cell)
        else:
            reading = read_label(key, default_quantity=previous_quantity)
            if reading is not None and reading.quantity in TIMING_QUANTITIES:
                previous_quantity = reading.quantity
            if not collector.add(reading, value, cell) and name in _NIGHTLY_SETTINGS:
                text = setting_text(value)
                if text is not None:
                    settings_seen.setdefault(_NIGHTLY_SETTINGS[name], []).append(text)
    if not label:
        raise BenchmarkFileError(f'{where}: the "Test name" is empty; every row needs one')
    if rate is None and (match := _QPS_IN_NAME.search(label)) and match.group(1) != "inf":
        rate = Decimal(match.group(1))
    if concurrency is None and (match := _CONCURRENCY_IN_NAME.search(label)):
        concurrency = int(match.group(1))
    if completed == 0:
        raise no_request_completed(None, f'test "{label}"')
    metrics = collector.metrics()
    if not metrics:
        return None
    return ParsedPoint(label, concurrency, rate, completed, None, metrics)
