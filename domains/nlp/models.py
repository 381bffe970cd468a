"""Transformer models for the NLP domain: a pre-trained ``transformers`` checkpoint (hub name,
local directory, or the offline MiniLM) or an architecture built from a config (BERT or GPT-2),
with a sequence-classification or causal-LM head."""

from __future__ import annotations

import re
import contextlib
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from tickets.errors import ConfigError

from .config import MINILM, MINILM_SEEN_TASKS, SCRATCH_FIELDS, ModelSpec, minilm_path  # noqa: F401 (re-exported)

Task = Literal["classification", "causal_lm"]

# The block stack of BERT-like (``encoder.layer.N``), GPT-2 (``h.N``), T5 (``block.N``) and
# Llama-like (``layers.N``) models: their 2-D weights are the attention and feed-forward matrices.
BLOCK_WEIGHT = re.compile(r"\.(layer|layers|h|block)\.\d+\..*weight$")


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The error's text on one line (its lines joined), at most ``limit`` characters."""
    text = "; ".join(line.strip().rstrip(":") for line in str(exc).splitlines() if line.strip())
    if not text:
        return type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def hub_hint(name: str) -> str:
    """Why a name that is not a local directory may fail to load: offline and not in the cache."""
    if Path(name).expanduser().exists():
        return ""
    try:
        from huggingface_hub import constants

        offline = constants.HF_HUB_OFFLINE
    except (ImportError, AttributeError):
        offline = False
    if offline:
        return (f" (HF_HUB_OFFLINE is set and {name!r} is not in the local cache: download it once online, "
                "or name a local directory)")
    return f" (is {name!r} a hub name, and is the hub reachable?)"


def load_pretrained_config(spec: ModelSpec, **kwargs):
    """``AutoConfig.from_pretrained`` of the checkpoint; a ConfigError naming ``pretrained`` (or
    ``overrides``) instead of the loader's traceback."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(spec.path(), revision=spec.revision, **kwargs)
    except Exception as e:  # noqa: BLE001 (OSError offline or missing; strict-field errors on overrides)
        if spec.overrides and not isinstance(e, OSError):
            raise ConfigError(f"overrides: {first_line(e)}") from None
        raise ConfigError(f"pretrained: cannot load the config of {spec.pretrained!r}: {first_line(e)}"
                          f"{hub_hint(spec.path())}") from None


def uses_token_types(spec: ModelSpec) -> bool:
    """Whether the model embeds segment ids (BERT's sentence A/B); GPT-2 has no such embedding."""
    if spec.pretrained is None:
        return spec.architecture == "bert"
    return getattr(load_pretrained_config(spec), "type_vocab_size", 0) > 1


@contextlib.contextmanager
def quiet_transformers():
    """No load reports or progress bars while a checkpoint without the task head loads (the
    missing head is expected; other missing weights are checked in :func:`build`)."""
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def _from_scratch_config(spec: ModelSpec, vocab_size: int, max_length: int, pad_token_id: int):
    from transformers import BertConfig, GPT2Config

    if spec.architecture == "bert":
        return BertConfig(vocab_size=vocab_size, max_position_embeddings=max_length, pad_token_id=pad_token_id,
                          hidden_size=spec.hidden_size, num_hidden_layers=spec.num_hidden_layers,
                          num_attention_heads=spec.num_attention_heads, intermediate_size=spec.intermediate_size,
                          hidden_dropout_prob=spec.hidden_dropout_prob,
                          attention_probs_dropout_prob=spec.attention_probs_dropout_prob)
    return GPT2Config(vocab_size=vocab_size, n_positions=max_length, n_embd=spec.hidden_size,
                      n_layer=spec.num_hidden_layers, n_head=spec.num_attention_heads, n_inner=spec.intermediate_size,
                      resid_pdrop=spec.hidden_dropout_prob, embd_pdrop=spec.hidden_dropout_prob,
                      attn_pdrop=spec.attention_probs_dropout_prob, pad_token_id=pad_token_id,
                      bos_token_id=pad_token_id, eos_token_id=pad_token_id)


def head_kwargs(task: Task, num_labels: int, pad_token_id: int | None) -> dict[str, Any]:
    if task == "causal_lm":
        return {}
    kw: dict[str, Any] = {"num_labels": num_labels, "pad_token_id": pad_token_id}
    if num_labels == 1:
        kw["problem_type"] = "regression"
    return kw


def build(spec: ModelSpec, task: Task, *, seed: int, num_labels: int, tokenizer, max_length: int,
          fresh: bool = False) -> nn.Module:
    """The model in float32 (whatever dtype a checkpoint was saved in: these are the master
    weights; ``mixed_precision`` casts the compute), its random draws (a new head; every weight
    of a model from a config, or with ``fresh``) seeded by ``seed``."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    cls = AutoModelForCausalLM if task == "causal_lm" else AutoModelForSequenceClassification
    config = resolve_config(spec, task, num_labels=num_labels, tokenizer=tokenizer, max_length=max_length)
    with quiet_transformers(), torch.random.fork_rng(devices=[]), _build_errors(spec):
        torch.manual_seed(seed)
        if spec.pretrained is None or spec.init == "random" or fresh:
            model, info = cls.from_config(config, dtype=torch.float32), None
        else:
            model, info = cls.from_pretrained(spec.path(), config=config, revision=spec.revision,
                                              dtype=torch.float32, output_loading_info=True)
    if info is not None:
        check_loaded(spec, model, info)
    check_fits(model, tokenizer, max_length, spec)
    return model


@contextlib.contextmanager
def _build_errors(spec: ModelSpec):
    """An architecture that cannot be built from its (overridden) config is a config error: an
    override that changes a weight's shape, an unknown activation name, ..."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 (whatever transformers raises on a bad config)
        if spec.overrides:
            why = first_line(e)
            if "mismatched_sizes" in why:
                why = ("they change the shape of checkpoint weights (only shape-keeping settings such as dropout "
                       "can be overridden)")
            raise ConfigError(f"overrides: {spec.overrides} cannot be applied to "
                              f"{spec.pretrained or spec.architecture}: {why}") from None
        if spec.pretrained is not None and isinstance(e, OSError):
            raise ConfigError(f"pretrained: cannot load {spec.pretrained!r}: {first_line(e)}"
                              f"{hub_hint(spec.path())}") from None
        raise


def position_offset(model: nn.Module) -> int:
    """How many position ids the model skips: RoBERTa-style embeddings (RoBERTa, XLM-R,
    CamemBERT, Longformer, MPNet, ESM, ...) number positions from ``padding_idx + 1``."""
    for module in model.modules():
        padding_idx = getattr(module, "padding_idx", None)
        if hasattr(module, "create_position_ids_from_input_ids") and isinstance(padding_idx, int):
            return padding_idx + 1
    return 0


def check_fits(model: nn.Module, tokenizer, max_length: int, spec: ModelSpec) -> None:
    """The tokenizer's ids index the model's embedding rows, and ``max_length`` positions fit the
    model's position embeddings (after RoBERTa's offset)."""
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ConfigError(f"tokenizer: {len(tokenizer)} tokens, but the model's embedding has {rows} rows "
                          f"(ids {rows} and up would index past it): this tokenizer does not belong to "
                          f"{spec.pretrained or 'the model'}; set tokenizer: to the model's own")
    offset = position_offset(model)
    positions = getattr(model.config, "max_position_embeddings", None)
    if offset and positions is not None and max_length > positions - offset:
        raise ConfigError(f"max_length: {max_length} tokens, but {type(model).__name__} numbers positions from "
                          f"pad_token_id + 1 = {offset}, so max_position_embeddings {positions} - pad_token_id "
                          f"{offset - 1} - 1 leaves {positions - offset}; use max_length <= {positions - offset}")


def resolve_config(spec: ModelSpec, task: Task, *, num_labels: int, tokenizer, max_length: int):
    """The model's config: from the checkpoint or the sizes, with the head settings and
    ``overrides`` applied, checked against ``max_length``."""
    if spec.pretrained is None:
        config = _from_scratch_config(spec, len(tokenizer), max_length, tokenizer.pad_token_id)
        unknown = [k for k in spec.overrides if not hasattr(config, k)]
        for key, value in spec.overrides.items():
            try:
                setattr(config, key, value)
            except Exception as e:  # noqa: BLE001 (transformers' strict config fields)
                raise ConfigError(f"overrides: {key}: {first_line(e)}") from None
    else:
        config, unused = load_pretrained_config(spec, return_unused_kwargs=True, **spec.overrides)
        unknown = list(unused)
    if unknown:
        raise ConfigError(f"overrides: {', '.join(unknown)} not attributes of {type(config).__name__}")
    for key, value in head_kwargs(task, num_labels, tokenizer.pad_token_id).items():
        setattr(config, key, value)
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if positions is not None and max_length > positions:
        raise ConfigError(f"max_length: {max_length} tokens, but the model has {positions} positions")
    return config


def check_loaded(spec: ModelSpec, model: nn.Module, info: dict[str, list]) -> None:
    """A checkpoint that does not hold the blocks or embeddings of the model it is loaded into
    would silently become a random θ0; only the new head (and a missing pooler) may be drawn."""
    base = getattr(model, "base_model_prefix", "")
    missing = [k for k in info.get("missing_keys", []) if k.startswith(f"{base}.") and ".pooler." not in k]
    mismatched = [k[0] if isinstance(k, tuple) else k for k in info.get("mismatched_keys", [])]
    if missing or mismatched:
        raise ConfigError(f"pretrained: {spec.pretrained} does not hold the weights of {type(model).__name__}: "
                          f"missing {missing[:5]}, shape mismatch {mismatched[:5]}")


def block_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """The 2-D weights of the transformer blocks: attention query/key/value/output and the
    feed-forward matrices (``nn.Linear`` in BERT, ``Conv1D`` in GPT-2). Embeddings, LayerNorms,
    the pooler and the task head are outside the blocks and stay dense (Chen et al. 2020 describe
    the encoder's matrices; their code also prunes the pooler: add it with ``pruning.include``)."""
    return {n: p for n, p in model.named_parameters() if p.dim() == 2 and BLOCK_WEIGHT.search(n)}
