"""A dense-small PPO/A2C policy in stable-baselines3's own form: the algorithm's ``save`` zip,
which ``PPO.load(path)`` (``A2C.load``) rebuilds from the ``net_arch`` recorded in it. A structured
ticket keeps a different number of units in each hidden layer of the policy and value networks,
which SB3 states as ``net_arch=dict(pi=[...], vf=[...])``; where the smaller policy does not fit
that form (a pruned CNN feature extractor: SB3 computes its sizes itself), nothing is written and
the reason is returned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

ZIP = "model.zip"


def hidden_sizes(sequential: nn.Module) -> list[int]:
    return [m.out_features for m in sequential.modules() if isinstance(m, nn.Linear)]


def net_arch_of(policy: nn.Module) -> dict[str, list[int]] | str:
    """The ``net_arch`` of a (smaller) actor-critic policy, or why it has none."""
    extractor = getattr(policy, "mlp_extractor", None)
    if extractor is None:
        return f"{type(policy).__name__} is not an actor-critic policy (PPO, A2C)"
    return {"pi": hidden_sizes(extractor.policy_net), "vf": hidden_sizes(extractor.value_net)}


def save(domain, policy: nn.Module, directory: Path) -> dict[str, Any]:
    cls = domain.algorithm_class()
    arch = net_arch_of(policy)
    if isinstance(arch, str):
        return {"skipped": arch}
    algo = domain.build_algorithm(0, net_arch=arch)  # its weights are replaced by the policy's
    fresh = algo.policy.state_dict()
    state = policy.state_dict()
    misfit = sorted(k for k in state if k not in fresh or fresh[k].shape != state[k].shape)
    if misfit or set(fresh) != set(state):
        return {"skipped": f"SB3's {cls.__name__} with net_arch={arch} does not hold this policy "
                           f"({(misfit or sorted(set(fresh) ^ set(state)))[0]} differs): SB3 sizes its feature "
                           "extractor itself"}
    algo.policy.load_state_dict(state, strict=True)
    directory.mkdir(parents=True)
    algo.save(directory / ZIP)
    return {"format": "stable-baselines3", "path": ZIP, "net_arch": arch,
            "load": f"stable_baselines3.{cls.__name__}.load('{ZIP}')"}


def load(domain, directory: Path):
    """The algorithm SB3 loads from the zip (``.policy`` is the smaller policy)."""
    return domain.algorithm_class().load(directory / ZIP, device=domain.config.device)
