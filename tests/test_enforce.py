import pytest
import torch

from tickets.enforce import MaskEnforcer
from tickets.masks import Mask
from tickets.selection import default_prunable

OPTIMIZERS = {
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    "adam": lambda p: torch.optim.Adam(p, lr=0.01),
    "adamw_wd": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.01),
}


def half_mask(params, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Mask({n: torch.rand(p.shape, generator=g) < 0.5 for n, p in params.items()})


def train(model, opt, steps=20):
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, y = torch.randn(16, 12, generator=g), torch.randint(0, 3, (16,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_pruned_weights_exactly_zero_after_every_step(tiny_mlp, opt_name):
    params = default_prunable(tiny_mlp)
    mask = half_mask(params)
    before = {n: p.detach().clone() for n, p in params.items()}
    opt = OPTIMIZERS[opt_name](tiny_mlp.parameters())  # created before the enforcer
    with MaskEnforcer(params, mask):
        for _ in range(5):
            train(tiny_mlp, opt, steps=3)
            for n, p in params.items():
                assert torch.all(p.detach()[~mask[n]] == 0.0)
    for n, p in params.items():
        assert not torch.equal(p.detach()[mask[n]], before[n][mask[n]])  # survivors did train


def test_optimizer_created_inside_a_foreign_loop(tiny_mlp):
    params = default_prunable(tiny_mlp)
    mask = half_mask(params)

    def someone_elses_loop(model):  # builds its own optimizer, as SB3 and Trainer do
        train(model, torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1))

    with MaskEnforcer(params, mask):
        someone_elses_loop(tiny_mlp)
    assert all(torch.all(p.detach()[~mask[n]] == 0.0) for n, p in params.items())


def test_detach_stops_enforcing_and_other_optimizers_are_ignored(tiny_mlp):
    params = default_prunable(tiny_mlp)
    mask = half_mask(params)
    enforcer = MaskEnforcer(params, mask).attach()
    other = torch.nn.Linear(3, 3)
    with torch.no_grad():
        other.weight.fill_(1.0)
    train_other = torch.optim.SGD(other.parameters(), lr=0.0)
    train_other.step()
    assert enforcer._seen[train_other][1] is False
    enforcer.detach()
    train(tiny_mlp, torch.optim.SGD(tiny_mlp.parameters(), lr=0.1))
    assert any(torch.any(p.detach()[~mask[n]] != 0.0) for n, p in params.items())


def test_mask_grads_hides_pruned_gradients_from_clipping(tiny_mlp):
    params = default_prunable(tiny_mlp)
    mask = half_mask(params)
    x, y = torch.randn(8, 12), torch.randint(0, 3, (8,))
    with MaskEnforcer(params, mask, mask_grads=True):
        torch.nn.functional.cross_entropy(tiny_mlp(x), y).backward()
    for n, p in params.items():
        assert torch.all(p.grad[~mask[n]] == 0.0)
        assert torch.any(p.grad[mask[n]] != 0.0)


def test_enforcer_rejects_wrong_shapes(tiny_mlp):
    params = default_prunable(tiny_mlp)
    bad = Mask({"layers.0.weight": torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="layers.0.weight"):
        MaskEnforcer(params, bad)


def test_masks_follow_a_model_moved_after_the_enforcer_was_built(tiny_mlp):
    # accelerate and .to() move a model after the stage has built its enforcer: the masks follow
    params = default_prunable(tiny_mlp)
    mask = half_mask(params)
    with MaskEnforcer(params, mask) as enforcer:
        tiny_mlp.double()  # every parameter's data replaced by a float64 tensor
        opt = torch.optim.Adam(tiny_mlp.parameters(), lr=0.01)
        g = torch.Generator().manual_seed(1)
        for _ in range(3):
            x, y = torch.randn(16, 12, generator=g, dtype=torch.float64), torch.randint(0, 3, (16,), generator=g)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(tiny_mlp(x), y).backward()
            opt.step()
            for n, p in params.items():
                assert p.dtype == torch.float64 and torch.all(p.detach()[~mask[n]] == 0.0)
        assert all(f.dtype == torch.float64 for f in enforcer._factors)


def test_a_graph_built_before_another_optimizers_step_still_backpropagates():
    # SAC: the actor's loss graph is built, the critic's optimizer steps (the enforcer re-zeroes
    # every masked weight, the actor's too), then the actor's loss is backpropagated
    from conftest import TinyMLP

    torch.manual_seed(0)
    policy = torch.nn.ModuleDict({"actor": TinyMLP(), "critic": TinyMLP()})
    params = default_prunable(policy)
    mask = half_mask(params)
    actor_opt = torch.optim.Adam(policy["actor"].parameters(), lr=0.01)
    critic_opt = torch.optim.Adam(policy["critic"].parameters(), lr=0.01)
    x = torch.randn(16, 12)
    with MaskEnforcer(params, mask):
        actor_loss = policy["actor"](x).pow(2).mean()  # saves the actor's weights for its backward
        critic_opt.zero_grad()
        policy["critic"](x).pow(2).mean().backward()
        critic_opt.step()  # the hook multiplies every masked weight, the actor's included
        actor_opt.zero_grad()
        actor_loss.backward()  # "modified by an inplace operation" if the multiply bumped their version
        actor_opt.step()
    assert all(torch.all(p.detach()[~mask[n]] == 0.0) for n, p in params.items())
