"""Writes the bundled product-attribute data: `products_train.jsonl` (fine-tuning, instruction /
input / output) and `suites/data/attribute_extraction_sample.jsonl` (the validation suite).

Written by the project (no external source). Deterministic: `python -m harness.finetune.bundled.generate`
rewrites identical files. Validation products use (category, colour, material) combinations that
never occur in training, so a model must read the description rather than recall a pairing.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

from suites.attribute_extraction import INSTRUCTION

CATEGORIES = ["kettle", "backpack", "lamp", "chair", "jacket", "mug", "watch", "scarf"]
COLORS = ["red", "blue", "green", "black", "white", "yellow", "grey", "pink"]
MATERIALS = ["steel", "cotton", "wood", "leather", "glass", "plastic"]
TEMPLATES = [
    "A {color} {material} {category}.",
    "{Category} made of {material}, colour {color}.",
    "This {category} is {color} and made from {material}.",
    "{Material} {category} in {color}.",
    "Colour: {color}. Material: {material}. A sturdy {category}.",
]
N_TRAIN = 320
N_VALID = 40

HERE = Path(__file__).parent
TRAIN_FILE = HERE / "products_train.jsonl"
VALID_FILE = HERE.parents[2] / "suites" / "data" / "attribute_extraction_sample.jsonl"


def _row(rng: random.Random, category: str, color: str, material: str) -> tuple[str, dict[str, str]]:
    template = rng.choice(TEMPLATES)
    text = template.format(
        category=category, Category=category.capitalize(), color=color, material=material, Material=material.capitalize()
    )
    return text, {"category": category, "color": color, "material": material}


def generate() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(20261123)
    combos = list(itertools.product(CATEGORIES, COLORS, MATERIALS))
    rng.shuffle(combos)
    valid_combos, train_combos = combos[:N_VALID], combos[N_VALID:]
    train = []
    for i in range(N_TRAIN):
        text, attrs = _row(rng, *train_combos[i % len(train_combos)])
        train.append({"instruction": INSTRUCTION, "input": text, "output": json.dumps(attrs)})
    valid = []
    for i, combo in enumerate(valid_combos):
        text, attrs = _row(rng, *combo)
        valid.append({"id": f"attr-{i + 1:03d}", "description": text, "attributes": attrs})
    return train, valid


def main() -> None:
    train, valid = generate()
    TRAIN_FILE.write_text("".join(json.dumps(r) + "\n" for r in train), encoding="utf-8")
    VALID_FILE.write_text("".join(json.dumps(r) + "\n" for r in valid), encoding="utf-8")
    print(f"wrote {len(train)} rows to {TRAIN_FILE} and {len(valid)} to {VALID_FILE}")


if __name__ == "__main__":
    main()
