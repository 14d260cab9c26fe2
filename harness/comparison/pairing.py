"""Pair two stored runs of one suite: which samples they share, by sample id (never by position),
whether the inputs, the data file and the suite version are the same, and each metric's aligned values."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select

from harness.store import Store, metrics, samples
from harness.types import canonical_json, sha256_text


@dataclass(frozen=True)
class RunSamples:
    """One run's per-sample scores and details, in stored order, with its declared metrics."""

    run: Mapping[str, Any]
    ids: tuple[str, ...]
    scores: tuple[Mapping[str, Any], ...]
    groups: tuple[tuple[str, ...], ...]
    details: tuple[Mapping[str, Any], ...]
    input_digests: tuple[str, ...]
    metric_rows: Mapping[str, Mapping[str, Any]]

    @property
    def run_id(self) -> str:
        return str(self.run["id"])


def load_run_samples(store: Store, run: Mapping[str, Any]) -> RunSamples:
    """Read a run's scores and details (not its completions, which can be large) and its metrics."""
    run_id = str(run["id"])
    query = (
        select(samples.c.sample_id, samples.c.scores, samples.c.groups, samples.c.details, samples.c.input)
        .where(samples.c.run_id == run_id)
        .order_by(samples.c.position)
    )
    ids, scores, groups, details, digests = [], [], [], [], []
    with store.engine.connect() as conn:
        for sid, sc, gr, det, inp in conn.execute(query):
            ids.append(str(sid))
            scores.append(sc or {})
            groups.append(tuple(gr or ()))
            details.append(det or {})
            digests.append(sha256_text(canonical_json(inp)))
        rows = {str(r["name"]): dict(r) for r in conn.execute(select(metrics).where(metrics.c.run_id == run_id)).mappings()}
    return RunSamples(dict(run), tuple(ids), tuple(scores), tuple(groups), tuple(details), tuple(digests), rows)


def _examples(ids: Sequence[str], k: int = 3) -> str:
    return ", ".join(repr(i) for i in ids[:k]) + (", ..." if len(ids) > k else "")


@dataclass(frozen=True)
class Pairing:
    """Which samples two runs share. `complete`: same data file, suite version, sample set and inputs."""

    baseline: RunSamples
    candidate: RunSamples
    common: tuple[str, ...]
    only_baseline: tuple[str, ...]
    only_candidate: tuple[str, ...]
    input_mismatch: tuple[str, ...]

    @property
    def same_data(self) -> bool:
        return self.baseline.run.get("data_hash") == self.candidate.run.get("data_hash")

    @property
    def same_suite_version(self) -> bool:
        return self.baseline.run.get("suite_version") == self.candidate.run.get("suite_version")

    @property
    def complete(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        """Why the two runs are not the same questions scored the same way (empty when they are)."""
        b, c = self.baseline.run, self.candidate.run
        out = []
        if not self.same_data:
            out.append(f"the data differs: baseline {self.baseline.run_id} read {b.get('data_source')} (hash "
                       f"{str(b.get('data_hash'))[:12]}), candidate {self.candidate.run_id} read {c.get('data_source')} "
                       f"(hash {str(c.get('data_hash'))[:12]})")
        if not self.same_suite_version:
            out.append(f"suite version differs (baseline {b.get('suite_version')}, candidate {c.get('suite_version')}): "
                       f"re-score the baseline with `harness run {b.get('suite')} --backend file --completions run:{b.get('id')}`")
        if self.only_baseline:
            out.append(f"{len(self.only_baseline)} sample(s) only in the baseline (e.g. {_examples(self.only_baseline)})")
        if self.only_candidate:
            out.append(f"{len(self.only_candidate)} sample(s) only in the candidate (e.g. {_examples(self.only_candidate)})")
        if self.input_mismatch:
            out.append(f"{len(self.input_mismatch)} sample id(s) have different inputs in the two runs "
                       f"(e.g. {_examples(self.input_mismatch)}): not the same data")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline_run": self.baseline.run_id,
            "candidate_run": self.candidate.run_id,
            "paired": len(self.common),
            "only_baseline": len(self.only_baseline),
            "only_candidate": len(self.only_candidate),
            "input_mismatch": len(self.input_mismatch),
            "same_data": self.same_data,
            "data_hashes": [self.baseline.run.get("data_hash"), self.candidate.run.get("data_hash")],
            "suite_versions": [self.baseline.run.get("suite_version"), self.candidate.run.get("suite_version")],
        }


def pair_runs(baseline: RunSamples, candidate: RunSamples) -> Pairing:
    """Match samples by id and check each shared sample's input is the same in both runs."""
    cand_index = {sid: i for i, sid in enumerate(candidate.ids)}
    base_set = set(baseline.ids)
    common, mismatch = [], []
    for i, sid in enumerate(baseline.ids):
        j = cand_index.get(sid)
        if j is None:
            continue
        common.append(sid)
        if baseline.input_digests[i] != candidate.input_digests[j]:
            mismatch.append(sid)
    return Pairing(
        baseline,
        candidate,
        tuple(common),
        tuple(s for s in baseline.ids if s not in cand_index),
        tuple(s for s in candidate.ids if s not in base_set),
        tuple(mismatch),
    )


def _value(scores: Mapping[str, Any], groups: tuple[str, ...], metric: str) -> float | None:
    group, _, name = metric.rpartition("/")
    if group and group not in groups:
        return None
    raw = scores.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class MetricPairs:
    """Aligned per-sample values of one metric; `n_unscored` pairs lacked a value in one run."""

    metric: str
    ids: tuple[str, ...]
    baseline: NDArray[np.float64]
    candidate: NDArray[np.float64]
    n_unscored: int


def metric_pairs(pairing: Pairing, metric: str) -> MetricPairs:
    """Values of `metric` (`name` or `group/name`) for samples scored in both runs, by sample id.

    Samples outside the group are not counted; samples scored in one run only (a metric defined
    conditionally, like `supported` on non-abstentions) are counted in `n_unscored`.
    """
    bi = {sid: i for i, sid in enumerate(pairing.baseline.ids)}
    ci = {sid: i for i, sid in enumerate(pairing.candidate.ids)}
    ids, a, b, unscored = [], [], [], 0
    base, cand = pairing.baseline, pairing.candidate
    for sid in pairing.common:
        i, j = bi[sid], ci[sid]
        va = _value(base.scores[i], base.groups[i], metric)
        vb = _value(cand.scores[j], cand.groups[j], metric)
        if va is None and vb is None:
            continue
        if va is None or vb is None:
            unscored += 1
            continue
        ids.append(sid)
        a.append(va)
        b.append(vb)
    return MetricPairs(metric, tuple(ids), np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), unscored)


def paired_details(pairing: Pairing) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]], list[str]]:
    """Both runs' per-sample details for the shared samples, aligned (corpus metrics re-score them)."""
    bi = {sid: i for i, sid in enumerate(pairing.baseline.ids)}
    ci = {sid: i for i, sid in enumerate(pairing.candidate.ids)}
    ids = list(pairing.common)
    return ([pairing.baseline.details[bi[s]] for s in ids], [pairing.candidate.details[ci[s]] for s in ids], ids)


def sample_directions(pairing: Pairing, pairs: MetricPairs, higher_is_better: bool) -> NDArray[np.float64]:
    """+1 where higher is better for that sample, -1 where lower is: a metric whose direction flips
    within a group (`abstained` is bad on answerable questions, right on unanswerable ones, stored
    as `unanswerable/abstained` with its own direction) counts each sample's flip its own way."""
    rows = pairing.baseline.metric_rows
    bi = {sid: i for i, sid in enumerate(pairing.baseline.ids)}
    out = np.full(len(pairs.ids), 1.0 if higher_is_better else -1.0)
    if "/" in pairs.metric:
        return out
    for k, sid in enumerate(pairs.ids):
        for group in pairing.baseline.groups[bi[sid]]:
            row = rows.get(f"{group}/{pairs.metric}")
            if row is not None and bool(row["higher_is_better"]) != higher_is_better:
                out[k] = -out[k]
                break
    return out
