"""Live progress of an experiment's runs: one line per run and the experiment's time left, in a terminal or a log.

A :class:`Board` holds what is known of each run (queued, running with its epochs, done with its result, failed
with its reason) and is fed by events: :meth:`Board.started`, :meth:`Board.epoch`, :meth:`Board.done` and
:meth:`Board.failed`. They come from two places, the same for every executor (this machine's processes, a Ray
cluster, anything that writes the run folders): the run folders themselves, which :class:`FolderWatch` reads
(the run's ``.lock`` is written when a process takes the run, ``metrics.csv`` gains a row per epoch,
``results.json`` appears when it is done), and the executor's report of each finished run, which alone knows
why a run failed.

:class:`Progress` shows a board on a stream. On a terminal (``tty``) it redraws a block of lines in place, at most
once a second, and prints log lines above it; elsewhere (a log file, a pipe) it prints plain lines: one when a
run starts, and every ``interval`` seconds the experiment's state and each running run's, never a carriage
return or an escape sequence. Each run's time left is its remaining epochs at its mean epoch time (or, before
its first epoch, that of the other runs of its variant); the experiment's is those runs laid out on as many
workers as have been seen running at once, the pretraining phase before the variants.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from cnnlab.train.runfolder import LOCK
from cnnlab.train.trainer import format_duration


class Run(Protocol):
    """What the display reads of a run (:class:`cnnlab.experiments.runner.Run` has it; naming that class here
    would make the runner and its display import each other)."""

    @property
    def phase(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def label(self) -> str: ...
    @property
    def folder(self) -> Path: ...
    @property
    def config(self) -> Any: ...


FAILED = "failed"  # an executor's status for a run that ended with an error of its own (not a result)
INTERVAL_S = 60.0  # a plain line per running run this often: about 60 lines an hour per run in a log file
REFRESH_S = 1.0  # the terminal's block is redrawn at most this often (and on each event)
MOST_LISTED = 10  # running runs listed per plain update (the rest are counted)
_CLEAR_BELOW = "\x1b[J"  # ANSI: erase from the cursor to the end of the screen


def _clock_face(seconds: float) -> str:
    """Elapsed time as ``m:ss`` or ``h:mm:ss``: the prefix of a plain line."""
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


@dataclass
class Line:
    """One run on the board."""

    name: str  # "resnet-20 seed 0"
    group: str  # its variant: runs of one group take about as long per epoch
    folder: Path
    epochs: int
    phase: int  # 0: pretraining, 1: the variants (which wait for all of phase 0)
    state: str = "queued"  # queued | running | done | kept | failed
    epoch: int = 0  # epochs finished
    epoch_s: list[float] = field(default_factory=list)  # their times
    since: float = 0.0  # when the run started, or last finished an epoch (board time)
    attempts: int = 0  # times a process took the run (a retry after a dead worker adds one)
    note: str = ""  # done: its result; failed: the reason

    @property
    def finished(self) -> bool:
        return self.state in ("done", "kept", "failed")


class Board:
    """The state of every run of an experiment, changed by events; thread-safe. Times come from ``clock``."""

    def __init__(self, title: str, lines: Sequence[Line], clock: Callable[[], float] = time.monotonic) -> None:
        self.title, self.clock = title, clock
        self.lines = {str(line.folder): line for line in lines}
        self.start = clock()
        self.most_at_once = 0  # the most runs seen running at once: the workers the time left is laid out on
        self.lock = threading.RLock()

    def _event(self, key: str, change: Callable[[Line, float], None]) -> None:
        with self.lock:
            change(self.lines[key], self.clock())
            self.most_at_once = max(self.most_at_once, sum(1 for x in self.lines.values() if x.state == "running"))

    def started(self, key: str) -> None:
        def change(line: Line, now: float) -> None:
            line.state, line.since, line.attempts = "running", now, line.attempts + 1

        self._event(key, change)

    def epoch(self, key: str, epoch: int, epoch_s: float) -> None:
        def change(line: Line, now: float) -> None:
            if line.state == "queued":  # a run seen first at an epoch's end
                line.state, line.attempts = "running", max(1, line.attempts)
            line.epoch, line.since = epoch, now
            line.epoch_s.append(epoch_s)

        self._event(key, change)

    def done(self, key: str, result: str, *, kept: bool = False) -> None:
        def change(line: Line, now: float) -> None:
            line.state, line.note = "kept" if kept else "done", result

        self._event(key, change)

    def failed(self, key: str, reason: str) -> None:
        def change(line: Line, now: float) -> None:
            line.state, line.note = FAILED, reason.splitlines()[0] if reason else "failed"

        self._event(key, change)

    # what is shown

    def _epoch_s(self, line: Line) -> float | None:
        """The run's mean epoch time; before its first epoch, that of its group's runs, else of all runs."""
        for pool in ([line], [x for x in self.lines.values() if x.group == line.group], list(self.lines.values())):
            times = [t for x in pool for t in x.epoch_s]
            if times:
                return sum(times) / len(times)
        return None

    def left_s(self, line: Line, now: float) -> float | None:
        """The run's time left (None: no epoch time known yet)."""
        per_epoch = self._epoch_s(line)
        if line.finished:
            return 0.0
        if per_epoch is None:
            return None
        spent = now - line.since if line.state == "running" else 0.0
        return max(0.0, (line.epochs - line.epoch) * per_epoch - spent)

    def experiment_left_s(self, now: float) -> float | None:
        """The runs' times left laid out on the workers seen at once (the longest first of each phase's queue
        waits for a free worker; the variants wait for every pretraining run)."""
        lines = [x for x in self.lines.values() if not x.finished]
        lefts = {id(x): self.left_s(x, now) for x in lines}
        if any(v is None for v in lefts.values()):
            return None
        running = [lefts[id(x)] or 0.0 for x in lines if x.state == "running"]
        workers = sorted(running + [0.0] * max(0, max(self.most_at_once, 1) - len(running)))
        for phase in (0, 1):
            if phase == 1 and any(x.phase == 0 for x in lines):
                workers = [max(workers)] * len(workers)  # the variants start when the pretraining has finished
            for x in lines:
                if x.state == "queued" and x.phase == phase:
                    workers[0] += lefts[id(x)] or 0.0
                    workers.sort()
        return max(workers)

    def header(self, now: float) -> str:
        with self.lock:
            states = [x.state for x in self.lines.values()]
            done = sum(s in ("done", "kept") for s in states)
            counts = [f"{states.count(s)} {s}" for s in ("running", "queued", FAILED) if states.count(s)]
            left = self.experiment_left_s(now)
            if done + states.count(FAILED) == len(states):
                when = f"{format_duration(now - self.start)} elapsed"
            elif left is None:
                when = f"{format_duration(now - self.start)} elapsed; time left known after the first epoch"
            else:
                when = f"{format_duration(now - self.start)} elapsed, about {format_duration(left)} left"
            return f"{self.title}: {done} of {len(states)} runs done" + "".join(f", {c}" for c in counts) + f"; {when}"

    def describe(self, line: Line, now: float) -> str:
        """The run's state in words: what a line of the display says after the run's name."""
        with self.lock:
            if line.state == "queued":
                return "queued"
            if line.finished:
                return f"{line.state}: {line.note}" if line.note else line.state
            retry = f" (attempt {line.attempts})" if line.attempts > 1 else ""
            if line.epoch >= line.epochs:  # trained: the test split, the curves, results.json
                return f"running{retry}: epoch {line.epoch}/{line.epochs} done, testing"
            left = self.left_s(line, now)
            where = f"epoch {line.epoch}/{line.epochs} done" if line.epoch else f"in epoch 1/{line.epochs}"
            return f"running{retry}: {where}" + (f", about {format_duration(left)} left" if left is not None else "")

    def frame(self, now: float, height: int) -> list[str]:
        """The header and one line per run, at most ``height`` lines (at least 5): when there are more runs, the
        finished ones, then the queued ones, then the last of the others are counted instead of listed."""
        with self.lock:
            listed = list(self.lines.values())
            width = max((len(x.name) for x in listed), default=0)
            rest: list[str] = []
            for states, what in ((("done", "kept"), "done"), (("queued",), "queued")):
                if 1 + len(listed) + len(rest) <= height:
                    break
                hidden = [x for x in listed if x.state in states]
                listed = [x for x in listed if x.state not in states]
                rest += [f"  ... and {len(hidden)} more {what}"] if hidden else []
            room = max(5, height) - 1 - len(rest)
            if len(listed) > room:
                rest.append(f"  ... and {len(listed) - room + 1} more")
                listed = listed[: room - 1]
            return [self.header(now), *(f"  {x.name:<{width}}  {self.describe(x, now)}" for x in listed), *rest]


def result_of(folder: Path) -> str:
    """A finished run's result in words, from its ``results.json``: its test error (a segmentation net's test
    mean IoU), or that it diverged; and its epochs and time."""
    try:
        saved = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError):
        return ""
    if saved.get("status") == "diverged":
        return "diverged"
    final = (saved.get("test") or {}).get("final") or {}
    if final.get("test_miou") is not None:
        score = f"test mIoU {100 * final['test_miou']:.2f}%"
    elif final.get("test_acc") is not None:
        score = f"test error {100 * (1 - final['test_acc']):.2f}%"
    else:
        score = "not tested"
    return f"{score}, {saved.get('epochs_run', '?')} epochs in {format_duration(float(saved.get('wall_s') or 0.0))}"


class FolderWatch:
    """Events from the run folders: a process took the run (its ``.lock`` was written since the last look),
    it finished epochs (``metrics.csv`` gained rows), it is done (``results.json``)."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self.seen: dict[str, tuple[int | None, int | None]] = {}  # key: (.lock's mtime, metrics.csv's mtime)
        for key, line in board.lines.items():
            self.seen[key] = (_mtime(line.folder / LOCK), _mtime(line.folder / "metrics.csv"))
            line.epoch_s = _epoch_times(line.folder)  # a run that resumes has its earlier epochs' times
            line.epoch = len(line.epoch_s)
            if (line.folder / "results.json").is_file():
                board.done(key, result_of(line.folder), kept=True)  # finished before: kept

    def poll(self) -> None:
        for key, line in self.board.lines.items():
            if line.finished:
                continue
            lock, metrics = _mtime(line.folder / LOCK), _mtime(line.folder / "metrics.csv")
            was_lock, was_metrics = self.seen[key]
            self.seen[key] = (lock, metrics)
            if lock != was_lock:
                self.board.started(key)
            if metrics != was_metrics:
                times = _epoch_times(line.folder)
                for k in range(line.epoch, len(times)):
                    self.board.epoch(key, k + 1, times[k])
            if (line.folder / "results.json").is_file():
                self.board.done(key, result_of(line.folder))


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _epoch_times(folder: Path) -> list[float]:
    try:
        with open(folder / "metrics.csv", newline="") as f:
            return [float(row["epoch_s"]) for row in csv.DictReader(f)]
    except (OSError, ValueError, KeyError):
        return []


class Progress:
    """Where and how an experiment's progress is shown: ``stream`` (default stderr), redrawn in place when it is
    a terminal (``tty``; default: asked of the stream), else plain lines every ``interval`` seconds."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        tty: bool | None = None,
        interval: float = INTERVAL_S,
        refresh: float = REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
        size: Callable[[], tuple[int, int]] | None = None,  # (columns, rows); default: the terminal's
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval, self.refresh, self.clock = interval, refresh, clock
        self.size = size or self._terminal_size

    def _terminal_size(self) -> tuple[int, int]:
        """The columns and rows of the stream's terminal (100 x 24 when it cannot say)."""
        try:
            size = os.get_terminal_size(self.stream.fileno())
        except (AttributeError, OSError, ValueError):
            return 100, 24
        return size.columns, size.lines


class Live:
    """A board on show while its runs train: a thread looks at the run folders and draws (or, without a
    :class:`Progress`, nothing is drawn and log lines go straight to ``log``)."""

    def __init__(self, board: Board, progress: Progress | None, log: Callable[[str], None]) -> None:
        self.board, self.progress, self.log = board, progress, log
        self.watch = FolderWatch(board) if progress is not None else None  # nothing to look for when not shown
        self.drawn = 0  # lines of the terminal's block now on screen
        self.last_draw = self.last_plain = board.start
        self.write_lock = threading.Lock()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def say(self, text: str) -> None:
        """A log line: above the block on a terminal."""
        with self.write_lock:
            self._erase()
            self.log(text)
            if self.progress is not None:
                sys.stdout.flush()
                self._draw()

    def report(self, run: Run, status: str, message: str) -> None:
        """An executor's word on a finished run: ``status`` "ok", "diverged" or :data:`FAILED` (``message``)."""
        if status == FAILED:
            self.board.failed(str(run.folder), message)
        else:
            self.board.done(str(run.folder), result_of(run.folder) or status)
        self.tick(force=True)

    def tick(self, *, force: bool = False) -> None:
        """Look at the run folders, and draw (on a terminal) or print what is due (plain)."""
        if self.progress is None or self.watch is None:
            return
        p, board = self.progress, self.board
        with self.write_lock:
            before = self._states()
            self.watch.poll()
            now = board.clock()
            if p.tty:
                if force or before != self._states() or now - self.last_draw >= p.refresh:
                    self._erase()
                    self._draw()
                return
            for key, line in board.lines.items():
                if line.state == "running" and before[key] != (line.state, line.attempts):
                    self._plain(f"{line.name}: {board.describe(line, now)}")
            if now - self.last_plain >= p.interval:
                self.last_plain = now
                running = [x for x in board.lines.values() if x.state == "running"]
                self._plain(board.header(now))
                for x in running[:MOST_LISTED]:
                    self._plain(f"  {x.name}: {board.describe(x, now)}")
                if len(running) > MOST_LISTED:
                    self._plain(f"  ... and {len(running) - MOST_LISTED} more running")

    def _states(self) -> dict[str, tuple[str, int]]:
        return {k: (x.state, x.attempts) for k, x in self.board.lines.items()}

    def _plain(self, text: str) -> None:
        assert self.progress is not None
        now = self.board.clock()
        self.progress.stream.write(f"[{_clock_face(now - self.board.start)}] {text}\n")
        self.progress.stream.flush()

    def _erase(self) -> None:
        if self.progress is not None and self.progress.tty and self.drawn:
            self.progress.stream.write(f"\x1b[{self.drawn}F{_CLEAR_BELOW}")  # up to the block's first line
            self.progress.stream.flush()
            self.drawn = 0

    def _draw(self) -> None:
        p = self.progress
        if p is None or not p.tty:
            return
        columns, rows = p.size()
        now = self.board.clock()
        lines = [x[: max(10, columns - 1)] for x in self.board.frame(now, max(3, rows - 2))]
        p.stream.write("".join(x + "\n" for x in lines))  # whole lines: no carriage returns, no wrapping
        p.stream.flush()
        self.drawn, self.last_draw = len(lines), now

    def __enter__(self) -> Live:
        if self.progress is not None:
            self.tick(force=True)
            self.thread = threading.Thread(target=self._run, name="cnnlab-progress", daemon=True)
            self.thread.start()
        return self

    def _run(self) -> None:
        assert self.progress is not None
        while not self.stop.wait(min(self.progress.refresh, self.progress.interval)):
            self.tick()

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        if self.progress is not None:
            self.tick(force=True)
            if not self.progress.tty:  # the final state, once
                self._plain(self.board.header(self.board.clock()))


@contextmanager
def showing(progress: Progress | None, title: str, runs: Sequence[Run], log: Callable[[str], None]) -> Iterator[Live]:
    """A :class:`Live` board of ``runs`` for as long as the block runs (drawn by ``progress``; None: not drawn)."""
    lines = [
        Line(f"{r.label} seed {r.seed}", r.label, r.folder, r.config.epochs, 0 if r.phase == "pretrain" else 1)
        for r in runs
    ]
    with Live(Board(title, lines, progress.clock if progress else time.monotonic), progress, log) as live:
        yield live
