"""Import benchmark result files (vLLM, Triton, GenAI-Perf, AIPerf, our own JSON) by meaning.

Pure Python with no Django imports, so it can be used and tested on its own. The one entry
point is `parse_benchmark`; the file format is recognised from the content.
"""

from .detect import RECOGNISED, parse_benchmark
from .metrics import METRICS, Metric
from .result import BenchmarkFileError, ParsedBenchmark, ParsedPoint, missing_metrics

__all__ = [
    "METRICS",
    "RECOGNISED",
    "BenchmarkFileError",
    "Metric",
    "ParsedBenchmark",
    "ParsedPoint",
    "missing_metrics",
    "parse_benchmark",
]
