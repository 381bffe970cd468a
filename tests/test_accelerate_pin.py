"""domains/supervised.py leans on two private parts of accelerate (no public API does the same
without a full garbage collection per level): resetting its per-process state to switch mixed
precision within one process (``AcceleratorState._reset_state``, ``GradientState._reset_state``),
and dropping an Accelerator's references to a finished level (``_models``, ``_optimizers``,
``_schedulers``, ``_dataloaders``). These tests pin both, so an accelerate upgrade that changes
them fails here, not in a user's run."""

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState, PartialState
from torch.utils.data import DataLoader

from domains.supervised import LoopConfig, _release, accelerator_for


def test_the_private_reset_hooks_exist():
    assert callable(AcceleratorState._reset_state) and callable(GradientState._reset_state)


def test_switching_mixed_precision_in_one_process():
    processes = PartialState().num_processes
    for precision in ("bf16", "no", "bf16", "no"):
        acc = accelerator_for(LoopConfig(mixed_precision=precision, cpu=True))
        assert acc.mixed_precision == precision and acc.state.mixed_precision == precision
        layer = torch.nn.Linear(3, 2)
        acc.prepare(layer, torch.optim.SGD(layer.parameters(), lr=0.1))
        with acc.autocast():
            out = torch.nn.functional.linear(torch.ones(1, 3), layer.weight)
        assert out.dtype == (torch.bfloat16 if precision == "bf16" else torch.float32)
        _release(acc)
    assert PartialState().num_processes == processes  # the process group is kept


def test_release_drops_what_free_memory_drops():
    """After ``_release`` the public ``free_memory`` finds nothing more to clear: an accelerate
    that starts keeping references somewhere new fails here."""
    acc = accelerator_for(LoopConfig(cpu=True))
    model = torch.nn.Linear(3, 2)
    acc.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1),
                DataLoader(torch.utils.data.TensorDataset(torch.ones(4, 3)), batch_size=2),
                torch.optim.lr_scheduler.StepLR(torch.optim.SGD(model.parameters(), lr=0.1), 1))
    _release(acc)
    before = {k: (list(map(id, v)) if isinstance(v, list) else id(v)) for k, v in vars(acc).items()}
    Accelerator.free_memory(acc)
    after = {k: (list(map(id, v)) if isinstance(v, list) else id(v)) for k, v in vars(acc).items()}
    lists = {k for k, v in vars(acc).items() if isinstance(v, list)}
    assert {k: before[k] for k in lists} == {k: after[k] for k in lists}
    assert all(before[k] == [] for k in ("_models", "_optimizers", "_schedulers", "_dataloaders"))
    assert acc.step == 0
