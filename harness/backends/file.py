"""Replay backend: answers come from a JSONL of completions or from a run already in the store.

Users score outputs produced elsewhere (`--backend file --completions out.jsonl`), any suite can be
re-scored without a model (`--completions run:RUN_ID`), and metric tests become exact. Answers
are looked up by sample id and the request's position within the sample, never by order in a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.backends.base import Backend
from harness.config import ModelConfig, resolve_db_url
from harness.datafiles import read_jsonl
from harness.errors import ConfigError, DataError
from harness.types import Completion, Request


class FileBackend(Backend):
    name = "file"
    cacheable = False

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        source = config.completions
        if not source:
            raise ConfigError("the file backend needs --completions FILE.jsonl or --completions run:RUN_ID")
        self.source = source
        if source.startswith("run:"):
            self.answers = self._from_run(source[4:], config.options.get("db"))
        else:
            self.answers = self._from_jsonl(source)

    @staticmethod
    def _from_jsonl(path: str) -> dict[str, list[dict[str, Any]]]:
        answers: dict[str, list[dict[str, Any]]] = {}
        for line, row in read_jsonl(path):
            if "id" not in row:
                raise DataError(path, line, "id", "missing")
            if "completion" not in row:
                raise DataError(path, line, "completion", "missing")
            value = row["completion"]
            texts = value if isinstance(value, list) else [value]
            for i, text in enumerate(texts):
                if not isinstance(text, str):
                    field = "completion" if not isinstance(value, list) else f"completion[{i}]"
                    raise DataError(path, line, field, f"expected a string, got {type(text).__name__}")
            key = str(row["id"])
            if key in answers:
                raise DataError(path, line, "id", f"duplicate id '{key}'")
            answers[key] = [{"text": t} for t in texts]
        return answers

    @staticmethod
    def _from_run(run_ref: str, db: Any) -> dict[str, list[dict[str, Any]]]:
        from harness.store import Store

        store = Store(resolve_db_url(db), read_only=True)
        try:
            run_id = store.resolve_run_id(run_ref)
            answers = {}
            for row in store.run_samples(run_id):
                answers[row["sample_id"]] = [c for stage in row["completions"] for c in stage]
            return answers
        finally:
            store.close()

    def info(self) -> dict[str, Any]:
        return {"completions": self.source, "n_answers": len(self.answers)}

    def _lookup(self, request: Request) -> dict[str, Any]:
        found = self.answers.get(request.sample_id)
        if found is None:
            raise DataError(self.source, None, "id", f"no completion for sample '{request.sample_id}'")
        if request.index >= len(found):
            raise DataError(
                self.source, None, "completion",
                f"sample '{request.sample_id}' needs answer #{request.index + 1}, found {len(found)}",
            )
        return found[request.index]

    def preflight(self, requests: Sequence[Request]) -> None:
        missing = sorted({r.sample_id for r in requests if r.sample_id not in self.answers})
        if missing:
            shown = ", ".join(f"'{m}'" for m in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise DataError(self.source, None, "id", f"no completion for {len(missing)} sample(s): {shown}")

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        # A replayed run keeps its reasoning split (answer, thinking, truncated), so a rescore scores alike.
        kept = ("text", "reasoning", "reasoning_tokens", "reasoning_truncated")
        return [Completion.from_json({k: v for k, v in self._lookup(r).items() if k in kept}) for r in requests]

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        out = []
        for r in requests:
            answer = self._lookup(r)
            if answer.get("logprob") is None:
                raise DataError(self.source, None, "logprob",
                                f"sample '{r.sample_id}' has no stored log-likelihood to replay")
            out.append(Completion.from_json(answer))
        return out
