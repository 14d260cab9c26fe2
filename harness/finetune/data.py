"""Training data: JSONL rows -> chat turns -> token ids with the prompt masked out of the loss.

Two row shapes are accepted, per line: `{"messages": [{"role", "content"}, ...]}` (chat; every
assistant turn is trained on) or `{"instruction", "input"?, "output"}` (Alpaca style; the user turn is
`instruction`, a blank line and `input`, the assistant turn is `output`). Rows are formatted with the
tokenizer's own chat template; the loss covers only assistant tokens (labels -100 elsewhere).
Bad rows raise a DataError naming file, line and field; nothing is silently dropped or truncated.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.datafiles import read_jsonl, require
from harness.errors import ConfigError, DataError

IGNORE = -100
_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Example:
    """One tokenised training row (or packed block); `labels` is -100 wherever no loss is taken."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    source: str = ""


def load_conversations(path: str) -> list[tuple[str, list[dict[str, str]]]]:
    """[(source "file:line", turns)] for every row; each conversation ends with an assistant turn."""
    out = []
    for line, row in read_jsonl(path):
        if "messages" in row:
            turns = _messages(row, path, line)
        elif "instruction" in row or "output" in row:
            instruction = require(row, "instruction", str, path, line)
            extra = row.get("input", "")
            if not isinstance(extra, str):
                raise DataError(path, line, "input", f"expected str, got {type(extra).__name__}")
            output = require(row, "output", str, path, line)
            if not output.strip():
                raise DataError(path, line, "output", "empty")
            user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
            turns = [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
        else:
            raise DataError(path, line, "messages", "missing (expected `messages`, or `instruction` and `output`)")
        out.append((f"{path}:{line}", turns))
    if not out:
        raise DataError(path, None, None, "no training rows")
    return out


def _messages(row: dict[str, Any], path: str, line: int) -> list[dict[str, str]]:
    messages = require(row, "messages", list, path, line)
    if not messages:
        raise DataError(path, line, "messages", "empty list")
    turns = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise DataError(path, line, f"messages[{i}]", "expected an object with role and content")
        role, content = m.get("role"), m.get("content")
        if role not in _ROLES:
            raise DataError(path, line, f"messages[{i}].role", f"expected one of {', '.join(_ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise DataError(path, line, f"messages[{i}].content", "missing or not a string")
        turns.append({"role": role, "content": content})
    if turns[-1]["role"] != "assistant":
        raise DataError(path, line, f"messages[{len(turns) - 1}].role", "the last turn must be the assistant's")
    return turns


def select_rows(rows: Sequence[Any], max_samples: int | None, seed: int) -> list[Any]:
    """A seeded shuffle, then the first `max_samples`: subsets for growing N are nested."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    if max_samples is not None:
        if max_samples > len(rows):
            raise ConfigError(f"max_samples {max_samples} is more than the {len(rows)} rows of the training data")
        order = order[:max_samples]
    return [rows[i] for i in order]


def _render(tokenizer: Any, turns: list[dict[str, str]], add_generation_prompt: bool) -> str:
    text: str = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=add_generation_prompt)
    return text


def tokenize_conversation(tokenizer: Any, turns: list[dict[str, str]], source: str) -> Example:
    """Token ids of the templated conversation; labels only on assistant turns.

    The conversation is rendered prefix by prefix (before each assistant turn with the generation
    prompt, after it without), so each assistant span is exactly what the template adds for it.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError("the tokenizer has no chat template; fine-tuning formats rows with the model's own template")
    pieces: list[tuple[str, bool]] = []
    done = ""
    for i, turn in enumerate(turns):
        if turn["role"] != "assistant":
            continue
        before = _render(tokenizer, turns[:i], add_generation_prompt=True)
        after = _render(tokenizer, turns[: i + 1], add_generation_prompt=False)
        if not before.startswith(done) or not after.startswith(before):
            raise ConfigError("the chat template does not render conversations prefix by prefix; cannot mask prompts")
        pieces.append((before[len(done) :], False))
        pieces.append((after[len(before) :], True))
        done = after
    ids: list[int] = []
    labels: list[int] = []
    for text, trained in pieces:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids.extend(piece)
        labels.extend(piece if trained else [IGNORE] * len(piece))
    return Example(tuple(ids), tuple(labels), source)


def build_examples(
    tokenizer: Any, conversations: Sequence[tuple[str, list[dict[str, str]]]], max_length: int, packing: bool
) -> list[Example]:
    examples = [tokenize_conversation(tokenizer, turns, source) for source, turns in conversations]
    for ex in examples:
        if len(ex.input_ids) > max_length:
            path, _, line = ex.source.rpartition(":")
            raise DataError(path, int(line), None, f"{len(ex.input_ids)} tokens, more than max_length {max_length}")
    return pack(examples, max_length) if packing else examples


def pack(examples: Sequence[Example], max_length: int) -> list[Example]:
    """Greedy packing: rows are concatenated in order into blocks of at most max_length tokens.

    Rows are never split (a response cut in half would teach the model to stop early). Attention
    crosses row boundaries inside a block, as in trl's plain packing; the loss mask is kept per row.
    """
    blocks: list[Example] = []
    ids: list[int] = []
    labels: list[int] = []
    for ex in examples:
        if ids and len(ids) + len(ex.input_ids) > max_length:
            blocks.append(Example(tuple(ids), tuple(labels), "packed"))
            ids, labels = [], []
        ids.extend(ex.input_ids)
        labels.extend(ex.labels)
    if ids:
        blocks.append(Example(tuple(ids), tuple(labels), "packed"))
    return blocks


class ExampleDataset:
    """A map-style dataset over examples, in the dict form transformers' Trainer feeds the model."""

    def __init__(self, examples: Sequence[Example]) -> None:
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        ex = self.examples[i]
        return {"input_ids": list(ex.input_ids), "labels": list(ex.labels)}


@dataclass(frozen=True)
class PadCollator:
    """Right-pads a batch: pad id for inputs, -100 for labels, 0 in the attention mask."""

    pad_id: int

    def __call__(self, batch: Sequence[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(b["input_ids"]) for b in batch)
        ids = [b["input_ids"] + [self.pad_id] * (width - len(b["input_ids"])) for b in batch]
        labels = [b["labels"] + [IGNORE] * (width - len(b["labels"])) for b in batch]
        mask = [[1] * len(b["input_ids"]) + [0] * (width - len(b["input_ids"])) for b in batch]
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask),
        }
