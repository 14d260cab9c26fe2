"""sacrebleu's corpus metrics as sufficient statistics per segment, so that corpus BLEU, chrF,
chrF++ and TER can be recomputed on any subset or bootstrap resample of a stored run's segments.

A corpus metric is not the mean of sentence scores: corpus BLEU sums n-gram matches and lengths
over all segments and only then takes precisions and the brevity penalty. The comparison engine
(`harness.comparison`) resamples segments and re-scores the summed statistics (Koehn 2004, what
`sacrebleu --paired-bs` does), using the same sacrebleu objects the suite scores with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from harness.errors import ConfigError
from harness.types import MetricValue

#: sacrebleu metrics by the name the harness reports them under.
SACREBLEU_METRICS = ("bleu", "chrf", "chrf++", "ter")


def sacrebleu_metric(name: str, tokenize: str | None = None, target_lang: str | None = None,
                     sentence: bool = False, who: str = "suite 'translation'") -> Any:
    """A fresh sacrebleu metric object (they cache references, so never share one).

    `sentence=True` gives what `sacrebleu --sentence-level` uses: BLEU with effective order."""
    from sacrebleu.metrics import BLEU, CHRF, TER

    try:
        if name == "bleu":
            return BLEU(tokenize=tokenize, trg_lang=target_lang or "", effective_order=sentence)
        if name == "chrf":
            return CHRF(word_order=0)
        if name == "chrf++":
            return CHRF(word_order=2)
        return TER()
    except Exception as exc:  # sacrebleu raises plain errors for an unknown tokenizer
        raise ConfigError(f"{who}: {exc}") from None


def corpus_sacrebleu(name: str, hyps: Sequence[str], ref_lists: Sequence[Sequence[str]], tokenize: str | None,
                     target_lang: str | None, bootstrap: int, label: str | None = None) -> MetricValue:
    """One corpus-level sacrebleu score with its signature (and a bootstrap standard error when
    `bootstrap` > 1), as the sacrebleu command line computes it."""
    metric = sacrebleu_metric(name, tokenize, target_lang)
    result = metric.corpus_score(list(hyps), reference_streams(ref_lists), n_bootstrap=bootstrap if bootstrap > 1 else 1)
    ci = getattr(result, "_ci", None)
    return MetricValue(
        label or name,
        float(result.score),
        stderr=float(ci) / 1.96 if ci is not None else None,
        n=len(hyps),
        higher_is_better=name != "ter",
        details={
            "signature": str(metric.get_signature()),
            "score": result.format(signature=str(metric.get_signature())),
            "level": "corpus",
            "stderr": f"bootstrap 95% CI half-width / 1.96 ({bootstrap} resamples)" if ci is not None else None,
        },
    )


def corpus_target_lang(directions: Sequence[str]) -> str | None:
    """The target language the corpus is scored for: that of its one direction, or None (sacrebleu's
    language-neutral defaults) when directions are mixed."""
    unique = set(directions)
    if len(unique) != 1:
        return None
    return next(iter(unique)).partition("-")[2] or None


def reference_streams(ref_lists: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """sacrebleu takes one stream per reference; None marks a segment with fewer references."""
    n_refs = max(len(r) for r in ref_lists)
    return [[refs[k] if k < len(refs) else None for refs in ref_lists] for k in range(n_refs)]


@dataclass(frozen=True)
class SacrebleuCorpus:
    """One corpus metric (`bleu`, or `de-en/bleu` for one direction) of a translation run."""

    name: str
    direction: str | None
    tokenize: str | None
    higher_is_better: bool

    @property
    def sample_score(self) -> str:
        """The per-sample score that shows which segments moved (flips, worst regressions)."""
        return f"sentence_{self.name}"

    def includes(self, details: Mapping[str, Any]) -> bool:
        return self.direction is None or str(details.get("direction", "")) == self.direction

    def statistics(self, details: Sequence[Mapping[str, Any]]) -> tuple[NDArray[np.float64], Any]:
        """Per-segment sufficient statistics (rows in order) and the metric object that scores them."""
        target = corpus_target_lang([str(d.get("direction", "-")) for d in details])
        metric = sacrebleu_metric(self.name, self.tokenize, target)
        hyps = [str(d["hypothesis"]) for d in details]
        streams = reference_streams([list(d["references"]) for d in details])
        stats = np.asarray(metric._extract_corpus_statistics(hyps, streams), dtype=np.float64)
        return stats, metric

    @staticmethod
    def score(metric: Any, totals: NDArray[np.float64]) -> float:
        """The corpus score of summed statistics (sacrebleu's own formula)."""
        return float(metric._compute_score_from_stats(list(totals)).score)


def corpus_metric(metric: str, options: Mapping[str, Any]) -> SacrebleuCorpus | None:
    """The corpus metric named `metric` (optionally `direction/name`), or None for other names."""
    direction, _, name = metric.rpartition("/")
    if name not in SACREBLEU_METRICS:
        return None
    return SacrebleuCorpus(name, direction or None, options.get("tokenize"), name != "ter")
