"""Text classification data: any ``datasets.load_dataset`` source, tokenised into in-memory tensors.

The default is the small sentiment set shipped in ``data/`` (regenerate it with
``scripts/make_text_dataset.py``); a hub set works the same way, e.g. SST-2 with
``path: nyu-mll/glue, name: sst2, text_column: sentence, test_split: validation`` (GLUE hides its
test labels). The tokenizer is trained on the training texts at load time, so no file is
downloaded besides the data itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from domains.supervised import TensorTable
from tickets.errors import ConfigError

SHIPPED = Path(__file__).resolve().parent / "data"
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0..4


@dataclass
class DatasetSpec:
    """Arguments of ``datasets.load_dataset`` and the columns and splits to use."""

    path: str = "csv"
    name: str | None = None
    data_files: dict[str, str] | None = None  # None with path "csv": the shipped sentiment set
    revision: str | None = None  # a hub dataset's commit, to pin it
    text_column: str = "text"
    label_column: str = "label"
    # Split expressions as load_dataset takes them, so "train[:90%]" / "train[90%:]" also work.
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str = "test"

    def __post_init__(self):
        if not self.path:
            raise ConfigError("path: must name a dataset or a builder such as 'csv'")
        for key in ("text_column", "label_column", "train_split", "validation_split", "test_split"):
            if not getattr(self, key):
                raise ConfigError(f"{key}: must not be empty")

    def resolved_data_files(self) -> dict[str, str] | None:
        if self.data_files is None and self.path == "csv":
            return {split: str(SHIPPED / f"sentiment_{split}.csv") for split in ("train", "validation", "test")}
        return self.data_files


@dataclass
class TextData:
    train: TensorTable
    validation: TensorTable
    test: TensorTable
    tokenizer: object  # transformers.PreTrainedTokenizerFast
    num_labels: int


def load_splits(spec: DatasetSpec) -> dict[str, tuple[list[str], list[int]]]:
    """(texts, labels) of the train, validation and test splits."""
    from datasets import load_dataset

    splits = {"train": spec.train_split, "validation": spec.validation_split, "test": spec.test_split}
    parts = load_dataset(spec.path, spec.name, data_files=spec.resolved_data_files(), revision=spec.revision,
                         split=list(splits.values()))
    out = {}
    for (role, split), ds in zip(splits.items(), parts):
        for key in ("text_column", "label_column"):
            if getattr(spec, key) not in ds.column_names:
                raise ConfigError(f"dataset.{key}: no column {getattr(spec, key)!r} in split {split!r} "
                                  f"(columns: {', '.join(ds.column_names)})")
        out[role] = (list(ds[spec.text_column]), [int(y) for y in ds[spec.label_column]])
    return out


def train_tokenizer(texts: Sequence[str], vocab_size: int):
    """A lower-casing word-level tokenizer over the most frequent training words, wrapped for
    transformers. WordLevel because the tokenizers library's WordPiece/BPE trainers break count
    ties in hash-map order, so their vocabulary changes from run to run
    (huggingface/tokenizers#1794); the WordLevel trainer sorts ties by word."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[(t, tok.token_to_id(t)) for t in ("[CLS]", "[SEP]")])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def encode(tokenizer, texts: list[str], labels: list[int], max_length: int) -> TensorTable:
    enc = tokenizer(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    return TensorTable({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                        "labels": torch.tensor(labels, dtype=torch.long)})


def load(spec: DatasetSpec, *, vocab_size: int, max_length: int) -> TextData:
    splits = load_splits(spec)
    num_labels = max(splits["train"][1]) + 1
    for role, (_, labels) in splits.items():
        bad = sorted({y for y in labels if not 0 <= y < num_labels})
        if bad:
            # GLUE test splits carry label -1 (hidden); point the test split at labelled data.
            raise ConfigError(f"dataset.{role}_split: labels {bad[:5]} outside 0..{num_labels - 1} "
                              f"in split {getattr(spec, role + '_split')!r}")
    tokenizer = train_tokenizer(splits["train"][0], vocab_size)
    tables = {role: encode(tokenizer, texts, labels, max_length) for role, (texts, labels) in splits.items()}
    return TextData(tables["train"], tables["validation"], tables["test"], tokenizer, num_labels)
