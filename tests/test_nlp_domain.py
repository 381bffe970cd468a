"""The NLP domain adapter: contract, prunable set, masked training, data loading, determinism."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import json  # noqa: E402
from dataclasses import replace  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("transformers")
pytest.importorskip("datasets")

from domains.nlp import DatasetSpec, NLPConfig, NLPDomain  # noqa: E402
from domains.nlp import data as nlp_data  # noqa: E402
from tickets.domain import check_domain  # noqa: E402
from tickets.enforce import MaskEnforcer  # noqa: E402
from tickets.errors import ConfigError  # noqa: E402
from tickets.masks import Mask  # noqa: E402
from tickets.optim import OptimizerConfig  # noqa: E402
from tickets.registry import domains as domain_registry  # noqa: E402
from tickets.typed import from_dict  # noqa: E402

torch.set_num_threads(1)

SMALL = NLPConfig(batch_size=32, eval_batch_size=300)
ENCODER_WEIGHTS = ["attention.self.query", "attention.self.key", "attention.self.value",
                   "attention.output.dense", "intermediate.dense", "output.dense"]


@pytest.fixture(scope="module")
def domain() -> NLPDomain:
    return NLPDomain(SMALL)


def test_registry_resolves_nlp():
    assert domain_registry.get("nlp") is NLPDomain


def test_check_domain(domain):
    metrics = check_domain(domain, steps=3)
    assert 0.0 <= metrics["accuracy"] <= 1.0


def test_default_prunable_is_the_encoder_linear_weights(domain):
    model = domain.build_model(seed=0)
    names = list(domain.prunable(model))
    expected = [f"bert.encoder.layer.{i}.{w}.weight" for i in range(SMALL.model.num_hidden_layers)
                for w in ENCODER_WEIGHTS]
    assert names == expected
    for left_dense in ("embeddings", "LayerNorm", "pooler", "classifier", "bias"):
        assert not any(left_dense in n for n in names), left_dense
    assert all(p.dim() == 2 for p in domain.prunable(model).values())


@pytest.mark.parametrize("optimizer", [
    OptimizerConfig(name="sgd", lr=0.05, momentum=0.9),
    OptimizerConfig(name="adam", lr=1e-3),
    OptimizerConfig(name="adamw", lr=1e-3, weight_decay=0.01),
], ids=["sgd-momentum", "adam", "adamw-wd"])
def test_pruned_weights_stay_zero_while_training(domain, optimizer):
    d = NLPDomain(replace(SMALL, optimizer=optimizer))
    d.data = domain.data  # reuse the loaded data and tokenizer (cached_property)
    model = d.build_model(seed=0)
    prunable = d.prunable(model)
    g = torch.Generator().manual_seed(0)
    mask = Mask({n: torch.rand(p.shape, generator=g) < 0.5 for n, p in prunable.items()})
    before = {n: p.detach().clone() for n, p in prunable.items()}
    with MaskEnforcer(prunable, mask):
        result = d.train(model, steps=5, seed=0)
    assert result.steps == 5
    for n, p in prunable.items():
        keep = mask[n]
        assert torch.equal(p.detach()[~keep], torch.zeros(int((~keep).sum()))), n
        changed = (p.detach()[keep] != before[n][keep]).float().mean().item()
        assert changed > 0.9, f"{n}: only {changed:.0%} of surviving weights moved"


def test_dataset_loads_through_load_dataset(monkeypatch):
    import datasets

    calls = []
    real = datasets.load_dataset

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", spy)
    splits = nlp_data.load_splits(DatasetSpec(), "classification")
    assert calls and calls[0][0][0] == "csv"
    assert all(os.path.isfile(f) for f in calls[0][1]["data_files"].values())
    assert {role: len(ds) for role, ds in splits.items()} == {"train": 2000, "validation": 300, "test": 300}
    for ds in splits.values():
        assert set(ds["label"]) == {0, 1}
        assert all(isinstance(t, str) and t for t in ds["text"])
    # No test sentence is also a training sentence.
    assert not set(splits["test"]["text"]) & set(splits["train"]["text"])


def test_tokenised_tables(domain):
    tok = domain.data.tokenizer
    assert tok.convert_tokens_to_ids(nlp_data.SPECIAL_TOKENS) == [0, 1, 2, 3, 4]
    assert domain.data.num_labels == 2
    for split, n in (("train", 2000), ("validation", 300), ("test", 300)):
        cols = getattr(domain.data, split).columns
        assert cols["input_ids"].shape == cols["attention_mask"].shape == (n, SMALL.max_length)
        assert cols["labels"].shape == (n,) and cols["labels"].dtype == torch.long
        assert (cols["input_ids"][:, 0] == tok.cls_token_id).all()
        assert torch.equal(cols["input_ids"] == tok.pad_token_id, cols["attention_mask"] == 0)


def test_tokenizer_is_deterministic(domain):
    texts = nlp_data.load_splits(DatasetSpec(), "classification")["train"]["text"]
    a, b = nlp_data.train_tokenizer(texts, 100), nlp_data.train_tokenizer(texts, 100)
    assert len(a) == 100 and a.get_vocab() == b.get_vocab()


def test_build_model_is_seeded(domain):
    a, b, c = domain.build_model(seed=3), domain.build_model(seed=3), domain.build_model(seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["bert.encoder.layer.0.attention.self.query.weight"],
                           sc["bert.encoder.layer.0.attention.self.query.weight"])
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    domain.build_model(seed=5)
    assert torch.equal(torch.rand(3), expected), "build_model must not disturb the global RNG"


def test_model_follows_config(domain):
    model = domain.build_model(seed=0)
    cfg = model.config
    assert cfg.vocab_size == len(domain.data.tokenizer)
    assert cfg.max_position_embeddings == SMALL.max_length
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (64, 2, 2, 128)
    assert cfg.num_labels == 2
    identity = json.loads(json.dumps(domain.model_identity(model)))
    assert identity["class"].endswith("BertForSequenceClassification") and identity["vocab_size"] == cfg.vocab_size


def test_describe_is_json(domain):
    info = json.loads(json.dumps(domain.describe()))
    assert info["domain"] == "nlp"
    assert info["dataset"]["path"] is None and info["task"] == "classification"
    assert info["optimizer"]["name"] == "adamw"
    assert info["split_sizes"] == {"train": 2000, "validation": 300, "test": 300}
    assert info["tokenizer_size"] == len(domain.data.tokenizer) and info["primary_metric"] == "accuracy"


@pytest.mark.parametrize("options, message", [
    ({"model": {"num_attention_heads": 3}}, "config.model.num_attention_heads:"),
    ({"model": {"hidden_dropout_prob": 1.0}}, "config.model.hidden_dropout_prob:"),
    ({"max_length": 2}, "config.max_length:"),
    ({"vocab_size": 5}, "config.vocab_size:"),
    ({"dataset": {"text_column": ""}}, "config.dataset.text_column:"),
    ({"dataset": {"colum": "x"}}, "config.dataset.colum: unknown key"),
])
def test_config_errors_name_the_key(options, message):
    with pytest.raises(ConfigError) as err:
        from_dict(NLPConfig, options)
    assert str(err.value).startswith(message)


def test_hub_style_spec_parses():
    cfg = from_dict(NLPConfig, {"dataset": {"path": "nyu-mll/glue", "name": "sst2", "text_column": "sentence",
                                            "test_split": "validation", "validation_split": "train[-500:]"}})
    assert cfg.dataset.load_args("classification") == ("nyu-mll/glue", "sst2", None)


def test_missing_column_is_a_config_error(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("sentence,label\ngood,1\nbad,0\n")
    spec = DatasetSpec(path="csv", data_files={"train": str(path)}, validation_split="train", test_split="train")
    with pytest.raises(ConfigError, match=r"^dataset.text_column: no column 'text'"):
        nlp_data.load_splits(spec, "classification")
