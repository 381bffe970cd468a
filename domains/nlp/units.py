"""Structured units of a BERT-like encoder (``pruning.structure: units``): every layer's attention
heads (the head's rows of Q, K and V with their biases, and its columns of the attention output)
and its feed-forward neurons (a row and bias of the intermediate matrix, a column of the output
matrix). The residual stream, LayerNorms, embeddings and the task head are not units. A group is
pruned when its first matrix is prunable (``query`` for heads, ``intermediate.dense`` for
neurons): ``pruning.exclude: ["*intermediate*", "*output.dense*"]`` prunes heads only.

Also the export's native form: a dense-small encoder as a ``save_pretrained`` directory that
``AutoModelFor....from_pretrained`` loads, where the architecture allows it (see :func:`save`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from tickets.errors import ConfigError
from tickets.unit_slices import SlicedGroup, SlicedUnits


def bert_layers(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules()
            if hasattr(m, "attention") and hasattr(m, "intermediate") and hasattr(m.attention, "self")
            and hasattr(m.attention.self, "query")]


def _head_group(model: nn.Module, layer: str) -> SlicedGroup:
    att = model.get_submodule(f"{layer}.attention.self")
    d, heads = att.attention_head_size, att.num_attention_heads
    rows = [list(range(h * d, (h + 1) * d)) for h in range(heads)]
    base = f"{layer}.attention.self"
    slices = [(f"{base}.query.weight", 0, rows)]
    for part in ("query.bias", "key.weight", "key.bias", "value.weight", "value.bias"):
        if _has(model, f"{base}.{part}"):
            slices.append((f"{base}.{part}", 0, rows))
    slices.append((f"{layer}.attention.output.dense.weight", 1, rows))
    return SlicedGroup(f"{base}.query", heads, slices, kind="heads")


def _neuron_group(model: nn.Module, layer: str) -> SlicedGroup:
    width = model.get_submodule(f"{layer}.intermediate.dense").out_features
    cols = [[j] for j in range(width)]
    slices = [(f"{layer}.intermediate.dense.weight", 0, cols)]
    if _has(model, f"{layer}.intermediate.dense.bias"):
        slices.append((f"{layer}.intermediate.dense.bias", 0, cols))
    slices.append((f"{layer}.output.dense.weight", 1, cols))
    return SlicedGroup(f"{layer}.intermediate.dense", width, slices, kind="neurons")


def _has(model: nn.Module, name: str) -> bool:
    owner, _, attr = name.rpartition(".")
    return getattr(model.get_submodule(owner), attr, None) is not None


def _set_heads(model: nn.Module, root: str, kept: int) -> None:
    if root.endswith(".attention.self.query"):
        att = model.get_submodule(root.rpartition(".")[0])
        att.num_attention_heads = kept
        att.all_head_size = kept * att.attention_head_size


def units(model: nn.Module, prunable: dict[str, nn.Parameter]) -> SlicedUnits:
    layers = bert_layers(model)
    if not layers:
        kind = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
        raise ConfigError(f"pruning.structure: units of {kind} models are not built; heads and feed-forward neurons "
                          "are stated for BERT-like encoders (encoder.layer.N.attention.self.query/key/value)")
    groups = []
    for layer in layers:
        if f"{layer}.attention.self.query.weight" in prunable:
            groups.append(_head_group(model, layer))
        if f"{layer}.intermediate.dense.weight" in prunable:
            groups.append(_neuron_group(model, layer))
    if not groups:
        raise ConfigError("pruning.structure: no head or feed-forward group has a prunable first matrix "
                          "(attention.self.query.weight, intermediate.dense.weight); check pruning.include/exclude")
    return SlicedUnits(model, groups, on_cut=_set_heads)


def save(model: nn.Module, tokenizer, directory: Path) -> dict[str, Any]:
    """``save_pretrained`` of the smaller encoder, when its config can state it: every layer keeps
    all of its heads (transformers 5 has no head pruning: ``prune_heads`` and
    ``config.pruned_heads`` are gone, and a BERT's head size is hidden_size / heads) and the same
    feed-forward width (``intermediate_size`` is one number)."""
    layers = bert_layers(model)
    heads = {model.get_submodule(f"{la}.attention.self").num_attention_heads for la in layers}
    widths = {model.get_submodule(f"{la}.intermediate.dense").out_features for la in layers}
    if heads != {model.config.num_attention_heads}:
        return {"skipped": "heads were removed, and transformers 5 has no from_pretrained form for a BERT with fewer "
                           "heads (prune_heads and config.pruned_heads were removed); tickets.export.load_exported "
                           "loads this export"}
    if len(widths) != 1:
        return {"skipped": f"the layers keep different feed-forward widths ({sorted(widths)}), and a BERT config "
                           "has one intermediate_size; tickets.export.load_exported loads this export"}
    width = widths.pop()
    model.config.intermediate_size = width  # the smaller model's own config says what it is
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return {"format": "transformers", "path": "", "intermediate_size": width,
            "load": f"transformers.{type(model).__name__}.from_pretrained(DIR)  (or the task's AutoModelFor...)"}


def load(task: str, directory: Path) -> nn.Module:
    """What a user's code does with the directory: the Auto class of the task's head."""
    import transformers

    auto = transformers.AutoModelForCausalLM if task == "causal_lm" else transformers.AutoModelForSequenceClassification
    from .models import quiet_transformers

    with quiet_transformers():
        return auto.from_pretrained(directory).eval()
