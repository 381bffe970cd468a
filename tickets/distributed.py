"""Several processes, one run: every process trains, the main one writes, masks are identical.

Launchers (``accelerate launch``, ``torchrun``) set ``WORLD_SIZE``/``RANK``; :func:`init_from_env`
starts the process group then (gloo on CPU, nccl on GPU), and libraries that come later
(accelerate) reuse it. With one process every function here is a no-op.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from .masks import Mask


def init_from_env() -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and dist.is_available() and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main() -> bool:
    return not active() or dist.get_rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast_mask(mask: Mask) -> Mask:
    """The main process's mask, on every process."""
    if not active():
        return mask
    out = {}
    for name, m in mask.items():
        t = m.to(torch.uint8)
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.broadcast(t, src=0)
        out[name] = t.cpu().bool()
    return Mask(out)
