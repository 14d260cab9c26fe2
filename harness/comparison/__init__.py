"""The comparison engine: the one place two runs are paired and compared.

`harness gate`, `harness compare`, `harness monitor rag` and the board's Compare page all call it,
so the same two runs give the same numbers on every screen. Modules: `pairing` (sample ids,
inputs, data hash, suite version), `metric` (mean metrics: paired tests; corpus metrics: paired
bootstrap over segments), `worst` (the samples that regressed most), `runs` (whole runs, and
the one rule for a suite's primary metric).
"""

from harness.comparison.metric import MetricComparison, compare_corpus, compare_metric, corpus_p_value
from harness.comparison.pairing import (
    MetricPairs,
    Pairing,
    RunSamples,
    load_run_samples,
    metric_pairs,
    pair_runs,
    sample_directions,
)
from harness.comparison.runs import (
    MetricOutcome,
    RunComparison,
    compare_one,
    compare_runs,
    corpus_metric,
    load_pairing,
    primary_metric,
)
from harness.comparison.worst import SampleChange, gold_text, model_text, prompt_text, worst_regressions

__all__ = [
    "MetricComparison",
    "MetricOutcome",
    "MetricPairs",
    "Pairing",
    "RunComparison",
    "RunSamples",
    "SampleChange",
    "compare_corpus",
    "compare_metric",
    "compare_one",
    "compare_runs",
    "corpus_metric",
    "corpus_p_value",
    "gold_text",
    "load_pairing",
    "load_run_samples",
    "metric_pairs",
    "model_text",
    "pair_runs",
    "primary_metric",
    "prompt_text",
    "sample_directions",
    "worst_regressions",
]
