"""Structured tickets beyond convolutions and MLPs: a BERT's attention heads and feed-forward
neurons (stated by the NLP domain, no Torch-Pruning), a PPO policy's hidden units (traced), and
their dense-small exports in each library's own form (save_pretrained, SB3's zip)."""

import json

import pytest
import torch

from tickets.artifact import Ticket
from tickets.cli import main
from tickets.config import load_experiment
from tickets.errors import ConfigError
from tickets.export import export, load_exported
from tickets.export_small import shrink
from tickets.methods import make_runner
from tickets.rewind import load_state
from tickets.store import read_tensors

HEADS, HEAD_SIZE, WIDTH = 4, 16, 32


def bert_config(**pruning):
    return {"name": "bert_units", "seed": 0,
            "domain": {"name": "nlp", "batch_size": 16, "max_length": 16,
                       "model": {"hidden_size": HEADS * HEAD_SIZE, "num_hidden_layers": 2,
                                 "num_attention_heads": HEADS, "intermediate_size": WIDTH},
                       "optimizer": {"name": "adamw", "lr": 1e-3}},
            "train": {"steps": 8, "eval_every": 8},
            "pruning": {"structure": "units", "levels": 2, "fraction": 0.5, "scope": "layer", **pruning},
            "controls": ["reinit"]}


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return make_runner(load_experiment(bert_config()), tmp_path_factory.mktemp("bert"), show_progress=False).execute()


def heads_alive(mask, layer):
    q = mask[f"bert.encoder.layer.{layer}.attention.self.query.weight"].reshape(HEADS, HEAD_SIZE, -1)
    return [h for h in range(HEADS) if bool(q[h].any())]


def test_each_level_halves_every_layers_heads_and_neurons_with_all_they_own(bert):
    for level, heads, neurons in ((1, 2, 16), (2, 1, 8)):
        mask = Ticket.load(bert.ticket_dir(level)).mask
        for layer in (0, 1):
            p = f"bert.encoder.layer.{layer}"
            alive = heads_alive(mask, layer)
            assert len(alive) == heads
            rows = torch.zeros(HEADS, HEAD_SIZE, dtype=torch.bool)
            rows[alive] = True
            rows = rows.flatten()
            for part in ("query", "key", "value"):  # a head is its rows of Q, K, V and their biases ...
                assert torch.equal(mask[f"{p}.attention.self.{part}.weight"].any(1), rows)
                assert bool(mask[f"{p}.attention.self.{part}.weight"][rows].all())
                assert torch.equal(mask[f"{p}.attention.self.{part}.bias"], rows)
            assert torch.equal(mask[f"{p}.attention.output.dense.weight"].any(0), rows)  # ... and its output columns
            kept = mask[f"{p}.intermediate.dense.weight"].any(1)
            assert int(kept.sum()) == neurons
            assert torch.equal(mask[f"{p}.intermediate.dense.bias"], kept)
            assert torch.equal(mask[f"{p}.output.dense.weight"].any(0), kept)
            assert bool(mask[f"{p}.output.dense.weight"].any(1).all())  # the residual stream is not a unit
    assert Ticket.load(bert.ticket_dir(2)).meta["found"]["structure"] == "units"


def test_the_lowest_l1_heads_of_the_trained_weights_go_first(bert):
    trained = read_tensors(bert.trained_path(0, "dense"))
    p = "bert.encoder.layer.0"
    score = torch.zeros(HEADS, dtype=torch.float64)
    for part in ("query", "key", "value"):
        score += trained[f"{p}.attention.self.{part}.weight"].double().abs().reshape(HEADS, -1).sum(1)
    out = trained[f"{p}.attention.output.dense.weight"].double().abs()
    score += out.reshape(out.shape[0], HEADS, HEAD_SIZE).sum((0, 2))
    alive = heads_alive(Ticket.load(bert.ticket_dir(1)).mask, 0)
    removed = [h for h in range(HEADS) if h not in alive]
    assert max(score[removed]) <= min(score[alive])


def test_the_masked_encoder_is_the_smaller_encoder_after_training(bert):
    exp = load_experiment(bert.path / "config.yaml")
    domain = exp.make_domain()
    model = domain.build_model(seed=0)
    ticket = Ticket.load(bert.ticket_dir(2))
    ticket.apply(model)
    load_state(model, {**dict(model.state_dict()), **read_tensors(bert.trained_path(2, "ticket"))})
    model.eval()
    params = dict(model.named_parameters())
    small, removed = shrink(domain, model, ticket.mask, {n: params[n] for n in ticket.mask}, seed=0)
    att = small.bert.encoder.layer[0].attention.self
    assert (att.query.out_features, att.num_attention_heads) == (HEAD_SIZE, 1)
    assert small.bert.encoder.layer[1].intermediate.dense.out_features == 8
    assert sorted(removed) == sorted(f"bert.encoder.layer.{i}.{r}" for i in (0, 1)
                                     for r in ("attention.self.query", "intermediate.dense"))
    batch = domain.scoring_batches(1, 0, model=model)[0]
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        assert torch.allclose(small(**inputs).logits, model(**inputs).logits, atol=1e-5)


def test_a_head_pruned_encoder_exports_in_our_form_and_says_why_not_save_pretrained(bert, tmp_path, capsys):
    assert main(["export", str(bert.level_dir(2)), "--to", "dense-small", "--out", str(tmp_path / "s")]) == 0
    said = capsys.readouterr().out
    assert "no nlp native form: heads were removed" in said
    record = json.loads((tmp_path / "s" / "export.json").read_text())
    assert "skipped" in record["native"] and not (tmp_path / "s" / "native").exists()
    model, _ = load_exported(tmp_path / "s")
    assert model.bert.encoder.layer[1].attention.self.key.out_features == HEAD_SIZE
    assert record["parameters"]["after"] == sum(p.numel() for p in model.parameters())


def test_a_feed_forward_ticket_exports_as_a_save_pretrained_directory(tmp_path):
    from transformers import AutoModelForSequenceClassification

    cfg = bert_config(exclude=["*attention*"], levels=1)
    run = make_runner(load_experiment(cfg), tmp_path / "runs", show_progress=False).execute()
    mask = Ticket.load(run.ticket_dir(1)).mask
    assert all(bool(m.all()) for n, m in mask.items() if "attention" in n)  # heads left whole
    record = export(run.level_dir(1), tmp_path / "s", to="dense-small")
    native = record["native"]
    assert native["format"] == "transformers" and native["intermediate_size"] == WIDTH // 2
    assert native["check"]["max_relative_difference"] <= 1e-5
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "s" / native["path"]).eval()
    assert loaded.config.intermediate_size == WIDTH // 2
    ours, domain = load_exported(tmp_path / "s")
    batch = domain.scoring_batches(1, 0, model=ours)[0]
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        assert torch.allclose(loaded(**inputs).logits, ours(**inputs).logits, atol=1e-6)
    assert (tmp_path / "s" / native["path"] / "tokenizer.json").is_file()


def test_units_of_a_gpt2_are_refused_before_any_training(tmp_path):
    cfg = bert_config()
    cfg["domain"]["model"] = {"architecture": "gpt2", "hidden_size": 32, "num_hidden_layers": 1,
                              "num_attention_heads": 2, "intermediate_size": 32}
    cfg["domain"]["task"] = "causal_lm"
    with pytest.raises(ConfigError, match="BERT-like encoders"):
        make_runner(load_experiment(cfg), tmp_path, show_progress=False).execute()
    assert not list(tmp_path.rglob("*.safetensors"))


def ppo_config():
    return {"name": "ppo_units", "seed": 0,
            "domain": {"name": "rl", "env_id": "CartPole-v1", "n_steps": 64, "batch_size": 32, "n_epochs": 1,
                       "net_arch": [16, 16], "optimizer": {"name": "adam", "lr": 3e-4}, "eval_episodes": 1},
            "train": {"steps": 128, "eval_every": 128},
            "pruning": {"structure": "units", "levels": 2, "fraction": 0.5, "scope": "layer", "mask_grads": True},
            "controls": []}


def test_a_ppo_policys_hidden_units_export_as_an_sb3_zip_that_ppo_load_reads(tmp_path):
    pytest.importorskip("torch_pruning")
    from stable_baselines3 import PPO

    run = make_runner(load_experiment(ppo_config()), tmp_path / "runs", show_progress=False).execute()
    mask = Ticket.load(run.ticket_dir(2)).mask
    for net in ("policy_net", "value_net"):
        for i in (0, 2):
            assert int(mask[f"mlp_extractor.{net}.{i}.weight"].any(1).sum()) == 4  # 16 -> 8 -> 4 units
    assert bool(mask["action_net.weight"].any(1).all())  # both actions stay
    record = export(run.level_dir(2), tmp_path / "s", to="dense-small")
    native = record["native"]
    assert native["format"] == "stable-baselines3" and native["net_arch"] == {"pi": [4, 4], "vf": [4, 4]}
    algo = PPO.load(tmp_path / "s" / native["path"], device="cpu")
    ours, _ = load_exported(tmp_path / "s")
    obs = torch.randn(32, 4)
    with torch.no_grad():
        for a, b in zip(algo.policy.evaluate_actions(obs, torch.zeros(32)),
                        ours.evaluate_actions(obs, torch.zeros(32))):
            assert torch.allclose(a, b, atol=1e-6)
