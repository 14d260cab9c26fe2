"""Refusal detectors against XSTest's human labels, leave-one-model-out (an accuracy benchmark, not a timing).

    python benchmarks/refusal_detectors.py [--data-dir ../shared/data/safety] [--json]
    python benchmarks/refusal_detectors.py --write-weights harness/data/refusal_learned.json
    python benchmarks/refusal_detectors.py --stress     # the rules with each answer's opening moved (no embeddings)

For each labelled model (GPT-4, Llama-2), the learned detector is fitted on the other model's answers
and scored on this one's (`harness.refusal_eval.holdout_split` asserts the held-out rows never reach the
fit); `prompt-disjoint` also keeps the held-out prompts out of the fit. The rules need no fit, but were
written reading both files: their rows are in-sample, and marked so. Only the two files below are read;
other published XSTest label files are kept for an independent check, never for fitting or tuning.
`--write-weights` fits on both files (the shipped model); the reported figures never use that fit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.refusal import classify
from harness.refusal_eval import LabelledSet, agreement, leave_one_model_out, load_labelled, stress
from harness.refusal_learned import FEATURES, LearnedDetector, features, fit

FILES = {"gpt4": "xstest_v2_completions_gpt4_labeled.csv", "llama2": "xstest_v2_completions_llama2new_labeled.csv"}
RULE_COLUMNS = [i for i, f in enumerate(FEATURES) if f.startswith("rules_") or f == "empty"]


def learned_fitter(drop: list[int] | None = None) -> Any:
    """Fit the shipped model's recipe (`refusal_learned.fit`) on rows; `drop` zeroes feature columns."""

    def fitter(x: np.ndarray, y: np.ndarray) -> Any:
        mask = np.ones(x.shape[1])
        mask[drop or []] = 0.0
        detector = LearnedDetector(fit(x * mask, y.astype(bool)))
        return lambda m: detector.probabilities(m * mask) >= detector.threshold

    return fitter


def embedding_baseline(sets: list[LabelledSet]) -> list[dict[str, Any]]:
    """The obvious alternative, for the record: the same fit on each answer's mean MiniLM embedding (384-d)."""
    from harness.refusal_learned import _embed

    matrices = [_embed([c.strip() for c in s.completions]) for s in sets]
    return [{"detector": "mean answer embedding (384-d)", "protocol": "leave-one-model-out", "model": model, "in_sample": False, **r}
            for model, r in leave_one_model_out(sets, matrices, _plain_fitter).items()]


def _plain_fitter(x: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=10_000).fit(x, y)
    return lambda m: model.predict(m) == 1


def evaluate(sets: list[LabelledSet], matrices: list[np.ndarray]) -> list[dict[str, Any]]:
    """One row per (detector, held-out model): agreement, kappa, confusion, and whether it is in-sample."""
    rows = []
    for ls, m in zip(sets, matrices, strict=True):
        result = agreement(ls.refused, m[:, FEATURES.index("rules_refused")] > 0)
        rows.append({"detector": "rules", "protocol": "none (in-sample: written reading this file)", "model": ls.name,
                     "in_sample": ls.rules_in_sample, **result})
    variants = [("learned", "leave-one-model-out", learned_fitter(), False),
                ("learned", "leave-one-model-out, prompt-disjoint", learned_fitter(), True),
                ("learned without rule features", "leave-one-model-out", learned_fitter(RULE_COLUMNS), False)]
    for name, protocol, fitter, disjoint in variants:
        for model, result in leave_one_model_out(sets, matrices, fitter, prompt_disjoint=disjoint).items():
            # the rule features were written reading every file: only the variant without them is free of that
            in_sample = name == "learned" and any(s.rules_in_sample for s in sets)
            rows.append({"detector": name, "protocol": protocol, "model": model,
                         "in_sample": "rule features only" if in_sample else False, **result})
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| detector | protocol | held-out model | n | agreement | kappa | human C→det R | human R→det C | R→R | C→C |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r["confusion"]
        lines.append(f"| {r['detector']} | {r['protocol']} | {r['model']} | {r['n']} | {r['agreement']:.3f} | {r['kappa']:.3f} | "
                     f"{c['human_compliance/detector_refusal']} | {c['human_refusal/detector_compliance']} | "
                     f"{c['human_refusal/detector_refusal']} | {c['human_compliance/detector_compliance']} |")
    return "\n".join(lines)


def stress_markdown(rows: list[dict[str, Any]]) -> str:
    """The rules under `refusal_eval.PERTURBATIONS`: the human label is kept, the refusal's position is not."""
    lines = ["| model | answer | n | agreement | kappa | human C→det R | human R→det C |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r["confusion"]
        lines.append(f"| {r['model']} | {r['perturbation']} | {r['n']} | {r['agreement']:.3f} | {r['kappa']:.3f} | "
                     f"{c['human_compliance/detector_refusal']} | {c['human_refusal/detector_compliance']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parent.parent.parent / "shared/data/safety"))
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--write-weights", help="fit on every file and write the weights JSON here")
    parser.add_argument("--stress", action="store_true", help="only the rules, with each answer's opening moved")
    parser.add_argument("--baseline", action="store_true", help="also score a fit on whole-answer embeddings (slower)")
    args = parser.parse_args()
    data = Path(args.data_dir)
    missing = [f for f in FILES.values() if not (data / f).is_file()]
    if missing:
        print(f"error: {data}: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    sets = [load_labelled(str(data / f), name, rules_in_sample=True) for name, f in FILES.items()]
    if args.stress:
        rows = stress(sets, lambda text: classify(text).refused)
        print(json.dumps(rows, indent=1) if args.json else stress_markdown(rows))
        return 0
    print(f"embedding {sum(len(s.ids) for s in sets)} answers (load {os.getloadavg()[0]:.1f})", file=sys.stderr)
    matrices = [features(s.completions).matrix for s in sets]
    if args.write_weights:
        weights = fit(np.vstack(matrices), [r for s in sets for r in s.refused], trained_on=list(FILES.values()))
        Path(args.write_weights).write_text(json.dumps(weights, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.write_weights} (fitted on {weights['n_train']} answers)", file=sys.stderr)
    rows = evaluate(sets, matrices) + (embedding_baseline(sets) if args.baseline else [])
    print(json.dumps(rows, indent=1) if args.json else markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
