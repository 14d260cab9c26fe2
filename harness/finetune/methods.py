"""Devices, dtypes and the five training methods: what is loaded, what is frozen, what trains.

Half fine-tuning rule: the input embeddings and the lower half of the transformer blocks
(blocks 0 .. n//2 - 1) are frozen; the upper blocks, the final norm and the output head train. On a
model whose output head is tied to the input embeddings (SmolLM2, many small models) freezing the
embeddings would freeze the head too, so the head is untied first: it gets its own copy of the
matrix, trains, and is saved as a separate `lm_head` (the checkpoint's config says
`tie_word_embeddings: false`). `describe_trainable` says which layers train, for the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.errors import ConfigError
from harness.finetune.config import FinetuneConfig


def resolve_device(config: FinetuneConfig) -> str:
    import torch

    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for, but no CUDA device is available")
    if config.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return config.device


def resolve_dtype(config: FinetuneConfig, device: str) -> str:
    import torch

    if config.dtype == "bfloat16" and device == "cpu":
        raise ConfigError("dtype: bfloat16 training is only supported on CUDA here; use float32 (or auto) on CPU")
    if config.dtype != "auto":
        return config.dtype
    return "bfloat16" if device == "cuda" and torch.cuda.is_bf16_supported() else "float32"


def check_method(config: FinetuneConfig, device: str) -> None:
    """QLoRA needs CUDA and bitsandbytes; there is no CPU fallback, so say so before anything runs."""
    if config.method != "qlora":
        return
    if device != "cuda":
        raise ConfigError(
            "method: qlora needs a CUDA GPU (bitsandbytes 4-bit kernels); none is available here. "
            "Use method: lora for the same adapter on a full-precision base."
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ConfigError("method: qlora needs the bitsandbytes package: pip install bitsandbytes") from None


def transformer_blocks(model: Any) -> Sequence[Any]:
    """The model's stack of transformer blocks: the longest ModuleList in it."""
    import torch

    lists: list[Any] = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        raise ConfigError("method: half needs a model with a list of transformer blocks; none found")
    return max(lists, key=len)


def untie_output_head(model: Any) -> bool:
    """Give a tied output head its own copy of the embedding matrix; True when it was tied."""
    import torch

    head, embeddings = model.get_output_embeddings(), model.get_input_embeddings()
    if head is None or head.weight is not embeddings.weight:
        return False
    head.weight = torch.nn.Parameter(head.weight.detach().clone())
    model.config.tie_word_embeddings = False
    text_config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else None
    if text_config is not None and text_config is not model.config:
        text_config.tie_word_embeddings = False
    return True


def freeze_lower_half(model: Any) -> dict[str, Any]:
    """Half fine-tuning (rule in the module doc); returns what trains and what is frozen."""
    untied = untie_output_head(model)
    blocks = transformer_blocks(model)
    n_frozen = len(blocks) // 2
    for p in model.parameters():
        p.requires_grad_(True)
    for p in model.get_input_embeddings().parameters():
        p.requires_grad_(False)
    for block in list(blocks)[:n_frozen]:
        for p in block.parameters():
            p.requires_grad_(False)
    return {
        "frozen": f"input embeddings, blocks 0-{n_frozen - 1}" if n_frozen else "input embeddings",
        "trained": f"blocks {n_frozen}-{len(blocks) - 1}, final norm, output head",
        "head_untied": untied,
        "n_blocks": len(blocks),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def describe_trainable(config: FinetuneConfig, model: Any, half: dict[str, Any] | None) -> str:
    """One line for the log: which layers train under this method."""
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if half is not None:
        tied = " (untied from the input embeddings, which stay frozen)" if half["head_untied"] else ""
        return f"half: training {half['trained']}{tied}; frozen: {half['frozen']}; {n:,} trainable parameters"
    if config.use_adapter:
        return f"{config.method}: training adapters on {config.lora.target_modules}; base frozen; {n:,} trainable parameters"
    return f"full: training every layer; {n:,} trainable parameters"


def qlora_compute_dtype() -> Any:
    """bfloat16 where the GPU supports it, else float16 (bf16 on pre-Ampere GPUs fails or emulates)."""
    import torch

    return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float16


def load_for_training(config: FinetuneConfig, device: str, dtype: str) -> tuple[Any, Any, str]:
    """(model ready for the method, tokenizer, a line saying which layers train)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight-loading bars would tear the training progress bar

    from harness.backends.hf import check_model_path

    path = check_model_path(config.model)
    set_seed(config.seed)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load tokenizer of '{config.model}': {exc}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs: dict[str, Any] = {"trust_remote_code": config.trust_remote_code}
    if config.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=qlora_compute_dtype(),
        )
        kwargs["device_map"] = {"": 0}
    else:
        # Adapters train on a base held in the compute dtype; full and half keep float32 master
        # weights and use bf16 autocast on CUDA (the Trainer's bf16 flag).
        kwargs["dtype"] = torch.bfloat16 if (dtype == "bfloat16" and config.use_adapter) else torch.float32
    try:
        model: Any = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load model '{config.model}': {exc}") from None
    if config.method != "qlora":
        model = model.to(device)
    if config.use_adapter:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if config.method == "qlora":
            model = prepare_model_for_kbit_training(model)
        lora = config.lora
        peft_config = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            use_dora=config.method == "dora",
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, peft_config)
    half = freeze_lower_half(model) if config.method == "half" else None
    return model, tokenizer, describe_trainable(config, model, half)

