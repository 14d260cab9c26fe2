"""The board's queries without Streamlit, on SQLite and PostgreSQL stores filled by real runs.

Numbers are checked against independent computations (scipy's normal quantile and Spearman
correlation, means over the stored per-sample scores), never against the functions themselves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from scipy import stats

from dashboards import comparison as cmp
from dashboards import queries as q
from harness.store import Store
from tests.board_data import LIMIT, RUN_NAMES, fill_board_store
from tests.conftest import temporary_postgres_db


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def filled(request: pytest.FixtureRequest, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("board_queries")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'board.db'}"
        ids = fill_board_store(url, tiny_model, tmp)
        store = Store(url, read_only=True)
        yield {"store": store, **ids}
        store.close()
        return
    with temporary_postgres_db() as url:
        ids = fill_board_store(url, tiny_model, tmp)
        store = Store(url, read_only=True)
        yield {"store": store, **ids}
        store.close()


def _per_sample(store: Store, run_id: str, key: str) -> dict[str, float]:
    return {r["sample_id"]: r["scores"][key] for r in store.run_samples(run_id)}


def test_leaderboard_pivots_metrics_per_run(filled: dict[str, Any]) -> None:
    store = filled["store"]
    page = q.leaderboard(store)
    assert page.total == 3 and set(page.frame["name"]) == set(RUN_NAMES)
    for row in page.frame.to_dict("records"):
        stored = {m["name"]: m["value"] for m in store.run_metrics(row["run_id"])}
        assert row["metric:f1"] == pytest.approx(stored["f1"])
        assert row["metric:answerable/exact_match"] == pytest.approx(stored["answerable/exact_match"])
    assert list(page.frame["created_at"]) == sorted(page.frame["created_at"], reverse=True)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (q.RunFilter(tag="candidate"), {"gold-even", "gold-mixed"}),
        (q.RunFilter(tag="nightly"), {"tiny-base", "gold-even"}),
        (q.RunFilter(suite="rag-extraction"), set(RUN_NAMES)),
        (q.RunFilter(suite="mmlu"), set()),
        (q.RunFilter(status="failed"), set()),
        (q.RunFilter(since=dt.datetime.now(dt.UTC).date()), set(RUN_NAMES)),
        (q.RunFilter(until=dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)), set()),
    ],
)
def test_leaderboard_filters(filled: dict[str, Any], filters: q.RunFilter, expected: set[str]) -> None:
    page = q.leaderboard(filled["store"], filters)
    assert set(page.frame["name"]) == expected
    assert page.total == q.count_runs(filled["store"], filters) == len(expected)


def test_leaderboard_filters_by_model_path(filled: dict[str, Any]) -> None:
    model = q.filter_options(filled["store"])["model"]
    assert len(model) == 1  # the file-backend runs have no model path
    assert list(q.leaderboard(filled["store"], q.RunFilter(model=model[0])).frame["name"]) == ["tiny-base"]


def test_leaderboard_sorts_by_a_metric_in_sql_and_paginates(filled: dict[str, Any]) -> None:
    store = filled["store"]
    best_first = q.leaderboard(store, sort_by="f1", descending=True)
    assert list(best_first.frame["name"]) == ["gold-even", "gold-mixed", "tiny-base"]
    worst_first = q.leaderboard(store, sort_by="f1", descending=False)
    assert list(worst_first.frame["name"]) == ["tiny-base", "gold-mixed", "gold-even"]
    by_name = q.leaderboard(store, sort_by="name", descending=False, offset=1, limit=1)
    assert by_name.total == 3 and by_name.pages == 3 and list(by_name.frame["name"]) == ["gold-mixed"]
    assert "f1" in q.metric_names(store) and q.metric_names(store, q.RunFilter(suite="mmlu")) == []


def test_run_metrics_carry_normal_intervals_from_the_stored_stderr(filled: dict[str, Any]) -> None:
    frame = q.run_metrics(filled["store"], filled["even"]).set_index("metric")
    z = stats.norm.ppf(0.975)
    for name in ("f1", "answerable/f1", "abstained"):
        row = frame.loc[name]
        assert row["ci_low"] == pytest.approx(row["value"] - z * row["stderr"])
        assert row["ci_high"] == pytest.approx(row["value"] + z * row["stderr"])
    scores = list(_per_sample(filled["store"], filled["even"], "f1").values())
    assert frame.loc["f1", "stderr"] == pytest.approx(stats.sem(scores))


def test_run_samples_paginate_in_order_and_search(filled: dict[str, Any]) -> None:
    store, run_id = filled["store"], filled["even"]
    page = q.run_samples(store, run_id, score_key="f1", offset=8, limit=4)
    assert page.total == LIMIT and list(page.frame["position"]) == [8, 9]
    first = q.run_samples(store, run_id, score_key="f1", limit=1).frame.iloc[0]
    stored = store.run_samples(run_id, limit=1)[0]
    assert stored["input"]["question"] in first["prompt"] and stored["input"]["context"] in first["prompt"]
    assert first["completion"] == stored["completions"][0][0]["text"] and first["score"] == stored["scores"]["f1"]
    eiffel = {r["sample_id"] for r in store.run_samples(run_id) if "eiffel" in str(r["input"]).lower()}
    found = q.run_samples(store, run_id, search="EIFFEL")
    assert eiffel and set(found.frame["sample_id"]) == eiffel and found.total == len(eiffel)
    assert q.run_samples(store, run_id, search="%").total == 0  # a LIKE wildcard is matched literally
    assert q.run_samples(store, run_id, search="rag-00").total == 9
    assert q.sample_score_keys(store, run_id) == ["abstained", "exact_match", "f1", "recall", "supported"]


def test_compare_page_leads_with_the_paired_result(filled: dict[str, Any]) -> None:
    """The -0.1 F1 drop is judged on paired samples (what the gate uses), never by independent intervals."""
    from harness.comparison import compare_runs

    store, a, b = filled["store"], filled["even"], filled["mixed"]
    view = cmp.paired_comparison(store, a, b)
    frame = view.frame.set_index("metric")
    row = frame.loc["exact_match"]
    base, cand = _per_sample(store, a, "exact_match"), _per_sample(store, b, "exact_match")
    assert row["n"] == len(base) and row["delta"] == pytest.approx(
        sum(cand[k] - base[k] for k in base) / len(base)
    )
    assert row["test"] == "mcnemar-exact" and 0 <= row["p_value"] <= 1 and row["ci_low"] <= row["delta"] <= row["ci_high"]
    direct = compare_runs(store, q.run_detail(store, a), q.run_detail(store, b), top=0)  # type: ignore[arg-type]
    assert {m.metric: m.test.p_value for m in direct.metrics}["exact_match"] == pytest.approx(row["p_value"])
    assert frame.loc["f1", "delta"] == pytest.approx(-0.1) and frame.loc["f1", "verdict"].startswith("regressed")
    assert frame.loc["supported", "verdict"] == "unchanged"
    assert "compare_metrics" not in dir(q) and "headline_metric" not in dir(q)  # one comparison, one primary metric


def test_flips_are_paired_by_sample_id_with_regressions_first(filled: dict[str, Any]) -> None:
    store, a, b = filled["store"], filled["even"], filled["mixed"]
    sa, sb = _per_sample(store, a, "f1"), _per_sample(store, b, "f1")
    regressed = sorted(s for s in sa if sb[s] < sa[s])
    improved = sorted(s for s in sa if sb[s] > sa[s])
    assert (len(regressed), len(improved)) == (3, 2)
    summary = cmp.paired_flips(store, a, b, "f1")
    assert (summary.n_paired, summary.regressions, summary.improvements) == (LIMIT, 3, 2)
    deltas = [sb[s] - sa[s] for s in sa]
    mean = sum(deltas) / len(deltas)
    assert summary.mean_delta == pytest.approx(mean)
    assert summary.ci_low <= mean <= summary.ci_high  # the engine's paired bootstrap interval
    flips = cmp.sample_flips(store, summary)
    assert flips.total == 5 and (summary.n_only_a, summary.n_only_b) == (0, 0)
    assert list(flips.frame["sample_id"]) == regressed + improved
    assert list(flips.frame["kind"]) == ["regression"] * 3 + ["improvement"] * 2
    row = flips.frame.iloc[0]
    stored_a = {r["sample_id"]: r for r in store.run_samples(a)}[row["sample_id"]]
    assert row["completion_a"] == stored_a["completions"][0][0]["text"] and row["completion_b"] == "unanswerable"
    assert list(cmp.sample_flips(store, summary, offset=3, limit=10).frame["kind"]) == ["improvement"] * 2


def test_flips_respect_lower_is_better_scores(filled: dict[str, Any]) -> None:
    store, a, b = filled["store"], filled["even"], filled["mixed"]
    sa, sb = _per_sample(store, a, "abstained"), _per_sample(store, b, "abstained")
    flips = cmp.sample_flips(store, cmp.paired_flips(store, a, b, "abstained"))
    worse = {s for s in sa if sb[s] > sa[s]}  # abstaining more is a regression
    assert {r["sample_id"] for r in flips.frame.to_dict("records") if r["kind"] == "regression"} == worse


def test_checkpoint_metrics_follow_the_training_steps(filled: dict[str, Any]) -> None:
    store = filled["store"]
    scores = q.checkpoint_metrics(store, filled["train"], ["f1"])
    assert list(scores["step"]) == [10, 20] and list(scores["run_id"]) == [filled["mixed"], filled["even"]]
    assert list(scores["value"]) == pytest.approx([0.7, 0.8])
    dynamics = q.train_dynamics(store, filled["train"])
    assert list(dynamics["step"]) == list(range(1, 31)) and dynamics["loss"].is_monotonic_decreasing
    assert list(q.train_dynamics(store, filled["train"], max_points=10)["step"]) == list(range(3, 31, 3))
    listed = q.train_run_list(store).iloc[0]
    assert (listed["n_steps"], listed["n_checkpoints"], listed["n_evals"]) == (30, 2, 2)
    assert list(q.train_checkpoints(store, filled["train"])["step"]) == [10, 20]


def test_monitor_history_findings_and_alarms(filled: dict[str, Any]) -> None:
    store = filled["store"]
    history = q.monitor_history(store)
    assert history.total == 3 and list(history.frame["monitor_run_id"]) == filled["monitors"][::-1]
    assert list(history.frame["n_alarms"]) == [1, 0, 0] and list(history.frame["alarm"]) == [True, False, False]
    assert q.monitor_history(store, "drift-input").total == 0
    series = q.finding_series(store, "drift-score")
    assert list(series["value"]) == pytest.approx([0.05, 0.1, 0.35])
    assert list(q.monitor_findings_of(store, filled["monitors"][2])["alarm"]) == [True]
    alarm_page = q.alarm_list(store)
    assert alarm_page.total == 1 and alarm_page.frame.iloc[0]["monitor_run_id"] == filled["monitors"][2]
    assert q.monitor_kinds(store) == ["drift-score"]


def test_sweep_trials_agreement_and_data_efficiency(filled: dict[str, Any]) -> None:
    store = filled["store"]
    listed = q.sweep_list(store).iloc[0]
    assert (listed["n_trials"], listed["n_pruned"], listed["best_final"]) == (6, 1, pytest.approx(0.7))
    trials = q.sweep_trial_table(store, filled["sweep"])
    both = trials.dropna(subset=["early_score", "final_score"])
    expected = stats.spearmanr(both["early_score"], both["final_score"]).statistic
    assert q.early_final_agreement(trials) == pytest.approx(expected)
    curve = q.data_efficiency(trials)
    assert list(curve["n_train_samples"]) == [100, 400, 1600]
    assert list(curve["mean"]) == pytest.approx([0.325, 0.475, 0.7]) and list(curve["n"]) == [2, 2, 1]
    assert curve["stderr"].iloc[0] == pytest.approx(stats.sem([0.30, 0.35]))


def test_every_query_answers_an_empty_store_with_empty_frames(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    Store(url).close()
    store = Store(url, read_only=True)
    assert q.leaderboard(store).total == 0 and q.leaderboard(store, sort_by="f1").frame.empty
    assert q.filter_options(store) == {"suite": [], "model": [], "status": [], "tag": []}
    frames: list[pd.DataFrame] = [
        q.recent_runs(store), q.run_metrics(store, "x"), q.run_samples(store, "x", search="a").frame,
        cmp.paired_comparison(store, "x", "y").frame, cmp.sample_flips(store, cmp.paired_flips(store, "x", "y", "f1")).frame,
        q.train_run_list(store),
        q.checkpoint_metrics(store, "t"), q.train_dynamics(store, "t"), q.monitor_history(store).frame,
        q.finding_series(store), q.alarm_list(store).frame, q.sweep_list(store), q.sweep_trial_table(store, "s"),
    ]
    assert all(f.empty for f in frames)
    assert list(q.run_samples(store, "x").frame.columns) == list(q.SAMPLE_COLUMNS)
    assert q.run_detail(store, "x") is None and cmp.paired_flips(store, "x", "y", "f1").n_paired == 0
    assert q.data_efficiency(q.sweep_trial_table(store, "s")).empty and q.early_final_agreement(q.sweep_trial_table(store, "s")) is None
    store.close()


def _bare_run(store: Store, name: str, rows: list[tuple[str, int, float]]) -> str:
    record = {"name": name, "suite": "rag-extraction", "suite_version": "1", "backend": "file", "backend_info": {},
              "generation": {}, "config": {}, "config_hash": name, "fingerprint": "f", "n_samples": len(rows), "versions": {}}
    run_id = store.create_run(record)
    store.write_batch(run_id, [
        {"sample_id": sid, "position": pos, "input": {}, "requests": [], "completions": [[{"text": f"{sid}-{name}"}]],
         "scores": {"f1": score}, "groups": [], "details": {}} for sid, pos, score in rows
    ], [])
    return run_id


def test_flips_pair_by_sample_id_never_by_position(store: Store) -> None:
    a = _bare_run(store, "a", [("s1", 0, 1.0), ("s2", 1, 0.0)])
    b = _bare_run(store, "b", [("s2", 0, 1.0), ("s1", 1, 1.0), ("s3", 2, 0.0)])  # reordered, one extra
    flips = cmp.paired_flips(store, a, b, "f1")
    assert (flips.n_paired, flips.n_only_a, flips.n_only_b, flips.regressions, flips.improvements) == (2, 0, 1, 0, 1)
    row = cmp.sample_flips(store, flips).frame.iloc[0]
    assert (row["sample_id"], row["completion_a"], row["completion_b"]) == ("s2", "s2-a", "s2-b")
