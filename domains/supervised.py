"""The accelerate training loop shared by the supervised domains (vision, NLP).

Batches and random draws (dropout) are indexed by step: both depend only on ``(seed, s)`` at step
``s``, so training that starts at a rewind step ``k`` replays exactly what the original run saw
from step ``k``.
"""

from __future__ import annotations

import abc
import contextlib
import math
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from tickets.domain import Domain, StepCallback, TrainResult
from tickets.errors import ConfigError, DivergedError
from tickets.optim import OptimizerConfig, load_optimizer_tensors, optimizer_tensors, set_lr

from domains.loop_config import LoopConfig

Batch = dict[str, torch.Tensor]
LossFn = Callable[[nn.Module, Batch], tuple[torch.Tensor, torch.Tensor]]  # -> (mean loss, logits)


class TensorTable(Dataset):
    """Columns of equal length held in memory; fetched a whole batch at a time."""

    def __init__(self, columns: Mapping[str, torch.Tensor]):
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            raise ValueError(f"columns differ in length: { {k: len(v) for k, v in columns.items()} }")
        self.columns = dict(columns)
        self.n = lengths.pop()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Batch:
        return {k: v[i] for k, v in self.columns.items()}

    def __getitems__(self, idx: list[int]) -> Batch:
        index = torch.as_tensor(idx)
        return {k: v[index] for k, v in self.columns.items()}


def _identity(batch):
    return batch


class StepBatchSampler(Sampler[list[int]]):
    """Batches for steps ``start_step .. steps-1``; epoch ``e`` is a permutation seeded by
    ``(seed, e)``, and the last incomplete batch of an epoch is dropped."""

    def __init__(self, n: int, batch_size: int, *, seed: int, start_step: int, steps: int):
        if batch_size > n:
            raise ValueError(f"batch_size {batch_size} is larger than the training set ({n})")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start_step, self.steps = start_step, steps
        self.per_epoch = n // batch_size

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step)

    def __iter__(self):
        perm, perm_epoch = None, -1
        for step in range(self.start_step, self.steps):
            epoch, i = divmod(step, self.per_epoch)
            if epoch != perm_epoch:
                g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                perm, perm_epoch = torch.randperm(self.n, generator=g), epoch
            yield perm[i * self.batch_size:(i + 1) * self.batch_size].tolist()


_ACCELERATOR: dict[tuple, Accelerator] = {}


def accelerator_for(loop: LoopConfig) -> Accelerator:
    """The Accelerator for this precision/device setting. ``split_batches``: each step's batch is
    split across processes, so a step means the same data and the same update on 1 or N processes."""
    key = (loop.mixed_precision, loop.cpu)
    if key not in _ACCELERATOR:
        if _ACCELERATOR:
            # accelerate keeps one precision per process; a second experiment in the same process
            # (tests, notebooks) with another one resets it, keeping the process group.
            from accelerate.state import AcceleratorState, GradientState

            AcceleratorState._reset_state(reset_partial_state=False)
            GradientState._reset_state()
            _ACCELERATOR.clear()
        _ACCELERATOR[key] = Accelerator(mixed_precision=loop.mixed_precision, cpu=loop.cpu, split_batches=True)
    return _ACCELERATOR[key]


def train_loop(model: nn.Module, data: TensorTable, loss_fn: LossFn, *, optimizer: OptimizerConfig,
               loop: LoopConfig, steps: int, start_step: int, seed: int, on_step: StepCallback | None,
               eval_every: int, validate: Callable[[nn.Module], dict[str, float]],
               optimizer_state: Mapping[str, torch.Tensor] | None = None,
               live: dict[str, torch.optim.Optimizer] | None = None) -> TrainResult:
    """``optimizer_state`` (from :func:`optimizer_tensors`) seeds the fresh optimizer; ``live``
    is filled with the optimizer in use, so ``on_step`` can read its state."""
    accelerator = accelerator_for(loop)
    if loop.batch_size % (accelerator.num_processes * loop.grad_accumulation):
        raise ConfigError(f"batch_size: {loop.batch_size} does not split into {accelerator.num_processes} "
                          f"processes x {loop.grad_accumulation} micro-batches")
    sampler = StepBatchSampler(len(data), loop.batch_size, seed=seed, start_step=start_step, steps=steps)
    single = accelerator.num_processes == 1
    # one process: batches straight from the in-memory table (a DataLoader costs ~2x the indexing);
    # several: accelerate's prepared loader splits each step's batch across the processes
    loader = None if single else DataLoader(data, batch_sampler=sampler, collate_fn=_identity)
    if accelerator.num_processes > 1 and accelerator.device.type == "cuda":
        # BatchNorm over the whole step's batch, as on one process (same Parameter objects)
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    raw = optimizer.build(model.parameters())
    base_lrs = [g["lr"] for g in raw.param_groups]
    if loader is None:
        prepared, opt = accelerator.prepare(model, raw)
        device = accelerator.device
        batches = ({k: v.to(device, non_blocking=True) for k, v in data.__getitems__(idx).items()} for idx in sampler)
    else:
        prepared, opt, batches = accelerator.prepare(model, raw, loader)
    # accelerate's optimizer wrapper is needed for fp16's loss scaling (and XLA); otherwise its
    # step and zero_grad cost ~30% more than the optimizer's own for nothing
    if accelerator.scaler is None and accelerator.distributed_type.value != "XLA":
        opt = raw
    reseed = _step_reseeder(accelerator.device)
    backward = _backward_for(accelerator)
    accumulate = loop.grad_accumulation
    if optimizer_state is not None:  # after prepare: the state moves to the parameters' device
        load_optimizer_tensors({"optimizer": raw}, _param_names(model), optimizer_state)
    if live is not None:
        live["optimizer"] = raw
    history: list[dict[str, float]] = []
    step = start_step
    guard = DivergenceGuard(steps=steps, lr=optimizer.lr)
    try:
        prepared.train()
        for batch in batches:
            reseed(seed * 1_000_003 + step)  # dropout and augmentation replay by step
            set_lr(opt, base_lrs, loop.schedule.factor(step, steps))
            opt.zero_grad(set_to_none=True)
            if accumulate == 1:
                loss, logits = loss_fn(prepared, batch)
                guard.record(loss, logits, step + 1)
                backward(loss)
            else:
                chunks = {k: v.chunk(accumulate) for k, v in batch.items()}
                for i in range(accumulate):
                    last = i == accumulate - 1
                    with contextlib.nullcontext() if last else accelerator.no_sync(prepared):
                        loss, logits = loss_fn(prepared, {k: c[i] for k, c in chunks.items()})
                        guard.record(loss, logits, step + 1)
                        backward(loss / accumulate)
            if loop.max_grad_norm is not None:  # pruned weights' gradients count unless pruning.mask_grads
                accelerator.clip_grad_norm_(prepared.parameters(), loop.max_grad_norm)
            opt.step()
            step += 1
            if on_step is not None:
                on_step(step)
            if step == steps or (eval_every and step % eval_every == 0):
                guard.check()
                record = validate(model)
                guard.check_validation(record, step)
                history.append({"step": step, **record})
                prepared.train()
        guard.check()
    except DivergedError:
        raise
    except Exception as exc:  # a callback stopped training (an Early-Bird draw): not from a diverged network
        guard.check(cause=exc)
        raise
    finally:
        _release(accelerator)
    return TrainResult(steps=step, history=history)


class DivergenceGuard:
    """Stops a training run that diverged, before its weights become a result.

    * A non-finite training loss (NaN or ±inf) at any step. The losses stay on the device (no
      host synchronisation, no device op per step) and are inspected together at each
      validation point, every ``FLUSH`` steps, at the end, and when a callback ends training
      early, so the error names the exact step of the first one.
    * A finite but exploded validation loss: above ``FACTOR`` times the larger of 1, the
      chance-level loss ``ln(C)`` of a ``C``-way output (cross-entropy of a uniform
      prediction) and the first training loss of the run. A sane run never gets there (an
      over-fitted classifier's validation loss stays within a few times chance); ``lr: 1e6``
      on digits reaches 1e19.
    """

    FACTOR = 1e3
    FLUSH = 1024  # losses kept between checks at most

    def __init__(self, *, steps: int, lr: float):
        self.steps, self.lr = steps, lr
        self.pending: list[torch.Tensor] = []  # the losses since the last check, still on the device
        self.pending_steps: list[int] = []
        self.first_loss: torch.Tensor | None = None
        self.outputs = 1

    def record(self, loss: torch.Tensor, logits: torch.Tensor | None, step: int) -> None:
        """Keeps the loss (a detached view: no device op, no sync); :meth:`check` inspects them."""
        value = loss.detach()
        if self.first_loss is None:
            self.first_loss = value.float().reshape(())
            if isinstance(logits, torch.Tensor) and logits.dim() > 0:
                self.outputs = int(logits.shape[-1])
        self.pending.append(value)
        self.pending_steps.append(step)
        if len(self.pending) >= self.FLUSH:
            self.check()

    def _advice(self) -> str:
        return f"lower the learning rate (optimizer.lr is {self.lr:g})"

    def check(self, cause: BaseException | None = None) -> None:
        if not self.pending:
            return
        losses = torch.stack([v.float().reshape(()) for v in self.pending])
        steps, self.pending, self.pending_steps = self.pending_steps, [], []
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad):
            i = int(bad[0])
            raise DivergedError(f"training diverged: the training loss is {float(losses[i])} at step {steps[i]} "
                                f"(of {self.steps}); {self._advice()}") from cause

    def check_validation(self, record: Mapping[str, float], step: int) -> None:
        loss = record.get("loss")
        if loss is None or self.first_loss is None:
            return
        chance = math.log(self.outputs) if self.outputs > 1 else 0.0
        scale = max(1.0, chance, float(self.first_loss))
        if not math.isfinite(loss) or loss > self.FACTOR * scale:
            raise DivergedError(f"training diverged: the validation loss is {loss:.3g} at step {step} (of "
                                f"{self.steps}), over {self.FACTOR:g} x {scale:.3g} (the largest of 1, the "
                                f"chance-level loss ln({self.outputs}) and the first training loss); {self._advice()}")


def _step_reseeder(device: torch.device) -> Callable[[int], None]:
    """Seeds the generators a step draws from (dropout, augmentation). On the CPU that is the
    default generator alone, the same stream ``torch.manual_seed`` gives at ~1/100 of its cost
    (it also seeds every accelerator's generators and walks the call stack); elsewhere
    ``torch.manual_seed`` as it is."""
    if device.type == "cpu":
        return torch.default_generator.manual_seed
    return torch.manual_seed


def _backward_for(accelerator: Accelerator) -> Callable[[torch.Tensor], None]:
    """``accelerator.backward`` where it does something (fp16 loss scaling, DeepSpeed, Megatron-LM,
    its own gradient accumulation); elsewhere ``loss.backward()``, which is all it calls there:
    its division of the loss by 1 and its look-ups cost ~20 µs a step (~1% of a LeNet step). The
    gradients are the same bit for bit (x / 1 and its gradient are exact)."""
    plain = (accelerator.scaler is None and accelerator.gradient_accumulation_steps == 1
             and accelerator.distributed_type.value not in ("DEEPSPEED", "MEGATRON_LM"))
    return torch.Tensor.backward if plain else accelerator.backward


def _param_names(model: nn.Module) -> dict[int, str]:
    return {id(p): n for n, p in model.named_parameters()}


def _release(accelerator: Accelerator) -> None:
    """Drop the accelerator's references to this level's model, optimizer and loader. On a GPU
    ``free_memory`` also empties the device cache; on the CPU its full garbage collection costs
    ~0.2 s per level for nothing, so only the references go (what free_memory does besides)."""
    if accelerator.device.type != "cpu":
        accelerator.free_memory()
        return
    accelerator._models, accelerator._optimizers = [], []
    accelerator._schedulers, accelerator._dataloaders = [], []
    accelerator.step = 0


@torch.no_grad()
def evaluate_loop(model: nn.Module, data: TensorTable, loss_fn: LossFn, *, loop: LoopConfig,
                  label_key: str = "labels") -> dict[str, float]:
    accelerator = accelerator_for(loop)
    device = next(model.parameters()).device
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    for start in range(0, len(data), loop.eval_batch_size):
        idx = list(range(start, min(start + loop.eval_batch_size, len(data))))
        batch = {k: v.to(device) for k, v in data.__getitems__(idx).items()}
        with accelerator.autocast():
            loss, logits = loss_fn(model, batch)
        n = len(idx)
        total_loss += float(loss) * n
        correct += int((logits.argmax(-1) == batch[label_key]).sum())
        count += n
    return {"accuracy": correct / count, "loss": total_loss / count}


class SupervisedDomain(Domain):
    """A domain whose data are in-memory train/validation/test tables (``self.data``), trained
    with :func:`train_loop`. Subclasses give ``data``, ``loss`` and ``build_model``; their
    ``Config`` extends :class:`LoopConfig` with an ``optimizer``."""

    primary_metric = "accuracy"
    supports_optimizer_state = True
    data: Any  # has .train, .validation and .test TensorTables
    _live: tuple[nn.Module, dict[str, torch.optim.Optimizer]] | None = None  # during train()

    @abc.abstractmethod
    def loss(self, model: nn.Module, batch: Batch, *, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean loss, logits) of ``model`` on ``batch``; ``train`` turns on training-only data
        transforms (augmentation)."""

    def train(self, model: nn.Module, *, steps: int, start_step: int = 0, seed: int = 0,
              on_step: StepCallback | None = None, eval_every: int = 0,
              optimizer_state: Mapping[str, torch.Tensor] | None = None) -> TrainResult:
        live: dict[str, torch.optim.Optimizer] = {}
        self._live = (model, live)
        try:
            return train_loop(model, self.data.train, partial(self.loss, train=True),
                              optimizer=self.config.optimizer, loop=self.config,
                              steps=steps, start_step=start_step, seed=seed, on_step=on_step,
                              eval_every=eval_every, validate=lambda m: self.evaluate(m, "validation"),
                              optimizer_state=optimizer_state, live=live)
        finally:
            self._live = None

    def check_config(self) -> None:
        n = len(self.data.train)
        if self.config.batch_size > n:
            raise ConfigError(f"config.domain.batch_size: {self.config.batch_size} is larger than the training split "
                              f"({n} examples); lower batch_size to {n} or less")

    def optimizer_state(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        """The state of the optimizer training ``model`` (only while ``train`` runs)."""
        if self._live is None or self._live[0] is not model:
            return None
        return optimizer_tensors(self._live[1], _param_names(model))

    def scoring_batches(self, n: int, seed: int, *, model: nn.Module | None = None) -> list[Batch]:
        sampler = StepBatchSampler(len(self.data.train), self.config.batch_size, seed=seed, start_step=0, steps=n)
        return [self.data.train.__getitems__(idx) for idx in sampler]

    def balanced_scoring_batches(self, samples_per_class: int, n: int, seed: int) -> list[Batch] | None:
        """GraSP's class-balanced batches: each of the ``n`` holds exactly ``samples_per_class``
        training examples of every class found in the training labels (sorted by class), drawn
        without replacement from a permutation of each class seeded by ``seed`` (the next batch
        takes the next examples, wrapping around a class when it runs out). None where labels
        are not one integer class per example (regression, language modelling)."""
        table = self.data.train
        labels = table.columns.get("labels")
        if labels is None or labels.dim() != 1 or labels.is_floating_point() or labels.dtype == torch.bool:
            return None
        classes, counts = torch.unique(labels, return_counts=True)
        short = {int(c): int(k) for c, k in zip(classes, counts) if k < samples_per_class}
        if short:
            raise ConfigError(f"pruning.samples_per_class: {samples_per_class} examples of every class are needed "
                              f"for GraSP, but the training split has only {short} (class: count); lower it")
        g = torch.Generator().manual_seed(seed)
        pools = [torch.nonzero(labels == c).reshape(-1) for c in classes]
        pools = [p[torch.randperm(p.numel(), generator=g)] for p in pools]
        batches = []
        for i in range(n):
            idx = []
            for pool in pools:
                start = (i * samples_per_class) % pool.numel()
                take = torch.arange(start, start + samples_per_class) % pool.numel()
                idx.append(pool[take])
            batches.append(table.__getitems__(torch.cat(idx).tolist()))
        return batches

    def scoring_loss(self, model: nn.Module, batch: Batch, *, temperature: float = 1.0) -> torch.Tensor:
        device = next(model.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        _, logits = self.loss(model, batch, train=False)
        return F.cross_entropy(logits.float() / temperature, batch["labels"])

    def evaluate(self, model: nn.Module, split: str = "test") -> dict[str, float]:
        if split not in ("train", "validation", "test"):
            raise ValueError(f"unknown split {split!r} (train, validation or test)")
        return evaluate_loop(model, getattr(self.data, split), partial(self.loss, train=False), loop=self.config)
