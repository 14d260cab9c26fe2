"""Translation suite: numbers checked against the `sacrebleu` command line on the same files, the
published WMT22 table reproduced through the file backend, bad input, CLI, tiny-model integration."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config import GenerationConfig, ModelConfig, RunConfig, SuiteConfig
from harness.errors import ConfigError, DataError
from harness.runner import Runner
from harness.store import Store
from suites.translation import TranslationSuite, extract_translation
from tests.conftest import SHARED_DATA, FakeBackend

WMT22 = SHARED_DATA / "translation" / "wmt22-de-en"
PREFIX = "generaltest2022.de-en"


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def completions_from_lines(path: Path, lines: list[str]) -> Path:
    """A file-backend JSONL answering text-file samples, whose ids are 1-based line numbers."""
    with path.open("w", encoding="utf-8") as fh:
        for i, line in enumerate(lines, start=1):
            fh.write(json.dumps({"id": str(i), "completion": line}, ensure_ascii=False) + "\n")
    return path


def run_translation(db_url: str, data: Path, completions: Path, options: dict[str, Any]) -> tuple[str, dict[str, dict[str, Any]]]:
    """One real Runner run through the file backend; returns the run id and its metric rows by name."""
    config = RunConfig(
        suites=[SuiteConfig(name="translation", data=str(data), options=options)],
        model=ModelConfig(backend="file", completions=str(completions)),
    )
    store = Store(db_url)
    try:
        [result] = Runner(config, store, show_progress=False).run()
        return result.run_id, {m["name"]: m for m in store.run_metrics(result.run_id)}
    finally:
        store.close()


def sacrebleu_cli(hyp: Path, refs: list[Path], *args: str) -> Any:
    cmd = [sys.executable, "-m", "sacrebleu", *map(str, refs), "-i", str(hyp), "-w", "6", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return proc.stdout


def cli_corpus(hyp: Path, refs: list[Path], lang: str) -> dict[str, tuple[float, str]]:
    """{metric: (score, signature)} from the sacrebleu command line, named as the suite names them."""
    out = {}
    for item in json.loads(sacrebleu_cli(hyp, refs, "-m", "bleu", "chrf", "ter", "-l", lang)):
        name = {"BLEU": "bleu", "chrF2": "chrf", "TER": "ter"}[item["name"]]
        out[name] = (item["score"], item["signature"])
    item = json.loads(sacrebleu_cli(hyp, refs, "-m", "chrf", "--chrf-word-order", "2", "-l", lang))
    out["chrf++"] = (item["score"], item["signature"])
    return out


def cli_sentences(hyp: Path, refs: list[Path], metric: str, *args: str) -> list[float]:
    lines = sacrebleu_cli(hyp, refs, "-m", metric, "-sl", *args).strip().splitlines()
    return [float(line.split(" = ", 1)[1].split()[0]) for line in lines]


# Cases written for this project: (source, references per segment, hypothesis, target language).
CASES: dict[str, tuple[list[str], list[list[str]], list[str], str]] = {
    "single-ref": (
        ["Das Haus ist klein.", "Ich trinke Kaffee.", "Der Zug ist spät.", "Wo ist der Bahnhof?"],
        [["The house is small."], ["I drink coffee."], ["The train is late."], ["Where is the station?"]],
        ["The house is tiny.", "I drink coffee .", "Train late.", "Where is the train station?"],
        "en",
    ),
    "two-refs-with-empty-hypothesis": (
        ["Bitte schließen Sie das Fenster.", "Im Winter ist es kalt.", "Mein Bruder ist Arzt.", "Guten Morgen!", "Es regnet."],
        [
            ["Please close the window.", "Please shut the window."],
            ["It is cold in winter.", "Winters are cold."],
            ["My brother is a doctor.", "My brother works as a physician."],
            ["Good morning!", "Morning!"],
            ["It is raining.", "It's raining."],
        ],
        ["Please shut the window", "In winter it is cold.", "", "Good morning, everyone!", "It rains."],
        "en",
    ),
    "unicode-target-de": (
        ["The shop opens at nine.", "The weather will improve.", "She reads novels."],
        [["Der Laden öffnet um neun."], ["Das Wetter wird besser."], ["Sie liest Romane."]],
        ["Das Geschäft öffnet um neun Uhr.", "Das Wetter wird sich bessern.", "Sie liest gern Romane."],
        "de",
    ),
    "chinese-target-tokenizer": (
        ["The weather is nice today.", "I like tea."],
        [["今天天气很好。"], ["我喜欢喝茶。"]],
        ["今天的天气很好。", "我喜欢茶。"],
        "zh",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_corpus_and_sentence_scores_match_the_sacrebleu_command_line(tmp_path: Path, sqlite_url: str, case: str) -> None:
    sources, refs, hyps, target = CASES[case]
    src = write_lines(tmp_path / "src.txt", sources)
    ref_files = [write_lines(tmp_path / f"ref{k}.txt", [r[k] for r in refs]) for k in range(len(refs[0]))]
    hyp = write_lines(tmp_path / "hyp.txt", hyps)
    completions = completions_from_lines(tmp_path / "out.jsonl", hyps)
    options = {"refs": ",".join(map(str, ref_files)), "source_lang": "xx", "target_lang": target, "bootstrap": 0}
    run_id, metrics = run_translation(sqlite_url, src, completions, options)

    expected = cli_corpus(hyp, ref_files, f"xx-{target}")
    for name, (score, signature) in expected.items():
        assert metrics[name]["value"] == pytest.approx(score, abs=1e-5), name
        assert metrics[name]["details"]["signature"] == signature, name
        assert metrics[name]["n"] == len(sources)
    assert metrics["ter"]["higher_is_better"] is False

    store = Store(sqlite_url)
    rows = store.run_samples(run_id)
    store.close()
    per_metric = {
        "bleu": cli_sentences(hyp, ref_files, "bleu", "-l", f"xx-{target}"),
        "chrf": cli_sentences(hyp, ref_files, "chrf"),
        "chrf++": cli_sentences(hyp, ref_files, "chrf", "--chrf-word-order", "2"),
        "ter": cli_sentences(hyp, ref_files, "ter"),
    }
    for name, values in per_metric.items():
        assert [r["scores"][f"sentence_{name}"] for r in rows] == pytest.approx(values, abs=1e-5), name
    assert [r["details"]["hypothesis"] for r in rows] == hyps


def test_jsonl_references_lists_and_variable_counts(tmp_path: Path, sqlite_url: str) -> None:
    """JSONL rows carry one reference or a list; a varying count is sacrebleu's `nrefs:var`."""
    data = tmp_path / "data.jsonl"
    rows = [
        {"id": "a", "src": "Das Haus ist klein.", "ref": "The house is small."},
        {"id": "b", "src": "Es regnet.", "ref": ["It is raining.", "It's raining."]},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "a", "completion": "The house is small."}\n{"id": "b", "completion": "It\'s raining."}\n')
    _, metrics = run_translation(sqlite_url, data, out, {"source_lang": "de", "target_lang": "en", "bootstrap": 0})
    assert metrics["bleu"]["value"] == pytest.approx(100.0)
    assert metrics["bleu"]["details"]["signature"].startswith("nrefs:var|")


def test_mixed_directions_get_corpus_scores_per_direction(tmp_path: Path, sqlite_url: str) -> None:
    data = tmp_path / "data.jsonl"
    rows = [
        {"id": "1", "lang_pair": "de-en", "src": "Das Haus ist klein.", "ref": "The house is small."},
        {"id": "2", "lang_pair": "de-en", "src": "Es regnet.", "ref": "It is raining."},
        {"id": "3", "lang_pair": "fr-en", "src": "Il pleut.", "ref": "It is raining."},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    answers = {"1": "The house is small.", "2": "It rains.", "3": "It is raining."}
    out.write_text("".join(json.dumps({"id": k, "completion": v}) + "\n" for k, v in answers.items()))
    _, metrics = run_translation(sqlite_url, data, out, {"bootstrap": 0, "metrics": "bleu,chrf"})
    assert metrics["fr-en/bleu"]["value"] == pytest.approx(100.0)
    assert metrics["de-en/bleu"]["n"] == 2
    from sacrebleu.metrics import BLEU

    expected = BLEU(trg_lang="en").corpus_score(["The house is small.", "It rains."], [["The house is small.", "It is raining."]])
    assert metrics["de-en/bleu"]["value"] == pytest.approx(expected.score)
    assert "ter" not in metrics and "chrf++" not in metrics


def test_bootstrap_gives_a_standard_error_and_a_signature_that_says_so(tmp_path: Path, sqlite_url: str) -> None:
    sources, refs, hyps, _ = CASES["two-refs-with-empty-hypothesis"]
    src = write_lines(tmp_path / "src.txt", sources)
    ref = write_lines(tmp_path / "ref.txt", [r[0] for r in refs])
    out = completions_from_lines(tmp_path / "out.jsonl", hyps)
    _, metrics = run_translation(sqlite_url, src, out, {"refs": str(ref), "target_lang": "en", "bootstrap": 200})
    for name in ("bleu", "chrf", "chrf++", "ter"):
        assert metrics[name]["stderr"] is not None and metrics[name]["stderr"] > 0
        assert "|bs:200|" in metrics[name]["details"]["signature"]


# ---- the published WMT22 table -------------------------------------------------------------------


def published_scores() -> dict[tuple[str, str], float]:
    with (WMT22 / "published-scores.tsv").open(encoding="utf-8") as fh:
        return {(r["system"], r["metric"]): float(r["score"]) for r in csv.DictReader(fh, delimiter="\t")}


@pytest.mark.acceptance
@pytest.mark.slow
@pytest.mark.parametrize("system", ["Lan-Bridge", "PROMT"])
@pytest.mark.parametrize("refset", ["A", "B", "all"])
def test_wmt22_de_en_published_bleu_and_chrf(tmp_path: Path, sqlite_url: str, system: str, refset: str) -> None:
    if not WMT22.is_dir():
        pytest.skip(f"shared WMT22 data not found at {WMT22} (set HARNESS_SHARED_DATA); CI always has it")
    hyp_lines = (WMT22 / f"{PREFIX}.hyp.{system}.en").read_text(encoding="utf-8").split("\n")[:-1]
    completions = completions_from_lines(tmp_path / "out.jsonl", hyp_lines)
    refs = [WMT22 / f"{PREFIX}.ref.{r}.en" for r in (["A", "B"] if refset == "all" else [refset])]
    options = {"refs": ",".join(map(str, refs)), "source_lang": "de", "target_lang": "en",
               "metrics": "bleu,chrf", "bootstrap": 0}
    _, metrics = run_translation(sqlite_url, WMT22 / f"{PREFIX}.src.de", completions, options)
    published = published_scores()
    assert metrics["bleu"]["value"] == pytest.approx(published[(system, f"bleu-{refset}")], abs=0.01)
    assert metrics["chrf"]["value"] == pytest.approx(published[(system, f"chrf-{refset}")], abs=0.01)
    assert metrics["bleu"]["n"] == 1984
    assert metrics["bleu"]["details"]["signature"].startswith(f"nrefs:{len(refs)}|case:mixed|eff:no|tok:13a")


# ---- bad input ---------------------------------------------------------------------------------------


def _text_case(tmp_path: Path, src: list[str], ref: list[str]) -> tuple[Path, dict[str, Any]]:
    return write_lines(tmp_path / "src.de", src), {"refs": str(write_lines(tmp_path / "ref.en", ref))}


BAD_TEXT = {
    "fewer reference lines": (["a", "b", "c"], ["A", "B"], "ref.en, line 3", "has 2 lines but the source"),
    "more reference lines": (["a", "b"], ["A", "B", "C"], "ref.en, line 3", "has 3 lines but the source"),
    "empty reference": (["a", "b", "c"], ["A", "", "C"], "ref.en, line 2", "empty reference"),
    "empty source": (["a", " ", "c"], ["A", "B", "C"], "src.de, line 2", "empty source segment"),
}


@pytest.mark.parametrize("case", sorted(BAD_TEXT))
def test_bad_text_files_name_file_and_line(tmp_path: Path, case: str) -> None:
    src_lines, ref_lines, where, problem = BAD_TEXT[case]
    src, options = _text_case(tmp_path, src_lines, ref_lines)
    suite = TranslationSuite(options | {"target_lang": "en"})
    with pytest.raises(DataError) as info:
        suite.load(str(src))
    assert where in str(info.value) and problem in str(info.value)


BAD_JSONL = {
    "missing src": ({"id": 1, "ref": "x"}, "field 'src': missing"),
    "missing ref": ({"id": 1, "src": "x"}, "field 'ref': missing"),
    "empty ref": ({"id": 1, "src": "x", "ref": " "}, "field 'ref': empty reference"),
    "empty ref list": ({"id": 1, "src": "x", "ref": []}, "field 'ref': empty list"),
    "empty ref in list": ({"id": 1, "src": "x", "ref": ["a", ""]}, "field 'ref[1]': empty reference"),
    "non-string ref": ({"id": 1, "src": "x", "ref": ["a", 3]}, "field 'ref[1]': expected a string"),
    "bad lang pair": ({"id": 1, "src": "x", "ref": "y", "lang_pair": "deen"}, "field 'lang_pair'"),
}


@pytest.mark.parametrize("case", sorted(BAD_JSONL))
def test_bad_jsonl_rows_name_file_line_and_field(tmp_path: Path, case: str) -> None:
    row, message = BAD_JSONL[case]
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"id": 0, "src": "ok", "ref": "ok"}) + "\n" + json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        TranslationSuite({"target_lang": "en"}).load(str(data))
    assert f"{data}, line 2, {message}" in str(info.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metrics": "bleu,meteor"}, "option 'metrics'"),
        ({"prompt": "Translate this."}, "must contain {src}"),
        ({"prompt": "{src} into {language}"}, "unknown placeholder"),
        ({"bootstrap": "many"}, "option 'bootstrap'"),
        ({"tokenize": "no-such-tokenizer"}, "no-such-tokenizer"),
        ({"languages": "de"}, "unknown option"),
        ({"target_lang": False}, "quote codes like 'no' in YAML"),
        ({"comet": "true", "comet_env": "/nonexistent/comet-env"}, "harness comet setup"),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        TranslationSuite(options)
    assert message in str(info.value)


def test_text_source_without_references_or_target_language(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "src.de", ["a"])
    with pytest.raises(ConfigError, match="refs=REF_A"):
        TranslationSuite({"target_lang": "en"}).load(str(src))
    ref = write_lines(tmp_path / "ref.en", ["A"])
    with pytest.raises(ConfigError, match="no target language"):
        TranslationSuite({"refs": str(ref)}).load(str(src))


def test_cli_bad_input_exits_2_and_stores_nothing(tmp_path: Path, sqlite_url: str) -> None:
    src = write_lines(tmp_path / "src.de", ["a", "b", "c"])
    ref = write_lines(tmp_path / "ref.en", ["A", "B"])
    out = completions_from_lines(tmp_path / "out.jsonl", ["x", "y", "z"])
    result = CliRunner().invoke(app, [
        "run", "translation", "--data", str(src), "--option", f"refs={ref}", "--source-lang", "de",
        "--target-lang", "en", "--backend", "file", "--completions", str(out), "--db", sqlite_url,
    ])
    assert result.exit_code == 2
    assert f"{ref}, line 3: has 2 lines but the source" in " ".join(result.output.split())
    store = Store(sqlite_url)
    assert store.list_runs() == []
    store.close()


def test_language_flags_only_for_translation(sqlite_url: str) -> None:
    result = CliRunner().invoke(app, ["run", "rag-extraction", "--model", "x", "--target-lang", "en", "--db", sqlite_url])
    assert result.exit_code == 2
    assert "translation suite only" in result.output


# ---- CLI end to end, resuming, prompts --------------------------------------------------------------


def test_cli_run_json_and_signatures_in_runs_show(tmp_path: Path, sqlite_url: str) -> None:
    sources, refs, hyps, _ = CASES["two-refs-with-empty-hypothesis"]
    src = write_lines(tmp_path / "src.de", sources)
    ref_a = write_lines(tmp_path / "a.en", [r[0] for r in refs])
    ref_b = write_lines(tmp_path / "b.en", [r[1] for r in refs])
    out = completions_from_lines(tmp_path / "out.jsonl", hyps)
    runner = CliRunner()
    result = runner.invoke(app, [
        "run", "translation", "--data", str(src), "--option", f"refs={ref_a},{ref_b}", "--source-lang", "de",
        "--target-lang", "en", "--backend", "file", "--completions", str(out), "--db", sqlite_url, "--json",
    ])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    [run] = payload["runs"]
    assert set(run["metrics"]) == {"bleu", "chrf", "chrf++", "ter"}
    shown = runner.invoke(app, ["runs", "show", run["run_id"], "--db", sqlite_url, "--json"])
    metrics = {m["name"]: m for m in json.loads(shown.stdout)["metrics"]}
    assert metrics["chrf++"]["details"]["signature"].startswith("nrefs:2|bs:1000|seed:12345|case:mixed|eff:yes|nc:6|nw:2")
    text = runner.invoke(app, ["runs", "show", run["run_id"], "--db", sqlite_url])
    assert "ter: nrefs:2|bs:1000" in text.output

    # Re-scoring the stored run (no model) reproduces every number.
    again = runner.invoke(app, [
        "run", "translation", "--data", str(src), "--option", f"refs={ref_a},{ref_b}", "--source-lang", "de",
        "--target-lang", "en", "--backend", "file", "--completions", f"run:{run['run_id']}", "--db", sqlite_url, "--json",
    ])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["runs"][0]["metrics"] == run["metrics"]


def test_changed_reference_file_never_resumes_the_old_run(tmp_path: Path, sqlite_url: str) -> None:
    n = 40
    src = write_lines(tmp_path / "src.de", [f"Satz {i}." for i in range(n)])
    ref = write_lines(tmp_path / "ref.en", [f"Sentence {i}." for i in range(n)])
    config = RunConfig(
        suites=[SuiteConfig(name="translation", data=str(src), options={"refs": str(ref), "target_lang": "en", "bootstrap": 0})],
        model=ModelConfig(path="fake"),
    )
    store = Store(sqlite_url)
    failing = FakeBackend(answer="Sentence 1.", fail_after=20)
    with pytest.raises(RuntimeError):
        Runner(config, store, backend_factory=lambda cfg: failing, show_progress=False, commit_every=16).run()
    [failed] = store.list_runs()
    assert failed["status"] == "failed" and store.count_samples(failed["id"]) == 16

    write_lines(ref, [f"Sentence {i}." for i in range(n - 1)] + ["A changed last reference."])
    [result] = Runner(config, store, backend_factory=lambda cfg: FakeBackend(answer="Sentence 1."), show_progress=False).run()
    assert result.run_id != failed["id"] and result.reused == 0
    # The unchanged configuration with the unchanged file resumes as usual.
    assert store.get_run(failed["id"])["status"] == "failed"
    store.close()


def test_prompt_per_direction_and_default(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text("de-en: 'Übersetze ins Englische: {src}'\n", encoding="utf-8")
    suite = TranslationSuite({"prompts": str(prompts)}, GenerationConfig(max_new_tokens=128))
    de_en = suite._sample("1", "Hallo Welt", ["Hello world"], "x:1", "de-en")
    fr_en = suite._sample("2", "Bonjour", ["Hello"], "x:2", "fr-en")
    [req] = suite.requests(de_en, 0, [])
    assert req.messages is not None and req.messages[0].content == "Übersetze ins Englische: Hallo Welt"
    assert req.max_new_tokens == 128 and req.kind == "generate"
    [req] = suite.requests(fr_en, 0, [])
    assert req.messages is not None
    assert req.messages[0].content.startswith("Translate the following text from French into English.")
    assert req.messages[0].content.endswith("\n\nBonjour")
    assert suite.requests(de_en, 1, [[]]) == []
    assert str(prompts) in suite.identity_files()


@pytest.mark.parametrize(
    ("completion", "source", "expected"),
    [
        ("  The house is small.  ", "Das Haus ist klein.", "The house is small."),
        ("\nThe house is small.\n\n(Note: literal translation.)", "Das Haus ist klein.", "The house is small."),
        ("Line one.\nLine two.", "Zeile eins.\nZeile zwei.", "Line one.\nLine two."),
        ("", "Das Haus.", ""),
    ],
)
def test_extract_translation(completion: str, source: str, expected: str) -> None:
    assert extract_translation(completion, source) == expected


# ---- the real HF backend on the tiny model ----------------------------------------------------------


@pytest.mark.slow
def test_tiny_model_end_to_end_on_the_bundled_sample(tiny_model: Path, sqlite_url: str) -> None:
    config = RunConfig(
        suites=[SuiteConfig(name="translation", limit=3, options={"bootstrap": 0})],
        model=ModelConfig(path=str(tiny_model), backend="hf"),
        generation=GenerationConfig(max_new_tokens=8),
    )
    store = Store(sqlite_url)
    [result] = Runner(config, store, show_progress=False).run()
    rows = store.run_samples(result.run_id)
    metrics = {m["name"]: m for m in store.run_metrics(result.run_id)}
    store.close()
    assert result.status == "complete" and result.n_samples == 3
    assert set(metrics) == {"bleu", "chrf", "chrf++", "ter"}
    assert all(m["details"]["signature"] for m in metrics.values())
    first = rows[0]
    assert "from German into English" in first["requests"][0][0]["messages"][0][1]
    assert first["details"]["references"] == ["The house is small.", "The home is small."]
    assert first["details"]["hypothesis"] == extract_translation(first["completions"][0][0]["text"], first["input"]["src"])


@pytest.mark.postgres
def test_signatures_are_stored_on_postgres_too(tmp_path: Path, pg_url: str) -> None:
    sources, refs, hyps, _ = CASES["single-ref"]
    src = write_lines(tmp_path / "src.txt", sources)
    ref = write_lines(tmp_path / "ref.txt", [r[0] for r in refs])
    out = completions_from_lines(tmp_path / "out.jsonl", hyps)
    _, metrics = run_translation(pg_url, src, out, {"refs": str(ref), "target_lang": "en", "bootstrap": 0, "metrics": "bleu"})
    assert metrics["bleu"]["details"]["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")


def test_yaml_config_with_a_list_of_reference_files(tmp_path: Path, sqlite_url: str) -> None:
    sources, refs, hyps, _ = CASES["two-refs-with-empty-hypothesis"]
    src = write_lines(tmp_path / "src.de", sources)
    ref_a = write_lines(tmp_path / "a.en", [r[0] for r in refs])
    ref_b = write_lines(tmp_path / "b.en", [r[1] for r in refs])
    out = completions_from_lines(tmp_path / "out.jsonl", hyps)
    config = tmp_path / "run.yaml"
    config.write_text(
        "suites:\n"
        f"  - name: translation\n    data: {src}\n"
        f"    options: {{source_lang: de, target_lang: en, refs: [{ref_a}, {ref_b}], metrics: [bleu], bootstrap: 0}}\n"
        f"model: {{backend: file, completions: {out}}}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["run", "--config", str(config), "--db", sqlite_url, "--json"])
    assert result.exit_code == 0, result.output
    hyp = write_lines(tmp_path / "hyp.txt", hyps)
    expected = cli_corpus(hyp, [ref_a, ref_b], "de-en")["bleu"][0]
    assert json.loads(result.stdout)["runs"][0]["metrics"]["bleu"] == pytest.approx(expected, abs=1e-5)
