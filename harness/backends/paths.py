"""Model and adapter path checks that need no torch, so a cached rerun never imports it."""

from __future__ import annotations

import os
from pathlib import Path

from harness.errors import ConfigError


def looks_local(path: str) -> bool:
    """A path the user clearly meant as a directory (so a missing one is an error, not a hub lookup)."""
    return path.startswith((".", "/", "~")) or path.count("/") >= 2 or Path(path).exists()


def check_model_path(path: str | None) -> str:
    """Fail early, with the path in the message, when a local model directory is missing."""
    if not path:
        raise ConfigError("no model given: pass --model PATH_OR_HUB_ID")
    expanded = os.path.expanduser(path)
    if looks_local(path) and not Path(expanded).is_dir():
        raise ConfigError(f"model directory '{path}' does not exist")
    return expanded


def check_adapter_path(adapter: str | None) -> str | None:
    if adapter is None:
        return None
    expanded = os.path.expanduser(adapter)
    if not Path(expanded).is_dir():
        raise ConfigError(f"adapter directory '{adapter}' does not exist")
    if not (Path(expanded) / "adapter_config.json").is_file():
        raise ConfigError(f"'{adapter}' is not a PEFT adapter (no adapter_config.json)")
    return expanded
