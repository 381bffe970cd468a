"""Image observations: Atari through ale-py with SB3's wrappers and CnnPolicy, whose convolution
and linear weights are prunable and stay pruned inside SB3's training."""

import pytest
import torch

torch.set_num_threads(1)

pytest.importorskip("stable_baselines3")
pytest.importorskip("ale_py")
pytest.importorskip("cv2")

from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.atari_wrappers import AtariWrapper  # noqa: E402
from stable_baselines3.common.vec_env import VecFrameStack, VecTransposeImage  # noqa: E402

import domains.rl.domain as rl_domain  # noqa: E402
from domains.rl.domain import attach_algorithm  # noqa: E402
from domains.rl import RLConfig, RLDomain  # noqa: E402
from tickets.collapse import diagnose  # noqa: E402
from tickets.enforce import MaskEnforcer  # noqa: E402
from tickets.errors import ConfigError  # noqa: E402
from tickets.masks import Mask  # noqa: E402

# 400 frames = 100 agent steps: short evaluation games for tests
PONG = dict(env_id="PongNoFrameskip-v4", atari=True, frame_stack=4, env_kwargs={"max_num_frames_per_episode": 400},
            net_arch=[], eval_episodes=1)
CONVS = ["features_extractor.cnn.0.weight", "features_extractor.cnn.2.weight", "features_extractor.cnn.4.weight"]


def pong(**overrides) -> RLDomain:
    return RLDomain(RLConfig(**{**PONG, "n_steps": 16, "batch_size": 16, "n_epochs": 1, **overrides}))


def half_mask(params, seed=0) -> Mask:
    g = torch.Generator().manual_seed(seed)
    return Mask({n: torch.rand(p.shape, generator=g) < 0.5 for n, p in params.items()})


def test_atari_gets_the_cnn_policy_on_stacked_channel_first_frames():
    cfg = pong().config
    assert cfg.policy_class() == "CnnPolicy"
    assert cfg.observation_space.shape == (4, 84, 84)
    env = cfg.make_env(1, seed=0)
    try:
        assert isinstance(env, VecTransposeImage) and isinstance(env.venv, VecFrameStack)
        assert env.env_is_wrapped(AtariWrapper) == [True]
    finally:
        env.close()


def test_cnn_weights_are_prunable_and_stay_zero_after_learn():
    domain = pong()
    model = domain.build_model(seed=0)
    prunable = domain.prunable(model)
    assert set(prunable) == {*CONVS, "features_extractor.linear.0.weight", "action_net.weight", "value_net.weight"}
    mask = half_mask(prunable)
    before = {n: p.detach().clone() for n, p in prunable.items()}
    with MaskEnforcer(prunable, mask):
        domain.train(model, steps=32, seed=0)
    for name in CONVS:
        w, m = prunable[name].detach(), mask[name]
        assert torch.all(w[~m] == 0.0), name
        assert (w[m] != before[name][m]).any(), f"{name}: surviving weights did not train"


def test_evaluation_plays_on_the_same_wrappers(monkeypatch):
    domain = pong()
    model = domain.build_model(seed=0)
    seen = []
    real = rl_domain.evaluate_policy

    def spy(policy, env, **kw):
        seen.append((env.observation_space.shape, env.env_is_wrapped(AtariWrapper)[0], isinstance(env, VecTransposeImage)))
        return real(policy, env, **kw)

    monkeypatch.setattr(rl_domain, "evaluate_policy", spy)
    metrics = domain.evaluate(model, "test")
    assert seen == [((4, 84, 84), True, True)]
    assert -21.0 <= metrics["mean_return"] <= 21.0  # Pong's raw score (Monitor sits under the wrappers)


def test_forward_ones_and_the_path_check_run_on_images():
    domain = pong()
    model = domain.build_model(seed=0)
    out = domain.forward_ones(model)
    assert out.shape == (1, 6 + 1) and torch.isfinite(out).all()  # Pong's 6 action logits and the value
    prunable = domain.prunable(model)
    mask = Mask({n: torch.ones(p.shape, dtype=torch.bool) for n, p in prunable.items()})
    assert diagnose(model, mask, domain.forward_ones)["path_survives"]
    mask = Mask({**mask, CONVS[1]: torch.zeros(prunable[CONVS[1]].shape, dtype=torch.bool)})
    assert not diagnose(model, mask, domain.forward_ones)["path_survives"]


def test_an_unshared_value_extractor_is_prunable_too():
    domain = pong()
    algo = PPO("CnnPolicy", domain.config.make_env(1, seed=0), n_steps=16, batch_size=16, device="cpu",
               policy_kwargs={"share_features_extractor": False, "net_arch": []})
    model = algo.policy
    attach_algorithm(model, algo)
    prunable = domain.prunable(model)
    assert {n.replace("features_extractor", "vf_features_extractor") for n in CONVS} < set(prunable)
    assert CONVS[0] in prunable and not any(n.startswith("pi_features_extractor") for n in prunable)
    assert domain.forward_ones(model).shape == (1, 7)


def test_dqn_cnn_target_network_follows_the_online_convolutions():
    domain = RLDomain(RLConfig(**PONG, algorithm="dqn", buffer_size=100, batch_size=8, learning_starts=8))
    model = domain.build_model(seed=0)
    ties = domain.tied_parameters(model)
    assert ties["q_net_target.features_extractor.cnn.0.weight"] == "q_net.features_extractor.cnn.0.weight"
    assert "q_net.features_extractor.cnn.0.weight" in domain.prunable(model)


@pytest.mark.parametrize("overrides, key", [
    ({"env_id": "CartPole-v1", "atari": True}, "atari"),  # not an ALE environment
    ({"env_id": "ALE/Pong-v5", "atari": True}, "atari"),  # v5 skips 4 frames itself
    ({"env_id": "CartPole-v1", "policy": "cnn"}, "policy"),  # no image observations
    ({"env_id": "CartPole-v1", "frame_stack": 0}, "frame_stack"),
])
def test_atari_config_errors_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=rf"^{key}: "):
        RLConfig(**overrides)


def test_ale_namespace_ids_register_on_their_own():
    cfg = RLConfig(env_id="ALE/Pong-v5", atari=True, frame_stack=4, env_kwargs={"frameskip": 1}, net_arch=[])
    assert cfg.policy_class() == "CnnPolicy" and cfg.observation_space.shape == (4, 84, 84)
