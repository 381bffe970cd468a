"""Every shipped config runs every level (2 training steps each, tiny models, tiny data in the
schema of the real data) end to end, with its controls."""

from pathlib import Path

import pytest

from tickets.config import load_experiment
from tickets.methods import make_runner
from nlp_fixtures import save_checkpoint, write_glue_task
from vision_fixtures import install_fake_hub, write_dataset

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / "configs").glob("*/*.yaml") if p.parent.name != "studies")  # studies: test_study_files
TINY = {
    "vision": ["train.steps=2", "train.eval_every=2", "domain.batch_size=8", "domain.eval_batch_size=64"],
    "nlp": ["train.steps=2", "train.eval_every=1", "domain.batch_size=8"],
    "rl": ["train.steps=64", "train.eval_every=32", "domain.batch_size=32", "domain.eval_episodes=1"],
}
RL_ON_POLICY = ["domain.n_steps=32", "domain.n_envs=1"]
RL_OFF_POLICY = ["domain.learning_starts=16", "domain.train_freq=16", "domain.gradient_steps=1",
                 "domain.buffer_size=1000"]
RL_UPDATE_STEPS = {True: 16, False: 32}  # off-policy train_freq, on-policy n_steps: where rewind steps fall
# Atari: evaluation games of 100 agent steps, validated only at the end (each game loads a ROM)
RL_ATARI = ["domain.env_kwargs.max_num_frames_per_episode=400", "train.eval_every=0"]
NLP_TINY_MODEL = ["domain.model.hidden_size=16", "domain.model.intermediate_size=32",
                  "domain.model.num_attention_heads=2", "domain.model.num_hidden_layers=2"]
# hub datasets -> tiny stand-ins of the same image shape and class count
SHAPES = {"mnist": (1, 28, 10), "fashion_mnist": (1, 28, 10), "kmnist": (1, 28, 10),
          "cifar10": (3, 32, 10), "svhn": (3, 32, 10), "cifar100": (3, 32, 100)}


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    from domains.vision.data import KNOWN

    root = tmp_path_factory.mktemp("tiny")
    return {(KNOWN[name].path, KNOWN[name].config_name): write_dataset(
                root / name, channels=c, size=s, num_classes=k, used_classes=min(k, 10), n_train=48, n_test=16,
                image_column=KNOWN[name].image_column, label_column=KNOWN[name].label_column).data_files
            for name, (c, s, k) in SHAPES.items()}


@pytest.fixture
def tiny_data(tiny_files, monkeypatch):
    """The hub, offline: each hub dataset the configs name is served from tiny parquet files of
    its own schema, through the same ``datasets.load_dataset`` call."""
    hub = install_fake_hub(monkeypatch)
    for (path, config_name), files in tiny_files.items():
        hub.add(path, files, config_name)
    return hub


@pytest.fixture(scope="module")
def tiny_text_files(tmp_path_factory):
    from domains.nlp.tasks import GLUE

    root = tmp_path_factory.mktemp("text")
    return {task: write_glue_task(root / task, task) for task in GLUE}, save_checkpoint(root / "bert")


@pytest.fixture
def tiny_text(tiny_text_files, monkeypatch):
    """GLUE served offline from tiny parquet files in each task's schema; pre-trained checkpoints
    (a hub name such as bert-base-uncased, or the MiniLM) replaced by a tiny local one."""
    glue, checkpoint = tiny_text_files
    hub = install_fake_hub(monkeypatch)
    for task, files in glue.items():
        hub.add("nyu-mll/glue", files, task)
    hub.checkpoint = checkpoint
    return hub


def tiny_overrides(path: Path, tiny_data) -> list[str]:
    exp = load_experiment(path)
    domain = exp.config.domain["name"]
    out = list(TINY[domain])
    if domain == "rl":
        off_policy = exp.domain_config.algorithm not in ("ppo", "a2c")
        out += RL_OFF_POLICY if off_policy else RL_ON_POLICY
        out += RL_ATARI if exp.domain_config.atari else []
    if exp.config.rewind.step:  # late rewinding still exercised
        out.append(f"rewind.step={RL_UPDATE_STEPS[off_policy] if domain == 'rl' else 1}")
    if domain == "nlp" and exp.domain_config.model.pretrained is not None:
        out += [f"domain.model.pretrained={tiny_data.checkpoint}", "domain.max_length=32"]
    elif domain == "nlp":
        out += NLP_TINY_MODEL
    if exp.config.pruning.method == "early_bird":
        out.append("pruning.early_bird.every=1")
    if domain == "vision":
        from domains.vision.models import MODELS

        if MODELS[exp.domain_config.model].default_width is not None:
            out.append("domain.width=4")
    return out


def run_config(path: Path, out: Path, tiny_data, extra=()):
    exp = load_experiment(path, [*tiny_overrides(path, tiny_data), *extra])
    return exp, make_runner(exp, out, show_progress=False).execute()


# Slow-marked runs, each with a sibling of the same code in the default suite: the Atari config
# (47 s: the frame wrappers and the CNN; test_rl_atari.py covers its policy, wrappers, masks and
# evaluation), PPO on Acrobot (21 s of 500-step episodes; ppo_cartpole.yaml and ppo_lunarlander.yaml
# run PPO) and the CIFAR-10 -> SVHN transfer (the CIFAR-100 one runs the same transfer code).
SLOW_RUNS = ("ppo_atari_pong.yaml", "ppo_acrobot.yaml", "transfer_vgg19_cifar10_to_svhn.yaml")
RUNS = [pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW_RUNS else p for p in CONFIGS]


@pytest.mark.parametrize("path", RUNS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_runs_every_level(path, tmp_path, request):
    fixture = {"vision": "tiny_data", "nlp": "tiny_text"}.get(path.parent.name)
    tiny_data = request.getfixturevalue(fixture) if fixture else None
    extra = []
    source = load_experiment(path).config.transfer
    if source is not None:  # run the source config (tiny) first, then transfer from its run
        _, source_run = run_config(ROOT / source.source, tmp_path, tiny_data)
        extra = [f"transfer.source={source_run.path}"]
    exp, run = run_config(path, tmp_path, tiny_data, extra)
    rows = run.rows()
    pruned_by = load_experiment(ROOT / source.source) if source is not None else exp
    p = pruned_by.config.pruning
    count = p.levels if p.method == "imp" else len(p.compressions)
    levels = (source and source.levels) or list(range(1, count + 1))
    expected = [(0, "dense")] + [(lvl, c) for lvl in levels for c in ["ticket", *sorted(exp.config.controls)]]
    assert [(r["level"], r["condition"]) for r in rows] == expected
    assert rows[-1]["weights_remaining_pct"] < 100.0
    assert all((run.ticket_dir(lvl) / "masks.safetensors").is_file() for lvl in levels)
