"""The task file: a suite described in YAML (data, prompt, scorers), validated with pydantic.

Every mistake is reported as `FILE, line N, field 'a.b': problem`, with the line taken from the
YAML node that holds the offending key or value, so a typo in a 40-line task file is found at once.
The file holds no code: Python enters only through a named `python:module:function` scorer.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.errors import ConfigError

TASK_SUFFIXES = (".yaml", ".yml")


def is_task_path(name: str) -> bool:
    """Suite names ending in .yaml/.yml are task files (registered suite names never do)."""
    return name.lower().endswith(TASK_SUFFIXES)


class TaskFileError(ConfigError):
    """A task file is wrong: the message names the file, the line and the field."""

    def __init__(self, path: str, line: int | None, field: str | None, problem: str) -> None:
        where = path + (f", line {line}" if line else "") + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.field = path, line, field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Syntax = Literal["auto", "jinja", "format"]


class DataSpec(_Strict):
    """Where the samples are and which of their fields play which part."""

    path: str = Field(description="JSONL, CSV or parquet file; relative paths start at the task file's folder.")
    format: Literal["auto", "jsonl", "csv", "parquet"] = "auto"
    input: str | None = Field(None, description="The main input field (the prompt is `{INPUT}` when no template is given).")
    reference: str | list[str] | None = Field(
        None, description="Field holding the reference (a list value means several references), or a list of fields."
    )
    id: str | None = Field(None, description="Field with a stable sample id (pairs samples across runs); default: row number.")
    group: str | None = Field(None, description="Field whose value names a subset; metrics are also reported per subset.")


class FewShot(_Strict):
    """Worked examples put before every question, read from another data file."""

    path: str
    n: int | None = Field(None, ge=1, description="Use the first N rows (default: all).")
    answer: str | None = Field(None, description="Template of each example's answer (multiple choice: the gold choice).")


class _Prompted(_Strict):
    template: str | None = Field(None, description="Prompt over the data fields: `{field}` or Jinja (`{{ field }}`).")
    syntax: Syntax = Field("auto", description="auto = Jinja when the template has `{{` or `{%`, else `{field}`.")
    fewshot: FewShot | None = None
    separator: str = Field("\n\n", description="Between few-shot examples in a plain prompt.")


class GenerateSpec(_Prompted):
    """A generated answer: a chat turn (the model's own chat template) or a plain text prompt."""

    style: Literal["chat", "plain"] = "chat"
    system: str | None = Field(None, description="Chat only: a system message.")
    max_new_tokens: int | None = Field(None, ge=1, description="Overrides the run's generation settings.")
    temperature: float | None = Field(None, ge=0.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    stop: list[str] = Field(default_factory=list, description="Stop sequences.")
    extract: str | None = Field(None, description="Regex applied to the answer; its first group (or match) is scored.")

    @field_validator("extract")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _system_needs_chat(self) -> GenerateSpec:
        if self.system is not None and self.style != "chat":
            raise ValueError("'system' needs style: chat")
        return self


class ChoiceSpec(_Prompted):
    """Multiple choice scored by log-likelihood: the most likely continuation is the answer."""

    choices: str | list[str] = Field(description="Field holding the list of options, or a list of fields (one per option).")
    gold: str = Field(description="Field with the right option: its index (0-based), its text or its letter (A, B, ...).")
    continuation: str = Field(" {choice}", description="Each option as scored after the prompt; `{choice}`, `{letter}`, `{index}`.")


class ScorerSpec(_Strict):
    """One scorer; `use` is a built-in name, `evaluate:NAME_OR_PATH` or `python:module:function`."""

    use: str
    name: str | None = Field(None, description="The metric's name in results (default: derived from `use`).")
    higher_is_better: bool | None = Field(None, description="For the gate; built-ins know their own direction.")
    args: dict[str, Any] = Field(default_factory=dict, description="Scorer settings (regex `pattern`, evaluate `key`...).")

    def metric_name(self) -> str:
        if self.name:
            return self.name
        kind, _, rest = self.use.partition(":")
        if kind == "evaluate":
            return Path(rest.rstrip("/")).stem or rest
        if kind == "python":
            return rest.rpartition(":")[2]
        return self.use


class TaskFile(_Strict):
    """The whole task file."""

    name: str | None = Field(None, description="A label for people; runs are named by the file's path.")
    description: str | None = None
    version: str = Field("1", description="Bump when scoring changes meaningfully (the gate refuses to mix versions).")
    data: DataSpec
    request: GenerateSpec | None = None
    multiple_choice: ChoiceSpec | None = None
    scorers: list[str | ScorerSpec] = Field(default_factory=list)
    primary: str | None = Field(None, description="The headline metric for the gate and summaries (default: the first scorer).")

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @model_validator(mode="after")
    def _one_form(self) -> TaskFile:
        if (self.request is None) == (self.multiple_choice is None):
            raise ValueError("give exactly one of 'request' (generation) or 'multiple_choice'")
        if self.request is not None and not self.scorers:
            raise ValueError("a generation task needs at least one entry in 'scorers'")
        names = [s.metric_name() for s in self.scorer_specs()]
        duplicate = sorted({n for n in names if names.count(n) > 1})
        if duplicate:
            raise ValueError(f"two scorers report the same metric {duplicate}: give one a `name`")
        if self.primary is not None and self.primary not in names:
            raise ValueError(f"primary '{self.primary}' is not a scorer's metric (scorers: {', '.join(names)})")
        return self

    def scorer_specs(self) -> list[ScorerSpec]:
        specs = [ScorerSpec(use=s) if isinstance(s, str) else s for s in self.scorers]
        if not specs and self.multiple_choice is not None:
            specs = [ScorerSpec(use="acc")]
        return specs


# ---- reading with line numbers ------------------------------------------------------------------

Lines = dict[tuple[str | int, ...], int]


def _node_lines(node: yaml.Node, path: tuple[str | int, ...], out: Lines) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, str(key.value))
            out[sub] = key.start_mark.line + 1
            _node_lines(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _node_lines(item, (*path, i), out)


def line_of(lines: Lines, loc: Sequence[Any]) -> tuple[int | None, str]:
    """The line of the deepest YAML node along `loc` (pydantic's error location) and the dotted field.

    Location parts that are not YAML keys (pydantic's union member tags) are skipped."""
    path: tuple[str | int, ...] = ()
    for part in loc:
        step = (*path, part if isinstance(part, int) else str(part))
        if step in lines:
            path = step
    dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return lines.get(path), dotted


class LoadedTask:
    """A validated task file with its text, content hash and node lines (for later errors)."""

    def __init__(self, path: str, text: str, spec: TaskFile, lines: Lines) -> None:
        self.path, self.text, self.spec, self.lines = path, text, spec, lines
        self.sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
        self.folder = Path(path).resolve().parent

    def error(self, loc: Sequence[Any], problem: str) -> TaskFileError:
        line, dotted = line_of(self.lines, loc)
        return TaskFileError(self.path, line, dotted or None, problem)

    def resolve(self, relative: str) -> str:
        """A path named in the task file, relative to the task file's folder unless absolute."""
        p = Path(relative).expanduser()
        return str(p if p.is_absolute() else self.folder / p)


def load_task_file(path: str) -> LoadedTask:
    file = Path(path)
    if not file.is_file():
        raise TaskFileError(path, None, None, "task file not found")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TaskFileError(path, None, None, "not UTF-8 text") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise TaskFileError(path, mark.line + 1 if mark else None, None, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict) or node is None:
        raise TaskFileError(path, 1, None, "expected a mapping (data:, request: or multiple_choice:, scorers:)")
    lines: Lines = {}
    _node_lines(node, (), lines)
    try:
        spec = TaskFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        line, dotted = line_of(lines, first["loc"])
        problem = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            problem = "unknown key (a typo?)"
        more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
        raise TaskFileError(path, line, dotted or None, problem + more) from None
    return LoadedTask(path, text, spec, lines)


# ---- templates ------------------------------------------------------------------------------------


def uses_jinja(template: str, syntax: Syntax) -> bool:
    return syntax == "jinja" or (syntax == "auto" and ("{{" in template or "{%" in template))


def template_fields(template: str, syntax: Syntax) -> set[str]:
    """The top-level data fields a template reads (checked against the data before any request)."""
    if uses_jinja(template, syntax):
        from jinja2 import meta

        return set(meta.find_undeclared_variables(_jinja_env().parse(template)))
    names = set()
    for _, field, _, _ in string.Formatter().parse(template):
        if field is not None:
            head = field.split(".", 1)[0].split("[", 1)[0]
            if head == "" or head.isdigit():
                raise ValueError("a `{field}` template names every field (no `{}` or `{0}`)")
            names.add(head)
    return names


def _jinja_env() -> Any:
    import json

    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)
    return env


class Template:
    """One compiled prompt template; dicts and lists render as JSON in `{field}` templates."""

    def __init__(self, text: str, syntax: Syntax) -> None:
        self.text = text
        self.fields = template_fields(text, syntax)
        self._jinja = _jinja_env().from_string(text) if uses_jinja(text, syntax) else None

    def render(self, values: Mapping[str, Any]) -> str:
        if self._jinja is not None:
            return str(self._jinja.render(**values))
        import json

        shown = {k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v for k, v in values.items()}
        return self.text.format_map(shown)


# ---- the copy stored with a run -------------------------------------------------------------------


def stored_task_file(run: Mapping[str, Any]) -> dict[str, Any] | None:
    """The task file a run was scored with ({path, sha256, text}), or None for other suites."""
    identity = (run.get("config") or {}).get("suite_identity") or {}
    found = identity.get("task_file")
    return dict(found) if isinstance(found, Mapping) else None


def task_file_change(run: Mapping[str, Any]) -> str | None:
    """A note when the task file on disk is no longer the one the run was scored with (rescoring
    then uses the file as it is now), or None when they agree or the run has no task file."""
    stored = stored_task_file(run)
    if stored is None:
        return None
    file = Path(str(stored["path"]))
    if not file.is_file():
        return f"task file {file} is gone; the run's copy is stored with it (`harness runs show {run['id']} --json`)"
    now = hashlib.sha256(file.read_text(encoding="utf-8").encode("utf-8")).hexdigest()
    if now != stored["sha256"]:
        return f"task file {file} changed since run {run['id']} (sha256 {str(stored['sha256'])[:12]} -> {now[:12]})"
    return None
