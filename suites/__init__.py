"""Suite registry: an explicit dict of CLI names to `module:Class`, imported only when chosen."""

from __future__ import annotations

import difflib
import importlib

from harness.config import GenerationConfig
from harness.errors import ConfigError
from suites.base import Suite

SUITES: dict[str, str] = {
    "rag-extraction": "suites.rag_extraction:RagExtractionSuite",
    "attribute-extraction": "suites.attribute_extraction:AttributeExtractionSuite",
}


def suite_class(name: str) -> type[Suite]:
    """The class registered under `name`; unknown names get close matches in the error."""
    try:
        target = SUITES[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(SUITES), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown suite '{name}' (known: {', '.join(sorted(SUITES))}).{hint}") from None
    module_name, _, attr = target.partition(":")
    cls: type[Suite] = getattr(importlib.import_module(module_name), attr)
    return cls


def create_suite(name: str, options: dict[str, object] | None = None, generation: GenerationConfig | None = None) -> Suite:
    return suite_class(name)(options, generation)
