"""RAG-extraction regressions between a baseline and a candidate run on the same questions.

Samples are paired by id (never by position). Per sample we look at exact-match and F1 flips,
answers that are no longer supported by the context (the suite's `supported` score: the answer text
occurs in the context), and abstention changes: answering where the context lacks the answer, or
abstaining where it has it. Each is tested on the paired samples (exact McNemar through a binomial
test on the discordant pairs; for F1 the comparison engine's paired test, the same the gate runs),
Holm-corrected, and the worst examples are listed for a person to read.

Pairing is the comparison engine's (`harness.comparison`): runs over another data file, under
another suite version or with different inputs for the same sample id are refused (exit 2), as
the gate refuses them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.comparison import compare_metric, load_pairing
from harness.errors import UserError
from harness.stats import mcnemar_from_counts
from harness.store import Store
from monitors.config import RagRegressionConfig
from monitors.results import Finding, MonitorResult
from monitors.statistics import holm

SUITE = "rag-extraction"


@dataclass(frozen=True)
class Paired:
    """One question answered by both runs."""

    sample_id: str
    unanswerable: bool
    base: Mapping[str, Any]  # scores
    cand: Mapping[str, Any]
    base_pred: str
    cand_pred: str
    question: str
    gold: Sequence[str]

    @staticmethod
    def unsupported(scores: Mapping[str, Any]) -> bool:
        """Answered, and the answer text is not in the context."""
        return not scores.get("abstained") and scores.get("supported") == 0.0


def pair_runs(store: Store, baseline: str, candidate: str) -> tuple[list[Paired], dict[str, Any]]:
    """Load both runs' samples and pair them by id; refuses runs of another suite, over other data or
    another suite version, or with nothing in common."""
    runs = [store.get_run(baseline), store.get_run(candidate)]
    for run in runs:
        if run["suite"] != SUITE:
            raise UserError(f"run {run['id']} is a '{run['suite']}' run; the RAG monitor compares '{SUITE}' runs")
        if run["status"] != "complete":
            raise UserError(f"run {run['id']} is {run['status']}, not complete: finish it first (rerun its command)")
    pairing = load_pairing(store, runs[0], runs[1])
    refused = [p for p in pairing.problems() if "only in the" not in p]
    if refused:
        raise UserError(f"runs {runs[0]['id']} and {runs[1]['id']} cannot be paired: {'; '.join(refused)}")
    base_rows = {r["sample_id"]: r for r in store.run_samples(runs[0]["id"])}
    cand_rows = {r["sample_id"]: r for r in store.run_samples(runs[1]["id"])}
    common = pairing.common
    if not common:
        raise UserError(f"runs {runs[0]['id']} and {runs[1]['id']} share no sample ids: they were not run on the same questions")
    pairs = []
    for sid in common:
        b, c = base_rows[sid], cand_rows[sid]
        pairs.append(
            Paired(
                sample_id=sid,
                unanswerable="unanswerable" in b["groups"],
                base=b["scores"],
                cand=c["scores"],
                base_pred=str(b["details"].get("prediction", "")),
                cand_pred=str(c["details"].get("prediction", "")),
                question=str(b["input"].get("question", "")),
                gold=list(b["details"].get("gold", [])),
            )
        )
    info = {
        "baseline": runs[0]["id"],
        "candidate": runs[1]["id"],
        "n_paired": len(pairs),
        "missing_in_candidate": len(pairing.only_baseline),
        "missing_in_baseline": len(pairing.only_candidate),
        "same_data": pairing.same_data,
        "suite_versions": [runs[0]["suite_version"], runs[1]["suite_version"]],
    }
    return pairs, info


@dataclass(frozen=True)
class _Flips:
    """Discordant pairs of a per-sample 0/1 'good' indicator: losses (good -> bad) and gains (bad -> good)."""

    n: int
    losses: list[str]
    gains: list[str]

    def mcnemar_p(self) -> float:
        """Exact one-sided McNemar: are losses more likely than gains among the discordant pairs?"""
        if not self.losses and not self.gains:
            return 1.0
        return mcnemar_from_counts(len(self.losses), len(self.gains), alternative="less").p_value


def _flips(pairs: Sequence[Paired], good: Callable[[Mapping[str, Any]], bool]) -> _Flips:
    losses = [p.sample_id for p in pairs if good(p.base) and not good(p.cand)]
    gains = [p.sample_id for p in pairs if not good(p.base) and good(p.cand)]
    return _Flips(len(pairs), losses, gains)


def rag_regressions(pairs: Sequence[Paired], info: Mapping[str, Any], config: RagRegressionConfig) -> MonitorResult:
    answerable = [p for p in pairs if not p.unanswerable]
    unanswerable = [p for p in pairs if p.unanswerable]
    flip_tests: list[tuple[str, str, _Flips]] = [
        ("exact_match flips", "answers that were exactly right and no longer are",
         _flips(pairs, lambda s: s.get("exact_match") == 1.0)),
        ("unsupported answers", "answers no longer found in the context",
         _flips(pairs, lambda s: not Paired.unsupported(s))),
        ("answers where it should abstain", "unanswerable questions it used to abstain on and now answers",
         _flips(unanswerable, lambda s: bool(s.get("abstained")))),
        ("abstains where it should answer", "answerable questions it used to answer and now abstains on",
         _flips(answerable, lambda s: not s.get("abstained"))),
    ]
    f1_base = np.array([float(p.base.get("f1", 0.0)) for p in pairs])
    f1_cand = np.array([float(p.cand.get("f1", 0.0)) for p in pairs])
    diff = f1_cand - f1_base
    f1_test = compare_metric("f1", f1_base, f1_cand, True, alternative="less", n_resamples=1_000)
    f1_p = f1_test.test.p_value
    p_values = [t[2].mcnemar_p() for t in flip_tests] + [f1_p]
    adjusted = holm(p_values)

    findings = []
    for (name, what, flips), p_adj in zip(flip_tests, adjusted[:-1], strict=True):
        assert p_adj is not None
        net = len(flips.losses) - len(flips.gains)
        alarm = p_adj < config.alpha and net >= config.min_net_losses
        message = (f"{name}: {len(flips.losses)} lost, {len(flips.gains)} gained of {flips.n} ({what}); "
                   f"exact McNemar Holm p={p_adj:.3g}" + (" -> REGRESSION" if alarm else ""))
        findings.append(Finding(name, "mcnemar", float(net), p_adj, config.alpha, alarm, message, {
            "n": flips.n, "losses": len(flips.losses), "gains": len(flips.gains), "net_losses": net,
            "min_net_losses": config.min_net_losses, "p_raw": flips.mcnemar_p(),
            "lost_ids": flips.losses[:50], "gained_ids": flips.gains[:50],
        }))
    f1_adj = adjusted[-1]
    assert f1_adj is not None
    mean_delta = float(diff.mean())
    f1_alarm = f1_adj < config.alpha and -mean_delta >= config.min_f1_drop
    findings.append(Finding(
        "f1", f1_test.test.method, mean_delta, f1_adj, config.alpha, f1_alarm,
        f"f1: mean {f1_base.mean():.4f} -> {f1_cand.mean():.4f} ({mean_delta:+.4f}); {int(np.sum(diff < 0))} samples worse, "
        f"{int(np.sum(diff > 0))} better; {f1_test.test.method} Holm p={f1_adj:.3g}" + (" -> REGRESSION" if f1_alarm else ""),
        {"baseline_mean": float(f1_base.mean()), "candidate_mean": float(f1_cand.mean()), "worse": int(np.sum(diff < 0)),
         "better": int(np.sum(diff > 0)), "min_f1_drop": config.min_f1_drop, "p_raw": f1_p},
    ))
    summary = {**info, "worst": worst_examples(pairs, config.worst), "means": _means(pairs)}
    return MonitorResult("rag", str(info["baseline"]), str(info["candidate"]), tuple(findings), summary=summary,
                         config=config.model_dump())


def _means(pairs: Sequence[Paired]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for metric in ("exact_match", "f1", "abstained", "supported"):
        for side, get in (("baseline", lambda p: p.base), ("candidate", lambda p: p.cand)):
            values = [float(get(p)[metric]) for p in pairs if get(p).get(metric) is not None]
            if values:
                out.setdefault(metric, {})[side] = float(np.mean(values))
    return out


def worst_examples(pairs: Sequence[Paired], limit: int) -> list[dict[str, Any]]:
    """Regressed samples, worst first: by F1 lost, then by how many kinds of regression they show."""
    scored = []
    for p in pairs:
        reasons = []
        if p.base.get("exact_match") == 1.0 and p.cand.get("exact_match") != 1.0:
            reasons.append("exact match lost")
        if not Paired.unsupported(p.base) and Paired.unsupported(p.cand):
            reasons.append("answer not in context")
        if p.unanswerable and p.base.get("abstained") and not p.cand.get("abstained"):
            reasons.append("answers an unanswerable question")
        if not p.unanswerable and not p.base.get("abstained") and p.cand.get("abstained"):
            reasons.append("abstains on an answerable question")
        drop = float(p.base.get("f1", 0.0)) - float(p.cand.get("f1", 0.0))
        if reasons or drop > 0:
            scored.append((drop, len(reasons), p, reasons))
    scored.sort(key=lambda t: (-t[0], -t[1], t[2].sample_id))
    return [
        {"sample_id": p.sample_id, "question": p.question, "gold": list(p.gold), "baseline": p.base_pred,
         "candidate": p.cand_pred, "f1_baseline": float(p.base.get("f1", 0.0)), "f1_candidate": float(p.cand.get("f1", 0.0)),
         "reasons": reasons}
        for _, _, p, reasons in scored[:limit]
    ]


def compare_runs(store: Store, baseline: str, candidate: str, config: RagRegressionConfig) -> MonitorResult:
    pairs, info = pair_runs(store, baseline, candidate)
    return rag_regressions(pairs, info, config)
