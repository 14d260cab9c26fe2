"""Prompt text and tokenisation rules shared by every backend that holds a tokenizer.

One copy of these rules is what makes backends agree: HF, vLLM and an OpenAI-compatible server fed
token ids see exactly the same prompt tokens, so their answers and log-likelihoods can be compared.
Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.types import Request


def render_messages(tokenizer: Any, request: Request, template_kwargs: Mapping[str, Any] | None = None) -> str:
    """The exact prompt text: the tokenizer's own chat template for chat requests, else the raw prompt.

    `template_kwargs` (`--chat-template-kwargs`, e.g. enable_thinking=false) reach the template."""
    if request.messages is None:
        return request.prompt or ""
    turns = [{"role": m.role, "content": m.content} for m in request.messages]
    if getattr(tokenizer, "chat_template", None):
        text: str = tokenizer.apply_chat_template(
            turns, tokenize=False, add_generation_prompt=True, **dict(template_kwargs or {})
        )
        return text
    # No template shipped with the model: plain turns, recorded as such in the run's backend info.
    return "\n\n".join(m.content for m in request.messages) + "\n\n"


def prompt_ids(tokenizer: Any, request: Request, template_kwargs: Mapping[str, Any] | None = None) -> list[int]:
    """Token ids of a generate request's prompt. A chat template writes its own special tokens, so
    they are added by the tokenizer only for raw prompts (the rule HF's and vLLM's servers follow)."""
    text = render_messages(tokenizer, request, template_kwargs)
    ids: list[int] = tokenizer(text, add_special_tokens=not request.messages)["input_ids"]
    return ids


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut generated text at the first stop sequence (the stop sequence itself is dropped)."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's tokenisation of one (context, continuation) pair; see `encode_pairs`."""
    return encode_pairs(tokenizer, [(context, continuation)])[0]


def encode_pairs(tokenizer: Any, pairs: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    """lm-eval's `_encode_pair` for many requests: whitespace at the end of the context belongs to the
    continuation; context + continuation is encoded whole and split at the encoded context's length;
    an empty context becomes the BOS (else EOS) token. Each distinct context is encoded once (MMLU's
    four letters share one), in one batched call to the Rust tokenizer."""

    def encode_many(texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        ids: list[list[int]] = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return ids

    moved = []
    for context, continuation in pairs:
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces > 0:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        moved.append((context, continuation))
    contexts = list(dict.fromkeys(c for c, _ in moved if c))
    ctx_ids = dict(zip(contexts, encode_many(contexts), strict=True))
    wholes = iter(encode_many([c + k for c, k in moved if c]))
    bare = iter(encode_many([k for c, k in moved if not c]))
    out: list[tuple[list[int], list[int]]] = []
    for context, _ in moved:
        if not context:
            prefix = tokenizer.bos_token_id
            if prefix is None:
                prefix = tokenizer.eos_token_id
            out.append(([prefix], next(bare)))
            continue
        ctx = ctx_ids[context]
        out.append((ctx, next(wholes)[len(ctx) :]))
    return out
