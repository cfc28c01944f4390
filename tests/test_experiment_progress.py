"""The live progress of an experiment (cnnlab.experiments.progress) on a fake clock: each run's state and time
left, the experiment's time left laid out on the workers, the run folders read as events, a terminal's block
redrawn in place and a log file's plain lines; and ``cnnlab train``'s epoch lines with the time left, with no
progress-bar frames in a log."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from cnnlab.cli import main
from cnnlab.experiments.progress import Board, Line, Progress, showing
from cnnlab.experiments.runner import Run, plan
from cnnlab.experiments.spec import spec_from_dict
from cnnlab.train.runfolder import LOCK
from tests.train_fixtures import TINY_FLAGS, write_mnist


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def line(name: str, group: str, phase: int = 1, epochs: int = 10) -> Line:
    return Line(name, group, Path("/nowhere") / name, epochs, phase)


def test_time_left_is_the_remaining_epochs_at_the_mean_pace_laid_out_on_the_workers() -> None:
    clock = Clock()
    board = Board("e", [line("a0", "a"), line("a1", "a"), line("b0", "b")], clock)
    board.started("/nowhere/a0")
    board.epoch("/nowhere/a0", 1, 10.0)
    board.epoch("/nowhere/a0", 2, 12.0)  # at t = 1000: 2 of 10 epochs at 11 s each
    clock.t += 5
    a0, a1, b0 = board.lines.values()
    assert board.left_s(a0, clock()) == pytest.approx(8 * 11 - 5)
    assert board.left_s(a1, clock()) == pytest.approx(10 * 11)  # its variant's pace
    assert board.left_s(b0, clock()) == pytest.approx(10 * 11)  # no run of its own variant: every run's pace
    assert board.experiment_left_s(clock()) == pytest.approx(83 + 110 + 110)  # one worker seen
    board.started("/nowhere/a1")  # now two at once: a1 starts its 110 s, b0 waits for a0's worker
    assert board.experiment_left_s(clock()) == pytest.approx(max(83 + 110, 110))


def test_the_variants_wait_for_every_pretraining_run() -> None:
    clock = Clock()
    board = Board("e", [line("p0", "pre", 0), line("p1", "pre", 0), line("v0", "v"), line("v1", "v")], clock)
    for k in ("p0", "p1"):
        board.started(f"/nowhere/{k}")
    board.epoch("/nowhere/p0", 5, 10.0)  # p0: 50 s left; p1 (no epoch yet): 100 s from its start, now
    board.epoch("/nowhere/p1", 9, 10.0)  # p1: 10 s left
    # two workers free at 50 s and 10 s; the variants (100 s each) start together after the last pretraining run
    assert board.experiment_left_s(clock()) == pytest.approx(50 + 100)


def test_each_runs_line_says_its_state_and_the_header_counts_them() -> None:
    clock = Clock()
    board = Board("se", [line("resnet seed 0", "r"), line("resnet seed 1", "r"), line("se seed 0", "s"),
                         line("se seed 1", "s")], clock)  # fmt: skip
    board.started("/nowhere/resnet seed 0")
    clock.t += 30
    board.epoch("/nowhere/resnet seed 0", 1, 30.0)
    board.done("/nowhere/se seed 0", "test error 3.85%, 10 epochs in 5 min")
    board.failed("/nowhere/se seed 1", "ConfigError: lr must be > 0\nmore")
    board.started("/nowhere/resnet seed 0")  # a retried run: taken by a second process
    clock.t += 60
    # resnet seed 0: 9 epochs of 30 s less the 60 s since its restart, 210 s; then resnet seed 1's 300 s on the one
    # worker seen: 510 s
    assert board.frame(clock(), height=24) == [
        "se: 1 of 4 runs done, 1 running, 1 queued, 1 failed; 1.5 min elapsed, about 8.5 min left",
        "  resnet seed 0  running (attempt 2): epoch 1/10 done, about 3.5 min left",
        "  resnet seed 1  queued",
        "  se seed 0      done: test error 3.85%, 10 epochs in 5 min",
        "  se seed 1      failed: ConfigError: lr must be > 0",
    ]
    assert board.experiment_left_s(clock()) == pytest.approx(9 * 30 - 60 + 10 * 30)
    board.epoch("/nowhere/resnet seed 0", 10, 30.0)
    assert board.describe(board.lines["/nowhere/resnet seed 0"], clock()) == (
        "running (attempt 2): epoch 10/10 done, testing"
    )  # trained: its test split is measured


def test_a_short_terminal_counts_runs_instead_of_listing_them() -> None:
    board = Board("e", [line(f"r{k}", "r") for k in range(8)], Clock())
    for k in range(3):
        board.done(f"/nowhere/r{k}", "ok")
    board.started("/nowhere/r3")
    assert board.frame(board.clock(), height=6) == [
        "e: 3 of 8 runs done, 1 running, 4 queued; 0 s elapsed; time left known after the first epoch",
        "  r3  running: in epoch 1/10",
        "  ... and 3 more done",
        "  ... and 4 more queued",
    ]
    board = Board("e", [line(f"r{k}", "r") for k in range(8)], Clock())
    for k in range(8):
        board.started(f"/nowhere/r{k}")
    frame = board.frame(board.clock(), height=6)  # all running: the last are counted
    assert len(frame) == 6 and frame[1:5] == [f"  r{k}  running: in epoch 1/10" for k in range(4)]
    assert frame[5] == "  ... and 4 more"


def tiny_runs(tmp_path: Path) -> list[Run]:
    spec = spec_from_dict({"name": "t", "seeds": [0, 1], "recipe": {"epochs": 3}, "variants": [
        {"label": "a", "model": "cifar_resnet20"}, {"label": "b", "model": "cifar_plain20"}]})  # fmt: skip
    return plan(spec, tmp_path / "runs")


def write_epochs(folder: Path, times: list[float]) -> None:
    """metrics.csv as the trainer writes it (cnnlab.train.runlog.COLUMNS), with these epoch times."""
    from cnnlab.train.runlog import COLUMNS

    folder.mkdir(parents=True, exist_ok=True)
    rows = [",".join(str(k + 1 if c == "epoch" else t if c == "epoch_s" else 0.5) for c in COLUMNS)
            for k, t in enumerate(times)]  # fmt: skip
    (folder / "metrics.csv").write_text("\n".join([",".join(COLUMNS), *rows]) + "\n")


def finish(folder: Path, test_acc: float, wall_s: float) -> None:
    results = {"status": "ok", "epochs_run": 3, "test": {"final": {"test_acc": test_acc}}, "wall_s": wall_s}
    (folder / "results.json").write_text(json.dumps(results))


def take(folder: Path) -> None:
    """What a process that takes a run does first: write its lock file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK).write_text('{"pid": 1}')


NO_THREAD = 1e9  # refresh (s): the display's own thread never wakes during a test; the test ticks it


def test_a_log_file_gets_a_line_when_a_run_starts_and_the_state_every_interval(tmp_path: Path) -> None:
    """Events from the run folders (a lock taken, metrics.csv rows, results.json) and from the executor (a
    failure); a log gets plain lines, no carriage returns or escape sequences."""
    runs = tiny_runs(tmp_path)
    a0, a1 = runs[0].folder, runs[1].folder
    write_epochs(a1, [4.0, 4.0, 4.0])
    finish(a1, 0.9615, 12.0)  # done before: kept
    clock, out, said = Clock(), io.StringIO(), []
    progress = Progress(out, tty=False, interval=60, refresh=NO_THREAD, clock=clock)
    with showing(progress, "t", runs, said.append) as live:
        take(a0)
        clock.t += 2
        live.tick()  # a0 started: a line (its pace, before its first epoch, is its variant's: 3 x 4 s)
        write_epochs(a0, [20.0])
        clock.t += 20
        live.tick()  # an epoch: no line before the interval
        live.say("a log line")
        clock.t += 40
        live.tick()  # 62 s: the state
        finish(a0, 0.9, 60.0)
        live.report(runs[0], "ok", "")
        live.report(runs[2], "failed", "TrainingError: boom")
    assert said == ["a log line"]
    # at 62 s: a0 has 2 epochs of 20 s left less the 40 s since its first; b0 and b1 take 3 epochs at every run's
    # mean epoch (20 + 3 x 4) / 4 = 8 s, one after the other on the one worker seen
    assert out.getvalue().splitlines() == [
        "[0:02] a seed 0: running: in epoch 1/3, about 12 s left",
        "[1:02] t: 1 of 4 runs done, 1 running, 2 queued; 62 s elapsed, about 48 s left",
        "[1:02]   a seed 0: running: epoch 1/3 done, about 0 s left",
        "[1:02] t: 2 of 4 runs done, 1 queued, 1 failed; 62 s elapsed, about 24 s left",
    ]
    assert [live.board.describe(x, clock()) for x in live.board.lines.values()] == [
        "done: test error 10.00%, 3 epochs in 60 s", "kept: test error 3.85%, 3 epochs in 12 s",
        "failed: TrainingError: boom", "queued",
    ]  # fmt: skip


def test_a_terminal_gets_the_block_redrawn_in_place_with_log_lines_above(tmp_path: Path) -> None:
    runs = tiny_runs(tmp_path)
    clock, out, said = Clock(), io.StringIO(), []
    progress = Progress(out, tty=True, refresh=NO_THREAD, clock=clock, size=lambda: (40, 24))
    with showing(progress, "t", runs, said.append) as live:
        live.say("a log line")
        take(runs[0].folder)
        clock.t += 2
        live.tick()
    parts = re.split(r"\x1b\[(\d+)F\x1b\[J", out.getvalue())  # "go up N lines, erase below", then a frame
    frames, ups = [f.splitlines() for f in (parts[0], *parts[2::2])], [int(n) for n in parts[1::2]]
    assert said == ["a log line"] and len(frames) == 4  # drawn at the start, after the log line, the start, the end
    assert ups == [len(f) for f in frames[:-1]]  # each redraw goes up exactly the lines of the frame before
    assert frames[2][1:] == ["  a seed 0  running: in epoch 1/3", "  a seed 1  queued", "  b seed 0  queued",
                             "  b seed 1  queued"]  # fmt: skip
    assert frames[2][0].startswith("t: 0 of 4 runs done, 1 running") and len(frames[2][0]) == 39  # cut: no wrap
    assert "\r" not in out.getvalue()


def test_train_epoch_lines_say_the_time_left_and_a_log_gets_no_progress_bar_frames(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_mnist(tmp_path / "mnist", n_train=32, n_test=16)
    args = ["train", *TINY_FLAGS, "--data", "mnist", "--data-dir", str(data), "--epochs", "2", "--batch-size", "16",
            "--out-dir", str(tmp_path / "runs"), "--run-name", "r"]  # fmt: skip
    assert main(args) == 0
    out, err = capsys.readouterr()
    first, last = (x for x in out.splitlines() if x.startswith("epoch "))
    seconds = float(re.search(r"([\d.]+) s  about", first).group(1))  # type: ignore[union-attr]
    assert first.endswith(f"about {seconds:.0f} s left") and last.endswith(" s")  # one epoch left at its pace
    assert "\r" not in err and "epoch 1/2" not in err  # stderr is not a terminal here: no tqdm bar
