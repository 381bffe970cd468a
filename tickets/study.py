"""Studies: one question asked in several domains side by side, and a transfer matrix, over seeds.

A study file (``configs/studies/*.yaml``) is read, checked and compiled into ordered entries, each
an ordinary single-seed experiment with the labels of the entries it needs; nothing runs here.

```yaml
name: cross_domain          # letters, digits, '_', '.', '-' (used in the transfer runs' names)
seeds: [0, 1]               # optional: replaces every experiment's seed and seeds
experiments:                # optional
  - label: vision                         # unique in the study
    config: ../vision/lenet300_mnist.yaml # relative to this file
    overrides: {pruning.levels: 3}        # dotted key -> value, as `tickets run ... key=value`
  - {label: rl, config: ../rl/ppo_cartpole.yaml, grid: {domain.optimizer.lr: [3.0e-4, 1.0e-3]}}
transfer:                   # optional: every source's tickets trained on every target
  sources: [{label: adam, config: ..., overrides: {...}}]   # items as in experiments (grid too)
  targets: [{label: sgd, config: ..., overrides: {...}}, {label: adam}]
  levels: [2, 4]            # source levels to transfer (default: every level)
  adapt: []                 # as TransferConfig: name patterns that may not fit (a new head)
  head_policy: dense
  weights: source
  controls: [reinit, random_mask]   # the transfer runs' controls (default: each target config's)
  diagonal: true            # also run each target's own IMP, the reference of its column
analyses:                   # optional: analyses as stages of the runs, and sections of the report
  - masks                                 # every run's layer densities; the tickets' overlap across seeds/transfers
  - {name: lmc, options: {ks: [0, 100]}, groups: [vision]}   # options of the analysis; groups: fnmatch patterns
```

Several matrices: ``transfers: [{name: datasets, sources: ..., targets: ...}, {name: optimizers, ...}]``
instead of ``transfer:``, each with a ``name`` (its report section and figures). Labels are unique
across the study, except that a source listed again in a later matrix (same label, same experiment)
is one run that both matrices read.

Compilation, in this order (an entry's needs always come before it):
  * ``experiments``, then ``transfer.sources`` (role ``source``), then with ``diagonal`` each target's
    own run (role ``diagonal``), then one ``target`` entry per (source, target) pair: the target's
    config and overrides plus ``transfer: {source: <the source's run directory>, levels, adapt,
    head_policy, weights}`` and ``controls``, named ``<study>-<source>-to-<target>``.
  * A grid gives one experiment per combination, labelled ``<label>[<key>=<value>,...]`` (the key's
    last part, or the whole key where two grid keys end alike).
  * Entries are single-seed: an experiment over several seeds (the study's ``seeds``, else its
    config's own ``seeds:``) gives one entry per seed, labelled ``<label>@seed<k>``, its experiment
    ``with_seed(k)`` (the run directory ``tickets run`` gives that seed). The target entry of seed k
    trains the tickets of the source's seed-k run and needs that entry; a target seed the source
    does not have is refused. Pair labels are ``<source>-><target>`` (``@seed<k>`` after).
  * Run directories are ``<out>/<name>-<hash>``, as the runner names them; the source's is written
    into the target's config as given (``out`` relative stays relative: run from the same directory).
  * A target given as ``{label: <a source's label>}`` (or with that label and the same experiment)
    is that source: its cell is the diagonal, not a transfer, and the source run is its reference.
    A source and a target that are the same experiment under two labels are refused (a transfer
    from itself). No experiment, source or target may be a transfer itself (``transfer:`` in its
    config), so the format has no chains and no cycles: targets need sources, nothing else needs.
  * The runner's own checks that need the data or the environment (``check_config``, budgets,
    step multiples) run when the executor builds each entry's runner, still before training.

Refused, naming the file and the entry (``study.yaml: transfer.targets[1] (rot90): ...``, or
``transfers[0].targets[1]``), before
anything runs: unknown keys; a missing or unreadable config; a bad override (the config's own
error); a label used twice; two entries that are one run; a transfer from itself; a source or an
experiment that is itself a transfer; a target of another domain than its source, or whose
prunable parameters (or, with ``weights: source``, whose weights) do not fit the source's, except
names matched by ``adapt`` (both template models are built: torch is imported for this check only,
``check_fit=False`` skips it); levels the source does not have; an empty study; ``transfer`` and
``transfers`` together, a matrix of ``transfers`` without a name or with another's; ``seed`` or
``seeds`` in an entry's overrides or grid when the study has ``seeds`` (set them in one place);
``transfer`` in any overrides (the matrix sets it); ``controls`` in a target's overrides when the
matrix sets them.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from . import registry
from .config import Experiment, TransferConfig, load_experiment
from .errors import ConfigError
from .study_config import Item, MatrixConfig, StudyItem, entry_error, expand, override_strings, read_study

Role = Literal["experiment", "source", "target", "diagonal"]


@dataclass(frozen=True)
class StudyEntry:
    label: str
    experiment: Experiment  # single-seed
    needs: tuple[str, ...]  # labels of the entries whose runs this one reads
    role: Role
    source_label: str | None = None  # the matrix labels (without the seed suffix)
    target_label: str | None = None
    seed: int = 0
    group: str = ""  # the label without the seed suffix: the entries of one experiment over seeds
    where: str = ""  # the item in the study file, e.g. "transfer.targets[1]"
    matrix: str | None = None  # the name of the transfer matrix of a source, diagonal or target entry


@dataclass
class Study:
    name: str
    path: Path
    out: Path
    seeds: list[int] | None
    entries: list[StudyEntry]
    analyses: list[Any] = dataclasses.field(default_factory=list)  # StudyAnalysis items (tickets.study_config)

    def entry(self, label: str) -> StudyEntry:
        for e in self.entries:
            if e.label == label:
                return e
        raise KeyError(f"study {self.name}: no entry {label!r}")

    def run_dir(self, label: str) -> Path:
        return run_path(self.entry(label).experiment, self.out)


def run_path(experiment: Experiment, out: str | Path) -> Path:
    """The run directory the runner gives ``experiment`` under ``out``."""
    return experiment.run_dir(out)


@dataclass
class _Loaded:
    item: Item
    experiment: Experiment  # as loaded: over several seeds, or one

    @property
    def seeds(self) -> list[int]:
        return self.experiment.config.seeds or [self.experiment.config.seed]

    def at(self, seed: int) -> Experiment:
        return self.experiment.with_seed(seed) if self.experiment.config.seeds else self.experiment

    def label(self, seed: int) -> str:
        return f"{self.item.label}@seed{seed}" if self.experiment.config.seeds else self.item.label

    @property
    def name(self) -> str:
        return f"{self.item.where} ({self.item.label})"


def load_study(path: str | Path, out: str | Path, *, check_fit: bool = True) -> Study:
    """Read, check and compile a study file (see the module docstring); writes nothing."""
    path = Path(path)
    try:
        return _compile(path, Path(out), check_fit)
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(message if message.startswith(f"{path}:") else f"{path}: {message}") from None


def _compile(path: Path, out: Path, check_fit: bool) -> Study:
    study = read_study(path)
    base = path.parent
    matrices = study.matrices()
    if not study.experiments and not matrices:
        raise ConfigError("the study has no experiments and no transfer matrix")
    labels: dict[str, _Loaded] = {}
    sources: dict[str, _Loaded] = {}  # every matrix's sources so far, by label
    experiments = [_load(i, study.seeds) for n, raw in enumerate(study.experiments)
                   for i in expand(raw, f"experiments[{n}]", base)[1]]
    for loaded in experiments:
        _claim(labels, loaded)
    entries = [_entry(x, k, "experiment") for x in experiments for k in x.seeds]
    for where, matrix in matrices:
        entries += _matrix_entries(study.name, where, matrix, base, out, study.seeds, labels, sources, check_fit)
    entries.sort(key=lambda e: ("experiment", "source", "diagonal", "target").index(e.role))  # stable: needs first
    _check_distinct_runs(entries, out)
    groups = {e.group for e in entries}
    for i, analysis in enumerate(study.analyses):
        for pattern in analysis.groups or []:
            if not fnmatch.filter(groups, pattern):
                raise ConfigError(f"analyses[{i}].groups: {pattern!r} matches no entry group "
                                  f"(groups: {', '.join(sorted(groups))})")
    return Study(study.name, path, out, study.seeds, entries, list(study.analyses))


def analyses_of(study: Study, entry: StudyEntry) -> list[Any]:
    """The study's analyses that ``entry``'s run gets as stages."""
    return [a for a in study.analyses if a.applies_to(entry.group)]


def _matrix_entries(name: str, where: str, matrix: MatrixConfig, base: Path, out: Path, seeds: list[int] | None,
                    labels: dict[str, _Loaded], earlier: dict[str, _Loaded], check_fit: bool) -> list[StudyEntry]:
    """The source, diagonal and target entries of one matrix (``where``: its place in the file)."""
    source_items: dict[str, StudyItem] = {}
    sources: list[_Loaded] = []
    targets: list[_Loaded] = []
    for n, raw in enumerate(matrix.sources):
        item, items = expand(raw, f"{where}.sources[{n}]", base)
        source_items.setdefault(item.label, item)
        sources += [_load(i, seeds) for i in items]
    for n, raw in enumerate(matrix.targets):
        item, items = expand(raw, f"{where}.targets[{n}]", base, source_items)
        own = item is not source_items.get(item.label)  # else the source's item, whose controls are its own
        targets += [_load(i, seeds, matrix if own else None) for i in items]
    reused: set[int] = set()  # sources of an earlier matrix listed again: run once, read by both
    for n, loaded in enumerate(sources):
        prior = earlier.get(loaded.item.label)
        if prior is not None and run_path(prior.experiment, out) == run_path(loaded.experiment, out):
            sources[n] = prior
            reused.add(n)
        else:
            _claim(labels, loaded)
            earlier[loaded.item.label] = loaded
    shared: dict[str, _Loaded] = {}  # targets that are sources, by label
    for t in targets:
        s = labels.get(t.item.label)
        if s is None or not any(s is x for x in sources):
            _claim(labels, t)
        elif t.item.label in shared:
            raise ConfigError(f"{t.name}: label {t.item.label!r} is already used by {shared[t.item.label].name}")
        elif run_path(s.experiment, out) != run_path(t.experiment, out):
            raise ConfigError(f"{t.name}: label {t.item.label!r} is the label of {s.name}, a different "
                              "experiment; a target with a source's label must be that source's experiment")
        else:
            shared[t.item.label] = t
    entries = [_entry(s, k, "source", matrix=matrix.name) for n, s in enumerate(sources) if n not in reused
               for k in s.seeds]
    if matrix.diagonal:
        entries += [_entry(t, k, "diagonal", target=t.item.label, matrix=matrix.name) for t in targets
                    if t.item.label not in shared for k in t.seeds]
    pairs = [(s, t) for s in sources for t in targets if s.item.label != t.item.label]
    if not pairs:
        raise ConfigError(f"{where}: every target is a source's own experiment; there is no pair to transfer")
    models: dict[str, tuple] = {}
    for s, t in pairs:
        _check_pair(s, t, matrix, where)
        if check_fit:
            _check_fit(s, t, matrix, models)
        entries += [_transfer_entry(name, s, t, k, matrix, out) for k in t.seeds]
    return entries


def _load(item: Item, seeds: list[int] | None, matrix: MatrixConfig | None = None) -> _Loaded:
    """``matrix``: for a target with its own config, the matrix whose controls it may not override."""
    def refuse(message: str) -> ConfigError:
        return ConfigError(f"{item.where} ({item.label}): {message}")

    for key in item.overrides:
        head = key.split(".")[0]
        if seeds is not None and head in ("seed", "seeds"):
            raise refuse(f"{key}: the study sets seeds: {seeds}; set the seeds in one place")
        if head == "transfer":
            raise refuse(f"{key}: a study's transfers come from its transfer matrix; leave transfer out")
        if head == "controls" and matrix is not None and matrix.controls is not None:
            raise refuse(f"{key}: transfer.controls sets the transfer runs' controls; set them in one place")
    overrides = override_strings(item.overrides) + ([f"seeds={json.dumps(seeds)}"] if seeds is not None else [])
    try:
        experiment = load_experiment(item.config, overrides)
    except ConfigError as exc:
        raise entry_error(item.where, item.label, exc) from None
    t = experiment.config.transfer
    if t is not None:
        raise refuse(f"{item.config} is itself a transfer (transfer.source: {t.source}); a study runs only the "
                     "transfers of its matrix, whose sources find their own tickets (no chains): list the source "
                     "among transfer.sources and the target's config, without its transfer section, among "
                     "transfer.targets")
    return _Loaded(item, experiment)


def _claim(labels: dict[str, _Loaded], loaded: _Loaded) -> None:
    other = labels.setdefault(loaded.item.label, loaded)
    if other is not loaded:
        raise ConfigError(f"{loaded.name}: label {loaded.item.label!r} is already used by {other.name}")


def _entry(x: _Loaded, seed: int, role: Role, *, target: str | None = None, matrix: str | None = None) -> StudyEntry:
    return StudyEntry(x.label(seed), x.at(seed), (), role, source_label=x.item.label if role == "source" else None,
                      target_label=target, seed=seed, group=x.item.label, where=x.item.where, matrix=matrix)


def _levels(experiment: Experiment) -> list[int]:
    p = experiment.config.pruning
    return list(range(1, (p.levels if p.method == "imp" else len(p.compressions)) + 1))


def _check_pair(s: _Loaded, t: _Loaded, matrix: MatrixConfig, where: str) -> None:
    if s.experiment.hash() == t.experiment.hash():
        raise ConfigError(f"{t.name}: the same experiment as {s.name}: a transfer from itself; list it once, as "
                          f"{{label: {s.item.label}}} among the targets (its cell is the diagonal, the run that "
                          "found the tickets)")
    s_domain, t_domain = s.experiment.config.domain["name"], t.experiment.config.domain["name"]
    if s_domain != t_domain:
        raise ConfigError(f"{t.name}: cannot take the tickets of {s.name}: domain {t_domain!r}, the source's is "
                          f"{s_domain!r}")
    available = _levels(s.experiment)
    missing = [level for level in matrix.levels if level not in available]
    if missing:
        raise ConfigError(f"{where}.levels: {missing} beyond the levels of {s.name} (1..{available[-1]})")
    absent = [k for k in t.seeds if k not in s.seeds]
    if absent:
        raise ConfigError(f"{t.name}: seed {absent[0]} is not among the seeds of {s.name} ({s.seeds}); a transfer "
                          "trains the tickets its own seed found: give both the same seeds (the study's seeds:)")


def _transfer_entry(study: str, s: _Loaded, t: _Loaded, seed: int, matrix: MatrixConfig, out: Path) -> StudyEntry:
    source = s.at(seed)
    target = t.at(seed).config
    transfer = TransferConfig(source=str(run_path(source, out)), levels=list(matrix.levels),
                              adapt=list(matrix.adapt), head_policy=matrix.head_policy, weights=matrix.weights)
    # a target keeps its own controls, except those drawn over structured units, which a transfer has not
    controls = (list(matrix.controls) if matrix.controls is not None
                else [c for c in target.controls if not registry.control_needs_units(c)])
    try:
        config = dataclasses.replace(target, name=f"{study}-{s.item.label}-to-{t.item.label}", transfer=transfer,
                                     controls=controls)
    except ConfigError as exc:
        raise ConfigError(f"{t.name}: as a target of {s.name}: {exc}") from None
    suffix = f"@seed{seed}" if t.experiment.config.seeds else ""
    return StudyEntry(f"{s.item.label}->{t.item.label}{suffix}", Experiment(config, t.experiment.domain_config),
                      (s.label(seed),), "target", s.item.label, t.item.label, seed,
                      f"{s.item.label}->{t.item.label}", t.item.where, matrix.name)


def _check_distinct_runs(entries: list[StudyEntry], out: Path) -> None:
    runs: dict[Path, StudyEntry] = {}
    for e in entries:
        other = runs.setdefault(run_path(e.experiment, out), e)
        if other is not e:
            raise ConfigError(f"{e.where} ({e.label}): the same run as {other.where} ({other.label}) "
                              f"({run_path(e.experiment, out)}); list the experiment once")


def _check_fit(s: _Loaded, t: _Loaded, matrix: MatrixConfig, models: dict[str, tuple]) -> None:
    """Refuse a target whose template model cannot take the source's tickets, as TransferRun fits them."""
    import torch

    from .artifact import Ticket
    from .errors import TicketMismatchError
    from .masks import Mask

    src_model, src_prunable = _template(s, models)
    tgt_model, tgt_prunable = _template(t, models)
    with_weights = matrix.weights == "source"
    ticket = Ticket(Mask({n: torch.ones(p.shape, dtype=torch.bool) for n, p in src_prunable.items()}),
                    rewind=dict(src_model.state_dict()) if with_weights else None)
    try:  # the masks first: a layer of another shape is reported once, not again for its weights
        for check_rewind in (False, True) if with_weights else (False,):
            ticket.fit(tgt_model, tgt_prunable, adapt=matrix.adapt, head_policy=matrix.head_policy,
                       check_rewind=check_rewind)
    except TicketMismatchError as exc:
        problems = "; ".join(line.strip() for line in str(exc).splitlines()[1:])
        hint = "" if matrix.adapt else " (transfer.adapt names the layers that may differ, e.g. a new head)"
        raise ConfigError(f"{t.name}: cannot take the tickets of {s.name}: {problems}{hint}") from None


def _template(x: _Loaded, models: dict[str, tuple]) -> tuple:
    """The experiment's template model and its prunable parameters, as the runner selects them."""
    if x.item.label not in models:
        from .selection import select_prunable

        exp = x.experiment
        p = exp.config.pruning
        try:
            domain = exp.make_domain()
            model = domain.build_model(seed=exp.config.seed)
            models[x.item.label] = model, select_prunable(model, p.include, p.exclude, base=domain.prunable(model))
        except ConfigError as exc:
            raise ConfigError(f"{x.name}: {exc}") from None
        except (OSError, ValueError, ImportError) as exc:
            raise ConfigError(f"{x.name}: cannot build its model to check that the tickets fit: "
                              f"{type(exc).__name__}: {' '.join(str(exc).split())}") from None
    return models[x.item.label]
