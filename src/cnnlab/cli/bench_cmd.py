"""``cnnlab bench``: cnnlab's models against torchvision/timm, interleaved in one process (see :mod:`cnnlab.bench`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

from cnnlab.bench import BenchConfig, format_report, run_bench
from cnnlab.cli.common import known_model, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    defaults = BenchConfig()
    p = sub.add_parser("bench", help="time cnnlab's models against torchvision/timm (latency, throughput, training)")
    p.add_argument("--models", nargs="+", default=None, metavar="MODEL", help=f"default: {' '.join(defaults.models)}")
    p.add_argument("--size", type=positive_int, default=None, help=f"input height and width (default {defaults.size})")
    p.add_argument(
        "--batch", type=positive_int, default=None, help=f"throughput and training batch (default {defaults.batch})"
    )
    p.add_argument(
        "--repeats", type=positive_int, default=None, help=f"interleaved repetitions (default {defaults.repeats})"
    )
    p.add_argument("--threads", type=positive_int, default=None, help="torch intra-op threads (default: torch's own)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and one repetition: checks the command, not speed")
    p.add_argument("--out", type=Path, default=None, help="write the full report as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = {k: getattr(args, k) for k in ("size", "batch", "repeats") if getattr(args, k) is not None}
    models = tuple(known_model(m) for m in args.models) if args.models else None
    if args.quick:  # the config checks every name before anything runs
        cfg = BenchConfig.quick(models or ("resnet18",), **overrides)
    else:
        cfg = dataclasses.replace(BenchConfig(), **overrides, **({"models": models} if models else {}))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    report = run_bench(cfg, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(format_report(report))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0
