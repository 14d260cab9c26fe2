"""Measuring refusal detectors against human labels, and the leave-one-model-out protocol.

Why leave one *model* out: a detector is used on answers of models it never saw, so it is measured
that way. With labelled answers of several models (XSTest: GPT-4 and Llama-2), the learned detector
is fitted on every model but one and scored on the one left out; `holdout_split` asserts that no row
of the held-out model reaches the fit. The same 450 prompts appear in every XSTest file, so the
stricter `prompt_disjoint` variant also keeps the held-out model's *prompts* out of the fit (two folds
of prompt ids): a detector that had learned "this prompt gets refused" gains nothing there.

The rules (`harness/refusal.py`) were written while reading both XSTest files: their figures on them
are in-sample whatever the split, and every report says so.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import DataError


def human_refused(value: str, path: str, line: int, column: str) -> bool:
    """Read a human label: anything naming compliance is not a refusal; refusal / partial refusal are."""
    text = value.strip().lower()
    if "compli" in text:
        return False
    if "refus" in text or "partial" in text:
        return True
    raise DataError(path, line, column, f"cannot read label {value!r} (expected compliance, refusal or partial refusal)")


def agreement(gold: Sequence[bool], predicted: Sequence[bool]) -> dict[str, Any]:
    """Agreement, Cohen's kappa and the 2x2 confusion matrix (refusal = positive) of two labellings."""
    g, p = np.asarray(gold, dtype=bool), np.asarray(predicted, dtype=bool)
    if g.shape != p.shape or g.size == 0:
        raise ValueError("agreement needs two labellings of the same, non-empty rows")
    n = g.size
    observed = float((g == p).mean())
    expected = float(g.mean() * p.mean() + (1 - g.mean()) * (1 - p.mean()))
    kappa = 1.0 if expected == 1.0 else (observed - expected) / (1.0 - expected)
    confusion = {f"human_{h}/detector_{d}": int(((g == (h == "refusal")) & (p == (d == "refusal"))).sum())
                 for h in ("compliance", "refusal") for d in ("compliance", "refusal")}
    return {"n": n, "agreement": observed, "kappa": kappa, "confusion": confusion}


@dataclass(frozen=True)
class LabelledSet:
    """One model's answers with human labels; `keys` are (set name, row id), unique across sets."""

    name: str
    ids: tuple[str, ...]
    prompts: tuple[str, ...]
    completions: tuple[str, ...]
    refused: tuple[bool, ...]
    rules_in_sample: bool = False  # the rules were written reading this set

    @property
    def keys(self) -> tuple[tuple[str, str], ...]:
        return tuple((self.name, i) for i in self.ids)


def load_labelled(path: str, name: str, label_column: str = "final_label", rules_in_sample: bool = False) -> LabelledSet:
    """A labelled completions file (XSTest's layout: id, prompt, completion, final_label)."""
    from suites.safety import pick_column, read_table

    rows, columns = read_table(path)
    for column in ("prompt", "completion", label_column):
        pick_column(columns, column, (), path, column)
    ids, prompts, completions, refused = [], [], [], []
    for line, row in rows:
        completion = row.get("completion")
        ids.append(str(row.get("id") or line))
        prompts.append(str(row["prompt"]))
        completions.append(completion if isinstance(completion, str) else "")
        refused.append(human_refused(str(row.get(label_column, "")), path, line, label_column))
    if len(set(ids)) != len(ids):
        raise DataError(path, None, "id", "duplicate ids")
    return LabelledSet(name, tuple(ids), tuple(prompts), tuple(completions), tuple(refused), rules_in_sample)


def prompt_fold(prompt: str, folds: int = 2) -> int:
    """A fixed fold for a prompt (a hash of its text), the same in every model's file."""
    return int(hashlib.sha256(prompt.strip().encode()).hexdigest(), 16) % folds


@dataclass(frozen=True)
class Split:
    """Rows to fit on (from the training sets) and rows to score (from the held-out set), by index."""

    held_out: str
    train: tuple[tuple[int, int], ...]  # (set index, row index)
    test: tuple[int, ...]  # row indices in the held-out set


def holdout_split(sets: Sequence[LabelledSet], held_out: int, prompt_disjoint: bool = False, fold: int = 0) -> Split:
    """Fit on every set but `held_out`; with `prompt_disjoint`, fit on prompts of fold `fold` and score
    the held-out set's prompts of the other fold. Asserts that no held-out row (or prompt) is fitted on."""
    test = [i for i, p in enumerate(sets[held_out].prompts) if not prompt_disjoint or prompt_fold(p) != fold]
    train = [(s, i) for s, ls in enumerate(sets) if s != held_out
             for i, p in enumerate(ls.prompts) if not prompt_disjoint or prompt_fold(p) == fold]
    train_keys = {sets[s].keys[i] for s, i in train}
    test_keys = {sets[held_out].keys[i] for i in test}
    if train_keys & test_keys or any(s == held_out for s, _ in train):
        raise AssertionError("held-out rows reached the training set")
    if prompt_disjoint:
        train_prompts = {sets[s].prompts[i].strip() for s, i in train}
        if any(sets[held_out].prompts[i].strip() in train_prompts for i in test):
            raise AssertionError("a held-out prompt reached the training set")
    return Split(sets[held_out].name, tuple(train), tuple(test))


Fitter = Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]]


def leave_one_model_out(sets: Sequence[LabelledSet], matrices: Sequence[np.ndarray], fitter: Fitter,
                        prompt_disjoint: bool = False) -> dict[str, dict[str, Any]]:
    """Held-out agreement per model: `fitter(X, y)` returns a predictor fitted on the other models' rows
    only. With `prompt_disjoint`, both prompt folds are scored (each fitted on the other fold) and pooled."""
    report = {}
    for h, ls in enumerate(sets):
        gold: list[bool] = []
        predicted: list[bool] = []
        for fold in ((0, 1) if prompt_disjoint else (0,)):
            split = holdout_split(sets, h, prompt_disjoint, fold)
            x = np.vstack([matrices[s][i] for s, i in split.train])
            y = np.asarray([sets[s].refused[i] for s, i in split.train], dtype=int)
            predict = fitter(x, y)
            test = list(split.test)
            predicted += [bool(v) for v in predict(matrices[h][test])]
            gold += [ls.refused[i] for i in test]
        report[ls.name] = agreement(gold, predicted)
    return report


# ---- stress: where the refusal sits ---------------------------------------------------------------------
# Rules written reading a file score well on it wherever they looked; the out-of-sample errors (issue 16)
# were refusals not in the opening sentence. Moving the opening elsewhere keeps the human label (the answer
# says the same things) but takes away the position the rules were tuned on.
_FIRST_SENTENCE = re.compile(r"(?<=[.!?])\s+")
NEUTRAL_OPENING = "Thank you for your question."


def neutral_opening(text: str) -> str:
    """The answer behind a neutral first sentence: its own opening becomes the second."""
    return f"{NEUTRAL_OPENING} {text.strip()}"


def opening_last(text: str) -> str:
    """The answer with its first sentence moved to the end: an opening refusal becomes a closing one."""
    parts = _FIRST_SENTENCE.split(text.strip(), maxsplit=1)
    return text if len(parts) < 2 else f"{parts[1]} {parts[0]}"


PERTURBATIONS: dict[str, Callable[[str], str]] = {"neutral sentence first": neutral_opening,
                                                  "first sentence moved to the end": opening_last}


def stress(sets: Sequence[LabelledSet], refused: Callable[[str], bool]) -> list[dict[str, Any]]:
    """Agreement with the human labels of each set, as written and under each of PERTURBATIONS."""
    rows = []
    for ls in sets:
        variants: dict[str, Callable[[str], str]] = {"none": str, **PERTURBATIONS}
        for name, perturb in variants.items():
            result = agreement(ls.refused, [refused(perturb(c)) for c in ls.completions])
            rows.append({"model": ls.name, "perturbation": name, **result})
    return rows
