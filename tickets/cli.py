"""The ``tickets`` command."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from . import errors


def _run(args: argparse.Namespace) -> int:
    from .config import load_experiment

    experiment = load_experiment(args.config, args.overrides)  # checked before torch is imported
    from .methods import make_runner
    from .report import report

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from . import distributed

    show = False if args.quiet else None
    execute = _executor(args, show)
    if experiment.config.seeds:
        from .seeds import run_seeds

        path = run_seeds(experiment, args.out, make_runner, show_progress=show, execute=execute)
        table_file = path / "summary.csv"
    else:
        runner = make_runner(experiment, args.out, show_progress=show)
        print(f"run directory: {runner.run.path}", file=sys.stderr)
        if execute is None:
            runner.execute()
        else:
            execute([runner])
        path = runner.run.path
        table_file = path / "results.csv"
    if not distributed.is_main():
        return 0
    table, png = report(path)
    print(table)
    print(f"\nresults: {table_file}" + (f"\nplot:    {png}" if png is not None else ""))
    return 0


def _executor(args: argparse.Namespace, show):
    """The executor the flags choose, as ``execute(runners)``; None: serial."""
    if args.executor == "processes":
        from .executors import run_processes

        return lambda runners: run_processes(runners, args.workers, threads=args.threads or None,
                                             show_progress=show)
    if args.executor == "ray":
        from .ray_executor import run_ray

        return lambda runners: run_ray(runners, address=args.address, cpus=args.cpus_per_stage,
                                       gpus=args.gpus_per_stage, show_progress=show)
    return None


def _study(args: argparse.Namespace) -> int:
    if args.target == "report":
        if not args.dir:
            raise errors.ConfigError("tickets study report: give the study directory (<out>/<study name>)")
        from .study_report import report

        print(f"report: {report(args.dir, tolerance=args.tolerance)}")
        return 0
    from .study import load_study

    study = load_study(args.target, args.out)  # every entry checked before anything runs
    from .methods import make_runner
    from .study_report import report
    from .study_run import run_study

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    show = False if args.quiet else None
    directory = run_study(study, make_runner, _executor(args, show), show_progress=show)
    print(f"study: {directory}\nreport: {report(directory, tolerance=args.tolerance)}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report import report

    table, png = report(args.run_dir)
    print(table)
    if png is not None:
        print(f"\nplot: {png}")
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from .analyses import out_dir
    from .analysis_options import check_options

    given = {key: getattr(args, key) for key in ANALYSIS_FLAGS if getattr(args, key) is not None}
    for text in args.set or []:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise errors.ConfigError(f"--set: expected key=value, got {text!r}")
        from .config_yaml import parse_yaml

        given[key] = parse_yaml(value, f"--set {key}")
    options = check_options(args.analysis, given, f"analysis {args.analysis}")  # before torch, before work
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from .analyses import run_analysis

    summary = run_analysis(args.analysis, args.run_dir, options)
    if summary:
        print(summary)
    print(f"analysis: {out_dir(args.run_dir, args.analysis)}")
    return 0


ANALYSIS_FLAGS = ("compare", "levels", "ks", "points", "recompute_bn")


def _export(args: argparse.Namespace) -> int:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from .export import export

    record = export(args.source, args.out, args.to)
    if args.to in ("sparse", "semi-structured"):
        kept = sum(layer["kept"] for layer in record["layers"].values())
        total = sum(math.prod(layer["shape"]) for layer in record["layers"].values())
        form = "CSR" if args.to == "sparse" else "2:4 semi-structured (float16)"
        what = f"{len(record['layers'])} layers as {form} ({kept} of {total} weights kept, {100 * kept / total:.1f}%)"
    else:
        units = sum(len(v) for v in record["removed"].values())
        n = record["parameters"]
        what = (f"a smaller dense model ({units} units removed; {n['after']:,} of {n['before']:,} parameters, "
                f"{100 * n['after'] / n['before']:.1f}%)")
    print(f"exported {what}; checked on {record['check']['batches']} batches, largest relative difference "
          f"{record['check']['max_relative_difference']:.2g}")
    native = record.get("native")
    if native and "skipped" in native:
        print(f"no {record['domain']} native form: {native['skipped']}")
    elif native:
        print(f"native {native['format']} form: {Path(args.out) / native['path']} (load: {native['load']})")
    print(f"export: {args.out}")
    return 0


def _show(args: argparse.Namespace) -> int:
    import json

    from .artifact import Ticket

    ticket = Ticket.load(args.ticket_dir)  # the rewind weights are read, so their values are checked too
    info = ticket.describe(has_rewind=(Path(args.ticket_dir) / "rewind.safetensors").is_file())
    info.pop("parameters")
    print(json.dumps(info, indent=2, sort_keys=True))
    return 0


def _executor_flags(parser: argparse.ArgumentParser) -> None:
    if not any(a.dest == "threads" for a in parser._actions):
        parser.add_argument("--threads", type=_threads, default=0, help="torch CPU threads (default: torch's choice)")
    if not any(a.dest == "quiet" for a in parser._actions):
        parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--executor", choices=["serial", "processes", "ray"], default="serial",
                     help="serial: one stage after another (default); processes: a local pool of --workers "
                          "processes, each taking the stages whose inputs are done; ray: each stage a Ray task "
                          "(pip install '.[ray]')")
    parser.add_argument("--address", default=None, help="--executor ray: a running cluster ('auto' or HOST:PORT; "
                     "default: a local Ray instance with every CPU)")
    parser.add_argument("--cpus-per-stage", type=float, default=1.0, help="--executor ray: CPUs per stage (default 1)")
    parser.add_argument("--gpus-per-stage", type=float, default=0.0,
                     help="--executor ray: GPUs per stage, fractions share a GPU (default 0)")
    parser.add_argument("--workers", type=_threads, default=2, help="worker processes for --executor processes "
                     "(default 2), each with its share of the CPU threads unless --threads")


def _threads(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of threads, got {text!r}")
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tickets", description="Lottery-ticket experiments across domains.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run an experiment (IMP with controls) from a YAML config")
    run.add_argument("config", help="experiment YAML, e.g. configs/vision/lenet300_mnist.yaml")
    run.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. pruning.levels=3")
    run.add_argument("--out", default="runs", help="parent directory of run directories (default: runs)")
    run.add_argument("--threads", type=_threads, default=0, help="torch CPU threads (default: torch's choice)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    _executor_flags(run)
    run.set_defaults(func=_run)

    study = sub.add_parser("study", help="run a study (configs/studies/*.yaml), or 'study report DIR'")
    study.add_argument("target", help="a study YAML, or 'report'")
    study.add_argument("dir", nargs="?", help="with 'report': the study directory (<out>/<study name>)")
    study.add_argument("--out", default="runs", help="parent directory of run directories (default: runs)")
    study.add_argument("--tolerance", type=float, default=0.01,
                       help="a ticket matches dense within this fraction of the dense value (default 0.01)")
    _executor_flags(study)
    study.set_defaults(func=_study)

    rep = sub.add_parser("report", help="print a run's results table and write its plot")
    rep.add_argument("run_dir")
    rep.set_defaults(func=_report)

    analyze = sub.add_parser("analyze", help="analyses of a finished run: 'analyze RUN_DIR masks'")
    analyze.add_argument("run_dir")
    analyze.add_argument("analysis", help="a registered analysis: masks (layer densities over levels, and overlap "
                         "with --compare's tickets against the random-mask chance level); lmc (linear mode "
                         "connectivity: the instability of the dense network and tickets rewound to each of --ks); "
                         "weight_change (sign flips and growth from θ0 to trained, kept vs pruned weights)")
    analyze.add_argument("--compare", nargs="*", default=None, metavar="DIR",
                         help="masks: run directories (the same level's ticket) or ticket directories to compare with")
    analyze.add_argument("--levels", nargs="*", type=int, default=None,
                         help="levels to analyse (default: masks every level; lmc 0 and the sparsest ticket)")
    analyze.add_argument("--ks", nargs="*", type=int, default=None, help="lmc: rewind iterations k (default 0)")
    analyze.add_argument("--points", type=int, default=None, help="lmc: points along each path (default 30)")
    analyze.add_argument("--recompute-bn", action="store_const", const=True, default=None,
                         help="lmc: re-estimate BatchNorm statistics at every point instead of interpolating them")
    analyze.add_argument("--set", action="append", metavar="key=value",
                         help="an option of the analysis by its name (a plugin's; YAML values), repeatable")
    analyze.add_argument("--threads", type=_threads, default=0, help="torch CPU threads (default: torch's choice)")
    analyze.set_defaults(func=_analyze)

    exp = sub.add_parser("export", help="a ticket as a model that runs sparse: 'export RUN_DIR/level_NN --to sparse "
                         "--out DIR'")
    exp.add_argument("source", help="RUN_DIR/level_NN, or a ticket directory inside a run (RUN_DIR/level_NN/ticket)")
    exp.add_argument("--to", required=True, choices=["sparse", "dense-small", "semi-structured"],
                     help="sparse: the pruned Linear/Conv2d/Conv1D weights as torch CSR tensors with forwards that "
                          "use them; dense-small: a structured ticket (pruning.structure: units) as a smaller "
                          "dense model (and in its library's own form where that can hold it); semi-structured: a "
                          "2:4 ticket on NVIDIA sparse tensor cores (CUDA only)")
    exp.add_argument("--out", required=True, help="a new or empty directory for the exported model")
    exp.add_argument("--threads", type=_threads, default=0, help="torch CPU threads (default: torch's choice)")
    exp.set_defaults(func=_export)

    show = sub.add_parser("show", help="print a ticket's metadata")
    show.add_argument("ticket_dir")
    show.set_defaults(func=_show)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        then = "; rerun the same command to resume where it stopped" if args.command == "run" else ""
        print(f"tickets: interrupted{then}", file=sys.stderr)
        return 130
    except Exception as exc:
        if _is_input_error(exc):
            message = _one_line(exc)
        elif isinstance(exc, OSError):  # a read-only or full disk: the file and the reason
            message = (f"{exc.filename}: " if exc.filename else "") + (exc.strerror or _one_line(exc))
        else:
            raise
        print(f"tickets: error: {message}", file=sys.stderr)
        return 2


def _is_input_error(exc: BaseException) -> bool:
    """Errors the framework raises for bad input: every class in tickets.errors."""
    return any(cls.__module__ == errors.__name__ for cls in type(exc).__mro__)


def _one_line(exc: BaseException) -> str:
    """The message on one line (a list of misfits becomes '; '-separated)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines) if lines else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
