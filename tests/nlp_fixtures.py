"""Tiny stand-ins for hub models and GLUE data, offline: a "pre-trained" checkpoint directory in
``save_pretrained`` form (a small BERT or GPT-2 with the project's shipped tokenizer) and GLUE tasks
as small parquet files in their own schema."""

from __future__ import annotations

import random
from pathlib import Path

import torch

WORDS = "good bad great awful fine dull movie plot acting story the a was very not".split()


def save_checkpoint(path: Path, *, architecture: str = "bert", intermediate_size: int = 64, seed: int = 0) -> Path:
    """A small model (random weights, seeded) and the shipped word-level tokenizer, saved as a
    checkpoint directory that ``from_pretrained`` reads like a downloaded one."""
    from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

    from domains.nlp import data

    tok = data.train_tokenizer(data.shipped_texts(), 2000)
    torch.manual_seed(seed)
    if architecture == "bert":
        model = BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=intermediate_size, max_position_embeddings=64,
                                     pad_token_id=tok.pad_token_id))
    else:
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2,
                                           n_inner=intermediate_size, n_positions=64, pad_token_id=tok.pad_token_id))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def write_glue_task(root: Path, task: str, n_train: int = 40, n_dev: int = 16, seed: int = 0) -> dict[str, str]:
    """Parquet files with the columns of GLUE ``task`` (labels learnable from the words)."""
    import pandas as pd

    from domains.nlp.tasks import GLUE

    spec, rng = GLUE[task], random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, n in (("train", n_train), (spec.dev_split, n_dev), ("test", n_dev)):
        rows = []
        for i in range(n):
            text = " ".join(rng.choice(WORDS) for _ in range(6))
            row = {spec.text_column: text, "idx": i}
            if spec.text_pair_column:
                row[spec.text_pair_column] = " ".join(rng.choice(WORDS) for _ in range(5))
            score = text.count("good") + text.count("great") - text.count("bad") - text.count("awful")
            if spec.num_labels == 1:
                row["label"] = float(min(5.0, max(0.0, 2.5 + score)))
            else:
                row["label"] = -1 if split == "test" else int(score > 0) if spec.num_labels == 2 else (score > 0) + (score >= 2)
            rows.append(row)
        files[split] = str(root / f"{split}.parquet")
        pd.DataFrame(rows).to_parquet(files[split])
    return files
