"""The ``cnnlab`` command line. Each command lives in its own module with ``register(subparsers)``.

Text typed by a person becomes values here: sizes, configs, and model arguments as plain data, which
:func:`cnnlab.registry.build_model` turns into models (named layers into classes) for every command alike.

May import: cnnlab.analysis, cnnlab.bench, cnnlab.data, cnnlab.errors, cnnlab.experiments, cnnlab.registry,
cnnlab.train.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cnnlab.cli import (
    bench_cmd,
    compare_cmd,
    dilation_cmd,
    erf_cmd,
    eval_cmd,
    experiment_cmd,
    models_cmd,
    summary_cmd,
    train_cmd,
    tricks_cmd,
)
from cnnlab.errors import CnnlabError

COMMANDS = (
    models_cmd,
    summary_cmd,
    compare_cmd,
    tricks_cmd,
    dilation_cmd,
    erf_cmd,
    train_cmd,
    eval_cmd,
    experiment_cmd,
    bench_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CnnlabError as e:
        print(f"cnnlab: error: {e}", file=sys.stderr)
        return 2
