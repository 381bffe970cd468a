"""Text data for the NLP domain: any ``datasets.load_dataset`` source (a hub name such as GLUE's,
or ``csv``/``json``/``parquet``/``text`` files), tokenised into in-memory tensors.

Offline defaults shipped in ``data/``: a sentiment classification set
(``scripts/make_text_dataset.py``) and a text corpus for language modelling
(``scripts/make_text_corpus.py``), both read through ``load_dataset`` like any other source.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from domains.data_files import cause, check_patterns, load_errors, no_data
from domains.supervised import TensorTable
from tickets.errors import ConfigError

from .config import (BUILDERS, ROLES, SHIPPED, SPECIAL_TOKENS, DatasetSpec, base_split,  # noqa: F401 (re-exported)
                     shipped_files)

# what a directory must hold for AutoTokenizer to read a real vocabulary (not an empty default)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model",
                   "sentencepiece.bpe.model", "merges.txt", "vocab.model", "tekken.json")
@dataclass
class TextData:
    train: TensorTable
    validation: TensorTable
    test: TensorTable
    tokenizer: Any  # a transformers tokenizer
    num_labels: int  # 0 for language modelling


def load_splits(spec: DatasetSpec, kind: str) -> dict[str, Any]:
    """The train, validation and test splits as ``datasets.Dataset`` objects, columns, rows and
    texts checked."""
    from datasets import load_dataset

    path, name, files = spec.load_args(kind)
    splits = {role: getattr(spec, f"{role}_split") for role in ROLES}
    if files is not None and spec.path is not None and path in BUILDERS:
        check_patterns(files)  # a builder's data_files are local paths (a directory's are inside it)
    try:
        parts = load_dataset(path, name, data_files=files, revision=spec.revision, split=list(splits.values()))
    except ConnectionError as exc:  # offline, or the hub unreachable: nothing cached under that name
        raise ConfigError(f"dataset.path: cannot load {path!r}{f' ({name})' if name else ''}: {exc}; it is not "
                          "in the local datasets cache (HF_DATASETS_OFFLINE / HF_HUB_OFFLINE are "
                          "set, or the hub is unreachable)") from None
    except load_errors() as exc:
        raise _diagnose(spec, kind, path, name, files, splits, exc) from None
    loaded = dict(zip(splits, parts))
    check_splits(spec, kind, loaded, files)
    return loaded


def _diagnose(spec: DatasetSpec, kind: str, path: str, name: str | None, files: dict[str, Any] | None,
              splits: dict[str, str], exc: BaseException) -> ConfigError:
    """The ConfigError for a failed ``load_dataset``: with data_files, each split is loaded on its
    own to find the file at fault (the shared load does not say which)."""
    from datasets import load_dataset

    source = f"{path!r}{f' ({name})' if name else ''}"
    if files is None:
        if isinstance(exc, ValueError) and "Unknown split" in str(exc):
            return ConfigError(f"dataset.path: {source}: {cause(exc).rstrip('.')}; set train_split, "
                               "validation_split and test_split to its splits, or carve one from its training "
                               "split: train_split: 'train[:90%]', validation_split: 'train[90%:]'")
        what = "has a split with no rows" if no_data(exc) else f"cannot be read: {cause(exc)}"
        return ConfigError(f"dataset.path: {source} {what} (splits {', '.join(splits.values())})")
    key = "dataset.data_files" if spec.path is not None else "dataset"
    alone = {}
    for role, split in splits.items():
        base = base_split(split)
        try:
            alone[role] = load_dataset(path, name, data_files={base: files[base]}, revision=spec.revision, split=split)
        except load_errors() as inner:
            if no_data(inner):
                return ConfigError(f"dataset.{role}_split: split {split!r} has no rows ({key} {base}: "
                                   f"{files[base]!r}); every split needs at least one example")
            return ConfigError(f"{key}: {base}: cannot read {files[base]!r} (the {role} split {split!r}): "
                               f"{cause(inner)}")
    check_splits(spec, kind, alone, files)  # each loads alone: its rows or texts may say why
    return ConfigError(f"{key}: the files of splits {', '.join(dict.fromkeys(map(base_split, splits.values())))} "
                       f"each load but not together (do their columns and types agree?): {cause(exc)}")


def check_splits(spec: DatasetSpec, kind: str, splits: dict[str, Any], files: dict[str, Any] | None = None) -> None:
    """Every split has rows; every text (and text pair) is a string, every label a number. A
    missing cell (null: an empty csv field, a json null) is refused; an empty string is a text."""
    columns = [("text_column", spec.text_column)]
    if spec.text_pair_column:
        columns.append(("text_pair_column", spec.text_pair_column))
    needed = columns + ([("label_column", spec.label_column)] if kind == "classification" else [])
    for role, ds in splits.items():
        split = getattr(spec, f"{role}_split")
        for key, column in needed:
            if column not in ds.column_names:
                raise ConfigError(f"dataset.{key}: no column {column!r} in split {split!r} "
                                  f"(columns: {', '.join(ds.column_names)})")
    for role, ds in splits.items():
        split = getattr(spec, f"{role}_split")
        source = f" ({files[base_split(split)]})" if files and base_split(split) in files else ""
        if len(ds) == 0:
            raise ConfigError(f"dataset.{role}_split: split {split!r}{source} has no rows; every split needs at "
                              "least one example")
        for key, column in columns:
            for i, value in enumerate(ds[column]):
                if not isinstance(value, str):
                    what = ("is missing (an empty csv field or a null)" if value is None
                            else f"is {type(value).__name__} {value!r}, not a text")
                    raise ConfigError(f"dataset.{key}: {column!r} of row {i + 1} of split {split!r}{source} {what}; "
                                      "every row needs a text")
        if kind == "classification":
            for i, value in enumerate(ds[spec.label_column]):
                if not isinstance(value, (int, float)) or math.isnan(value):
                    what = "is missing" if value is None or isinstance(value, float) else f"is {value!r}, not a number"
                    raise ConfigError(f"dataset.label_column: {spec.label_column!r} of row {i + 1} of split "
                                      f"{split!r}{source} {what}; every row needs a label")


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


def shipped_texts() -> list[str]:
    """The training texts of both shipped sets: one vocabulary for tickets that move between the
    language-modelling corpus and the classification set."""
    import csv

    with open(SHIPPED / "corpus_train.txt", encoding="utf-8") as f:
        corpus = [line.rstrip("\n") for line in f if line.strip()]
    with open(SHIPPED / "sentiment_train.csv", encoding="utf-8", newline="") as f:
        sentiment = [row["text"] for row in csv.DictReader(f)]
    return corpus + sentiment


def load_tokenizer(choice: str | None, model_path: str | None, train_texts: Sequence[str], vocab_size: int,
                   revision: str | None = None):
    """``None``: the pre-trained model's own tokenizer, or one trained on ``train_texts`` when the
    model is built from a config; ``train``; ``shipped`` (trained on both shipped sets); or a hub
    name / directory / ``tokenizer.json`` file."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from .config import MINILM, minilm_path
    from .models import first_line, hub_hint

    if choice is None:
        choice = model_path if model_path is not None else "train"
    elif choice == MINILM:
        choice = minilm_path("tokenizer")
    if choice == "train":
        tok = train_tokenizer(train_texts, vocab_size)
    elif choice == "shipped":
        tok = train_tokenizer(shipped_texts(), vocab_size)
    elif choice.endswith(".json"):
        if not Path(choice).is_file():
            raise ConfigError(f"tokenizer: no such file {choice}")
        tok = PreTrainedTokenizerFast(tokenizer_file=choice)
    else:
        key = "tokenizer" if choice != model_path else "model.pretrained"
        local = Path(choice).expanduser()
        if local.is_dir() and not any((local / f).is_file() for f in TOKENIZER_FILES):
            raise ConfigError(f"{key}: {choice} holds no tokenizer files ({', '.join(TOKENIZER_FILES[:4])}, ...); "
                              "add the model's tokenizer files there or set tokenizer: to its tokenizer")
        try:
            tok = AutoTokenizer.from_pretrained(choice, revision=revision if choice == model_path else None)
        except Exception as e:  # noqa: BLE001 (OSError offline or missing; ValueError on unknown kinds)
            raise ConfigError(f"{key}: cannot load a tokenizer from {choice!r}: {first_line(e)}"
                              f"{hub_hint(choice)}") from None
    if tok.pad_token is None:  # GPT-2's tokenizer has none; padding positions are masked anyway
        vocab = tok.get_vocab()
        pad = tok.eos_token or next((t for t in ("[PAD]", "<pad>", "<|pad|>") if t in vocab), None)
        if pad is None:  # a bare tokenizer.json names no special tokens
            raise ConfigError(f"tokenizer: {choice} has no padding token, no end-of-text token and no [PAD]/<pad> "
                              "in its vocabulary; use a tokenizer directory whose tokenizer_config.json names them")
        tok.pad_token = pad
    return tok


def check_content(tokenizer, table: TensorTable, where: str) -> None:
    """Refuse a tokenizer that encodes the training texts into special tokens only (e.g. a model
    directory without tokenizer files: every text becomes [CLS] [UNK] ... [SEP] or <s></s>, and
    every condition would train on nothing and score alike)."""
    ids = table.columns["input_ids"][table.columns["attention_mask"].bool()]
    special_ids = set(tokenizer.all_special_ids)  # and those a bare tokenizer.json marks special
    special_ids |= {i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if t.special}
    special = torch.tensor(sorted(special_ids), dtype=ids.dtype)
    content = int((~torch.isin(ids, special)).sum()) if ids.numel() else 0
    if content == 0:
        first = tokenizer.convert_ids_to_tokens(ids[:6].tolist())
        raise ConfigError(f"tokenizer: {where} encodes the training texts into special tokens only "
                          f"({ids.numel()} tokens, none a word piece: {first}); "
                          "it does not belong to these texts or this model: add the model's tokenizer files "
                          "to its directory, or set tokenizer: to its tokenizer")
    unknown = int((ids == tokenizer.unk_token_id).sum()) if tokenizer.unk_token_id is not None else 0
    if unknown > content:  # words, mostly unknown: a tokenizer of other texts (another language, casing)
        warnings.warn(f"tokenizer: {where} encodes {unknown} of the training texts' {unknown + content} word "
                      f"tokens as {tokenizer.unk_token}; is it the model's own?", stacklevel=2)


def encode_classification(tokenizer, ds, spec: DatasetSpec, num_labels: int, max_length: int,
                          token_types: bool) -> TensorTable:
    texts = list(ds[spec.text_column])
    pairs = list(ds[spec.text_pair_column]) if spec.text_pair_column else None
    enc = tokenizer(texts, pairs, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt",
                    return_token_type_ids=token_types)
    labels = ds[spec.label_column]
    if num_labels == 1:
        y = torch.tensor([float(v) for v in labels], dtype=torch.float32)
    else:
        y = torch.tensor([int(v) for v in labels], dtype=torch.long)
    columns = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": y}
    if token_types and "token_type_ids" in enc:
        columns["token_type_ids"] = enc["token_type_ids"]
    return TensorTable(columns)


def encode_blocks(tokenizer, texts: Sequence[str], block: int) -> TensorTable:
    """Language modelling: every text tokenised (with the tokenizer's own start/end tokens, or
    GPT-2's end-of-text between texts), concatenated, and cut into blocks of ``block`` tokens; the
    remainder is dropped. Labels are the inputs (the model shifts them)."""
    ids: list[int] = []
    texts = [t for t in texts if t.strip()]  # blank lines (paragraph breaks in Wikitext) carry no tokens
    for row in tokenizer(texts, add_special_tokens=True)["input_ids"]:
        ids.extend(row)
        if tokenizer.cls_token_id is None and tokenizer.eos_token_id is not None:
            ids.append(tokenizer.eos_token_id)
    n = len(ids) // block
    if n == 0:
        raise ConfigError(f"max_length: the texts hold {len(ids)} tokens, less than one block of {block}")
    blocks = torch.tensor(ids[: n * block], dtype=torch.long).reshape(n, block)
    return TensorTable({"input_ids": blocks, "attention_mask": torch.ones_like(blocks), "labels": blocks.clone()})


def infer_num_labels(spec: DatasetSpec, splits: dict[str, Any]) -> int:
    if spec.num_labels is not None:
        return spec.num_labels
    labels = list(splits["train"][spec.label_column])
    if not all(float(y).is_integer() for y in labels):
        raise ConfigError(f"dataset.num_labels: labels of column {spec.label_column!r} are not integers; "
                          "set num_labels: 1 for regression")
    return int(max(labels)) + 1


def check_labels(spec: DatasetSpec, splits: dict[str, Any], num_labels: int) -> None:
    if num_labels == 1:
        return
    for role, ds in splits.items():
        bad = sorted({int(y) for y in ds[spec.label_column] if not 0 <= int(y) < num_labels})
        if bad:
            # GLUE test splits carry label -1 (hidden); point the test split at labelled data.
            raise ConfigError(f"dataset.{role}_split: labels {bad[:5]} outside 0..{num_labels - 1} "
                              f"in split {getattr(spec, role + '_split')!r}")


def load(spec: DatasetSpec, *, kind: str, tokenizer_choice: str | None, model_path: str | None,
         vocab_size: int, max_length: int, token_types: bool, revision: str | None = None) -> TextData:
    splits = load_splits(spec, kind)
    train_texts = list(splits["train"][spec.text_column])
    if spec.text_pair_column:
        train_texts += list(splits["train"][spec.text_pair_column])
    tokenizer = load_tokenizer(tokenizer_choice, model_path, train_texts, vocab_size, revision)
    where = f"the tokenizer of {tokenizer_choice or model_path or 'train'}"
    if kind == "causal_lm":
        tables = {role: encode_blocks(tokenizer, ds[spec.text_column], max_length) for role, ds in splits.items()}
        check_content(tokenizer, tables["train"], where)
        return TextData(tables["train"], tables["validation"], tables["test"], tokenizer, 0)
    num_labels = infer_num_labels(spec, splits)
    check_labels(spec, splits, num_labels)
    tables = {role: encode_classification(tokenizer, ds, spec, num_labels, max_length, token_types)
              for role, ds in splits.items()}
    check_content(tokenizer, tables["train"], where)
    return TextData(tables["train"], tables["validation"], tables["test"], tokenizer, num_labels)
