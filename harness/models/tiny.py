"""Build a tiny random Llama-architecture model and tokenizer locally (no hub download).

Tests, the demo and benchmarks run on it. Head dim is 64 because vLLM's CPU attention rejects 16;
the tokenizer is a byte-level BPE trained here with `tokenizers`, so any text round-trips, and it
ships a chat template so chat requests take the same path as with a real instruct model.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import ConfigError

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

#: A reasoning model's template (Qwen3 / DeepSeek-R1 style): the generation prompt opens the thinking
#: for the model, and `enable_thinking=false` closes it empty so the model answers at once.
THINKING_TEMPLATE = CHAT_TEMPLATE.replace(
    "<|assistant|>\n{% endif %}",
    "<|assistant|>\n{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n"
    "{% else %}<think>\n{% endif %}{% endif %}",
)
#: Ordinary (not special) added tokens, as Qwen3 ships them, so decoding keeps them in the text.
THINKING_TOKENS = ["<think>", "</think>"]

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]

_BASE_CORPUS = """
The quick brown fox jumps over the lazy dog. Answer the question using only the context below.
If the context does not contain the answer, reply exactly: unanswerable. Context: Question: Answer:
The following are multiple choice questions (with answers) about science, history and mathematics.
A. B. C. D. The capital of France is Paris. Water boils at 100 degrees Celsius at sea level.
Translate the following sentence from German to English. Der Hund schläft. The dog is sleeping.
I cannot help with that request. Sure, here is a short answer. Please rate the response on a scale of 1 to 10.
Product: a stainless steel kettle, 1.7 litres, 2200 watts, colour silver. {"material": "steel", "capacity": "1.7 l"}
0 1 2 3 4 5 6 7 8 9 10 100 1000 2024 1889 1911 percent metres watts litres grams kilometres.
"""


def _corpus() -> list[str]:
    lines = [ln for ln in _BASE_CORPUS.strip().splitlines() if ln.strip()]
    # One fixed file, not every bundled sample: adding a data set must not change the tokenizer
    # (and so every tiny-model number) under the tests' feet.
    sample = Path(__file__).resolve().parents[2] / "suites" / "data"
    for file in [sample / "rag_extraction_sample.jsonl", sample / "attribute_extraction_sample.jsonl"]:
        for row in file.read_text(encoding="utf-8").splitlines():
            try:
                obj = json.loads(row)
            except json.JSONDecodeError:
                continue
            lines.extend(str(v) for v in obj.values() if isinstance(v, str))
    return lines * 4


def build_tokenizer(vocab_size: int = 1024, thinking: bool = False):  # type: ignore[no-untyped-def]
    """A byte-level BPE tokenizer trained on a small built-in corpus, wrapped for transformers.

    `thinking` adds the `<think>`/`</think>` tokens and a template that opens the thinking."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="<|end|>",
        pad_token="<pad>",
        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>", "</s>"],
    )
    wrapped.chat_template = CHAT_TEMPLATE
    if thinking:
        wrapped.add_tokens(THINKING_TOKENS)
        wrapped.chat_template = THINKING_TEMPLATE
    return wrapped


def make_tiny_model(
    directory: str | Path,
    *,
    hidden_size: int = 128,
    layers: int = 2,
    heads: int = 2,
    vocab_size: int = 1024,
    seed: int = 0,
    force: bool = False,
    thinking: bool = False,
) -> Path:
    """Write a tiny random Llama (head_dim = hidden_size / heads) and its tokenizer to `directory`.

    The same arguments always give the same weights and tokenizer. An existing model there is kept
    unless `force`, so calling this twice is cheap. `thinking` makes a reasoning-model variant
    (thinking tokens in the vocabulary, a template that opens the thinking; docs/reasoning.md).
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(directory)
    if (out / "config.json").is_file() and not force:
        return out
    if hidden_size % heads:
        raise ConfigError(f"hidden size {hidden_size} is not divisible by {heads} heads")
    head_dim = hidden_size // heads
    if head_dim not in (32, 64, 128, 256):
        raise ConfigError(f"head_dim {head_dim} is not supported by vLLM's CPU attention (use 32, 64 or 128)")
    tokenizer = build_tokenizer(vocab_size, thinking=thinking)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=head_dim,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
