"""``tickets export RUN_DIR/level_NN|TICKET_DIR --to sparse|dense-small --out DIR``: a ticket as a
model that runs faster. ``sparse``: the pruned layers hold torch sparse CSR weights and multiply by
them (:mod:`tickets.sparse_modules`). ``dense-small``: a structured ticket's removed units cut out,
a smaller dense model (:mod:`tickets.export_small`).

The exported network is the ticket as stored: its rewind weights with the mask applied (a run keeps
only the prunable weights after training, not the biases and norms, so the trained network is not
there to export). It is checked before anything is written: on real inputs (two of the domain's
scoring batches) every converted layer's output and the loss equal the masked dense model's within
``TOLERANCE`` of their scale, or the export is refused. ``DIR`` holds ``export.json`` (the format,
the source, each layer's shape and kept count, the check's figures), the run's ``config.yaml`` and
``weights.safetensors`` (every other tensor of the model's state, and per CSR weight its
``.crow_indices``, ``.col_indices`` and ``.values``); :func:`load_exported` rebuilds the model from
them with every index and value checked, nothing unpickled.
"""

from __future__ import annotations

import copy
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import store
from .artifact import Ticket
from .config import load_experiment
from .errors import ArtifactError, ConfigError, ExportCheckError
from .runner import stage_seed
from .selection import select_prunable
from .sparse_modules import quiet_beta, to_sparse, weight_matrix, why_not_sparse

FORMAT, VERSION = "tickets.export", 1
FORMATS = ("sparse", "dense-small", "semi-structured")
TOLERANCE = 1e-5  # relative to the largest |output| of the layer compared
CHECK_BATCHES = 2
NATIVE = "native"  # dense-small: the directory of the domain's own form (save_pretrained, an SB3 zip)
PARTS = ("crow_indices", "col_indices", "values")


def resolve_source(source: str | Path) -> tuple[Path, Path]:
    """(ticket directory, run directory) of ``RUN_DIR/level_NN`` or a ticket directory in a run."""
    source = Path(source)
    if (source / "ticket" / "ticket.json").is_file():
        ticket_dir, run_dir = source / "ticket", source.parent
    elif (source / "ticket.json").is_file():
        ticket_dir, run_dir = source, source.parent.parent
    else:
        raise ArtifactError(f"{source}: not a level directory with a ticket (level_NN/ticket) or a ticket directory "
                            "(no ticket.json); level 0 is the dense network, which has no ticket to export", source)
    if not (run_dir / "config.yaml").is_file():
        raise ArtifactError(f"{ticket_dir}: a ticket outside a run directory; exporting builds the model from the "
                            f"run's config.yaml, and {run_dir / 'config.yaml'} is not there", ticket_dir)
    return ticket_dir, run_dir


def export(source: str | Path, out: str | Path, to: str = "sparse") -> dict[str, Any]:
    """Write the export to ``out`` (which must not hold files); its ``export.json`` record."""
    if to not in FORMATS:
        raise ConfigError(f"--to: {to!r} is not an export format here (known: {', '.join(FORMATS)})")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out: {out} already holds files; give a new or empty directory (nothing is overwritten)")
    ticket_dir, run_dir = resolve_source(source)
    experiment = load_experiment(run_dir / "config.yaml")
    domain = experiment.make_domain()
    ticket = Ticket.load(ticket_dir)
    model = domain.build_model(seed=experiment.config.seed)
    mask = ticket.apply(model)  # names and shapes checked; survivors at the ticket's weights, the rest 0
    model.eval()
    seed = stage_seed(experiment.config.seed, "export")
    with tempfile.TemporaryDirectory(prefix="tickets-export-") as tmp:
        staging = Path(tmp)
        if to == "sparse":
            tensors, part = _sparse(domain, model, mask, seed)
        elif to == "semi-structured":
            tensors, part = _semi(domain, model, mask, ticket.meta.get("found", {}), seed)
        else:
            from .export_small import shrink

            params = dict(model.named_parameters())
            small, removed = shrink(domain, model, mask, {n: params[n] for n in mask}, seed)  # a copy: model unchanged
            check = verify(domain, model, small, [""], seed=seed)  # the model's outputs and loss
            tensors = small.state_dict()
            native = _native(domain, model, small, seed, staging)
            part = {"removed": removed, "check": check, "native": native,
                    "parameters": {"before": sum(p.numel() for p in model.parameters()),
                                   "after": sum(p.numel() for p in small.parameters())}}
        record = {"format": FORMAT, "version": VERSION, "to": to, "source": str(ticket_dir), "domain": domain.name,
                  "found": ticket.meta.get("found", {}), **part}
        out.mkdir(parents=True, exist_ok=True)
        if (staging / NATIVE).exists():
            shutil.copytree(staging / NATIVE, out / NATIVE)
        store.write_tensors(out / "weights.safetensors", tensors)
        shutil.copyfile(run_dir / "config.yaml", out / "config.yaml")
        store.write_json(out / "export.json", record)  # last: an export without it is not one
    return record


def _native(domain, reference: nn.Module, small: nn.Module, seed: int, staging: Path) -> dict[str, Any]:
    """The smaller model in the domain's own form (``save_native``), loaded back by the domain's
    library and checked against the masked model like the export itself; written to ``staging``."""
    record = domain.save_native(small, staging / NATIVE)
    if "skipped" in record:
        return record
    loaded = domain.load_native(staging / NATIVE)
    path = f"{NATIVE}/{record['path']}" if record["path"] else NATIVE
    return {**record, "path": path, "check": verify(domain, reference, loaded, [""], seed=seed)}


def _semi(domain, model: nn.Module, mask, found: dict[str, Any], seed: int
          ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from . import export_semi as semi

    semi.check_fits(found, model, mask)
    device = semi.require_cuda()
    reference = semi.half_copy(model, device)
    sparse = semi.to_semi_structured(semi.half_copy(model, device), mask)
    check = verify(domain, reference, sparse, [n.rpartition(".")[0] for n in mask], seed=seed,
                   tolerance=semi.TOLERANCE)
    layers = {name: {"shape": list(mask[name].shape), "kept": int(mask[name].sum())} for name in mask}
    return ({k: v.cpu() for k, v in reference.state_dict().items()},
            {"layers": layers, "dtype": "float16", "check": check})


def _sparse(domain, model: nn.Module, mask, seed: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    modules = dict(model.named_modules())
    refused = [f"{name} ({why})" for name in mask
               if (why := why_not_sparse(modules.get(name.rpartition(".")[0], nn.Identity()))) is not None]
    if refused:
        raise ConfigError(f"--to sparse: these pruned weights have no CSR layer: {', '.join(refused)}")
    reference = copy.deepcopy(model)
    layers = {name: {"shape": list(mask[name].shape),
                     "matrix": list(weight_matrix(modules[name.rpartition('.')[0]]).shape),
                     "kept": int(mask[name].sum())} for name in mask}
    with quiet_beta():
        sparse = to_sparse(model, {name: None for name in mask})
        check = verify(domain, reference, sparse, [n.rpartition(".")[0] for n in mask], seed=seed)
    tensors = {}
    for key, value in sparse.state_dict().items():
        if key in layers:
            tensors.update({f"{key}.{part}": getattr(value, part)() for part in PARTS})
        else:
            tensors[key] = value
    return tensors, {"layers": layers, "check": check}


@torch.no_grad()
def verify(domain, reference: nn.Module, sparse: nn.Module, owners: list[str], *, seed: int,
           tolerance: float = TOLERANCE) -> dict[str, Any]:
    """The outputs of the modules ``owners`` ("": the model itself) and the loss, exported against
    the masked model, on the domain's batches."""
    batches = domain.scoring_batches(CHECK_BATCHES, seed, model=reference)
    if not batches:
        raise ConfigError(f"export: the {domain.name} domain gives no inputs to check the export on "
                          "(scoring_batches), so it is refused")
    worst = 0.0
    for batch in batches:
        outs = []
        for model in (reference, sparse):
            seen: dict[str, torch.Tensor] = {}
            hooks = [model.get_submodule(o).register_forward_hook(
                lambda _m, _i, y, o=o: seen.__setitem__(o, output_tensor(y).detach().clone())) for o in owners]
            try:
                loss = domain.scoring_loss(model, batch)
            finally:
                for h in hooks:
                    h.remove()
            outs.append((seen, loss.detach()))
        (dense_out, dense_loss), (sparse_out, sparse_loss) = outs
        missing = [o for o in owners if o in dense_out and o not in sparse_out]
        if missing:
            raise ExportCheckError(f"export check: the sparse model never ran {missing[0]}")
        pairs = [(o, dense_out[o], sparse_out[o]) for o in owners if o in dense_out] + [("loss", dense_loss,
                                                                                        sparse_loss)]
        for what, a, b in pairs:
            scale = max(1.0, float(a.abs().max()))
            diff = float((a - b).abs().max())
            if not math.isfinite(diff) or diff > tolerance * scale:
                raise ExportCheckError(f"export check: {what}'s output differs from the masked model's by {diff:.3g} "
                                       f"(allowed {tolerance * scale:.3g}); nothing is written")
            worst = max(worst, diff / scale)
    return {"batches": len(batches), "max_relative_difference": worst, "tolerance": tolerance}


def output_tensor(out: Any) -> torch.Tensor:
    """A module's output as one tensor (a model output's logits, a tuple's first float tensor)."""
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits
    return next(t for t in out if isinstance(t, torch.Tensor) and t.is_floating_point())


def load_exported(directory: str | Path) -> tuple[nn.Module, Any]:
    """(the exported model, its domain) from an export directory; everything read is checked."""
    directory = Path(directory)
    record = store.read_json(directory / "export.json")
    if (not isinstance(record, dict) or record.get("format") != FORMAT or record.get("version") != VERSION
            or record.get("to") not in FORMATS):
        raise ArtifactError(f"{directory / 'export.json'}: not a {FORMAT} v{VERSION} record", directory)
    experiment = load_experiment(directory / "config.yaml")
    domain = experiment.make_domain()
    model = domain.build_model(seed=experiment.config.seed)
    tensors = store.read_tensors(directory / "weights.safetensors")
    semi_layers: list[str] = []
    if record["to"] == "semi-structured":
        from .export_semi import require_cuda

        device = require_cuda(f"{directory}: a semi-structured export")
        semi_layers = list(record.get("layers") or {})
        if not semi_layers:
            raise ArtifactError(f"{directory / 'export.json'}: no layers", directory)
        layers = {}
    elif record["to"] == "sparse":
        layers = record.get("layers")
        if not isinstance(layers, dict) or not layers:
            raise ArtifactError(f"{directory / 'export.json'}: no layers", directory)
        to_sparse(model, {name: _read_csr(directory, name, info, tensors) for name, info in layers.items()})
    else:
        from .export_small import rebuild

        layers = {}
        p = experiment.config.pruning
        prunable = select_prunable(model, p.include, p.exclude, base=domain.prunable(model))
        rebuild(domain, model, prunable, record.get("removed"), stage_seed(experiment.config.seed, "export"))
    state = model.state_dict()
    dense = {k: v for k, v in tensors.items() if not any(k.startswith(f"{n}.") for n in layers)}
    expected = {k for k in state if k not in layers}
    if set(dense) != expected:
        diff = sorted(set(dense) ^ expected)
        raise ArtifactError(f"{directory / 'weights.safetensors'}: the tensors do not match the model "
                            f"(e.g. {diff[:3]})", directory)
    for key, value in dense.items():
        if tuple(value.shape) != tuple(state[key].shape) or (value.is_floating_point()
                                                            and not bool(torch.isfinite(value).all())):
            raise ArtifactError(f"{directory / 'weights.safetensors'}: {key} has the wrong shape or a non-finite "
                                "value", directory)
    model.load_state_dict(dense, strict=False)  # CSR weights are in place already
    if semi_layers:
        from .export_semi import half_copy, to_semi_structured

        params = dict(model.named_parameters())
        if any(n not in params for n in semi_layers):
            raise ArtifactError(f"{directory / 'export.json'}: a layer it names is not in the model", directory)
        model = to_semi_structured(half_copy(model, device), semi_layers)
    return model.eval(), domain


def _read_csr(directory: Path, name: str, info: Any, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    where = f"{directory / 'weights.safetensors'}: {name}"
    try:
        rows, cols = (int(x) for x in info["matrix"])
        kept = int(info["kept"])
        crow, col, values = (tensors[f"{name}.{part}"] for part in PARTS)
    except (KeyError, TypeError, ValueError):
        raise ArtifactError(f"{where}: its CSR parts or its record in export.json are missing", directory) from None
    ok = (crow.dtype in (torch.int32, torch.int64) and col.dtype == crow.dtype and crow.dim() == col.dim() == 1
          and values.dim() == 1 and crow.numel() == rows + 1 and col.numel() == values.numel() == kept
          and int(crow[0]) == 0 and int(crow[-1]) == kept and bool((crow[1:] >= crow[:-1]).all())
          and (kept == 0 or (int(col.min()) >= 0 and int(col.max()) < cols))
          and bool(torch.isfinite(values).all()))
    if not ok:
        raise ArtifactError(f"{where}: not a valid {rows} x {cols} CSR matrix with {kept} entries", directory)
    with quiet_beta():
        return torch.sparse_csr_tensor(crow, col, values, (rows, cols), check_invariants=True)
