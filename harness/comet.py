"""COMET in an environment of its own, called as a worker process with JSON lines in and out.

unbabel-comet 2.2.7 pins transformers<5, numpy<2, protobuf<5 and huggingface-hub<1, which the
harness (and vLLM) have outgrown, so it cannot share their environment. `harness comet setup`
creates a virtual environment for it (default `~/.cache/harness/comet-env`, or `$HARNESS_COMET_ENV`);
scoring starts `harness/comet_worker.py` with that environment's Python once per suite run, loads
the model once, sends one batch of segments per request and stops the worker when the run ends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any

from harness.errors import BackendError, ConfigError, HarnessError

WORKER = Path(__file__).with_name("comet_worker.py")
DEFAULT_ENV = Path("~/.cache/harness/comet-env")
COMET_REQUIREMENT = "unbabel-comet>=2.2.7"
#: torchmetrics 0.10 (pinned by unbabel-comet) imports pkg_resources, which setuptools 81 removed.
EXTRA_REQUIREMENTS = ("setuptools<81",)
MARKER = "harness-comet.json"


def comet_env_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--env / option comet_env beats $HARNESS_COMET_ENV beats ~/.cache/harness/comet-env."""
    raw = explicit or os.environ.get("HARNESS_COMET_ENV") or DEFAULT_ENV
    return Path(raw).expanduser().absolute()


def env_python(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def default_torch_requirement() -> str:
    """The torch this harness runs on (without a local tag such as +cpu), so the COMET environment
    gets the same build family and, where a wheel is cached, installs without a download."""
    try:
        return "torch==" + version("torch").split("+", 1)[0]
    except PackageNotFoundError:
        return "torch"


def _run(cmd: Sequence[str], what: str) -> str:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise HarnessError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def setup_env(env: Path, python: str | None = None, torch_requirement: str | None = None) -> dict[str, Any]:
    """Create (or complete) the COMET environment and check that `import comet` works in it."""
    py = env_python(env)
    if not py.exists():
        _run([python or sys.executable, "-m", "venv", str(env)], f"creating a virtual environment at {env}")
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run([*pip, torch_requirement or default_torch_requirement()], "installing torch into the COMET environment")
    _run([*pip, COMET_REQUIREMENT, *EXTRA_REQUIREMENTS], "installing unbabel-comet")
    probe = (
        "import json, importlib.metadata as m, comet, torch, transformers;"
        "print(json.dumps({k: m.version(k) for k in ('unbabel-comet', 'torch', 'transformers', 'numpy')}))"
    )
    versions = json.loads(_run([str(py), "-P", "-c", probe], "importing comet in its environment").strip().splitlines()[-1])
    info = {"env": str(env), "python": str(py), "versions": versions}
    (env / MARKER).write_text(json.dumps(info, indent=2), encoding="utf-8")
    return info


def check_env(env: Path) -> Path:
    py = env_python(env)
    if not py.exists() or not (env / MARKER).exists():
        raise ConfigError(
            f"no COMET environment at {env}: run `harness comet setup` (or `harness comet setup --env DIR` "
            "and pass --option comet_env=DIR or set HARNESS_COMET_ENV)"
        )
    return py


def make_tiny(env: Path, directory: Path) -> Path:
    """Build a tiny COMET-architecture checkpoint (for offline tests and demos) with the worker."""
    py = check_env(env)
    _run([str(py), "-P", str(WORKER), "make-tiny", str(directory)], "building the tiny COMET model")
    return directory / "checkpoints" / "model.ckpt"


class CometScorer:
    """Scores (src, mt, ref) triples with one COMET model through a worker in the COMET env."""

    def __init__(self, model: str, env: Path, batch_size: int = 16) -> None:
        self.env = env
        self.python = check_env(env)
        path = Path(model).expanduser()
        self.is_local = path.exists()
        if self.is_local:
            model = str(path.absolute())
            if path.is_dir() and not (path / "checkpoints" / "model.ckpt").is_file():
                raise ConfigError(f"{path}: not a COMET model folder (no checkpoints/model.ckpt)")
        elif model.startswith((".", "/", "~")):
            raise ConfigError(f"COMET model '{model}' not found")
        self.model = model
        self.batch_size = batch_size
        self._proc: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None
        self._info: dict[str, Any] = {}

    def _start(self) -> subprocess.Popen[str]:
        if self._proc is not None:
            return self._proc
        self._log = tempfile.NamedTemporaryFile("w+", prefix="harness-comet-", suffix=".log", delete=False)  # noqa: SIM115
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
        cmd = [str(self.python), "-P", str(WORKER), "serve", "--model", self.model, "--batch-size", str(self.batch_size)]
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, env=env, bufsize=1
        )
        first = self._read()
        if "error" in first:
            self.close()
            raise BackendError(f"COMET worker could not load '{self.model}': {first['error']}")
        self._info = {k: v for k, v in first.items() if k != "ready"}
        return self._proc

    def _read(self) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise BackendError(f"COMET worker stopped unexpectedly; its log:\n{self._log_tail()}")
        try:
            value: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError:
            raise BackendError(f"COMET worker wrote a line that is not JSON: {line[:200]!r}") from None
        return value

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        text = Path(self._log.name).read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.strip().splitlines()[-15:])

    def score(self, rows: Sequence[dict[str, str]]) -> list[float]:
        """Segment scores, one per row, in order."""
        if not rows:
            return []
        proc = self._start()
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps({"data": list(rows)}, ensure_ascii=False) + "\n")
            proc.stdin.flush()
        except BrokenPipeError:
            raise BackendError(f"COMET worker stopped unexpectedly; its log:\n{self._log_tail()}") from None
        answer = self._read()
        if "error" in answer:
            raise BackendError(f"COMET scoring failed: {answer['error']}")
        scores = [float(s) for s in answer["scores"]]
        if len(scores) != len(rows):
            raise BackendError(f"COMET worker returned {len(scores)} scores for {len(rows)} segments")
        return scores

    def info(self) -> dict[str, Any]:
        """What identifies the scores: model, checkpoint, unbabel-comet and torch versions, device."""
        return dict(self._info)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
                proc.wait(timeout=30)
            except (subprocess.TimeoutExpired, BrokenPipeError, OSError):
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._log is not None:
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)
            self._log = None

