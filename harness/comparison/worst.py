"""The samples that got worst between two runs, with what a person needs to see why: the prompt,
the gold answer, both completions and both scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select

from harness.comparison.pairing import MetricPairs, Pairing
from harness.store import Store, samples

_EPS = 1e-12


@dataclass(frozen=True)
class SampleChange:
    """A sample that got worse on `metric` by `worse_by` (in the metric's harmful direction)."""

    sample_id: str
    metric: str
    worse_by: float
    prompt: str
    gold: str
    baseline_completion: str
    candidate_completion: str
    baseline_scores: Mapping[str, Any]
    candidate_scores: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "sample_id": self.sample_id,
            "metric": self.metric,
            "worse_by": self.worse_by,
            "prompt": self.prompt,
            "gold": self.gold,
            "baseline_completion": self.baseline_completion,
            "candidate_completion": self.candidate_completion,
            "baseline_scores": dict(self.baseline_scores),
            "candidate_scores": dict(self.candidate_scores),
        }


def prompt_text(requests: Any) -> str:
    """The last user turn (or raw prompt) of the sample's first model request."""
    for stage in requests or []:
        for req in stage:
            if req.get("role", "model") != "model":
                continue
            if req.get("messages"):
                users = [content for role, content in req["messages"] if role == "user"]
                return str(users[-1] if users else req["messages"][-1][1])
            return str(req.get("prompt") or "")
    return ""


def model_text(requests: Any, completions: Any) -> str:
    """The text of every model answer of a sample (judge answers left out), stage by stage."""
    texts = []
    requests = list(requests or [])
    for k, stage_answers in enumerate(completions or []):
        stage_reqs = requests[k] if k < len(requests) else []
        for j, answer in enumerate(stage_answers):
            req = stage_reqs[j] if j < len(stage_reqs) else {}  # answers stored without their requests count as the model's
            if req.get("role", "model") == "model":
                texts.append(str(answer.get("text", "")))
    return "\n---\n".join(texts)


#: Where suites keep the expected answer in a sample's details or input, most specific first.
_GOLD_KEYS = ("gold", "references", "reference", "answer", "answers", "target", "expected")


def gold_text(details: Mapping[str, Any], inputs: Mapping[str, Any]) -> str:
    """The expected answer(s) as one line, from the sample's details or input ('' when none)."""
    for source in (details, inputs):
        for key in _GOLD_KEYS:
            value = source.get(key)
            if value not in (None, "", [], {}):
                return " | ".join(map(str, value)) if isinstance(value, list) else str(value)
    return ""


def worst_regressions(store: Store, pairs: MetricPairs, higher_is_better: bool, pairing: Pairing, top: int = 5) -> list[SampleChange]:
    """The `top` samples whose `pairs.metric` got worst, with prompt, gold, both completions and scores."""
    if top <= 0 or pairs.baseline.size == 0:
        return []
    d = pairs.candidate - pairs.baseline
    worse = -d if higher_is_better else d
    order = [int(i) for i in np.argsort(-worse, kind="stable")[:top] if worse[i] > _EPS]
    if not order:
        return []
    chosen = [pairs.ids[i] for i in order]
    base_rows = _sample_rows(store, pairing.baseline.run_id, chosen)
    cand_rows = _sample_rows(store, pairing.candidate.run_id, chosen)
    out = []
    for i, sid in zip(order, chosen, strict=True):
        b, c = base_rows[sid], cand_rows[sid]
        out.append(SampleChange(
            sid, pairs.metric, float(worse[i]), prompt_text(b["requests"]), gold_text(b["details"] or {}, b["input"] or {}),
            model_text(b["requests"], b["completions"]), model_text(c["requests"], c["completions"]), b["scores"], c["scores"],
        ))
    return out


def _sample_rows(store: Store, run_id: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    query = select(samples.c.sample_id, samples.c.input, samples.c.details, samples.c.requests, samples.c.completions,
                   samples.c.scores).where(samples.c.run_id == run_id, samples.c.sample_id.in_(list(ids)))
    with store.engine.connect() as conn:
        return {str(r["sample_id"]): dict(r) for r in conn.execute(query).mappings()}
