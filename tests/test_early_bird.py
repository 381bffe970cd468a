import pickle

import pytest
import torch
from torch import nn

from tickets.early_bird import (
    AllTicketsDrawn,
    EarlyBird,
    EarlyBirdMonitor,
    EarlyBirdSearch,
    TicketDrawn,
    bn_channel_mask,
    channel_to_weight_mask,
    magnitude_mask,
    mask_distance,
    slimming_penalty,
)
from tickets.masks import Mask

N = 100  # entries per synthetic mask: a distance of k/N is k flipped entries


def flipped(*ranges):
    """A 100-entry mask: all True except the given index ranges flipped to False, so
    d(flipped(A), flipped(B)) = |A Δ B| / 100."""
    t = torch.ones(N, dtype=torch.bool)
    for r in ranges:
        t[list(r)] = False
    return Mask({"w": t})


def feed(eb, masks, start=0):
    return [eb.observe(m, step) for step, m in enumerate(masks, start=start)]


# ----------------------------------------------------------------------------- detector

def test_mask_distance_is_normalised_hamming():
    a = Mask({"x": torch.tensor([True, True, False, False]), "y": torch.ones(6, dtype=torch.bool)})
    b = Mask({"x": torch.tensor([True, False, False, True]), "y": torch.ones(6, dtype=torch.bool)})
    assert mask_distance(a, b) == pytest.approx(2 / 10)
    assert mask_distance(a, a) == 0.0
    assert flipped(range(7)).hamming(flipped(range(3, 10))) == pytest.approx(6 / N)


def test_fewer_than_window_masks_never_fire():
    eb = EarlyBird(window=4, epsilon=0.1)
    same = flipped()
    assert feed(eb, [same] * 3) == [False, False, False]
    assert not eb.drawn and eb.drawn_step is None and eb.drawn_mask is None
    assert eb.observe(same, 3) is True  # the 4th identical mask fills the FIFO
    assert eb.drawn_step == 3


def test_fires_at_the_first_step_where_the_window_condition_holds():
    eb = EarlyBird(window=3, epsilon=0.1)
    masks = [
        flipped(range(50)),  # step 0: far from everything
        flipped(),              # step 1
        flipped(range(9)),   # step 2: FIFO [0,1,2], d(2,0)=0.41 -> no
        flipped(range(5)),   # step 3: FIFO [1,2,3], d(3,1)=0.05, d(3,2)=0.04 -> draw
        flipped(range(50)),  # step 4: after the draw, ignored
    ]
    assert feed(eb, masks) == [False, False, False, True, True]
    assert eb.drawn_step == 3
    assert eb.drawn_mask == masks[3]
    records = eb.distances
    assert [r["step"] for r in records] == [0, 1, 2, 3]  # nothing recorded after the draw
    assert records[2]["steps"] == [0, 1]
    assert records[2]["distances"] == pytest.approx([0.41, 0.09])
    assert records[3]["distances"] == pytest.approx([0.05, 0.04])
    assert records[3]["max_distance"] == pytest.approx(0.05)
    assert [r["full"] for r in records] == [False, False, True, True]
    assert records[0]["max_distance"] is None


@pytest.mark.parametrize("k, fires", [(9, True), (10, False), (11, False)])
def test_epsilon_boundary_is_strict(k, fires):
    # the newest mask is k/100 away from the oldest in the window, 0 from the middle one
    eb = EarlyBird(window=3, epsilon=0.1)
    assert feed(eb, [flipped(), flipped(range(k)), flipped(range(k))]) == [False, False, fires]
    assert eb.drawn_step == (2 if fires else None)


def test_distance_just_above_epsilon_delays_the_draw_until_the_window_is_clean():
    eb = EarlyBird(window=3, epsilon=0.1)
    masks = [flipped(), flipped(range(11)), flipped(range(11)), flipped(range(11))]
    assert feed(eb, masks) == [False, False, False, True]  # 0.11 at step 2 is still in the FIFO
    assert eb.drawn_step == 3


def test_the_condition_compares_the_newest_with_each_older_mask_not_consecutive_ones():
    # consecutive distances 0.06, 0.06 < ε, but the newest is 0.12 from the oldest: no draw
    eb = EarlyBird(window=3, epsilon=0.1)
    assert feed(eb, [flipped(), flipped(range(6)), flipped(range(12))]) == [False, False, False]
    assert eb.distances[-1]["distances"] == pytest.approx([0.12, 0.06])


def test_steps_are_recorded_as_given():
    eb = EarlyBird(window=2, epsilon=0.1)
    assert eb.observe(flipped(), 100) is False
    assert eb.observe(flipped(range(1)), 200) is True
    assert eb.drawn_step == 200
    assert eb.observe(flipped(range(50)), 300) is True
    assert eb.drawn_step == 200 and eb.drawn_mask == flipped(range(1))


def test_invalid_arguments():
    with pytest.raises(ValueError):
        EarlyBird(window=1)
    with pytest.raises(ValueError):
        EarlyBird(epsilon=0.0)
    eb = EarlyBird()
    eb.observe(flipped(), 0)
    with pytest.raises(ValueError):
        eb.observe(Mask({"w": torch.ones(3, dtype=torch.bool)}), 1)


# ----------------------------------------------------------------------------- mask producers

class BNNet(nn.Module):
    def __init__(self, c1=4, c2=5, classes=3):
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)
        self.head = nn.Linear(c2, classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.head(x.mean(dim=(2, 3)))


@pytest.mark.parametrize("density", [0.0, 0.1, 0.33, 0.5, 0.77, 1.0])
def test_magnitude_mask_is_exact_k_and_global(density):
    g = torch.Generator().manual_seed(0)
    weights = {"a": torch.randn(7, 5, generator=g), "b": torch.randn(3, 3, 2, generator=g) * 3}
    mask = magnitude_mask(weights, density)
    total = 35 + 18
    assert sum(mask.kept().values()) == int(density * total + 0.5)
    kept = torch.cat([weights[n].abs()[mask[n]] for n in weights])
    pruned = torch.cat([weights[n].abs()[~mask[n]] for n in weights])
    if kept.numel() and pruned.numel():
        assert kept.min() >= pruned.max()


def test_magnitude_mask_is_exact_k_when_every_weight_ties():
    mask = magnitude_mask({"a": torch.ones(10, 10), "b": -torch.ones(7)}, 0.3)
    assert sum(mask.kept().values()) == 32  # round(0.3 * 107)
    assert magnitude_mask({"a": torch.ones(10, 10), "b": -torch.ones(7)}, 0.3) == mask  # deterministic


def test_magnitude_mask_ranks_across_layers():
    weights = {"small": torch.tensor([0.1, -0.2, 0.3]), "big": torch.tensor([-5.0, 4.0, 6.0])}
    mask = magnitude_mask(weights, 0.5)
    assert mask["small"].tolist() == [False, False, False]
    assert mask["big"].tolist() == [True, True, True]


def test_bn_channel_mask_ranks_abs_gamma_globally():
    net = BNNet()
    with torch.no_grad():
        net.bn1.weight.copy_(torch.tensor([5.0, -4.0, 3.0, -6.0]))
        net.bn2.weight.copy_(torch.tensor([0.1, -0.2, 3.5, 0.05, -7.0]))
    mask = bn_channel_mask(net, 4 / 9)  # keep round(4) of 9: |γ| in {7, 6, 5, 4}
    assert list(mask) == ["bn1.weight", "bn2.weight"]
    assert mask["bn1.weight"].tolist() == [True, True, False, True]
    assert mask["bn2.weight"].tolist() == [False, False, False, False, True]
    mask = bn_channel_mask(net, 5 / 9)  # the 5th largest |γ| is bn2's 3.5, not bn1's 3.0
    assert mask["bn2.weight"].tolist() == [False, False, True, False, True]
    assert mask["bn1.weight"].tolist() == [True, True, False, True]
    assert sum(bn_channel_mask(net, 0.5).kept().values()) == 5  # round half up of 4.5


def test_bn_channel_mask_needs_batchnorm():
    with pytest.raises(ValueError, match="BatchNorm"):
        bn_channel_mask(nn.Sequential(nn.Linear(3, 3)), 0.5)


def test_channel_to_weight_mask_zeroes_whole_output_channels_of_the_preceding_conv():
    net = BNNet()
    channels = Mask({"bn1.weight": torch.tensor([True, False, True, True]),
                     "bn2.weight": torch.tensor([False, True, True, False, True])})
    mask = channel_to_weight_mask(net, channels)
    assert mask.shapes() == {"conv1.weight": (4, 1, 3, 3), "conv2.weight": (5, 4, 3, 3)}
    for conv, bn in [("conv1.weight", "bn1.weight"), ("conv2.weight", "bn2.weight")]:
        for c, keep in enumerate(channels[bn].tolist()):
            assert bool(mask[conv][c].all()) is keep and bool(mask[conv][c].any()) is keep
    # as a full mask over the prunable weights: the head stays dense
    prunable = {"conv1.weight": net.conv1.weight, "conv2.weight": net.conv2.weight, "head.weight": net.head.weight}
    full = channel_to_weight_mask(net, channels, prunable=prunable)
    assert list(full) == list(prunable) and bool(full["head.weight"].all())
    assert torch.equal(full["conv2.weight"], mask["conv2.weight"])
    with pytest.raises(KeyError):
        channel_to_weight_mask(net, channels, prunable={"head.weight": net.head.weight, "conv1.weight": net.conv1.weight})


def test_channel_to_weight_mask_in_a_sequential_with_activations_and_a_bn1d():
    net = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                        nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    channels = bn_channel_mask(net, 0.5)
    mask = channel_to_weight_mask(net, channels)
    assert set(mask) == {"0.weight", "4.weight"}
    assert mask["4.weight"].sum(dim=1).tolist() == [3 * int(k) for k in channels["5.weight"].tolist()]


def test_channel_to_weight_mask_rejects_a_mismatched_predecessor():
    net = nn.Sequential(nn.Conv2d(2, 3, 1), nn.Conv2d(3, 5, 1), nn.BatchNorm2d(3))
    with pytest.raises(ValueError, match="preceded by '1'"):
        channel_to_weight_mask(net, Mask({"2.weight": torch.ones(3, dtype=torch.bool)}))
    with pytest.raises(KeyError):
        channel_to_weight_mask(net, Mask({"0.weight": torch.ones(3, 2, 1, 1, dtype=torch.bool)}))


# ----------------------------------------------------------------------------- slimming penalty

def _grads(net, x, y, extra=None):
    net.zero_grad()
    loss = nn.functional.cross_entropy(net(x), y)
    if extra is not None:
        loss = loss + extra(net)
    loss.backward()
    return {n: p.grad.clone() for n, p in net.named_parameters()}


def test_slimming_penalty_adds_lambda_sign_gamma_to_bn_weight_gradients():
    torch.manual_seed(0)
    net = BNNet().double()
    with torch.no_grad():
        net.bn1.weight.copy_(torch.tensor([0.5, -1.5, 0.0, 2.0]))  # a zero γ: subgradient 0
        net.bn2.weight.uniform_(-1, 1)
    x, y = torch.randn(6, 1, 5, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    lam = 0.25
    plain = _grads(net, x, y)
    handles = slimming_penalty(net, lam)
    hooked = _grads(net, x, y)
    # the same as differentiating the L1 penalty λ·Σ|γ| with autograd (|x|' = sign(x), 0 at 0)
    handles_off = list(handles)
    handles.remove()
    assert handles == [] and len(handles_off) == 2
    l1 = _grads(net, x, y, extra=lambda m: lam * (m.bn1.weight.abs().sum() + m.bn2.weight.abs().sum()))
    for name in plain:
        if name in ("bn1.weight", "bn2.weight"):
            gamma = dict(net.named_parameters())[name].detach()
            assert torch.allclose(hooked[name] - plain[name], lam * torch.sign(gamma), atol=1e-12)
            assert torch.allclose(hooked[name], l1[name], atol=1e-12)
        else:
            assert torch.equal(hooked[name], plain[name])
    assert hooked["bn1.weight"][2] == plain["bn1.weight"][2]
    # removed: gradients are the plain ones again
    again = _grads(net, x, y)
    assert all(torch.equal(again[n], plain[n]) for n in plain)


# ----------------------------------------------------------------------------- monitor

def test_monitor_raises_ticket_drawn_on_a_crafted_weight_sequence():
    layer = nn.Linear(10, 10, bias=False)
    g = torch.Generator().manual_seed(0)
    tiebreak = torch.rand(100, generator=g) * 0.1  # distinct magnitudes, all below the gap

    def weights_for(mask):  # |w| > 1 exactly where the mask keeps
        return (mask["w"].double() * 2 + tiebreak.double()).reshape(10, 10).float()

    base = flipped(range(50, 100))  # 50 kept
    swap = lambda k: flipped(range(50, 100 - k), range(k))  # k kept <-> k pruned: distance 2k/100
    seq = {1: base, 2: swap(10), 3: swap(13), 4: swap(13), 5: base, 6: base}
    # window 3, ε 0.1: step 3 sees d=0.26 to step 1 -> no; step 4 sees 0.06 and 0 -> draw
    monitor = EarlyBirdMonitor(layer, {"w": layer.weight}, density=0.5, every=1, window=3, epsilon=0.1)
    drawn = None
    for step in range(1, 7):
        with torch.no_grad():
            layer.weight.copy_(weights_for(seq[step]))
        try:
            monitor(step)
        except TicketDrawn as e:
            drawn = e
            break
    assert drawn is not None and drawn.step == 4 and step == 4
    assert drawn.mask == monitor.drawn_mask
    assert torch.equal(drawn.mask["w"].reshape(-1), seq[4]["w"])
    assert "step 4" in str(drawn)
    clone = pickle.loads(pickle.dumps(drawn))
    assert clone.step == 4 and clone.mask == drawn.mask
    monitor(5)  # raises at most once
    assert monitor.drawn_step == 4
    summary = monitor.summary()
    assert summary["drawn_step"] == 4 and len(summary["observations"]) == 4


def test_monitor_observes_once_per_interval_even_when_steps_jump():
    layer = nn.Linear(4, 4, bias=False)
    monitor = EarlyBirdMonitor(layer, {"w": layer.weight}, density=0.5, every=10, window=5, stop=False)
    for step in [1, 5, 9, 10, 11, 25, 26, 40, 41, 1000]:
        monitor(step)
    assert [r["step"] for r in monitor.early_bird.distances] == [10, 25, 40, 1000]
    m0 = EarlyBirdMonitor(layer, {"w": layer.weight}, density=0.5, every=10, stop=False)
    for step in [0, 3, 10]:
        m0(step)
    assert [r["step"] for r in m0.early_bird.distances] == [0, 10]


def test_monitor_without_stop_records_the_draw():
    layer = nn.Linear(4, 4, bias=False)  # weights never change: drawn when the FIFO fills
    monitor = EarlyBirdMonitor(layer, {"w": layer.weight}, density=0.5, every=2, window=3, stop=False)
    for step in range(1, 10):
        monitor(step)
    assert monitor.drawn_step == 6  # observations at 2, 4, 6


def test_monitor_validates_arguments():
    net = BNNet()
    with pytest.raises(ValueError):
        EarlyBirdMonitor(net, None, 0.5, every=1, mode="magnitude")
    with pytest.raises(ValueError):
        EarlyBirdMonitor(net, None, 0.5, every=0, mode="bn_channels")
    with pytest.raises(ValueError):
        EarlyBirdMonitor(net, None, 1.5, every=1, mode="bn_channels")
    with pytest.raises(ValueError):
        EarlyBirdMonitor(nn.Linear(2, 2), None, 0.5, every=1, mode="bn_channels")
    with pytest.raises(ValueError):
        EarlyBirdMonitor(net, None, 0.5, every=1, mode="channels")


def test_monitor_draws_a_channel_ticket_during_training_with_slimming():
    """A small BN conv net trained with SGD at a large learning rate and the slimming penalty:
    the channel ranking settles and the monitor stops training well before the budget ends."""
    torch.manual_seed(0)
    net = BNNet(c1=8, c2=8, classes=4)
    x = torch.randn(64, 1, 6, 6)
    y = (x[:, 0, :3].mean(dim=(1, 2)) > 0).long() + 2 * (x[:, 0, :, :3].mean(dim=(1, 2)) > 0).long()
    opt = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
    handles = slimming_penalty(net, 1e-3)
    monitor = EarlyBirdMonitor(net, None, density=0.5, every=5, mode="bn_channels", window=5, epsilon=0.1)
    budget, stopped = 400, None
    try:
        for step in range(1, budget + 1):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
            monitor(step)
    except TicketDrawn as e:
        stopped = e
    finally:
        handles.remove()
    assert stopped is not None, monitor.early_bird.distances[-3:]
    assert stopped.step < budget and stopped.step % 5 == 0
    assert sum(stopped.mask.kept().values()) == 8  # half of the 16 channels
    assert stopped.mask == bn_channel_mask(net, 0.5)  # training stopped where the ticket was drawn
    # the window before the draw: the newest mask within ε of the 4 before it
    records = monitor.early_bird.distances
    assert records[-1]["full"] and records[-1]["max_distance"] < 0.1
    assert any(r["max_distance"] is not None and r["max_distance"] >= 0.1 for r in records)  # it moved first
    assert stopped.step > 5 * 5  # so not at the first full window
    weight_mask = channel_to_weight_mask(net, stopped.mask)
    assert sum(weight_mask.kept().values()) == sum(
        int(k) * net.conv1.weight[0].numel() for k in stopped.mask["bn1.weight"]) + sum(
        int(k) * net.conv2.weight[0].numel() for k in stopped.mask["bn2.weight"])


# ----------------------------------------------------------------------------- several densities

def test_search_draws_each_density_as_a_monitor_alone_would_and_stops_after_the_last():
    layer = nn.Linear(10, 10, bias=False)
    g = torch.Generator().manual_seed(2)
    base = torch.randn(10, 10, generator=g)
    weights = {s: base + 2 * 0.8 ** s * torch.randn(10, 10, generator=g) for s in range(1, 41)}  # settling down
    densities = [0.2, 0.5, 0.8]

    def monitor(density, stop):
        return EarlyBirdMonitor(layer, {"w": layer.weight}, density, every=2, window=3, epsilon=0.05, stop=stop)

    alone = {}
    for d in densities:
        m = monitor(d, stop=True)
        for s, w in weights.items():
            with torch.no_grad():
                layer.weight.copy_(w)
            try:
                m(s)
            except TicketDrawn as drawn:
                alone[d] = (drawn.step, drawn.mask, m.summary())
                break
    assert [alone[d][0] for d in densities] == [18, 22, 20]

    at_draw = {}
    search = EarlyBirdSearch({d: monitor(d, stop=False) for d in densities},
                             on_draw=lambda d, m: at_draw.setdefault(d, (m.drawn_step, layer.weight.detach().clone())))
    stopped = None
    for s, w in weights.items():
        with torch.no_grad():
            layer.weight.copy_(w)
        try:
            search(s)
        except AllTicketsDrawn as e:
            stopped = e
            break
    assert stopped is not None and stopped.step == s == max(step for step, _, _ in alone.values())
    for d in densities:
        step, mask, summary = alone[d]
        m = search.monitors[d]
        assert m.drawn_step == step and m.drawn_mask == mask and m.summary() == summary
        assert at_draw[d][0] == step and torch.equal(at_draw[d][1], weights[step])  # called at its own step
    assert search.done


def test_search_validates_its_monitors():
    layer = nn.Linear(4, 4, bias=False)
    with pytest.raises(ValueError, match="at least one"):
        EarlyBirdSearch({})
    with pytest.raises(ValueError, match="stop=False"):
        EarlyBirdSearch({0.5: EarlyBirdMonitor(layer, {"w": layer.weight}, 0.5, every=1)})
