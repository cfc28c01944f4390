"""The ``cnnlab`` command line. Each command lives in its own module with ``register(subparsers)``.

Text typed by a person becomes values here: sizes, configs, and model arguments as plain data, which
:func:`cnnlab.registry.build_model` turns into models (named layers into classes) for every command alike.

May import: cnnlab.analysis, cnnlab.bench, cnnlab.data, cnnlab.errors, cnnlab.experiments, cnnlab.pages,
cnnlab.plotting, cnnlab.registry, cnnlab.train.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from cnnlab.cli import (
    bench_cmd,
    compare_cmd,
    diagram_cmd,
    dilation_cmd,
    erf_cmd,
    eval_cmd,
    experiment_cmd,
    explain_cmd,
    filters_cmd,
    models_cmd,
    report_cmd,
    summary_cmd,
    toy_cmd,
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
    toy_cmd,
    dilation_cmd,
    erf_cmd,
    filters_cmd,
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
    Any other exception is a bug: one line names it and the step it came from, and the file that holds its
    traceback (:func:`save_traceback`), and the exit code is 1."""
    args = None
    try:
        args = build_parser().parse_args(argv)
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe shows up here, not at exit
        return code
    except CnnlabError as e:
        print(f"cnnlab: error: {one_line(str(e))}", file=sys.stderr)
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
        print(f"cnnlab: error: {one_line(str(e.strerror or e))}{where}", file=sys.stderr)
        return 1
    except Exception as e:  # the net under the causes, which are fixed where they arise
        command = getattr(args, "command", None) or "(parsing the command line)"
        path = save_traceback(e, command, sys.argv[1:] if argv is None else list(argv))
        message = (str(e).strip().splitlines() or [""])[0][:200]  # its first line: the rest is in the file
        print(
            f"cnnlab {command}: internal error in {failed_step(e)}: {type(e).__name__}: {message}; the full "
            f"traceback is in {path if path is not None else '(unwritable: printed above)'}",
            file=sys.stderr,
        )
        return 1


def one_line(message: str) -> str:
    """``message`` on one line: the lines of a message quoted from elsewhere (a YAML parser's) joined by spaces."""
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def failed_step(error: BaseException) -> str:
    """Where ``error`` came from: the innermost function of cnnlab in its traceback (``cnnlab.train.engine.
    train_one_epoch``), or the outermost frame when none is cnnlab's."""
    root = Path(__file__).resolve().parents[1]  # the cnnlab package
    frames = traceback.extract_tb(error.__traceback__)
    for frame in reversed(frames):
        path = Path(frame.filename).resolve()
        if path.is_relative_to(root):
            module = ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
            return f"{module}.{frame.name}"
    return frames[0].name if frames else "?"


def save_traceback(error: BaseException, command: str, argv: Sequence[str]) -> Path | None:
    """Write the command line, the versions and the traceback of ``error`` to a new file in the ``errors``
    folder of cnnlab's cache (``$CNNLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/cnnlab``, else ``~/.cache/cnnlab``;
    the system's temporary folder when the cache is off or cannot be written) and return its path; when no
    folder can be written, print the traceback to stderr and return None."""
    import torch

    from cnnlab.analysis.catalog import cache_dir

    text = (
        f"Python {platform.python_version()}, torch {torch.__version__}, {platform.platform()}\n"
        f"command line: cnnlab {' '.join(argv)}\n\n" + "".join(traceback.format_exception(error))
    )
    name = f"{time.strftime('%Y%m%d-%H%M%S')}-{command.split()[0].strip('()')}-{os.getpid()}.txt"
    cache = cache_dir()
    for folder in ([cache / "errors"] if cache else []) + [Path(tempfile.gettempdir()) / "cnnlab-errors"]:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
            return folder / name
        except OSError:
            continue
    print(text, file=sys.stderr)
    return None
