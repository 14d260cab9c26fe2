"""COMET worker: runs INSIDE the COMET environment (`harness comet setup`), never in the harness's.

It imports only the standard library and unbabel-comet's stack, because the harness itself is not
installed there (unbabel-comet pins transformers<5, numpy<2, ...). Two commands:

  serve --model M [--batch-size B]   load the model once, then answer JSON lines on stdin:
                                     {"data": [{"src", "mt", "ref"}, ...]} -> {"scores": [...]}
                                     The first line written is {"ready": true, ...} or {"error": ...}.
  make-tiny DIR                      build and briefly train a tiny COMET-architecture checkpoint
                                     (tiny XLM-R-style encoder, tokenizer trained with `tokenizers`)
                                     so the pipeline can be tested offline.

Library output that would go to stdout is redirected to stderr, so stdout carries only the protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def _protocol_stdout() -> Any:
    """A private handle on the real stdout; fd 1 is pointed at stderr for everything else."""
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


def _quiet() -> None:
    import logging
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "transformers", "comet"):
        logging.getLogger(name).setLevel(logging.ERROR)


def resolve_checkpoint(model: str) -> str:
    """A local checkpoint file, a local model folder (with checkpoints/model.ckpt), or a hub id."""
    path = Path(model)
    if path.is_file():
        return str(path)
    if path.is_dir():
        ckpt = path / "checkpoints" / "model.ckpt"
        if not ckpt.is_file():
            raise FileNotFoundError(f"{path}: no checkpoints/model.ckpt inside (not a COMET model folder)")
        return str(ckpt)
    from comet import download_model

    return str(download_model(model))


def serve(model: str, batch_size: int) -> int:
    proto = _protocol_stdout()
    _quiet()
    try:
        import torch
        from comet import load_from_checkpoint

        torch.manual_seed(0)
        checkpoint = resolve_checkpoint(model)
        local = Path(model).exists()
        comet_model = load_from_checkpoint(checkpoint, local_files_only=local)
        comet_model.eval()
        gpus = 1 if torch.cuda.is_available() else 0
        from importlib.metadata import version

        info = {
            "ready": True,
            "model": model,
            "checkpoint": checkpoint,
            "unbabel_comet": version("unbabel-comet"),
            "torch": torch.__version__,
            "device": "cuda" if gpus else "cpu",
            "batch_size": batch_size,
        }
    except Exception as exc:
        proto.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
        return 1
    proto.write(json.dumps(info) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            rows = json.loads(line)["data"]
            if rows:
                out = comet_model.predict(rows, batch_size=batch_size, gpus=gpus, progress_bar=False, num_workers=0)
                scores = [float(s) for s in out.scores]
            else:
                scores = []
            proto.write(json.dumps({"scores": scores}) + "\n")
        except Exception as exc:
            proto.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
    return 0


# A few sentence pairs written for this project: enough to train a tokenizer and take a few steps.
_TINY_TEXT = [
    ("Das Haus ist klein.", "The house is small.", "The home is small.", 0.8),
    ("Ich trinke Kaffee.", "I drink coffee.", "I am drinking coffee.", 0.9),
    ("Der Zug ist spät.", "The train is late.", "Train late is.", 0.3),
    ("Wo ist der Bahnhof?", "Where is the station?", "Where is the train station?", 0.7),
    ("Bitte schließen Sie das Fenster.", "Please close the window.", "Close window please the.", 0.2),
    ("Im Winter ist es kalt.", "It is cold in winter.", "In winter it is cold.", 0.85),
    ("Mein Bruder ist Arzt.", "My brother is a doctor.", "My sister is a teacher.", 0.1),
    ("Die Bibliothek öffnet um neun.", "The library opens at nine.", "The library opens at nine o'clock.", 0.95),
]


def make_tiny(directory: str) -> int:
    """Train a tokenizer with `tokenizers`, save a random tiny XLM-R encoder, fit a RegressionMetric
    on it for a few steps and save it in COMET's layout (hparams.yaml + checkpoints/model.ckpt)."""
    _quiet()
    import csv

    import pytorch_lightning as pl
    import torch
    import yaml
    from comet.models import RegressionMetric
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast  # type: ignore[attr-defined]  # transformers<5, the COMET env

    root = Path(directory)
    encoder_dir = root / "encoder"
    encoder_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    pl.seed_everything(0, workers=True)

    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    corpus = [t for row in _TINY_TEXT for t in row[:3]] * 4
    tok.train_from_iterator(corpus, trainers.UnigramTrainer(vocab_size=200, special_tokens=special, unk_token="<unk>"))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    fast = XLMRobertaTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", model_max_length=128,
    )
    fast.save_pretrained(encoder_dir)
    config = XLMRobertaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=130, pad_token_id=1, bos_token_id=0, eos_token_id=2,
    )
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(encoder_dir)

    data = root / "train.csv"
    with data.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["src", "mt", "ref", "score"])
        for src, ref, mt, score in _TINY_TEXT:
            writer.writerow([src, mt, ref, score])
    model = RegressionMetric(
        pretrained_model=str(encoder_dir.resolve()), load_pretrained_weights=True, local_files_only=True,
        hidden_sizes=[16], batch_size=4, train_data=[str(data)], validation_data=[str(data)],
        nr_frozen_epochs=0.0, keep_embeddings_frozen=False, learning_rate=1e-3, encoder_learning_rate=1e-3,
        dropout=0.0,
    )
    trainer = pl.Trainer(
        max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, deterministic=True, num_sanity_val_steps=0, limit_val_batches=0,
    )
    trainer.fit(model)
    (root / "checkpoints").mkdir(exist_ok=True)
    trainer.save_checkpoint(root / "checkpoints" / "model.ckpt")
    hparams = {k: v for k, v in dict(model.hparams).items()}
    hparams["class_identifier"] = "regression_metric"
    (root / "hparams.yaml").write_text(yaml.safe_dump(hparams), encoding="utf-8")
    print(json.dumps({"checkpoint": str(root / "checkpoints" / "model.ckpt")}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve")
    p_serve.add_argument("--model", required=True)
    p_serve.add_argument("--batch-size", type=int, default=16)
    p_tiny = sub.add_parser("make-tiny")
    p_tiny.add_argument("directory")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args.model, args.batch_size)
    return make_tiny(args.directory)


if __name__ == "__main__":
    sys.exit(main())
