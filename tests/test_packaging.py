"""Installed the way users install it: a wheel built from the repo, installed NOT editable into a
folder of its own, run from a directory outside the repo, scores every suite on its bundled sample
(no --data) with the tiny local model. Catches package data that the wheel leaves out (e.g. the
nested suites/data/mmlu_sample/), which an editable install hides."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "suites", "monitors", "dashboards")

pytestmark = pytest.mark.slow

# Per suite: options that keep the tiny model's generations short (each suite rejects unknown options).
SHORT = {
    "rag-extraction": [],
    "mmlu": [],
    "translation": ["--option", "bootstrap=0"],
    "attribute-extraction": [],
    "safety": ["--option", "max_new_tokens=4", "--option", "judge_max_new_tokens=4"],
    "mtbench": ["--option", "max_new_tokens=4", "--option", "judge_max_new_tokens=4"],
}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the tracked sources (no stale build/ folder), installed with --target."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(src)],
                   check=True, cwd=tmp)
    (wheel,) = dist.glob("harness_eval-*.whl")
    bundled = {p.relative_to(REPO).as_posix() for folder in ("suites/data", "harness/data") for p in (REPO / folder).rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    with zipfile.ZipFile(wheel) as zf:
        missing = bundled - set(zf.namelist())
    assert not missing, f"the wheel lacks bundled data: {sorted(missing)}"
    site = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q", "--target", str(site), str(wheel)],
                   check=True, cwd=tmp)
    return site


def _harness(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "HARNESS_DB": f"sqlite:///{cwd / 'harness.db'}"}
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


def test_the_installed_wheel_runs_every_suite_on_its_bundled_sample(installed: Path, tiny_model: Path,
                                                                   tmp_path: Path) -> None:
    probe = subprocess.run([sys.executable, "-c", "import harness, suites; print(harness.__file__); print(suites.__file__)"],
                           cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(installed)}, capture_output=True, text=True,
                           check=True)
    assert all(line.startswith(str(installed)) for line in probe.stdout.split()), probe.stdout  # not the repo's copy

    version = _harness(installed, tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.startswith("harness "), version.stderr
    listed = _harness(installed, tmp_path, "suites", "--json")
    assert listed.returncode == 0, listed.stderr
    names = {s["name"] for s in json.loads(listed.stdout)["suites"]}
    assert set(SHORT) | {"mtbench-pairwise"} == names

    run_ids: dict[str, str] = {}
    for suite, options in SHORT.items():
        judge = ["--judge-model", str(tiny_model)] if suite == "mtbench" else []
        # mtbench in full: the pairwise suite below needs baseline answers for every bundled question
        limit = [] if suite == "mtbench" else ["--limit", "2"]
        result = _harness(installed, tmp_path, "run", suite, "--model", str(tiny_model), *limit, "--max-new-tokens", "4",
                          "--no-progress", "--json", *options, *judge)
        assert result.returncode == 0, f"{suite}: {result.stderr[-2000:]}"
        (run,) = json.loads(result.stdout)["runs"]
        assert run["status"] == "complete" and run["n_samples"] >= 2, run
        run_ids[suite] = run["run_id"]
    pairwise = _harness(installed, tmp_path, "run", "mtbench-pairwise", "--model", str(tiny_model), "--limit", "1",
                        "--judge-model", str(tiny_model), "--option", f"baseline=run:{run_ids['mtbench']}",
                        "--option", "max_new_tokens=4", "--option", "judge_max_new_tokens=4", "--no-progress", "--json")
    assert pairwise.returncode == 0, pairwise.stderr[-2000:]
    listed_runs = json.loads(_harness(installed, tmp_path, "runs", "list", "--json").stdout)["runs"]
    assert {r["suite"]: r["status"] for r in listed_runs} == dict.fromkeys([*SHORT, "mtbench-pairwise"], "complete")


def test_learned_refusal_weights_load_offline_from_the_installed_wheel(installed: Path, tmp_path: Path) -> None:
    """The learned detector's weights are package data and load with every hub access switched off."""
    code = ("import harness.refusal_learned as r, json; d = r.LearnedDetector(); "
            "assert r.__file__.startswith(%r), r.__file__; "
            "print(json.dumps([d.version, [v.label for v in d.classify_many(['I cannot help with that.', 'Here you go: 42.'])]]))")
    env = {**os.environ, "PYTHONPATH": str(installed), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code % str(installed)], env=env, capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    version, labels = json.loads(done.stdout.strip().splitlines()[-1])
    assert version.startswith("1+") and labels == ["refusal", "compliance"]
