"""The ``cnnlab`` command line. Each command lives in its own module with ``register(subparsers)``.

Text typed by a person becomes values here: sizes, configs, and model arguments as plain data, which
:func:`cnnlab.registry.build_model` turns into models (named layers into classes) for every command alike.

May import: cnnlab.analysis, cnnlab.bench, cnnlab.data, cnnlab.errors, cnnlab.experiments, cnnlab.pages,
cnnlab.registry, cnnlab.train.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from cnnlab.cli import (
    bench_cmd,
    compare_cmd,
    diagram_cmd,
    dilation_cmd,
    erf_cmd,
    eval_cmd,
    experiment_cmd,
    explain_cmd,
    models_cmd,
    report_cmd,
    summary_cmd,
    train_cmd,
    tricks_cmd,
)
from cnnlab.errors import CnnlabError

COMMANDS = (
    models_cmd,
    summary_cmd,
    compare_cmd,
    diagram_cmd,
    tricks_cmd,
    dilation_cmd,
    erf_cmd,
    train_cmd,
    eval_cmd,
    explain_cmd,
    experiment_cmd,
    bench_cmd,
    report_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnlab",
        description="The classic ideas of convolutional network design: build, analyse, draw, train and compare "
        "networks, and rerun the papers' claims. `cnnlab COMMAND --help` says more.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit code: 0, 1 (a failure such as a full disk), 2 (a usage error, a message from
    cnnlab's own errors), 130 (Ctrl-C) or 141 (the reader of stdout went away, as in ``cnnlab models | head``).
    Other exceptions are bugs and keep their traceback."""
    try:
        args = build_parser().parse_args(argv)
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe shows up here, not at exit
        return code
    except CnnlabError as e:
        print(f"cnnlab: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the Python docs' recipe: nothing more to print, and stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python flushes stdout once more at exit
        return 128 + signal.SIGPIPE  # what a process killed by SIGPIPE reports
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except OSError as e:  # a full disk, a permission, a folder where a file should be: not a bug of cnnlab
        where = f": {e.filename}" if e.filename else ""
        print(f"cnnlab: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
