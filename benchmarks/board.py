"""How long each board page's queries take on a large store, against a naive pandas read of the tables.

    python benchmarks/board.py [--runs 500] [--samples 2000] [--db URL] [--repeat 3]

Fills a store (SQLite by default, in a temp dir; `--db` reuses one, filling it only when empty) with
`--runs` RAG-style runs of `--samples` samples each (about 0.8 kB a sample, like real rows), a
training run with 5,000 steps and 50 evaluated checkpoints, 1,000 monitor runs and a 200-trial
sweep. Then it times, per page, every query that page makes (the same functions, same arguments),
the whole page script through Streamlit's AppTest (queries, figures and elements; not the browser),
and the peer: `pandas.read_sql` of the whole tables that page needs, which is what a board without
indexed, paginated queries would do on each page load. Prints one row per page and the ratio.
The target: every page under 2 s with 500 runs x 2,000 samples.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboards import comparison as cmp
from dashboards import queries as q
from harness.store import (
    Store,
    alarms,
    checkpoints,
    metrics,
    monitor_findings,
    monitor_runs,
    run_tags,
    runs,
    samples,
    sweep_trials,
    sweeps,
    train_runs,
    train_steps,
)

WORDS = [
    "the", "river", "tower", "prize", "year", "city", "model", "answer", "context", "question", "paris", "amazon",
    "curie", "nobel", "metres", "water",
]
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
METRIC_KEYS = ("exact_match", "f1", "recall", "abstained", "supported")


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def fill(store: Store, n_runs: int, n_samples: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    train_id = "train-bench"
    with store.transaction() as conn:
        conn.execute(train_runs.insert().values(
            id=train_id, name="bench-sft", method="lora", base_model="m", config={}, config_hash="c" * 16,
            status="complete", versions={}, created_at=T0,
        ))
        conn.execute(train_steps.insert(), [
            {"train_run_id": train_id, "step": s, "loss": 3 / (1 + s / 500), "grad_norm": 1 + rng.random(),
             "learning_rate": 1e-4, "created_at": T0} for s in range(1, 5001)
        ])
    started = time.perf_counter()
    for i in range(n_runs):
        run_id = f"run{i:09d}"
        quality = rng.random()
        step = (i % 50 + 1) * 100 if i < 50 else None
        rows = []
        for j in range(n_samples):
            question, context = _text(rng, 10), _text(rng, 45)
            right = rng.random() < quality
            answer = _text(rng, 3)
            rows.append({
                "run_id": run_id, "sample_id": f"s{j:06d}", "position": j,
                "input": {"question": question, "context": context, "answers": [answer]},
                "requests": [[{"kind": "generate", "messages": [["user", f"Context: {context}\n\nQuestion: {question}"]],
                               "max_new_tokens": 32, "role": "model"}]],
                "completions": [[{"text": answer if right else "unanswerable"}]],
                "scores": {"exact_match": float(right), "f1": float(right), "recall": float(right),
                           "abstained": float(not right), "supported": 1.0},
                "groups": ["answerable"], "details": {},
            })
        values = {k: statistics.fmean(r["scores"][k] for r in rows) for k in METRIC_KEYS}
        with store.transaction() as conn:
            conn.execute(runs.insert().values(
                id=run_id, name=f"bench-{i}", suite="rag-extraction", suite_version="1", status="complete",
                model=f"model-{i % 7}", backend="hf", backend_info={}, generation={}, config={}, config_hash=f"{i:016d}",
                fingerprint="f", n_samples=n_samples, versions={}, trust_remote_code=False,
                train_run_id=train_id if step else None, step=step,
                created_at=T0 + dt.timedelta(minutes=i), finished_at=T0 + dt.timedelta(minutes=i + 1),
            ))
            conn.execute(run_tags.insert(), [{"run_id": run_id, "tag": t} for t in ("nightly", f"branch-{i % 5}")])
            conn.execute(metrics.insert(), [
                {"run_id": run_id, "name": name, "value": v, "stderr": (v * (1 - v) / n_samples) ** 0.5, "n": n_samples,
                 "higher_is_better": name != "abstained"}
                for key, v in values.items() for name in (key, f"answerable/{key}")
            ])
            conn.execute(samples.insert(), rows)
            if step:
                conn.execute(checkpoints.insert().values(
                    id=f"ck{i}", train_run_id=train_id, step=step, path=f"/ck/{step}", kind="adapter", content_hash="h",
                    created_at=T0,
                ))
        if (i + 1) % 50 == 0:
            print(f"  filled {i + 1}/{n_runs} runs ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    with store.transaction() as conn:
        for k in range(1000):
            mid = f"mon{k:06d}"
            value = rng.random() * 0.3
            conn.execute(monitor_runs.insert().values(
                id=mid, kind="drift-score" if k % 2 else "drift-output", reference="a", current="b", config={},
                summary={"psi": value}, alarm=value > 0.25, created_at=T0 + dt.timedelta(hours=k),
            ))
            conn.execute(monitor_findings.insert(), [
                {"monitor_run_id": mid, "idx": f, "name": f"feature-{f}", "statistic": "psi", "value": value + f / 100,
                 "threshold": 0.25, "alarm": value + f / 100 > 0.25, "details": {}} for f in range(5)
            ])
            if value > 0.25:
                conn.execute(alarms.insert().values(
                    id=f"al{k}", monitor_run_id=mid, name="psi", message="drift", payload={}, created_at=T0 + dt.timedelta(hours=k),
                ))
        conn.execute(sweeps.insert().values(id="sweep-bench", name="bench", kind="data-efficiency", config={},
                                            status="complete", created_at=T0))
        conn.execute(sweep_trials.insert(), [
            {"sweep_id": "sweep-bench", "number": t, "params": {"lr": rng.random()}, "state": "complete",
             "early_score": rng.random(), "final_score": rng.random(), "n_train_samples": 100 * 2 ** (t % 5),
             "created_at": T0} for t in range(200)
        ])


def pages(store: Store, run_a: str, run_b: str) -> dict[str, Callable[[], Any]]:
    """The queries each page makes on one load (first page of every table, headline metric)."""
    flt = q.RunFilter(tag="nightly")

    def leaderboard() -> None:
        q.filter_options(store)
        q.metric_names(store, flt)
        q.count_runs(store, flt)
        q.leaderboard(store, flt, sort_by="f1", offset=100, limit=50)

    def run() -> None:
        q.recent_runs(store)
        q.run_detail(store, run_a)
        q.run_metrics(store, run_a)
        q.sample_score_keys(store, run_a)
        q.count_samples(store, run_a, "paris")
        q.run_samples(store, run_a, search="paris", score_key="f1", offset=50, limit=50)

    def compare() -> None:
        q.recent_runs(store)
        cmp.paired_comparison(store, run_a, run_b)
        q.sample_score_keys(store, run_a)
        q.sample_score_keys(store, run_b)
        cmp.sample_flips(store, cmp.paired_flips(store, run_a, run_b, "f1"), limit=25)

    def checkpoints_page() -> None:
        q.train_run_list(store)
        q.checkpoint_metrics(store, "train-bench")
        q.train_dynamics(store, "train-bench")
        q.train_checkpoints(store, "train-bench")

    def drift() -> None:
        q.monitor_kinds(store)
        q.finding_series(store)
        history = q.monitor_history(store, limit=50)
        q.monitor_findings_of(store, history.frame["monitor_run_id"].iloc[0])
        q.alarm_list(store, limit=50)

    def sweeps_page() -> None:
        q.sweep_list(store)
        trials = q.sweep_trial_table(store, "sweep-bench")
        q.early_final_agreement(trials)
        q.data_efficiency(trials)
        q.sweep_detail(store, "sweep-bench")

    return {"leaderboard": leaderboard, "run": run, "compare": compare, "checkpoints": checkpoints_page,
            "drift": drift, "sweeps": sweeps_page}


#: The whole tables a naive board reads with pandas on each load of a page.
NAIVE_TABLES = {
    "leaderboard": ("runs", "run_tags", "metrics"),
    "run": ("runs", "metrics", "samples"),
    "compare": ("runs", "metrics", "samples"),
    "checkpoints": ("train_runs", "runs", "metrics", "train_steps", "checkpoints"),
    "drift": ("monitor_runs", "monitor_findings", "alarms"),
    "sweeps": ("sweeps", "sweep_trials"),
}


def render_times(url: str, run_a: str, run_b: str, repeat: int) -> dict[str, float]:
    """Whole page script runs (queries, frames, plotly figures, Streamlit elements) through AppTest."""
    import logging
    import os

    from streamlit.testing.v1 import AppTest

    os.environ["HARNESS_BOARD_DB"] = url
    logging.getLogger("streamlit").setLevel(logging.ERROR)  # AppTest's "missing ScriptRunContext" chatter
    app = str(Path(__file__).resolve().parent.parent / "dashboards" / "app.py")
    params = {"run": {"run": run_a}, "compare": {"a": run_a, "b": run_b}}
    out = {}
    for page in ("leaderboard", "run", "compare", "checkpoints", "drift", "sweeps"):
        at = AppTest.from_file(app, default_timeout=120)
        at.run()
        if page != "leaderboard":
            at.switch_page(f"views/{page}.py")
        for key, value in params.get(page, {}).items():
            at.query_params[key] = value
        at.run()  # warm: imports and the cached store
        if at.exception:
            raise RuntimeError(f"page {page} failed: {[e.value for e in at.exception]}")
        out[page] = _best_of(at.run, repeat)
    return out


def _best_of(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--db", help="store URL to fill (when empty) and time; default: a temporary SQLite file")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions per page (the best is reported)")
    parser.add_argument("--no-render", action="store_true", help="skip timing whole page runs through Streamlit's AppTest")
    args = parser.parse_args()
    tmp = None
    if args.db is None:
        tmp = tempfile.TemporaryDirectory(prefix="board-bench-")
        args.db = f"sqlite:///{tmp.name}/board.db"
    writer = Store(args.db)
    if q.count_runs(writer) == 0:
        print(f"filling {args.runs} runs x {args.samples} samples into {writer.safe_url} ...", file=sys.stderr)
        started = time.perf_counter()
        fill(writer, args.runs, args.samples)
        print(f"filled in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    writer.close()
    store = Store(args.db, read_only=True)
    total_runs = q.count_runs(store)
    newest = q.recent_runs(store, limit=2)
    run_b, run_a = list(newest["run_id"])
    n_samples = store.count_samples(run_a)

    table_times: dict[str, float] = {}

    def naive_read(name: str) -> float:
        if name not in table_times:
            start = time.perf_counter()
            with store.engine.connect() as conn:
                frame = pd.read_sql_table(name, conn)
            table_times[name] = time.perf_counter() - start
            del frame
        return table_times[name]

    print(f"\nstore: {store.safe_url}; {total_runs} runs x {n_samples} samples; best of {args.repeat}\n")
    rendered = {} if args.no_render else render_times(args.db, run_a, run_b, args.repeat)
    print(f"{'page':<12} {'board queries (s)':>18} {'whole page (s)':>15} {'naive pandas read (s)':>22} {'speed-up':>9}  under 2 s")
    worst = 0.0
    for page, fn in pages(store, run_a, run_b).items():
        ours = _best_of(fn, args.repeat)
        whole = rendered.get(page)
        naive = sum(naive_read(t) for t in NAIVE_TABLES[page])
        slowest = max(ours, whole or 0.0)
        worst = max(worst, slowest)
        shown = f"{whole:>15.3f}" if whole is not None else f"{'-':>15}"
        print(f"{page:<12} {ours:>18.3f} {shown} {naive:>22.3f} {naive / ours:>8.0f}x  {'yes' if slowest < 2 else 'NO'}")
    print("\nnaive = pandas.read_sql_table of every table the page needs (" +
          "; ".join(f"{t} {s:.2f} s" for t, s in table_times.items()) + ")")
    print(f"slowest page: {worst:.3f} s")
    store.close()
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
