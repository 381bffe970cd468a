"""The NLP domain adapter: Hugging Face ``transformers`` models (pre-trained or from a config) on
``datasets`` tasks (GLUE, the user's files, the shipped sets), trained with the accelerate loop.

Pre-trained models (Chen et al. 2020, "The Lottery Ticket Hypothesis for Pre-trained BERT
Networks"): θ0 is the pre-trained checkpoint plus the task head's seeded random initialisation.

The head policy, ``rewind``: the newly initialised head is part of the rewind point like every
other weight. Rewinding to θ0 puts the head back to its initial draw (the same draw at every
level, for the ticket and the random-mask control alike), rewinding to θk to its value after k
steps of fine-tuning; it is never pruned by default. On transfer to another task the head is the
target task's own seeded draw (``transfer.adapt``), dense or at the source rate
(``transfer.head_policy``).

The ``reinit`` control ("fresh init") of a pre-trained model takes the ticket's start weights
(θ0 or θk) and replaces the prunable weights (after ``pruning.include``/``exclude``) by the
architecture's own initialiser's draws (``from_config``, seeded by the stage), so only the values
of the surviving weights differ; embeddings, LayerNorms and head stay as the ticket has them. A
model trained from scratch is rebuilt from another seed, as in the other domains.
"""

from __future__ import annotations

import warnings
from functools import cached_property
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from domains.supervised import SupervisedDomain, accelerator_for

from . import data, metrics, models, units
from .config import DatasetSpec, ModelSpec, NLPConfig  # noqa: F401 (re-exported)


class NLPDomain(SupervisedDomain):
    name = "nlp"
    Config = NLPConfig

    def __init__(self, config: NLPConfig):
        super().__init__(config)
        if config.task == "causal_lm":
            self.primary_metric, self.higher_is_better = "perplexity", False
        else:
            self.primary_metric = config.dataset.metric or ("pearson" if config.dataset.num_labels == 1 else "accuracy")
        if config.model.pretrained == models.MINILM and config.dataset.glue in models.MINILM_SEEN_TASKS:
            warnings.warn(f"the MiniLM checkpoint (all-MiniLM-L6-v2) was trained on sentence pairs that include "
                          f"{config.dataset.glue.upper()}'s source data; its results there are not clean", stacklevel=2)

    @cached_property
    def data(self) -> data.TextData:
        cfg = self.config
        token_types = models.uses_token_types(cfg.model)
        return data.load(cfg.dataset, kind=cfg.task, tokenizer_choice=cfg.tokenizer, model_path=cfg.model.path(),
                         vocab_size=cfg.vocab_size, max_length=cfg.max_length, token_types=token_types,
                         revision=cfg.model.revision)

    def build_model(self, seed: int, *, fresh: bool = False) -> nn.Module:
        cfg = self.config
        d = self.data  # loads the data (and the tokenizer) first, outside the seeded block
        return models.build(cfg.model, cfg.task, seed=seed, num_labels=d.num_labels, tokenizer=d.tokenizer,
                            max_length=cfg.max_length, fresh=fresh)

    def build_fresh_model(self, seed: int) -> nn.Module:
        """The same architecture with the weights its own initialiser draws from ``seed``."""
        return self.build_model(seed, fresh=True)

    def reinit_scope(self) -> str:
        return "all" if self.config.model.from_scratch else "prunable"

    def loss(self, model: nn.Module, batch, *, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        out = model(**batch)
        return out.loss, out.logits

    def prunable(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """The transformer blocks' 2-D weights: attention Q, K, V and output, the feed-forward
        matrices; embeddings, LayerNorms, pooler and task head stay dense (see models.block_weights).
        ``pruning.include``/``exclude`` patterns change the set."""
        return models.block_weights(model)

    def output_axes(self, model: nn.Module) -> dict[str, int]:
        """GPT-2's ``Conv1D`` stores its weight in x out, so its output units are the columns
        (axis 1); every other weight is torch's out x in (axis 0)."""
        from transformers.pytorch_utils import Conv1D

        axes = super().output_axes(model)
        for name, module in model.named_modules():
            if isinstance(module, Conv1D):
                axes[f"{name}.weight" if name else "weight"] = 1
        return axes

    forward_ones_unavailable = "token ids are not a dense input"
    path_bias_patterns = ("*position_embeddings*", "*token_type_embeddings*", "*.wpe.*")

    def forward_ones(self, model: nn.Module) -> torch.Tensor:
        """Token ids cannot be all ones in any meaningful sense: the all-ones input is given to
        the blocks as ``inputs_embeds`` (the embeddings are never pruned)."""
        p = next(model.parameters())
        ones = torch.ones((1, self.config.max_length, model.config.hidden_size), dtype=p.dtype, device=p.device)
        with models.quiet_transformers():  # GPT-2's classifier warns that embeddings show no padding: there is none
            return model(inputs_embeds=ones).logits

    def scoring_loss(self, model: nn.Module, batch, *, temperature: float = 1.0) -> torch.Tensor:
        device = next(model.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        labels = batch.pop("labels")
        logits = model(**batch).logits.float()
        if self.config.task == "causal_lm":
            return F.cross_entropy((logits[:, :-1] / temperature).flatten(0, 1), labels[:, 1:].flatten())
        if self.data.num_labels == 1:
            return F.mse_loss(logits.squeeze(-1), labels)
        return F.cross_entropy(logits / temperature, labels)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str = "test") -> dict[str, float]:
        if split not in data.ROLES:
            raise ValueError(f"unknown split {split!r} (train, validation or test)")
        table = getattr(self.data, split)
        accelerator = accelerator_for(self.config)
        device = next(model.parameters()).device
        model.eval()
        total_loss, count, outputs, labels = 0.0, 0, [], []
        for start in range(0, len(table), self.config.eval_batch_size):
            idx = list(range(start, min(start + self.config.eval_batch_size, len(table))))
            batch = {k: v.to(device) for k, v in table.__getitems__(idx).items()}
            with accelerator.autocast():
                loss, logits = self.loss(model, batch, train=False)
            if self.config.task == "causal_lm":
                tokens = int(batch["attention_mask"][:, 1:].sum())  # every position but the first is predicted
                total_loss, count = total_loss + float(loss) * tokens, count + tokens
            else:
                total_loss, count = total_loss + float(loss) * len(idx), count + len(idx)
                outputs.append(logits.float().cpu())
                labels.append(batch["labels"].cpu())
        out = {"loss": total_loss / count}
        if self.config.task == "causal_lm":
            out["perplexity"] = metrics.perplexity(total_loss, count)
        elif self.data.num_labels == 1:
            out.update(metrics.regression_metrics(torch.cat(outputs), torch.cat(labels)))
        else:
            out.update(metrics.classification_metrics(torch.cat(outputs), torch.cat(labels)))
        return out

    def structured_units(self, model: nn.Module, prunable: dict[str, nn.Parameter]):
        """Heads and feed-forward neurons of a BERT-like encoder (domains.nlp.units)."""
        return units.units(model, prunable)

    def save_native(self, model: nn.Module, directory: Path) -> dict[str, Any]:
        """A ``save_pretrained`` directory (with the tokenizer) where the config can state the model."""
        return units.save(model, self.data.tokenizer, directory)

    def load_native(self, directory: Path) -> nn.Module:
        return units.load(self.config.task, directory)

    def describe(self) -> dict[str, Any]:
        d = self.data
        return {**super().describe(), "primary_metric": self.primary_metric, "tokenizer_size": len(d.tokenizer),
                "model_path": self.config.model.path(), "num_labels": d.num_labels,
                "split_sizes": {s: len(getattr(d, s)) for s in data.ROLES},
                "libraries": {lib: version(lib) for lib in ("transformers", "datasets", "tokenizers")}}

    def model_identity(self, model: nn.Module) -> dict[str, Any]:
        c = model.config
        keys = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
        return {**super().model_identity(model), **{k: getattr(c, k, None) for k in keys},
                "task": self.config.task, "num_labels": self.data.num_labels,
                "pretrained": self.config.model.pretrained, "init": self.config.model.init}
