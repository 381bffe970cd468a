"""Names inside safetensors files: parameter and optimizer-state names pass, path-like ones do not."""

import pytest

from tickets.validate import is_param_name


@pytest.mark.parametrize("name", ["fc1.weight", "layers.0.weight", "adam/fc1.weight/exp_avg",
                                  "policy/mlp_extractor.policy_net.0.weight/step"])
def test_parameter_and_optimizer_state_names_pass(name):
    assert is_param_name(name)


@pytest.mark.parametrize("name", ["", "..", "../../x", "/etc/passwd", "a//b", "a..b", "hidden/../0.weight",
                                  "a b", "a\\b", "a\x00b", ".weight", "weight.", 3, None])
def test_path_like_or_empty_names_fail(name):
    assert not is_param_name(name)
