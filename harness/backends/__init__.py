"""Backend registry: an explicit dict of names to `module:Class`, imported only when chosen.

Choosing `hf` never imports vLLM; choosing `file` never imports torch.
"""

from __future__ import annotations

import importlib

from harness.backends.base import Backend
from harness.config import ModelConfig
from harness.errors import ConfigError

BACKENDS: dict[str, str] = {
    "hf": "harness.backends.hf:HFBackend",
    "file": "harness.backends.file:FileBackend",
    "vllm": "harness.backends.vllm:VLLMBackend",
    "openai": "harness.backends.openai:OpenAIBackend",
}


def backend_class(name: str) -> type[Backend]:
    """Import and return the backend class registered under `name`."""
    try:
        target = BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError(f"unknown backend '{name}' (known: {known})") from None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"backend '{name}' needs a package that is not installed ({exc.name}); "
            f"install the matching extra, e.g. pip install 'harness-eval[{name}]'"
        ) from None
    cls: type[Backend] = getattr(module, attr)
    return cls


def create_backend(config: ModelConfig) -> Backend:
    """Instantiate (and so load) the backend a model configuration names."""
    return backend_class(config.backend)(config)


def answer_neutral_options(config: ModelConfig) -> frozenset[str]:
    """The options of this backend that cannot change an answer (imported only when options are set)."""
    if not config.options:
        return frozenset()
    return backend_class(config.backend).answer_neutral_options


def resolved_dtype(config: ModelConfig) -> str:
    """`auto` made concrete, so a CPU float32 answer is never served from a GPU bfloat16 cache."""
    if config.dtype != "auto" or config.backend in ("file", "openai"):  # a server picks its own dtype
        return config.dtype
    if config.device == "cpu":
        return "float32"  # without importing torch (a cached rerun needs no model)
    try:
        import torch
    except ImportError:
        return "float32"
    if config.device == "cpu" or not torch.cuda.is_available():
        return "float32"
    return "bfloat16"
