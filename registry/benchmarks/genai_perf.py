"""NVIDIA GenAI-Perf and its successor AIPerf: profile exports (CSV and JSON) and the
GenAI-Perf analyze sweep CSV.

Units always travel with the value here: in the metric name ("Time To First Token (ns)",
"p99 Request Latency (ms)") or in each JSON metric's "unit" field.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .common import (
    CsvTable,
    MetricCollector,
    cell_where,
    count_gpus,
    natural_key,
    no_request_completed,
    number,
    setting_text,
    whole_number,
)
from .labels import normalise, parse_stat, read_label
from .result import BenchmarkFileError, ParsedBenchmark, ParsedPoint

PROFILE_LABEL = "GenAI-Perf profile export"
ANALYZE_LABEL = "GenAI-Perf analyze export"
AIPERF_LABEL = "NVIDIA AIPerf profile export"

# Metrics only AIPerf writes; GenAI-Perf and AIPerf otherwise share names.
_AIPERF_ONLY = {
    "inter chunk latency",
    "benchmark duration",
    "prefill throughput",
    "time to first output token",
    "reasoning token count",
    "total reasoning token",
}
_METRIC_KEYS = {"request latency", "time to first token", "request throughput"}
_TELEMETRY_KEYS = ("telemetry_data", "telemetry_stats", "telemetry")
_GPU_ID_COLUMNS = {"gpu", "gpu index", "gpu uuid", "gpu name", "endpoint"}
_LABEL_STATS = {"value"}


# Profile CSV -------------------------------------------------------------------------------


def _stat_column(name: str) -> bool:
    return parse_stat(name) is not None or normalise(name) in _LABEL_STATS


def looks_like_profile_csv(tables: list[CsvTable]) -> bool:
    """The first table is "Metric" followed by statistic columns (avg, p99...) or "Value"."""
    if not tables:
        return False
    header = tables[0].header
    return (
        len(header) >= 2
        and normalise(header[0]) == "metric"
        and all(_stat_column(cell) for cell in header[1:] if cell)
    )


def parse_profile_csv(tables: list[CsvTable]) -> ParsedBenchmark:
    """One point; each table's rows are metrics, its columns statistics (or one Value)."""
    collector = MetricCollector()
    completed: int | None = None
    failed: int | None = None
    settings: dict[str, str] = {}
    gpus: dict[str, str] = {}
    metric_names: list[str] = []
    for table in tables:
        names = [normalise(cell) for cell in table.header]
        if "metric" not in names:
            continue
        metric_col = names.index("metric")
        for line, cells in table.rows:
            if metric_col >= len(cells):
                continue
            label = cells[metric_col]
            base = normalise(label.split("(")[0])
            metric_names.append(base)
            gpu_key = _gpu_identity(names, cells)
            if gpu_key is not None and "gpu name" in names:
                name_at = names.index("gpu name")
                if name_at < len(cells) and cells[name_at]:
                    gpus[gpu_key] = cells[name_at]
            for i, name in enumerate(names):
                if i == metric_col or i >= len(cells) or not _stat_column(table.header[i]):
                    continue
                where = cell_where(line, f"{table.header[i]}") + f' (row "{label}")'
                stat = None if name == "value" else table.header[i]
                overall = stat is None or parse_stat(stat) == "mean"
                if overall and base in ("request count", "error request count"):
                    count = whole_number(cells[i], where)
                    if base == "request count":
                        completed = count
                    else:
                        failed = count
                    continue
                if overall:
                    _profile_setting(settings, base, cells[i])
                collector.add(read_label(label, stat=stat), cells[i], where)
    if completed == 0:
        raise no_request_completed(failed)
    metrics = collector.metrics()
    if not metrics:
        raise BenchmarkFileError(
            'no usable point: no row names a known metric (e.g. "Time To First Token (ns)", '
            '"Request Throughput (per sec)")'
        )
    aiperf = bool(_AIPERF_ONLY & set(metric_names))
    return ParsedBenchmark(
        tool="aiperf-profile" if aiperf else "genai-perf-profile",
        tool_label=f"{AIPERF_LABEL if aiperf else PROFILE_LABEL} (CSV)",
        model_name="",
        hardware=count_gpus(gpus.values()),
        measured_at=None,
        points=(ParsedPoint("single run", None, None, completed, failed, metrics),),
        settings=settings,
        warnings=("the profile CSV does not record the model or the concurrency; add them",),
    )


def _gpu_identity(names: list[str], cells: list[str]) -> str | None:
    parts = [cells[i] for i, name in enumerate(names) if name in _GPU_ID_COLUMNS and i < len(cells)]
    return "|".join(parts) if parts else None


_PROFILE_SETTINGS = {
    "num input token": "input_tokens_mean",
    "input sequence length": "input_tokens_mean",
    "num output token": "output_tokens_mean",
    "output sequence length": "output_tokens_mean",
    "benchmark duration": "duration_s",
}


def _profile_setting(settings: dict[str, str], base: str, cell: str) -> None:
    key = _PROFILE_SETTINGS.get(base)
    if key and cell and key not in settings:
        settings[key] = cell


# Analyze CSV -------------------------------------------------------------------------------


def looks_like_analyze_csv(tables: list[CsvTable]) -> bool:
    """genai-perf analyze writes a "Config Name" table of sweep results."""
    return bool(tables) and "config name" in {normalise(cell) for cell in tables[0].header}


def parse_analyze_csv(tables: list[CsvTable]) -> ParsedBenchmark:
    """One point per config row, with the GPU telemetry table joined on "Config Name"."""
    main = tables[0]
    names = [normalise(cell) for cell in main.header]
    config_col = names.index("config name")
    rows: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    setting_values: dict[str, list[str]] = {}
    for line, cells in main.rows:
        config = cells[config_col] if config_col < len(cells) else ""
        if not config:
            raise BenchmarkFileError(f'line {line}: the "Config Name" cell is empty')
        if config in rows:
            raise BenchmarkFileError(f'line {line}: config "{config}" appears twice')
        entry: dict[str, Any] = {"collector": MetricCollector(), "concurrency": None, "rate": None}
        for i, cell in enumerate(cells[: len(names)]):
            header, name = main.header[i], names[i]
            where = cell_where(line, header)
            if i == config_col:
                continue
            if name == "concurrency":
                entry["concurrency"] = whole_number(cell, where)
            elif name in ("request rate", "request rate request per s"):
                entry["rate"] = number(cell, where)
            elif (
                not entry["collector"].add(read_label(header), cell, where)
                and "(" not in header
                and read_label(header) is None
                and cell
            ):
                # A plain column such as "ISL" or "Num Prompts" describes the run.
                setting_values.setdefault(name.replace(" ", "_"), []).append(cell)
        rows[config] = entry
        order.append(config)

    warnings: list[str] = []
    gpu_names: set[str] = set()
    settings: dict[str, str] = {}
    for table in tables[1:]:
        _join_telemetry(table, rows, gpu_names, settings, warnings)

    for key, values in setting_values.items():
        distinct = list(dict.fromkeys(values))
        settings[key] = (
            distinct[0] if len(distinct) == 1 else ", ".join(sorted(distinct, key=natural_key))
        )
    if gpu_names:
        settings["gpus"] = str(len(gpu_names))

    points: list[ParsedPoint] = []
    for config in order:
        entry = rows[config]
        metrics = entry["collector"].metrics()
        if not metrics:
            warnings.append(f'config "{config}" has no value in a recognised column; skipped')
            continue
        points.append(ParsedPoint(config, entry["concurrency"], entry["rate"], None, None, metrics))
    if not points:
        raise BenchmarkFileError("no usable point: no config row has a recognised metric column")
    points.sort(
        key=lambda p: (p.concurrency if p.concurrency is not None else -1, natural_key(p.label))
    )
    # analyze names its configs "<model>_run_config_<n>".
    prefixes = {p.label.rsplit("_run_config_", 1)[0] for p in points if "_run_config_" in p.label}
    return ParsedBenchmark(
        tool="genai-perf-analyze",
        tool_label=f"{ANALYZE_LABEL} (CSV)",
        model_name=prefixes.pop() if len(prefixes) == 1 else "",
        hardware="",
        measured_at=None,
        points=tuple(points),
        settings=settings,
        warnings=tuple(warnings),
    )


_TELEMETRY_SETTINGS = {
    "gpu total memory": "gpu_total_memory_gb",
    "gpu power limit": "gpu_power_limit_w",
}


def _join_telemetry(
    table: CsvTable,
    rows: dict[str, dict[str, Any]],
    gpu_names: set[str],
    settings: dict[str, str],
    warnings: list[str],
) -> None:
    names = [normalise(cell) for cell in table.header]
    if "config name" not in names:
        return
    config_col = names.index("config name")
    gpu_col = names.index("gpu") if "gpu" in names else None
    for line, cells in table.rows:
        config = cells[config_col] if config_col < len(cells) else ""
        if config not in rows:
            warnings.append(f'line {line}: telemetry for unknown config "{config}" was ignored')
            continue
        if gpu_col is not None and gpu_col < len(cells):
            gpu_names.add(cells[gpu_col])
        collector: MetricCollector = rows[config]["collector"]
        for i, cell in enumerate(cells[: len(names)]):
            if i in (config_col, gpu_col):
                continue
            header = table.header[i]
            where = cell_where(line, header)
            if collector.add(read_label(header), cell, where):
                continue
            base = normalise(header.split("(")[0])
            if base.split()[:1] in (["avg"], ["mean"]):
                base = base.split(" ", 1)[1] if " " in base else ""
            key = _TELEMETRY_SETTINGS.get(base)
            if key and cell and key not in settings:
                settings[key] = cell


# Profile JSON (GenAI-Perf and AIPerf) ------------------------------------------------------


def _is_metric_object(value: object) -> bool:
    return isinstance(value, dict) and isinstance(value.get("unit"), str)


def looks_like_profile_json(data: Mapping[str, Any]) -> bool:
    """Metric objects with a "unit" at the top level, and a config or a known metric."""
    metric_keys = [key for key, value in data.items() if _is_metric_object(value)]
    if not metric_keys:
        return False
    return "input_config" in data or bool(_METRIC_KEYS & {normalise(k) for k in metric_keys})


def _is_aiperf(data: Mapping[str, Any]) -> bool:
    if "aiperf_version" in data or "schema_version" in data:
        return True
    config = data.get("input_config")
    if isinstance(config, dict):
        if isinstance(config.get("endpoint"), dict) or isinstance(config.get("loadgen"), dict):
            return True
        if str(config.get("cli_command", "")).strip().startswith("aiperf"):
            return True
    return bool(_AIPERF_ONLY & {normalise(key) for key in data})


def _leaves(node: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, str(key)))
    else:
        yield path, node


_CONFIG_SETTINGS = {
    "backend",
    "endpoint",
    "endpoint_type",
    "service_kind",
    "streaming",
    "concurrency",
    "request_rate",
    "request_rate_mode",
    "request_count",
    "warmup_request_count",
    "num_dataset_entries",
    "synthetic_input_tokens_mean",
    "synthetic_input_tokens_stddev",
    "input_tokens_mean",
    "input_tokens_stddev",
    "output_tokens_mean",
    "output_tokens_stddev",
    "tokenizer",
    "measurement_interval",
    "batch_size_text",
    "batch_size",
    "prompt_source",
}
_MODEL_KEYS = ("model", "model_names", "model_name")


def _setting_key(path: tuple[str, ...]) -> str:
    # Nested AIPerf config: ("input", "prompt", "input_tokens", "mean") -> "input_tokens_mean".
    leaf = path[-1]
    if leaf in ("mean", "stddev", "type") and len(path) >= 2:
        return f"{path[-2]}_{leaf}"
    return leaf


def _read_config(
    config: object,
) -> tuple[int | None, Decimal | None, str, dict[str, str]]:
    concurrency: int | None = None
    rate: Decimal | None = None
    model = ""
    settings: dict[str, str] = {}
    if not isinstance(config, dict):
        return concurrency, rate, model, settings
    for path, value in _leaves(config):
        dotted = "input_config." + ".".join(path)
        leaf = path[-1]
        if leaf == "concurrency" and concurrency is None:
            concurrency = whole_number(value, f'key "{dotted}"')
        elif leaf == "request_rate" and rate is None and not isinstance(value, str):
            rate = number(value, f'key "{dotted}"')
        elif leaf in _MODEL_KEYS and not model:
            model = setting_text(value) or ""
        key = _setting_key(path)
        text = setting_text(value)
        if key in _CONFIG_SETTINGS and text is not None and key not in settings:
            settings[key] = text
    return concurrency, rate, model, settings


def _telemetry(node: object, name: str = "") -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Yield (metric name, unit, statistics) for every GPU metric in a telemetry section."""
    if not isinstance(node, dict):
        return
    unit = node.get("unit")
    if isinstance(unit, str) and name:
        if any(parse_stat(key) for key in node):
            yield name, unit, node
        # Older GenAI-Perf: {"gpu_utilization": {"unit": "%", "gpu0": {"avg": ...}}}.
        for value in node.values():
            if isinstance(value, dict) and any(parse_stat(key) for key in value):
                yield name, unit, value
        return
    for key, value in node.items():
        yield from _telemetry(value, str(key))


def _gpu_names(node: object) -> dict[str, str]:
    found: dict[str, str] = {}
    if isinstance(node, dict):
        if isinstance(node.get("gpu_name"), str):
            key = str(node.get("gpu_uuid") or node.get("gpu_index") or len(found))
            found[f"{node.get('hostname', '')}|{key}"] = node["gpu_name"]
        for value in node.values():
            for key, gpu in _gpu_names(value).items():
                found.setdefault(key, gpu)
    elif isinstance(node, list):
        for value in node:
            found.update(_gpu_names(value))
    return found


def _idle_gpus(node: object) -> int:
    """Count GPUs whose telemetry shows no memory in use (another tenant's, or unused)."""
    idle = 0
    if isinstance(node, dict):
        metrics = node.get("metrics") if "gpu_name" in node else None
        memory = metrics.get("gpu_memory_used") if isinstance(metrics, dict) else None
        if isinstance(memory, dict) and memory.get("max") == 0:
            idle += 1
        for value in node.values():
            idle += _idle_gpus(value)
    return idle


def _metric_avg(data: Mapping[str, Any], key: str) -> object:
    value = data.get(key)
    return value.get("avg") if isinstance(value, dict) else value


def parse_profile_json(data: Mapping[str, Any]) -> ParsedBenchmark:
    """One point; each top-level metric object is converted by its own "unit"."""
    aiperf = _is_aiperf(data)
    collector = MetricCollector()
    for key, value in data.items():
        if key in _TELEMETRY_KEYS or key == "input_config" or not _is_metric_object(value):
            continue
        for stat_key, raw in value.items():
            if stat_key == "unit" or parse_stat(stat_key) is None:
                continue
            reading = read_label(key, unit=value["unit"], stat=stat_key)
            collector.add(reading, raw, f'key "{key}.{stat_key}"')

    gpus: dict[str, str] = {}
    for section in _TELEMETRY_KEYS:
        telemetry = data.get(section)
        gpus.update(_gpu_names(telemetry))
        for name, unit, stats in _telemetry(telemetry):
            for stat_key, raw in stats.items():
                if parse_stat(stat_key) is not None:
                    reading = read_label(name, unit=unit, stat=stat_key)
                    collector.add(reading, raw, f'key "{section}…{name}.{stat_key}"')

    completed = whole_number(_metric_avg(data, "request_count"), 'key "request_count.avg"')
    failed = whole_number(_metric_avg(data, "error_request_count"), 'key "error_request_count"')
    if failed is None and isinstance(data.get("error_summary"), list) and data["error_summary"]:
        failed = sum(
            whole_number(item.get("count"), "key error_summary[].count") or 0
            for item in data["error_summary"]
            if isinstance(item, dict)
        )
    if completed == 0:
        raise no_request_completed(failed)
    metrics = collector.metrics()
    if not metrics:
        raise BenchmarkFileError(
            "no usable point: no metric object (request_throughput, request_latency, "
            "time_to_first_token, ...) holds a value"
        )
    concurrency, rate, model, settings = _read_config(data.get("input_config"))
    warnings: list[str] = []
    if data.get("was_cancelled") is True:
        warnings.append("the benchmark was cancelled before it finished")
    if failed:
        warnings.append(f"{failed} requests failed; the metrics describe the ones that completed")
    idle = _idle_gpus(data.get("telemetry_data"))
    if idle:
        warnings.append(
            f"{idle} of the {len(gpus)} GPUs in the telemetry used no memory during the run; "
            "utilisation is the mean over all of them, so it understates the busy ones"
        )
    label = f"concurrency {concurrency}" if concurrency is not None else "single run"
    if concurrency is None and rate is not None:
        label = f"qps {rate.normalize():f}"
    point = ParsedPoint(label, concurrency, rate, completed, failed, metrics)
    return ParsedBenchmark(
        tool="aiperf-profile" if aiperf else "genai-perf-profile",
        tool_label=f"{AIPERF_LABEL if aiperf else PROFILE_LABEL} (JSON)",
        model_name=model,
        hardware=count_gpus(gpus.values()),
        measured_at=_measured_at(data, warnings),
        points=(point,),
        settings=settings,
        warnings=tuple(warnings),
    )


def _measured_at(data: Mapping[str, Any], warnings: list[str]) -> datetime | None:
    # The epoch timestamp is unambiguous; start_time carries no zone, so it is the fallback.
    first = _metric_avg(data, "min_request_timestamp")
    unit = data.get("min_request_timestamp", {})
    if isinstance(first, Decimal | int) and isinstance(unit, dict) and unit.get("unit") == "ns":
        seconds = Decimal(first).scaleb(-9)
        try:
            return datetime.fromtimestamp(int(seconds), tz=UTC).replace(
                microsecond=int((seconds - int(seconds)) * 1_000_000)
            )
        except (OverflowError, OSError, ValueError, ArithmeticError):
            warnings.append(f"min_request_timestamp {first} ns is not a plausible time; ignored")
    start = data.get("start_time")
    if isinstance(start, str):
        try:
            moment = datetime.fromisoformat(start)
        except ValueError:
            warnings.append(f'"start_time" is not an ISO 8601 time ({start}); ignored')
            return None
        if moment.tzinfo is None:
            # AIPerf writes its start_time in UTC without saying so.
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    return None
