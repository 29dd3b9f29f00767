"""Benchmark result import: every real sample file, plus small inline layouts and errors.

Pure tests: registry.benchmarks has no Django imports and needs no database.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest

from registry.benchmarks import (
    METRICS,
    BenchmarkFileError,
    ParsedBenchmark,
    missing_metrics,
    parse_benchmark,
)
from registry.benchmarks.labels import metric_code, read_label

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "benchmarks"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "benchmark-format.md"

FAILED_FILE = "vllm_bench_serve_v0.25.1_all_requests_failed.json"
# Every sample and the tool it must be recognised as; a new sample must be added here.
EXPECTED_TOOLS = {
    "aiperf_profile_export_aiperf_gpt-oss-20b.json": "aiperf-profile",
    "genai_perf_analyze_export_genai_perf_gpt2.csv": "genai-perf-analyze",
    "genai_perf_profile_export_genai_perf.csv": "genai-perf-profile",
    "genai_perf_profile_export_genai_perf_gpt-oss-20b_v1.json": "genai-perf-profile",
    "triton_perf_analyzer_add_sub_model_analyzer.csv": "triton-perf-analyzer",
    "triton_perf_analyzer_bert_base_gpu_trt.csv": "triton-perf-analyzer",
    "triton_perf_analyzer_bert_base_tf_cpu.csv": "triton-perf-analyzer",
    FAILED_FILE: None,
    "vllm_benchmark_latency_ascend_llama3-8b.json": "vllm-latency",
    "vllm_benchmark_serving_ascend_llama3-8b_qps4_pruned.json": "vllm-serving",
    "vllm_benchmark_serving_deepseek-v2.5_tp8_pp2_qps_4_truncated.json": "vllm-serving",
    "vllm_benchmark_serving_llama3.3-70b_tp4_pp2_qps_inf_truncated.json": "vllm-serving",
    "vllm_benchmark_serving_v0.5-era_lambdalabs_llama3.1-8b-fp8_h100.json": "vllm-serving",
    "vllm_benchmark_throughput_ascend_llama3-8b.json": "vllm-throughput",
    "vllm_nightly_benchmark_results_summary_llama3.3-70b_tp4_pp2.json": "vllm-nightly",
}


@pytest.fixture
def benchmark_samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"shared benchmark samples not found at {SAMPLES}")
    return SAMPLES


def load(folder: Path, name: str) -> ParsedBenchmark:
    return parse_benchmark((folder / name).read_bytes(), filename=name)


def parse_text(text: str, filename: str = "upload") -> ParsedBenchmark:
    return parse_benchmark(text.encode(), filename=filename)


def only_point(parsed: ParsedBenchmark):
    assert len(parsed.points) == 1
    return parsed.points[0]


def raw_json(folder: Path, name: str) -> dict:
    return json.loads((folder / name).read_text(), parse_float=D)


# Every real file --------------------------------------------------------------------------


def test_samples_folder_holds_exactly_the_files_tested(benchmark_samples):
    data_files = {p.name for p in benchmark_samples.iterdir() if p.suffix in (".json", ".csv")}
    assert data_files == set(EXPECTED_TOOLS)


def test_samples_every_file_imports_or_is_refused_clearly(benchmark_samples):
    for name, tool in EXPECTED_TOOLS.items():
        if tool is None:
            with pytest.raises(BenchmarkFileError, match="no request completed"):
                load(benchmark_samples, name)
            continue
        parsed = load(benchmark_samples, name)
        assert parsed.tool == tool, name
        assert parsed.tool_label
        assert parsed.points, name
        for point in parsed.points:
            assert point.metrics, (name, point.label)
            assert set(point.metrics) <= set(METRICS)
            assert all(isinstance(v, D) and v >= 0 for v in point.metrics.values())
        assert parsed.measured_at is None or parsed.measured_at.utcoffset() is not None


def test_vllm_serving_v05_file_maps_older_latency_keys(benchmark_samples):
    parsed = load(
        benchmark_samples, "vllm_benchmark_serving_v0.5-era_lambdalabs_llama3.1-8b-fp8_h100.json"
    )
    point = only_point(parsed)
    assert parsed.model_name == "neuralmagic/Meta-Llama-3.1-8B-FP8"
    assert parsed.measured_at == datetime(2024, 9, 7, 8, 26, 34, tzinfo=UTC)
    assert (point.label, point.concurrency, point.request_rate) == ("qps inf", None, None)
    assert point.completed == 10
    assert point.metrics["latency_mean_ms"] == D("290.35341650014743")
    assert point.metrics["latency_p50_ms"] == D("87.63665999867953")
    assert point.metrics["latency_p99_ms"] == D("1030.5146967872863")
    assert point.metrics["ttft_p50_ms"] == D("62.47698800143553")
    # No total_token_throughput in this version: input + output.
    assert point.metrics["total_tokens_per_s"] == D("1281.9486152410154") + D("413.89429359863317")
    assert parsed.settings["num_prompts"] == "10"
    assert parsed.settings["request_rate"] == "inf"
    assert any("no output tokens" in w for w in parsed.warnings)


def test_vllm_serving_qps_inf_truncated_file_warns_about_arrays(benchmark_samples):
    parsed = load(
        benchmark_samples, "vllm_benchmark_serving_llama3.3-70b_tp4_pp2_qps_inf_truncated.json"
    )
    point = only_point(parsed)
    assert point.request_rate is None
    assert point.concurrency is None
    assert point.completed == 200
    assert point.metrics["requests_per_s"] == D("4.384189453327111")
    assert point.metrics["total_tokens_per_s"] == D("1865.5383752324858")
    assert point.metrics["ttft_p99_ms"] == D("1213.8436117099263")
    assert point.metrics["tpot_p50_ms"] == D("72.8739474022069")
    assert any("truncated" in w and "200" in w for w in parsed.warnings)
    # No *_e2el_ms keys in v0.8.3 by default.
    assert missing_metrics(parsed, ["latency_p99_ms", "ttft_p99_ms"]) == ["latency_p99_ms"]


def test_vllm_serving_numeric_request_rate_is_kept(benchmark_samples):
    parsed = load(
        benchmark_samples, "vllm_benchmark_serving_deepseek-v2.5_tp8_pp2_qps_4_truncated.json"
    )
    point = only_point(parsed)
    assert point.request_rate == D("4")
    assert point.label == "qps 4"
    assert point.metrics["requests_per_s"] == D("1.1805817160141518")
    assert point.metrics["itl_p99_ms"] == D("430.0070693003363")
    assert parsed.measured_at == datetime(2025, 4, 20, 17, 38, 50, tzinfo=UTC)


def test_vllm_serving_pruned_ascend_file_lacks_throughput(benchmark_samples):
    parsed = load(benchmark_samples, "vllm_benchmark_serving_ascend_llama3-8b_qps4_pruned.json")
    point = only_point(parsed)
    assert point.completed is None
    assert point.metrics["ttft_mean_ms"] == D("189.12410335615277")
    assert point.metrics["itl_p99_ms"] == D("263.0033450573683")
    assert missing_metrics(parsed, ["requests_per_s", "ttft_p99_ms", "latency_p95_ms"]) == [
        "requests_per_s",
        "latency_p95_ms",
    ]
    assert any("local path" in w for w in parsed.warnings)


def test_vllm_serving_all_requests_failed_file_is_refused(benchmark_samples):
    with pytest.raises(BenchmarkFileError) as caught:
        load(benchmark_samples, FAILED_FILE)
    message = str(caught.value)
    assert message.startswith(FAILED_FILE)
    assert "no request completed (8 failed)" in message


def test_vllm_latency_seconds_become_milliseconds(benchmark_samples):
    parsed = load(benchmark_samples, "vllm_benchmark_latency_ascend_llama3-8b.json")
    point = only_point(parsed)
    assert point.concurrency is None
    assert point.metrics == {
        "latency_mean_ms": D("7109.1228867570555"),
        "latency_p50_ms": D("7112.779660150409"),
        "latency_p90_ms": D("7397.279229387641"),
        "latency_p99_ms": D("7868.931790143251"),
    }
    assert parsed.settings == {"iterations": "15"}


def test_vllm_throughput_gives_requests_and_total_tokens(benchmark_samples):
    parsed = load(benchmark_samples, "vllm_benchmark_throughput_ascend_llama3-8b.json")
    point = only_point(parsed)
    assert point.completed == 200
    assert point.metrics == {
        "requests_per_s": D("2.781764499305893"),
        "total_tokens_per_s": D("1198.996134490826"),
    }


def test_vllm_nightly_summary_has_one_point_per_test(benchmark_samples):
    parsed = load(
        benchmark_samples, "vllm_nightly_benchmark_results_summary_llama3.3-70b_tp4_pp2.json"
    )
    assert [p.label for p in parsed.points] == [
        "tp4_pp2_non_optimized_IB_qps_01",
        "tp4_pp2_non_optimized_IB_qps_04",
        "tp4_pp2_non_optimized_IB_qps_16",
        "tp4_pp2_non_optimized_IB_qps_inf",
    ]
    assert [p.request_rate for p in parsed.points] == [D(1), D(4), D(16), None]
    assert parsed.hardware == "1xStandard_ND96asr_v4-IB-trial-1 x 2"
    first, last = parsed.points[0], parsed.points[-1]
    assert first.completed == 200
    assert first.metrics["requests_per_s"] == D("0.9252941316144377")
    assert first.metrics["total_tokens_per_s"] == D("395.26252067239744")
    assert first.metrics["ttft_p99_ms"] == D("220.9331577912234")
    assert last.metrics["tpot_p50_ms"] == D("72.8739474022069")


def test_triton_gpu_rows_are_sorted_by_concurrency(benchmark_samples):
    parsed = load(benchmark_samples, "triton_perf_analyzer_bert_base_gpu_trt.csv")
    assert [p.concurrency for p in parsed.points] == list(range(4, 26, 2))
    by_concurrency = {p.concurrency: p for p in parsed.points}
    assert by_concurrency[4].metrics["latency_p95_ms"] == D("30.269")
    assert by_concurrency[4].metrics["latency_p50_ms"] == D("15.721")
    assert by_concurrency[22].metrics["requests_per_s"] == D("530")
    assert by_concurrency[24].metrics["latency_p99_ms"] == D("129.935")
    assert by_concurrency[4].label == "concurrency 4"
    # This header generation has no Avg latency column.
    assert missing_metrics(parsed, ["latency_mean_ms", "latency_p99_ms"]) == ["latency_mean_ms"]
    assert any("inferences/s" in w for w in parsed.warnings)


def test_triton_cpu_file_keeps_fractional_throughput(benchmark_samples):
    parsed = load(benchmark_samples, "triton_perf_analyzer_bert_base_tf_cpu.csv")
    assert len(parsed.points) == 11
    assert parsed.points[0].concurrency == 4
    by_concurrency = {p.concurrency: p for p in parsed.points}
    assert by_concurrency[18].metrics["requests_per_s"] == D("5.33333")
    assert by_concurrency[4].metrics["latency_p50_ms"] == D("673.738")
    assert by_concurrency[24].metrics["latency_p95_ms"] == D("4264.605")


def test_triton_model_analyzer_gpu_columns_are_converted(benchmark_samples):
    parsed = load(benchmark_samples, "triton_perf_analyzer_add_sub_model_analyzer.csv")
    point = only_point(parsed)
    assert point.concurrency == 2
    assert point.metrics["requests_per_s"] == D("5868.79")
    assert point.metrics["latency_mean_ms"] == D("0.339")
    assert point.metrics["latency_p99_ms"] == D("0.598")
    assert point.metrics["utilisation_pct"] == D("4.5")
    assert point.metrics["peak_memory_gb"] == D("0.872415232")


def test_genai_perf_profile_csv_nanoseconds_become_milliseconds(benchmark_samples):
    parsed = load(benchmark_samples, "genai_perf_profile_export_genai_perf.csv")
    point = only_point(parsed)
    assert point.metrics["ttft_p99_ms"] == D("6.87579")
    assert point.metrics["ttft_mean_ms"] == D("5.964158")
    assert point.metrics["itl_p50_ms"] == D("1.703449")
    assert point.metrics["latency_p95_ms"] == D("132.646246")
    assert point.metrics["requests_per_s"] == D("10.95")
    assert point.metrics["output_tokens_per_s"] == D("623.19")
    assert parsed.model_name == ""
    assert parsed.settings["input_tokens_mean"] == "101"


def test_genai_perf_analyze_csv_joins_gpu_telemetry(benchmark_samples):
    parsed = load(benchmark_samples, "genai_perf_analyze_export_genai_perf_gpt2.csv")
    assert [p.label for p in parsed.points] == [f"gpt2_run_config_{i}" for i in range(5)]
    assert {p.concurrency for p in parsed.points} == {32}
    config_3 = parsed.points[3]
    assert config_3.metrics["ttft_p99_ms"] == D("184.43")
    assert config_3.metrics["latency_p99_ms"] == D("3406.24")
    assert config_3.metrics["requests_per_s"] == D("10.12")
    assert config_3.metrics["output_tokens_per_s"] == D("1134.92")
    assert config_3.metrics["peak_memory_gb"] == D("22.62")
    assert config_3.metrics["utilisation_pct"] == D("10.00")
    assert parsed.model_name == "gpt2"
    assert parsed.settings["isl"] == "200"
    assert parsed.settings["gpu_total_memory_gb"] == "25.77"


def test_genai_perf_profile_json_reads_flat_input_config(benchmark_samples):
    parsed = load(benchmark_samples, "genai_perf_profile_export_genai_perf_gpt-oss-20b_v1.json")
    point = only_point(parsed)
    assert parsed.tool == "genai-perf-profile"
    assert parsed.model_name == "openai/gpt-oss-20b"
    assert (point.label, point.concurrency, point.completed) == ("concurrency 1", 1, 66)
    assert point.metrics["requests_per_s"] == D("0.31455262548511714")
    assert point.metrics["latency_p95_ms"] == D("4739.337589")
    assert point.metrics["ttft_p50_ms"] == D("2088.661403")
    # output_token_throughput_per_request must not be read as the throughput.
    assert point.metrics["output_tokens_per_s"] == D("25.824770552328115")
    assert parsed.settings["synthetic_input_tokens_mean"] == "150"


def test_aiperf_profile_json_reads_nested_config_and_telemetry(benchmark_samples):
    name = "aiperf_profile_export_aiperf_gpt-oss-20b.json"
    parsed = load(benchmark_samples, name)
    point = only_point(parsed)
    assert parsed.tool == "aiperf-profile"
    assert parsed.hardware == "8 \N{MULTIPLICATION SIGN} NVIDIA A100-SXM4-80GB"
    assert parsed.model_name == "openai/gpt-oss-20b"
    assert (point.concurrency, point.completed) == (1, 100)
    assert point.metrics["ttft_p99_ms"] == D("99.64934874000001")
    assert point.metrics["latency_p90_ms"] == D("5936.6197825")
    assert point.metrics["requests_per_s"] == D("0.19245648570156926")
    raw = raw_json(benchmark_samples, name)
    gpus = [
        gpu["metrics"]
        for endpoint in raw["telemetry_data"]["endpoints"].values()
        for gpu in endpoint["gpus"].values()
    ]
    assert point.metrics["peak_memory_gb"] == max(g["gpu_memory_used"]["max"] for g in gpus)
    assert point.metrics["utilisation_pct"] == sum(g["gpu_utilization"]["avg"] for g in gpus) / len(
        gpus
    )
    assert parsed.measured_at is not None
    assert parsed.measured_at.replace(microsecond=0) == datetime(2026, 1, 15, 6, 27, 34, tzinfo=UTC)
    assert "api_key" not in " ".join(parsed.settings)
    assert "test_key" not in " ".join(parsed.settings.values())
    assert any("used no memory" in w for w in parsed.warnings)


# Synthetic layouts ------------------------------------------------------------------------


def test_triton_reordered_columns_and_unknown_column_still_import():
    csv_text = (
        "p99 latency,Inferences/Second,Some Future Column,Concurrency,Avg latency,p95 latency\n"
        "9000,20.5,whatever,2,5000,8000\n"
        "4000,10,x,1,2500,3500\n"
    )
    parsed = parse_text(csv_text, "renamed.json")  # the name does not decide the tool
    assert parsed.tool == "triton-perf-analyzer"
    assert [p.concurrency for p in parsed.points] == [1, 2]
    second = parsed.points[1]
    assert second.metrics == {
        "requests_per_s": D("20.5"),
        "latency_mean_ms": D("5"),
        "latency_p95_ms": D("8"),
        "latency_p99_ms": D("9"),
    }


def test_triton_several_gpus_in_a_cell_take_max_memory_and_mean_utilisation():
    csv_text = (
        "Concurrency,Inferences/Second,p99 latency,Avg GPU Utilization,Max GPU Memory Usage,\n"
        "4,100,2000,GPU-a:0.5;GPU-b:0.25;,GPU-a:1000000000;GPU-b:3000000000;,\n"
    )
    point = only_point(parse_text(csv_text))
    assert point.metrics["utilisation_pct"] == D("37.5")
    assert point.metrics["peak_memory_gb"] == D("3")


def test_triton_non_numeric_cell_names_line_and_column():
    csv_text = "Concurrency,Inferences/Second,p95 latency\n1,10,100\n2,20,abc\n"
    with pytest.raises(BenchmarkFileError) as caught:
        parse_text(csv_text, "perf.csv")
    message = str(caught.value)
    assert message.startswith("perf.csv: ")
    assert 'line 3, column "p95 latency"' in message
    assert '"abc" is not a number' in message


def test_triton_surplus_field_with_a_value_is_refused():
    csv_text = "Concurrency,Inferences/Second\n1,10,99\n"
    with pytest.raises(BenchmarkFileError, match="line 2: 3 fields but the header"):
        parse_text(csv_text)


def test_triton_request_rate_mode_labels_points_by_rate():
    csv_text = "Request Rate,Inferences/Second,p99 latency\n20,19.5,1000\n10,10,500\n"
    parsed = parse_text(csv_text)
    assert [p.label for p in parsed.points] == ["qps 10", "qps 20"]
    assert parsed.points[0].request_rate == D(10)


def test_vllm_serving_newer_e2el_and_p95_keys_are_recognised():
    data = {
        "date": "20250601-120000",
        "backend": "openai-chat",
        "model_id": "org/model",
        "num_prompts": 102,
        "request_rate": 4.0,
        "max_concurrency": 8,
        "completed": 100,
        "failed": 2,
        "request_throughput": 3.5,
        "output_throughput": 700.25,
        "total_token_throughput": 1400.5,
        "max_output_tokens_per_s": 900.0,
        "mean_e2el_ms": 1500.5,
        "median_e2el_ms": 1400,
        "p90_e2el_ms": 2000,
        "p95_e2el_ms": 2100.75,
        "p99_e2el_ms": 2500,
        "p99.9_e2el_ms": 9999,
        "std_e2el_ms": 300,
        "p95_ttft_ms": 120,
        "p90_itl_ms": 30,
        "mean_tpot_ms": 20.5,
    }
    parsed = parse_text(json.dumps(data))
    point = only_point(parsed)
    assert (point.label, point.concurrency, point.request_rate) == ("concurrency 8, qps 4", 8, D(4))
    assert (point.completed, point.failed) == (100, 2)
    assert point.metrics == {
        "requests_per_s": D("3.5"),
        "output_tokens_per_s": D("700.25"),
        "total_tokens_per_s": D("1400.5"),
        "latency_mean_ms": D("1500.5"),
        "latency_p50_ms": D("1400"),
        "latency_p90_ms": D("2000"),
        "latency_p95_ms": D("2100.75"),
        "latency_p99_ms": D("2500"),
        "ttft_p95_ms": D("120"),
        "itl_p90_ms": D("30"),
        "tpot_mean_ms": D("20.5"),
    }
    assert any("2 of 102 requests failed" in w for w in parsed.warnings)


def test_vllm_serving_non_numeric_value_names_the_key():
    data = {"date": "20250601-120000", "completed": 5, "mean_ttft_ms": "fast"}
    with pytest.raises(BenchmarkFileError, match='key "mean_ttft_ms": "fast" is not a number'):
        parse_text(json.dumps(data), "serve.json")


def test_vllm_latency_without_percentiles_computes_them():
    data = {"avg_latency": 2.5, "latencies": [1, 2, 3, 4]}
    parsed = parse_text(json.dumps(data))
    point = only_point(parsed)
    assert point.metrics["latency_mean_ms"] == D("2500")
    assert point.metrics["latency_p50_ms"] == D("2500")
    assert point.metrics["latency_p90_ms"] == D("3700")
    assert any("computed" in w for w in parsed.warnings)


def test_vllm_nightly_pandas_columns_layout_is_read():
    data = {
        "latency": {},
        "throughput": {},
        "serving": {
            "Test name": {"0": "serving_llama8B_tp1_qps_2", "1": "serving_llama8B_tp1_qps_inf"},
            "GPU": {"0": "8xH100", "1": "8xH100"},
            "# of req.": {"0": 200, "1": 200},
            "Tput (req/s)": {"0": 1.9, "1": 7.5},
            "Mean TPOT (ms)": {"0": 10, "1": 20},
            "Median": {"0": 11, "1": 21},
            "P99": {"0": 15, "1": 30},
            "STD TPOT (ms)": {"0": 1, "1": 2},
        },
    }
    parsed = parse_text(json.dumps(data))
    assert parsed.tool == "vllm-nightly"
    assert parsed.hardware == "8xH100"
    first, second = parsed.points
    assert (first.label, first.request_rate, second.request_rate) == (
        "serving_llama8B_tp1_qps_2",
        D(2),
        None,
    )
    # Bare "Median" and "P99" belong to the TPOT column before them.
    assert second.metrics == {
        "requests_per_s": D("7.5"),
        "tpot_mean_ms": D("20"),
        "tpot_p50_ms": D("21"),
        "tpot_p99_ms": D("30"),
    }


def test_genai_perf_json_converts_each_metric_by_its_unit():
    data = {
        "request_latency": {"unit": "ns", "avg": 2500000, "p99": 4000001, "std": 5},
        "time_to_first_token": {"unit": "us", "avg": 1500, "p95": 2000.5},
        "inter_token_latency": {"unit": "s", "p50": 0.0125},
        "request_throughput": {"unit": "requests/sec", "avg": 4.25},
        "output_token_throughput_per_user": {"unit": "tokens/sec/user", "avg": 99},
        "request_count": {"unit": "count", "avg": 40},
        "input_config": {"model": ["org/m"], "perf_analyzer": {"stimulus": {"concurrency": 4}}},
    }
    parsed = parse_text(json.dumps(data))
    point = only_point(parsed)
    assert parsed.tool == "genai-perf-profile"
    assert (point.concurrency, point.completed, parsed.model_name) == (4, 40, "org/m")
    assert point.metrics == {
        "requests_per_s": D("4.25"),
        "latency_mean_ms": D("2.5"),
        "latency_p99_ms": D("4.000001"),
        "ttft_mean_ms": D("1.5"),
        "ttft_p95_ms": D("2.0005"),
        "itl_p50_ms": D("12.5"),
    }


def test_aiperf_csv_sections_and_gpu_table_are_read():
    csv_text = (
        "Metric,avg,min,max,p50,p90,p99,std\r\n"
        "Request Latency (ms),100.5,50,200,99,150,190,10\r\n"
        "Time to First Token (ms),20,10,30,19,25,29,2\r\n"
        "Inter Chunk Latency (ms),5,1,9,5,8,9,1\r\n"
        "\r\n"
        "Metric,Value\r\n"
        "Request Throughput (requests/sec),13.16\r\n"
        "Request Count,200.00\r\n"
        "\r\n"
        "Endpoint,GPU_Index,GPU_Name,GPU_UUID,Metric,avg,max,p99\r\n"
        "h:9401,0,NVIDIA L4,GPU-a,GPU Utilization (%),40,90,88\r\n"
        "h:9401,0,NVIDIA L4,GPU-a,GPU Memory Used (GB),10,12,11\r\n"
        "h:9401,1,NVIDIA L4,GPU-b,GPU Utilization (%),60,95,94\r\n"
        "h:9401,1,NVIDIA L4,GPU-b,GPU Memory Used (GB),14,15,15\r\n"
    )
    parsed = parse_text(csv_text)
    point = only_point(parsed)
    assert parsed.tool == "aiperf-profile"
    assert parsed.hardware == "2 \N{MULTIPLICATION SIGN} NVIDIA L4"
    assert point.completed == 200
    assert point.metrics["latency_mean_ms"] == D("100.5")
    assert point.metrics["ttft_p90_ms"] == D("25")
    assert point.metrics["requests_per_s"] == D("13.16")
    assert point.metrics["utilisation_pct"] == D("50")
    assert point.metrics["peak_memory_gb"] == D("15")


def test_genai_perf_analyze_non_numeric_cell_names_line_and_column():
    csv_text = "Config Name,Concurrency,p99 Request Latency (ms)\r\nm_run_config_0,8,n/a\r\n"
    with pytest.raises(BenchmarkFileError, match='line 2, column "p99 Request Latency \\(ms\\)"'):
        parse_text(csv_text)


# capgov JSON ------------------------------------------------------------------------------


def capgov_doc() -> dict:
    """A valid capgov file: the example in docs/benchmark-format.md when present."""
    if DOCS.is_file():
        match = re.search(r"```json\n(.*?)```", DOCS.read_text(), re.DOTALL)
        assert match, "docs/benchmark-format.md has no JSON example"
        return json.loads(match.group(1))
    return {
        "capgov_benchmark": 1,
        "measured_at": "2025-03-01T14:30:00+01:00",
        "points": [{"label": "concurrency 8", "metrics": {"requests_per_s": 12.0}}],
    }


def test_capgov_documented_example_imports():
    parsed = parse_text(json.dumps(capgov_doc()))
    assert parsed.tool == "capgov"
    assert parsed.measured_at == datetime(2025, 3, 1, 13, 30, tzinfo=UTC)
    first = parsed.points[0]
    assert (first.label, first.concurrency, first.completed) == ("concurrency 8", 8, 1000)
    assert first.metrics["requests_per_s"] == D("12.0")
    assert first.metrics["latency_p95_ms"] == D("480")


def test_capgov_happy_path_keeps_every_field():
    data = {
        "capgov_benchmark": 1,
        "tool": "locust",
        "model": "org/model",
        "hardware": "1 x L4",
        "measured_at": "2025-05-05T10:00:00Z",
        "settings": {"num_prompts": 100, "streaming": True, "note": "warm"},
        "points": [
            {
                "label": "qps 2",
                "concurrency": None,
                "request_rate": 2,
                "completed": 100,
                "failed": 1,
                "metrics": {"latency_p95_ms": 480, "utilisation_pct": 55.5, "cold_start_s": 30},
            }
        ],
    }
    parsed = parse_text(json.dumps(data))
    point = only_point(parsed)
    assert parsed.tool_label == "CapGov benchmark JSON (locust)"
    assert (parsed.model_name, parsed.hardware) == ("org/model", "1 x L4")
    assert parsed.measured_at == datetime(2025, 5, 5, 10, tzinfo=UTC)
    assert parsed.settings == {"num_prompts": "100", "streaming": "true", "note": "warm"}
    assert (point.request_rate, point.completed, point.failed) == (D(2), 100, 1)
    assert point.metrics == {
        "latency_p95_ms": D("480"),
        "cold_start_s": D("30"),
        "utilisation_pct": D("55.5"),
    }


def _capgov_with(**changes) -> dict:
    data = {
        "capgov_benchmark": 1,
        "points": [{"label": "c1", "concurrency": 1, "metrics": {"requests_per_s": 1}}],
    }
    point_changes = changes.pop("point", {})
    data["points"][0].update(point_changes)
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            _capgov_with(point={"metrics": {"latency_p98_ms": 5}}),
            r'unknown metric code "latency_p98_ms"; known codes: requests_per_s, ',
        ),
        (
            _capgov_with(point={"metrics": {"latency_p95_ms": -1}}),
            r"points\[0\]\.metrics\.latency_p95_ms: must not be negative",
        ),
        (_capgov_with(measured_at="2025-03-01T14:30:00"), r"measured_at: .* has no UTC offset"),
        (_capgov_with(measured_at="yesterday"), r"is not ISO 8601"),
        (_capgov_with(capgov_benchmark=2), r"version 2 is not supported"),
        (_capgov_with(points=[]), r"points: must be a list with at least one point"),
        (_capgov_with(extra=1), r"extra: unknown key"),
        (_capgov_with(point={"colour": "red"}), r"points\[0\]\.colour: unknown key"),
        (_capgov_with(point={"metrics": {"requests_per_s": "12"}}), r"must be a number"),
        (_capgov_with(point={"metrics": {}}), r"at least one metric code"),
        (_capgov_with(point={"metrics": {"utilisation_pct": 150}}), r"from 0 to 100"),
        (_capgov_with(point={"concurrency": 0}), r"concurrency: must be at least 1"),
        (_capgov_with(point={"concurrency": 2.5}), r"must be a whole number"),
        (_capgov_with(point={"request_rate": -2}), r"request_rate: must be positive"),
        (_capgov_with(point={"label": ""}), r"label: is required"),
        (_capgov_with(point={"completed": 0, "failed": 3}), r"no request completed \(3 failed\)"),
        (_capgov_with(settings={"nested": {"a": 1}}), r"settings\.nested: must be a string"),
        (
            _capgov_with(points=[{"label": "a", "metrics": {"requests_per_s": 1}}] * 2),
            r"labels must be unique; repeated: a",
        ),
    ],
)
def test_capgov_validation_errors_are_specific(data, expected):
    with pytest.raises(BenchmarkFileError, match=expected) as caught:
        parse_text(json.dumps(data), "ours.json")
    assert str(caught.value).startswith("ours.json: ")


def test_capgov_reports_all_problems_at_once():
    data = _capgov_with(extra=1, point={"metrics": {"requests_per_s": -1, "bogus": 2}})
    with pytest.raises(BenchmarkFileError) as caught:
        parse_text(json.dumps(data))
    message = str(caught.value)
    assert "extra: unknown key" in message
    assert "must not be negative" in message
    assert 'unknown metric code "bogus"' in message
    assert "docs/benchmark-format.md" in message


# Detection and errors ---------------------------------------------------------------------


def test_detect_unrecognised_json_lists_tools_and_docs():
    with pytest.raises(BenchmarkFileError) as caught:
        parse_text(json.dumps({"hello": "world"}), "mystery.json")
    message = str(caught.value)
    assert message.startswith("mystery.json: this JSON layout is not one we recognise")
    assert "Triton perf_analyzer" in message
    assert "docs/benchmark-format.md" in message


def test_detect_unrecognised_csv_lists_tools_and_docs():
    with pytest.raises(BenchmarkFileError, match="this CSV layout is not one we recognise") as c:
        parse_text("name,value\nfoo,1\n", "mystery.csv")
    assert "docs/benchmark-format.md" in str(c.value)


def test_detect_non_utf8_bytes_are_refused():
    with pytest.raises(BenchmarkFileError, match=r"^bin\.csv: not UTF-8 text \(byte 0xff"):
        parse_benchmark(b"Concurrency,Inferences/Second\n1,\xff\xfe\n", filename="bin.csv")


def test_detect_broken_json_names_line_and_column():
    with pytest.raises(BenchmarkFileError, match=r"not valid JSON: .* at line 2, column"):
        parse_text('{"completed": 1,\n "x": }')


def test_detect_plain_text_is_neither_json_nor_csv():
    with pytest.raises(BenchmarkFileError, match="neither JSON nor CSV"):
        parse_text("hello there\n")


def test_detect_empty_file_is_refused():
    with pytest.raises(BenchmarkFileError, match="empty"):
        parse_text("  \n")


def test_detect_byte_order_mark_is_accepted():
    data = "\ufeffConcurrency,Inferences/Second,p99 latency\n1,10,1000\n".encode()
    point = only_point(parse_benchmark(data, filename="bom.csv"))
    assert point.metrics["latency_p99_ms"] == D("1")


def test_detect_json_numbers_stay_exact():
    data = '{"avg_latency": 0.1, "percentiles": {"99": 0.30000000000000004}}'
    point = only_point(parse_text(data))
    assert point.metrics["latency_mean_ms"] == D("100")
    assert point.metrics["latency_p99_ms"] == D("300.00000000000004")


def test_detect_known_layout_without_any_value_has_no_usable_point():
    with pytest.raises(BenchmarkFileError, match="no usable point"):
        parse_text("Concurrency,Inferences/Second\n")


# Labels, metrics and missing_metrics ------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "unit", "code"),
    [
        ("p99_e2el_ms", None, "latency_p99_ms"),
        ("median_latency_ms", None, "latency_p50_ms"),
        ("P99 TTFT (ms)", None, "ttft_p99_ms"),
        ("Mean TPOT (ms)", None, "tpot_mean_ms"),
        ("Avg. Output Token Throughput (tokens/sec)", None, "output_tokens_per_s"),
        ("Tput (req/s)", None, "requests_per_s"),
        ("Total Token Tput (tok/s)", None, "total_tokens_per_s"),
        ("Inferences/Second", None, "requests_per_s"),
        ("requests_per_second", None, "requests_per_s"),
        ("p95 latency", None, "latency_p95_ms"),
        ("Max GPU Memory Usage", None, "peak_memory_gb"),
        ("p99 GPU Utilization (%)", None, "utilisation_pct"),
        ("request_throughput", "requests/sec", "requests_per_s"),
        ("time_to_second_token", "ms", None),
        ("time_to_first_output_token", "ms", None),
        ("output_token_throughput_per_user", "tokens/sec/user", None),
        ("p99.9_ttft_ms", None, None),
        ("std_ttft_ms", None, None),
        ("request_goodput:", None, None),
        ("max_output_tokens_per_s", None, None),
        ("Network+Server Send/Recv", None, None),
        ("Total GPU Memory", None, None),
        ("Output Sequence Length (tokens)", None, None),
    ],
)
def test_labels_are_read_by_meaning(label, unit, code):
    reading = read_label(label, unit=unit)
    found = metric_code(reading) if reading else None
    assert (found[0] if found else None) == code


def test_metrics_cover_the_contract_codes():
    required = {
        "requests_per_s",
        "output_tokens_per_s",
        "total_tokens_per_s",
        *(f"latency_{s}_ms" for s in ("mean", "p50", "p90", "p95", "p99")),
        *(f"ttft_{s}_ms" for s in ("mean", "p50", "p90", "p95", "p99")),
        "itl_mean_ms",
        "itl_p50_ms",
        "itl_p99_ms",
        "tpot_mean_ms",
        "tpot_p50_ms",
        "tpot_p99_ms",
        "peak_memory_gb",
        "cold_start_s",
        "utilisation_pct",
    }
    assert required <= set(METRICS)
    assert all(code == metric.code for code, metric in METRICS.items())
    assert METRICS["latency_p95_ms"].unit == "ms"
    assert METRICS["peak_memory_gb"].unit == "GB"
    assert METRICS["utilisation_pct"].unit == "%"


def test_missing_metrics_requires_every_point_in_given_order():
    csv_text = "Concurrency,Inferences/Second,p99 latency\n1,10,1000\n2,20,\n"
    parsed = parse_text(csv_text)
    assert missing_metrics(parsed, ["latency_p99_ms", "requests_per_s", "ttft_p99_ms"]) == [
        "latency_p99_ms",
        "ttft_p99_ms",
    ]
    assert missing_metrics(parsed, ["requests_per_s"]) == []
    assert missing_metrics(parsed, ["ttft_p99_ms", "ttft_p99_ms"]) == ["ttft_p99_ms"]
