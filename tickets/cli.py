"""The ``tickets`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import ConfigError, RegistryError, TicketMismatchError


def _run(args: argparse.Namespace) -> int:
    from .config import load_experiment
    from .imp import make_runner
    from .report import report

    experiment = load_experiment(args.config, args.overrides)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from . import distributed

    show = False if args.quiet else None
    if experiment.config.seeds:
        from .seeds import run_seeds

        path = run_seeds(experiment, args.out, make_runner, show_progress=show)
        table_file = path / "summary.csv"
    else:
        runner = make_runner(experiment, args.out, show_progress=show)
        print(f"run directory: {runner.run.path}", file=sys.stderr)
        path = runner.execute().path
        table_file = path / "results.csv"
    if not distributed.is_main():
        return 0
    table, png = report(path)
    print(table)
    print(f"\nresults: {table_file}\nplot:    {png}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report import report

    table, png = report(args.run_dir)
    print(table)
    if png is not None:
        print(f"\nplot: {png}")
    return 0


def _show(args: argparse.Namespace) -> int:
    import json

    from .artifact import Ticket

    ticket = Ticket.load(args.ticket_dir, with_rewind=False)
    info = ticket.describe(has_rewind=(Path(args.ticket_dir) / "rewind.safetensors").is_file())
    info.pop("parameters")
    print(json.dumps(info, indent=2, sort_keys=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tickets", description="Lottery-ticket experiments across domains.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run an experiment (IMP with controls) from a YAML config")
    run.add_argument("config", help="experiment YAML, e.g. configs/vision/lenet300_mnist.yaml")
    run.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. pruning.levels=3")
    run.add_argument("--out", default="runs", help="parent directory of run directories (default: runs)")
    run.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=_run)

    rep = sub.add_parser("report", help="print a run's results table and write its plot")
    rep.add_argument("run_dir")
    rep.set_defaults(func=_report)

    show = sub.add_parser("show", help="print a ticket's metadata")
    show.add_argument("ticket_dir")
    show.set_defaults(func=_show)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, RegistryError, TicketMismatchError, FileNotFoundError) as exc:
        print(f"tickets: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
