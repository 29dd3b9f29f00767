"""Recognise which tool wrote a benchmark file from its content and hand it to that parser.

The filename is never used to decide: people rename result files ("results.json",
"run3.csv"), and the same tool writes different names in different versions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from . import capgov, genai_perf, triton, vllm
from .common import CsvTable, csv_tables
from .result import BenchmarkFileError, ParsedBenchmark

RECOGNISED = (
    "vLLM benchmark_serving / vllm bench serve JSON",
    "vLLM nightly-benchmarks summary JSON",
    "vLLM benchmark_latency JSON",
    "vLLM benchmark_throughput JSON",
    "Triton perf_analyzer / perf_client CSV (-f)",
    "GenAI-Perf profile CSV or JSON",
    "GenAI-Perf analyze CSV",
    "AIPerf profile JSON or CSV",
    "capgov benchmark JSON",
)

_JSON_PARSERS: tuple[tuple[Callable[[Any], bool], Callable[[Any], ParsedBenchmark]], ...] = (
    (capgov.looks_like_capgov, capgov.parse_capgov),
    # Before vLLM: GenAI-Perf also has a "request_throughput" key (holding an object).
    (lambda d: isinstance(d, dict) and genai_perf.looks_like_profile_json(d),
     genai_perf.parse_profile_json),
    (lambda d: isinstance(d, dict) and vllm.looks_like_serving(d), vllm.parse_serving),
    (lambda d: isinstance(d, dict) and vllm.looks_like_latency(d), vllm.parse_latency),
    (lambda d: isinstance(d, dict) and vllm.looks_like_throughput(d), vllm.parse_throughput),
    (vllm.looks_like_nightly, vllm.parse_nightly),
)  # fmt: skip
_CSV_PARSERS: tuple[
    tuple[Callable[[list[CsvTable]], bool], Callable[[list[CsvTable]], ParsedBenchmark]], ...
] = (
    (triton.looks_like_triton, triton.parse_triton),
    (genai_perf.looks_like_profile_csv, genai_perf.parse_profile_csv),
    (genai_perf.looks_like_analyze_csv, genai_perf.parse_analyze_csv),
)


def _unrecognised(kind: str) -> BenchmarkFileError:
    return BenchmarkFileError(
        f"this {kind} layout is not one we recognise. Recognised: {'; '.join(RECOGNISED)}. "
        "Other tools can be imported by converting their results to the capgov benchmark JSON "
        "described in docs/benchmark-format.md"
    )


def _decode(data: bytes) -> str:
    try:
        # utf-8-sig also accepts the byte-order mark spreadsheet programs add to CSV.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BenchmarkFileError(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "upload the file exactly as the benchmark tool wrote it, or re-save it as UTF-8"
        ) from None


def _load_json(text: str) -> object:
    try:
        return json.loads(text, parse_float=Decimal, parse_int=int, parse_constant=Decimal)
    except json.JSONDecodeError as exc:
        raise BenchmarkFileError(
            f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise BenchmarkFileError(f"not readable as JSON ({exc})") from None


def _parse(text: str) -> ParsedBenchmark:
    stripped = text.lstrip()
    if not stripped:
        raise BenchmarkFileError("the file is empty")
    if stripped[0] in "{[":
        data = _load_json(text)
        for matches, parse in _JSON_PARSERS:
            if matches(data):
                return parse(data)
        raise _unrecognised("JSON")
    first_line = stripped.splitlines()[0]
    if "\x00" in text or "," not in first_line:
        raise BenchmarkFileError(
            "neither JSON nor CSV: the first line has no comma-separated header. "
            "Upload the JSON or CSV file the benchmark tool wrote"
        )
    tables = csv_tables(text)
    for matches, parse in _CSV_PARSERS:
        if matches(tables):
            return parse(tables)
    raise _unrecognised("CSV")


def parse_benchmark(data: bytes, *, filename: str) -> ParsedBenchmark:
    """Recognise the tool that wrote `data` from its content and parse it.

    `filename` is only used to say where a problem is. Raises BenchmarkFileError, with the
    file name, the line/column or key and a hint at the fix, when the file is not UTF-8,
    not JSON or CSV, of an unrecognised layout, has no usable point, has a point in which no
    request completed, or holds a non-numeric value where a number belongs.
    """
    try:
        return _parse(_decode(data))
    except BenchmarkFileError as exc:
        raise BenchmarkFileError(f"{filename}: {exc}") from None
