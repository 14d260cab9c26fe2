"""MT-Bench judge prompts: the project's own defaults and a loader for FastChat's judge_prompts.jsonl.

A prompt set fills eight slots: {single, pairwise} x {general, reference-guided} x {turn 1, turn 2}.
Our defaults use FastChat's placeholders and output formats (`[[rating]]`, `[[A]]`/`[[B]]`/`[[C]]`)
so either set plugs into the same rendering and parsing; which set graded a run is recorded by name
and content hash, because judge prompts move scores (LESSONS.md #8).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.datafiles import read_jsonl, require
from harness.errors import DataError
from harness.types import canonical_json, sha256_text

Kind = Literal["single", "pairwise"]
Slot = tuple[Kind, bool, int]  # (kind, reference-guided, turn)


@dataclass(frozen=True)
class JudgePrompt:
    """One judge prompt: a system message and a user template with FastChat's placeholders."""

    name: str
    kind: Kind
    system_prompt: str
    template: str

    def render(self, **fields: str) -> str:
        return self.template.format(**fields)

    def placeholders(self) -> set[str]:
        return {f for _, f, _, _ in string.Formatter().parse(self.template) if f}


@dataclass(frozen=True)
class PromptSet:
    name: str
    prompts: dict[Slot, JudgePrompt]

    def get(self, kind: Kind, reference: bool, turn: int) -> JudgePrompt:
        return self.prompts[(kind, reference, turn)]

    def digest(self) -> str:
        body = {f"{k[0]}/{k[1]}/{k[2]}": [p.name, p.system_prompt, p.template] for k, p in sorted(self.prompts.items())}
        return sha256_text(canonical_json(body))[:16]


# Placeholders each slot must offer the judge (a prompt file missing one would grade blind).
REQUIRED: dict[Slot, set[str]] = {
    ("single", False, 1): {"question", "answer"},
    ("single", True, 1): {"question", "answer", "ref_answer_1"},
    ("single", False, 2): {"question_1", "answer_1", "question_2", "answer_2"},
    ("single", True, 2): {"question_1", "answer_1", "question_2", "answer_2", "ref_answer_2"},
    ("pairwise", False, 1): {"question", "answer_a", "answer_b"},
    ("pairwise", True, 1): {"question", "answer_a", "answer_b", "ref_answer_1"},
    ("pairwise", False, 2): {"question_1", "question_2", "answer_a_2", "answer_b_2"},
    ("pairwise", True, 2): {"question_1", "question_2", "answer_a_2", "answer_b_2", "ref_answer_2"},
}

_RATE = (
    'After the explanation, rate the response from 1 to 10 and write the rating exactly in this format: '
    '"[[rating]]", e.g. "Rating: [[6]]". Give exactly one rating.'
)
_VERDICT = (
    'After the explanation, give your verdict exactly in this format: "[[A]]" if assistant A answered better, '
    '"[[B]]" if assistant B answered better, "[[C]]" for a tie. The order in which the answers appear, their '
    "length and the assistants' names must not influence you."
)
_GENERAL = "Judge helpfulness, relevance, accuracy, depth, creativity and level of detail."
_CORRECT = (
    "Judge correctness first, then helpfulness. A reference answer is given: compare with it, "
    "point out and correct any mistakes."
)

_SINGLE_T1 = "[Question]\n{question}\n\n[Assistant's answer]\n{answer}\n[End of assistant's answer]"
_SINGLE_T1_REF = (
    "[Question]\n{question}\n\n[Reference answer]\n{ref_answer_1}\n[End of reference answer]\n\n"
    "[Assistant's answer]\n{answer}\n[End of assistant's answer]"
)
_CONV = (
    "[Conversation between the user and the assistant]\n\n### User:\n{question_1}\n\n### Assistant:\n{answer_1}\n\n"
    "### User:\n{question_2}\n\n### Assistant:\n{answer_2}\n\n[End of conversation]"
)
_REF_CONV = (
    "[Reference conversation]\n\n### User:\n{question_1}\n\n### Reference answer:\n{ref_answer_1}\n\n"
    "### User:\n{question_2}\n\n### Reference answer:\n{ref_answer_2}\n\n[End of reference conversation]\n\n"
)
_PAIR_T1 = (
    "[Question]\n{question}\n\n[Assistant A's answer]\n{answer_a}\n[End of assistant A's answer]\n\n"
    "[Assistant B's answer]\n{answer_b}\n[End of assistant B's answer]"
)
_PAIR_T1_REF = "[Reference answer]\n{ref_answer_1}\n[End of reference answer]\n\n" + _PAIR_T1
_PAIR_CONV = (
    "[Conversation with assistant A]\n\n### User:\n{question_1}\n\n### Assistant A:\n{answer_a_1}\n\n"
    "### User:\n{question_2}\n\n### Assistant A:\n{answer_a_2}\n\n[End of conversation with assistant A]\n\n"
    "[Conversation with assistant B]\n\n### User:\n{question_1}\n\n### Assistant B:\n{answer_b_1}\n\n"
    "### User:\n{question_2}\n\n### Assistant B:\n{answer_b_2}\n\n[End of conversation with assistant B]"
)

_JUDGE = "You are an impartial judge of AI assistants' answers. Begin with a short explanation; be objective."


def _single(turn: int, reference: bool) -> str:
    focus = " Grade only the assistant's answer to the user's second question." if turn == 2 else ""
    return f"{_JUDGE} {_CORRECT if reference else _GENERAL}{focus} {_RATE}"


def _pair(turn: int, reference: bool) -> str:
    focus = " Decide who answered the user's second question better." if turn == 2 else ""
    return f"{_JUDGE} Compare the two assistants' answers. {_CORRECT if reference else _GENERAL}{focus} {_VERDICT}"


DEFAULT = PromptSet(
    "harness-v1",
    {
        ("single", False, 1): JudgePrompt("harness-single-v1", "single", _single(1, False), _SINGLE_T1),
        ("single", True, 1): JudgePrompt("harness-single-ref-v1", "single", _single(1, True), _SINGLE_T1_REF),
        ("single", False, 2): JudgePrompt("harness-single-v1-multi-turn", "single", _single(2, False), _CONV),
        ("single", True, 2): JudgePrompt("harness-single-ref-v1-multi-turn", "single", _single(2, True), _REF_CONV + _CONV),
        ("pairwise", False, 1): JudgePrompt("harness-pair-v1", "pairwise", _pair(1, False), _PAIR_T1),
        ("pairwise", True, 1): JudgePrompt("harness-pair-ref-v1", "pairwise", _pair(1, True), _PAIR_T1_REF),
        ("pairwise", False, 2): JudgePrompt("harness-pair-v1-multi-turn", "pairwise", _pair(2, False), _PAIR_CONV),
        ("pairwise", True, 2): JudgePrompt("harness-pair-ref-v1-multi-turn", "pairwise", _pair(2, True),
                                           _REF_CONV + _PAIR_CONV),
    },
)


def load_fastchat_prompts(path: str | Path) -> PromptSet:
    """Read FastChat's judge_prompts.jsonl (name, type, system_prompt, prompt_template, category).

    A prompt's slot comes from `type` (single/pairwise) and its template's placeholders: one showing
    `{ref_answer_1}` is reference-guided, one showing `{question_2}` grades the second turn.
    """
    prompts: dict[Slot, JudgePrompt] = {}
    for line, row in read_jsonl(path):
        name = require(row, "name", str, path, line)
        kind = require(row, "type", str, path, line)
        if kind not in ("single", "pairwise"):
            raise DataError(str(path), line, "type", f"expected 'single' or 'pairwise', got '{kind}'")
        system = require(row, "system_prompt", str, path, line)
        template = require(row, "prompt_template", str, path, line)
        prompt = JudgePrompt(name, kind, system, template)  # type: ignore[arg-type]
        try:
            fields = prompt.placeholders()
        except ValueError as exc:
            raise DataError(str(path), line, "prompt_template", f"not a valid template: {exc}") from None
        # The slot follows from what the template shows the judge (FastChat's own `category` field
        # mislabels pair-math-v1-multi-turn as general): a reference, a second question.
        slot: Slot = (kind, "ref_answer_1" in fields, 2 if "question_2" in fields else 1)  # type: ignore[assignment]
        missing = REQUIRED[slot] - fields
        if missing:
            raise DataError(str(path), line, "prompt_template", f"'{name}' lacks placeholder(s) {sorted(missing)}")
        if slot in prompts:
            raise DataError(str(path), line, "name", f"'{name}' fills the same slot as '{prompts[slot].name}'")
        prompts[slot] = prompt
    return PromptSet(Path(path).name, prompts)


def require_slots(prompts: PromptSet, kind: Kind, source: str) -> None:
    """Every slot a suite will use must be filled; say which are missing before anything runs."""
    missing = [s for s in REQUIRED if s[0] == kind and s not in prompts.prompts]
    if missing:
        names = ", ".join(f"{k} {'reference-guided' if r else 'general'} turn {t}" for k, r, t in missing)
        raise DataError(source, None, None, f"judge prompt file has no prompt for: {names}")
