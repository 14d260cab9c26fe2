"""Suite registry: an explicit dict of CLI names to `module:Class`, imported only when chosen."""

from __future__ import annotations

import difflib
import importlib

from harness.config import GenerationConfig
from harness.errors import ConfigError
from suites.base import Suite

SUITES: dict[str, str] = {
    "rag-extraction": "suites.rag_extraction:RagExtractionSuite",
    "mtbench": "suites.mtbench:MTBenchSuite",
    "mtbench-pairwise": "suites.mtbench:MTBenchPairwiseSuite",
    "safety": "suites.safety:SafetySuite",
    "translation": "suites.translation:TranslationSuite",
    "mmlu": "suites.mmlu:MMLUSuite",
    "attribute-extraction": "suites.attribute_extraction:AttributeExtractionSuite",
}

#: Name prefixes that select a family of suites; the rest of the name is passed to the class.
SUITE_PREFIXES: dict[str, str] = {
    "lm-eval:": "suites.lm_eval_task:LmEvalSuite",
}


def suite_class(name: str) -> type[Suite]:
    """The class registered under `name`; unknown names get close matches in the error.

    A name ending in .yaml/.yml is a task file (suites/yaml_task.py), read and checked here."""
    from suites.task_file import is_task_path

    if is_task_path(name):
        from suites.yaml_task import task_suite_class

        return task_suite_class(name)
    prefix = next((p for p in SUITE_PREFIXES if name.startswith(p)), None)
    if prefix is not None:
        target = SUITE_PREFIXES[prefix]
    elif name in SUITES:
        target = SUITES[name]
    else:
        close = difflib.get_close_matches(name, list(SUITES), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        known = ", ".join([*sorted(SUITES), *(f"{p}TASK" for p in SUITE_PREFIXES), "path/to/task.yaml"])
        raise ConfigError(f"unknown suite '{name}' (known: {known}).{hint}")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"suite '{name}' needs a package that is not installed ({exc.name}); pip install 'harness-eval[lm-eval]'"
        ) from None
    cls: type[Suite] = getattr(module, attr)
    return cls


def create_suite(name: str, options: dict[str, object] | None = None, generation: GenerationConfig | None = None) -> Suite:
    """Instantiate a suite; prefixed names (`lm-eval:TASK`) pass the rest of the name along."""
    cls = suite_class(name)
    prefix = next((p for p in SUITE_PREFIXES if name.startswith(p)), None)
    if prefix is not None:
        return cls.for_name(name[len(prefix) :], options, generation)  # type: ignore[attr-defined, no-any-return]
    return cls(options, generation)
