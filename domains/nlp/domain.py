"""The NLP domain adapter: a small BERT trained from scratch for text classification with the
accelerate loop."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import torch
from torch import nn

from domains.supervised import LoopConfig, SupervisedDomain
from tickets.errors import ConfigError
from tickets.optim import OptimizerConfig
from tickets.selection import default_prunable

from . import data
from .data import DatasetSpec


@dataclass
class BertSettings:
    """The BERT architecture (``vocab_size`` and ``max_position_embeddings`` come from the
    tokenizer and ``max_length``)."""

    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 128
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1

    def __post_init__(self):
        for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}: must be positive, got {getattr(self, key)}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(f"num_attention_heads: must divide hidden_size ({self.hidden_size}), "
                              f"got {self.num_attention_heads}")
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if not 0 <= getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be in [0, 1), got {getattr(self, key)}")


@dataclass
class NLPConfig(LoopConfig):
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    model: BertSettings = field(default_factory=BertSettings)
    max_length: int = 32  # tokens per text, [CLS] and [SEP] included
    vocab_size: int = 2000  # at most this many tokens in the tokenizer trained on the training texts
    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(name="adamw", lr=1e-3))

    def __post_init__(self):
        super().__post_init__()
        if self.max_length < 3:
            raise ConfigError(f"max_length: must be at least 3 ([CLS], a token, [SEP]), got {self.max_length}")
        if self.vocab_size <= len(data.SPECIAL_TOKENS):
            raise ConfigError(f"vocab_size: must exceed the {len(data.SPECIAL_TOKENS)} special tokens, "
                              f"got {self.vocab_size}")


def _loss(model: nn.Module, batch, *, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    return out.loss, out.logits


class NLPDomain(SupervisedDomain):
    name = "nlp"
    Config = NLPConfig
    loss = staticmethod(_loss)

    @cached_property
    def data(self) -> data.TextData:
        return data.load(self.config.dataset, vocab_size=self.config.vocab_size, max_length=self.config.max_length)

    def bert_config(self):
        from transformers import BertConfig

        tokenizer = self.data.tokenizer
        return BertConfig(vocab_size=len(tokenizer), max_position_embeddings=self.config.max_length,
                          num_labels=self.data.num_labels, pad_token_id=tokenizer.pad_token_id,
                          **asdict(self.config.model))

    def build_model(self, seed: int) -> nn.Module:
        from transformers import BertForSequenceClassification

        config = self.bert_config()  # loads the data first, outside the seeded block
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return BertForSequenceClassification(config)

    def prunable(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """The encoder's linear weights (query, key, value, attention output, intermediate and
        output dense of every layer); embeddings, LayerNorms, pooler and classifier stay dense,
        as in Chen et al. 2020, "The Lottery Ticket Hypothesis for Pre-trained BERT Networks"."""
        return {n: p for n, p in default_prunable(model).items() if n.startswith("bert.encoder.layer.")}

    forward_ones_unavailable = "token ids are not a dense input"
    path_bias_patterns = ("*position_embeddings*", "*token_type_embeddings*")

    def forward_ones(self, model: nn.Module) -> torch.Tensor:
        """Token ids cannot be all ones in any meaningful sense: the all-ones input is given to
        the encoder as ``inputs_embeds`` (the embeddings are never pruned)."""
        p = next(model.parameters())
        ones = torch.ones((1, self.config.max_length, model.config.hidden_size), dtype=p.dtype, device=p.device)
        return model(inputs_embeds=ones).logits

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tokenizer_vocab_size": len(self.data.tokenizer),
                "num_labels": self.data.num_labels,
                "split_sizes": {s: len(getattr(self.data, s)) for s in ("train", "validation", "test")}}

    def model_identity(self, model: nn.Module) -> dict[str, Any]:
        keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "num_labels")
        return {**super().model_identity(model), **{k: getattr(model.config, k) for k in keys}}
