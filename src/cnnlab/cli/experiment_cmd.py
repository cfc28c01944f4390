"""``cnnlab experiment run|collect FILE`` and ``cnnlab claims``: rerun the papers' claims, judge them, list them.

``run`` trains every (variant, seed) of an experiment file that has not finished (``--jobs`` at a time; an
interrupted experiment started again reruns only what is missing), then collects; ``--until-decided`` runs the
rounds of seeds the file plans until every expectation is decided (``--max-seeds`` may stop sooner).
``--ray [ADDRESS]`` trains the runs as tasks of a Ray cluster instead (one started here, or the one at ADDRESS;
:mod:`cnnlab.experiments.cluster`), ``--threads`` each. A live display on stderr shows every run while they train
(:mod:`cnnlab.experiments.progress`). ``--print-commands`` prints one ``cnnlab train`` command per run instead, for
any launcher on any number of machines; ``collect --runs DIR`` then builds the same results and verdicts from
those run folders. ``rejudge`` judges a results folder again from its ``results.json`` alone and writes it and
``summary.md`` again.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import json
import os
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cnnlab.cli.common import format_table, positive_int

LOCAL_RAY = "here"  # --ray without an address: a Ray of this machine's own


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="rerun a paper's claim from an experiment file; judge it")
    kinds = p.add_subparsers(dest="experiment", required=True, metavar="ACTION")
    for name, helptext in (("run", "train what has not finished, then collect"), ("ablation", "the same as run")):
        r = kinds.add_parser(name, help=helptext)
        _file_args(r)
        r.add_argument("--jobs", type=positive_int, default=min(2, os.cpu_count() or 1), help="runs trained at once")
        r.add_argument(
            "--threads",
            type=positive_int,
            default=None,
            help="threads (CPUs) per run (default: this machine's cores divided by --jobs); on Ray, what each asks for",
        )
        r.add_argument(
            "--ray",
            nargs="?",
            const=LOCAL_RAY,
            default=None,
            metavar="ADDRESS",
            help="train the runs on Ray: a Ray started on this machine, or the cluster at ADDRESS (auto, "
            "ray://HOST:PORT); needs pip install 'cnnlab[ray]' and a filesystem every node shares",
        )
        r.add_argument("--print-commands", action="store_true", help="print one `cnnlab train` line per run and stop")
        r.add_argument("--runs", type=Path, default=None, help="where the run folders go (default: OUT/runs)")
        r.add_argument(
            "--until-decided",
            action="store_true",
            help="run the file's planned rounds of seeds until every expectation is decided",
        )
        r.add_argument(
            "--max-seeds",
            type=positive_int,
            default=None,
            help="with --until-decided: stop at this many seeds (at most the file's max_seeds)",
        )
        r.set_defaults(func=run_experiment_cmd)  # fmt: skip
    c = kinds.add_parser("collect", help="results and verdicts from run folders trained anywhere")
    _file_args(c)
    c.add_argument("--runs", type=Path, required=True, help="the folder that holds the run folders")
    c.add_argument("--partial", action="store_true", help="judge the runs that have finished (default: all must)")
    c.set_defaults(func=collect_cmd)
    j = kinds.add_parser("rejudge", help="judge a results folder again from its results.json (no run folders)")
    _file_args(j)
    j.set_defaults(func=rejudge_cmd)

    q = sub.add_parser("claims", help="the ledger: each claim, its paper's figures, our measurement, the verdict")
    q.add_argument(
        "--experiments", type=Path, default=None,
        help="experiment files and results/ (default: ./experiments, else the repository cnnlab runs from)",
    )  # fmt: skip
    q.add_argument("--run", metavar="NAME", default=None, help="rerun the experiment NAME first")
    q.add_argument("--jobs", type=positive_int, default=min(2, os.cpu_count() or 1))
    q.add_argument("--format", choices=("table", "json", "csv"), default="table")
    q.set_defaults(func=claims_cmd)


def _file_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="FILE", help="an experiment file such as experiments/shortcuts.yaml")
    p.add_argument(
        "--out", type=Path, default=None,
        help="results folder (default: experiments/results/NAME; runs/experiments/NAME with --epochs or --seeds)",
    )  # fmt: skip
    p.add_argument("--epochs", type=positive_int, default=None, help="override the recipe's epochs (quick tries)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="override the file's seeds")


def _command() -> str:
    return shlex.join(["cnnlab", *sys.argv[1:]]) if Path(sys.argv[0]).name in ("cnnlab", "__main__.py") else ""


def _spec(args: argparse.Namespace):
    from cnnlab.experiments.spec import load_spec

    spec = load_spec(args.config)
    if args.epochs is not None:
        spec = spec.with_recipe(epochs=args.epochs)
    if args.seeds is not None:
        spec = spec.with_seeds(args.seeds)
    changed = args.epochs is not None or args.seeds is not None  # a quick try: never into the committed results
    return spec, args.out or Path("runs/experiments" if changed else "experiments/results") / spec.name


def run_experiment_cmd(args: argparse.Namespace) -> int:
    from cnnlab.errors import ConfigError
    from cnnlab.experiments.experiment import collect_into, run_experiment, run_until_decided
    from cnnlab.experiments.progress import Progress
    from cnnlab.experiments.runner import commands, default_threads, run_local

    spec, out = _spec(args)
    runs = args.runs or out / "runs"
    if args.max_seeds is not None and not args.until_decided:
        raise ConfigError("--max-seeds caps the rounds of --until-decided; give both, or --seeds for a fixed set")
    if args.print_commands:
        if args.ray is not None:
            raise ConfigError(
                "--print-commands prints the runs for another launcher and --ray trains them on Ray; give one"
            )
        print("\n".join(commands(spec, runs)))
        return 0
    if args.until_decided and args.runs is not None:
        raise ConfigError("--until-decided keeps its runs in OUT/runs; give --out instead of --runs")
    with _executor(args.ray, args.threads or default_threads(args.jobs)) as executor:
        how = dict(jobs=args.jobs, threads=args.threads, executor=executor, progress=Progress(sys.stderr))
        if args.until_decided:
            run_until_decided(spec, out, max_seeds=args.max_seeds, command=_command(), **how)
        elif args.runs is None:
            run_experiment(spec, out, command=_command(), **how)
        else:
            t0 = time.perf_counter()
            trained = run_local(spec, runs, **how)
            collect_into(spec, runs, out, command=_command(), trained_s=time.perf_counter() - t0 if trained else 0.0)
    return 0


@contextlib.contextmanager
def _executor(ray: str | None, threads: int) -> Iterator[Any]:
    """None (this machine's process pool), or a Ray executor on the cluster ``ray`` names for the block."""
    if ray is None:
        yield None
        return
    from cnnlab.experiments.cluster import RayExecutor, ray_cluster

    with ray_cluster(None if ray == LOCAL_RAY else ray):
        yield RayExecutor(threads=threads)


def collect_cmd(args: argparse.Namespace) -> int:
    from cnnlab.experiments.experiment import collect_into

    spec, out = _spec(args)
    collect_into(spec, args.runs, out, command=_command(), partial=args.partial)
    return 0


def rejudge_cmd(args: argparse.Namespace) -> int:
    from cnnlab.experiments.report import rewrite

    spec, out = _spec(args)
    print(f"wrote {rewrite(spec, out)} and results.json")
    return 0


def claims_cmd(args: argparse.Namespace) -> int:
    from cnnlab.errors import ConfigError, suggest
    from cnnlab.experiments.experiment import run_experiment
    from cnnlab.experiments.ledger import entries, find_experiments, results_dir
    from cnnlab.experiments.progress import Progress
    from cnnlab.experiments.spec import load_spec

    folder = find_experiments(args.experiments)
    if args.run:
        files = {load_spec(p).name: p for p in sorted(folder.glob("*.yaml"))}
        if args.run not in files:
            raise ConfigError(f"no experiment named {args.run!r} in {folder}.{suggest(args.run, files)}")
        spec = load_spec(files[args.run])
        log = print if args.format == "table" else (lambda s: print(s, file=sys.stderr))  # stdout stays parseable
        run_experiment(spec, results_dir(folder, spec), jobs=args.jobs, command=_command(), log=log,
                       progress=Progress(sys.stderr))  # fmt: skip
    rows = entries(folder)
    if args.format == "json":
        print(json.dumps([dataclasses.asdict(e) for e in rows], indent=2))
    elif args.format == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=[f.name for f in dataclasses.fields(rows[0])] if rows else ["name"])
        w.writeheader()
        w.writerows({k: json.dumps(v) if isinstance(v, list) else v for k, v in dataclasses.asdict(e).items()}
                    for e in rows)  # fmt: skip
        print(buf.getvalue(), end="")
    else:
        table = [[e.name, e.verdict + (f" ({e.why})" if e.why else ""), e.source, e.paper_figures, e.measured]
                 for e in rows]  # fmt: skip
        print(format_table(table, ["claim", "verdict", "source", "the paper's figures", "measured here"]))
    return 0
