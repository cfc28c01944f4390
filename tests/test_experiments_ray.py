"""Experiments on a real Ray of this machine (started once for the module, stopped after it): the same run
folders, metrics and verdicts as this machine's own executor with the same threads per run; a pretraining phase
finishes before the runs that start from its weights; a driver stopped mid-experiment and started again keeps the
finished runs and resumes the others; a worker killed in the middle of a run is retried and the run resumes from
its checkpoint; a run that fails for a reason of its own is reported, not retried; --until-decided on Ray; and
the errors that say what Ray needs."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from cnnlab.cli import main
from cnnlab.errors import ConfigError, MissingDependencyError, TrainingError
from cnnlab.experiments.cluster import RayExecutor, check_shared, gpus_for, import_ray
from cnnlab.experiments.experiment import run_experiment
from cnnlab.experiments.runner import RunsFailed
from cnnlab.experiments.spec import spec_from_dict
from cnnlab.train import Callback, StepInfo
from cnnlab.train.checkpoint import load_checkpoint
from tests.train_fixtures import write_mnist

pytestmark = pytest.mark.xdist_group("ray")  # one process of `make test` starts Ray once for all of them

REPO = Path(__file__).resolve().parents[1]
TINY = {"layers": [1, 1, 1], "widths": [4, 8, 8]}
QUIET = {"log": lambda _s: None}
TIMING = {"images_per_s", "epoch_s", "wall_s"}  # what differs between two runs of one recipe: the clock


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A Ray of this machine's own, 2 CPUs; its workers import this checkout and these tests (PYTHONPATH: the
    callbacks below travel to them by reference)."""
    import ray

    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), str(REPO), before) if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             object_store_memory=1 << 27)  # fmt: skip
    try:
        yield
    finally:
        ray.shutdown()
        if before is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = before


@pytest.fixture
def ctrl_c_interrupts() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt in this process and in the drivers it starts, as at a terminal: a process
    that found SIGINT ignored (a suite started in the background, or a library that set it) installs no handler
    of its own and passes the ignoring on to its children; one with a handler installed starts them with the
    default, for which Python installs its own."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two tiny nets, two seeds, two epochs on 64 digits; a plan of rounds (for --until-decided)."""
    data = write_mnist(tmp_path_factory.mktemp("mnist"), n_train=64, n_test=32)
    return {
        "name": "tiny", "data": "mnist", "seeds": [0, 1],
        "recipe": {"data_dir": str(data), "epochs": 2, "batch_size": 16, "channels_last": False},
        "variants": [{"label": "a", "model": "cifar_resnet20", "model_kwargs": TINY},
                     {"label": "b", "model": "cifar_plain20", "model_kwargs": TINY}],
        "expect": [{"better": "a", "worse": "b", "metric": "val_error"}],
        "until_decided": {"seeds_per_round": 2, "max_seeds": 4},
    }  # fmt: skip


@pytest.fixture(scope="module")
def local(experiment: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The experiment trained by this machine's executor, one thread per run: the reference."""
    out = tmp_path_factory.mktemp("local")
    run_experiment(spec_from_dict(experiment), out, jobs=1, threads=1, **QUIET)
    return out


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def untimed(obj: Any, skip: frozenset[str] = frozenset()) -> Any:
    """``obj`` (parsed JSON) without its timings (and the keys ``skip``), and with paths as their last names."""
    if isinstance(obj, dict):
        left_out = TIMING | {"runs_wall_s", "collect_s", "meta"} | skip
        return {k: untimed(v) for k, v in obj.items() if k not in left_out}
    if isinstance(obj, list):
        return [untimed(v) for v in obj]
    return Path(obj).name if isinstance(obj, str) and "/" in obj else obj


def assert_same_results(out: Path, reference: Path, skip: frozenset[str] = frozenset()) -> None:
    """The same run folders (metrics, results, weights) and the same results and verdicts (but ``skip``)."""
    folders = sorted(p.name for p in (reference / "runs").iterdir() if p.is_dir())
    assert folders == sorted(p.name for p in (out / "runs").iterdir() if p.is_dir()) and len(folders) == 4
    for name in folders:
        a, b = out / "runs" / name, reference / "runs" / name
        assert rows(a / "metrics.csv") == rows(b / "metrics.csv")
        assert untimed(json.loads((a / "results.json").read_text())) == untimed(
            json.loads((b / "results.json").read_text())
        )
        wa, wb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    saved, expected = (json.loads((p / "results.json").read_text()) for p in (out, reference))
    assert untimed(saved, skip) == untimed(expected, skip) and saved["verdict"] == expected["verdict"]


def test_an_experiment_on_ray_gives_the_local_results_and_until_decided_keeps_them(
    local_ray: None, experiment: dict[str, Any], local: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "tiny.yaml"
    file.write_text(yaml.safe_dump(experiment))
    out = tmp_path / "ray"
    assert main(["experiment", "run", str(file), "--ray", "--threads", "1", "--out", str(out)]) == 0
    printed, shown = capsys.readouterr()
    assert_same_results(out, local)
    assert sum(": ok (" in x for x in printed.splitlines()) == 4
    assert "tiny: 4 of 4 runs done" in shown and "\r" not in shown  # the progress, as plain lines (not a tty)
    # a driver started again keeps what finished: --until-decided looks at its first round (2 seeds) on Ray
    args = ["experiment", "run", str(file), "--ray", "--until-decided", "--max-seeds", "2", "--out", str(out)]
    assert main(args) == 0
    assert "variant: 4 run(s) already done, kept" in capsys.readouterr().out
    assert_same_results(out, local, skip=frozenset({"rounds"}))  # what the rounds were, besides
    assert json.loads((out / "results.json").read_text())["rounds"]["ran"] == 1


class Starts(Callback):
    """Leaves in ``folder``, for each run, its seed, its parameters and the time at its first step (before the
    optimizer moved them: the weights it started from) and at each epoch's end, one file per event. The second
    run to end an epoch waits ``lag`` seconds first: two runs that would end together end apart, and a run
    started between them shows."""

    def __init__(self, folder: Path, lag: float) -> None:
        self.folder, self.lag, self.started = folder, lag, False

    def on_step(self, info: StepInfo) -> None:
        if not self.started:  # a fresh copy of the callback travels with each run
            self.started = True
            self._leave("start", info.model)

    def on_epoch_end(self, epoch: int, metrics: Any, model: Any) -> None:
        for turn in ("first", "second"):
            try:
                os.close(os.open(self.folder / turn, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            if turn == "second":
                time.sleep(self.lag)
            break
        self._leave("end", model)

    def _leave(self, event: str, model: Any) -> None:
        params = {k: p.detach().clone() for k, p in model.named_parameters()}
        record = {"event": event, "seed": torch.initial_seed(), "t": time.time(), "params": params}
        torch.save(record, self.folder / f"{time.time_ns()}-{os.getpid()}.pt")


def test_on_ray_the_runs_start_from_the_pretrained_weights_after_the_pretraining_ended(
    local_ray: None, experiment: dict[str, Any], tmp_path: Path
) -> None:
    """Two seeds of a pretraining run and a run from its weights, one epoch each, on a Ray of 2 CPUs: a run of
    the second phase started before both pretraining runs ended would start in the 2 s that one waits."""
    spec = spec_from_dict(experiment | {
        "recipe": experiment["recipe"] | {"epochs": 1}, "expect": [], "until_decided": None,
        "pretrain": {"model": "cifar_resnet20", "model_kwargs": TINY},
        "variants": [{"label": "finetuned", "model": "cifar_resnet20", "model_kwargs": TINY}],
    })  # fmt: skip
    events = tmp_path / "events"
    events.mkdir()
    executor = RayExecutor(threads=1, callbacks=(Starts(events, lag=2.0),))
    run_experiment(spec, tmp_path / "out", executor=executor, **QUIET)
    runs = tmp_path / "out" / "runs"
    pretrained = {s: load_checkpoint(runs / f"pretrain-seed{s}", prefer="best.pt")["model"] for s in (0, 1)}

    def is_pretrained(record: dict[str, Any]) -> bool:  # the weights of its seed's pretraining
        return all(torch.equal(v, pretrained[record["seed"]][k]) for k, v in record["params"].items())

    records = [torch.load(p) for p in sorted(events.glob("*.pt"))]
    starts = [r for r in records if r["event"] == "start"]
    from_pretrained = [r for r in starts if is_pretrained(r)]
    pretraining_ended = [r for r in records if r["event"] == "end" and is_pretrained(r)]
    assert sorted(r["seed"] for r in starts) == [0, 0, 1, 1]
    assert sorted(r["seed"] for r in from_pretrained) == [0, 1] == sorted(r["seed"] for r in pretraining_ended)
    assert min(r["t"] for r in from_pretrained) > max(r["t"] for r in pretraining_ended)
    for s in (0, 1):  # and trained on from there
        trained = load_checkpoint(runs / f"finetuned-seed{s}")["model"]
        assert not torch.equal(trained["stem.conv.weight"], pretrained[s]["stem.conv.weight"])


def files_of(folder: Path) -> dict[str, tuple[int, str]]:
    """Each file under ``folder``: its time of last change (ns) and a hash of its bytes."""
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def hold_a_cpu(held: str, release: str) -> None:
    """A Ray task that holds its CPU until the file ``release`` exists (a minute at most); ``held`` once it has."""
    Path(held).touch()
    deadline = time.monotonic() + 60
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_a_driver_stopped_mid_experiment_and_started_again_keeps_the_finished_runs_and_resumes_the_others(
    stop: signal.Signals,
    local_ray: None,
    ctrl_c_interrupts: None,
    experiment: dict[str, Any],
    local: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The driver (a ``cnnlab experiment run --ray`` process joined to this module's Ray) is stopped once its
    first run has finished; the same command again trains only the others and gets the local results. One of the
    2 CPUs is held meanwhile: the driver's runs go one at a time, and the stop comes before the last starts."""
    import ray

    file, out, held, release = tmp_path / "tiny.yaml", tmp_path / "out", tmp_path / "held", tmp_path / "release"
    file.write_text(yaml.safe_dump(experiment))
    args = ["experiment", "run", str(file), "--ray", "--threads", "1", "--out", str(out)]
    address = ray.get_runtime_context().gcs_address
    holder = ray.remote(hold_a_cpu).options(num_cpus=1).remote(str(held), str(release))
    driver = None
    with open(tmp_path / "driver.log", "w") as log:
        try:
            deadline = time.monotonic() + 60
            while not held.exists():
                assert time.monotonic() < deadline, "the CPU was not held in a minute"
                time.sleep(0.01)
            driver = subprocess.Popen(
                [sys.executable, "-m", "cnnlab", *args[:4], address, *args[4:]], cwd=tmp_path, stdout=log, stderr=log
            )
            deadline = time.monotonic() + 600  # a guard against a hang, not a speed target (a loaded machine)
            while not list(out.glob("runs/*/results.json")) and driver.poll() is None:
                assert time.monotonic() < deadline, "no run finished in 10 minutes"
                time.sleep(0.01)
            driver.send_signal(stop)
            code = driver.wait(timeout=60)
        finally:
            if driver is not None:
                driver.kill()
            release.touch()
            ray.get(holder)
    said = (tmp_path / "driver.log").read_text()
    assert code == (130 if stop == signal.SIGINT else -stop), said
    finished = sorted(p.parent for p in out.glob("runs/*/results.json"))
    assert 1 <= len(finished) < 4, said
    before = {f.name: files_of(f) for f in finished}
    assert main(args) == 0  # the same command again, on this module's Ray
    printed = capsys.readouterr().out
    assert f"variant: {len(finished)} run(s) already done, kept" in printed
    assert sum(": ok (" in x for x in printed.splitlines()) == 4 - len(finished)
    assert {f.name: files_of(f) for f in finished} == before  # not retrained, not touched
    assert_same_results(out, local)


class CtrlC(Callback):
    """At the second step of the first run to get there, Ctrl-C to the driver (process ``driver``); from then on
    every step of every run takes ``lag`` seconds more, long enough for a run to see that the driver stopped."""

    def __init__(self, driver: int, marker: Path, lag: float) -> None:
        self.driver, self.marker, self.lag = driver, marker, lag

    def on_step(self, info: StepInfo) -> None:
        if info.global_step == 2:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                os.kill(self.driver, signal.SIGINT)
            except FileExistsError:
                pass
        if self.marker.exists():
            time.sleep(self.lag)


def test_ctrl_c_in_the_driver_stops_the_runs_at_a_step_with_their_checkpoints_and_they_resume_exactly(
    local_ray: None, ctrl_c_interrupts: None, experiment: dict[str, Any], local: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    stop = RayExecutor(threads=1, callbacks=(CtrlC(os.getpid(), tmp_path / "interrupted", lag=0.4),))
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_experiment(spec_from_dict(experiment), out, executor=stop, **QUIET)
    assert time.monotonic() - t0 < 30  # the runs stopped: the driver did not wait out STOP_WAIT_S
    stopped = [load_checkpoint(p, prefer="last.pt") for p in (out / "runs").glob("a-seed*")]
    assert len(stopped) == 2 and all(c["epoch"] <= 2 and c["step"] > 0 for c in stopped)  # within an epoch
    assert not list(out.glob("runs/*/results.json"))
    run_experiment(spec_from_dict(experiment), out, executor=RayExecutor(threads=1), **QUIET)
    assert_same_results(out, local)  # each from where it stopped, to the same weights as the uninterrupted run


class KillOnce(Callback):
    """SIGKILLs its own worker after the first epoch of the first run to get there (``marker`` says which
    process), and records each epoch's end in ``epochs``: a run resumed from its checkpoint ends epoch 1 once."""

    def __init__(self, marker: Path, epochs: Path) -> None:
        self.marker, self.epochs = marker, epochs

    def on_epoch_end(self, epoch: int, metrics: Any, model: Any) -> None:
        with open(self.epochs, "a") as f:
            f.write(f"{os.getpid()} {epoch}\n")
        if epoch == 1:
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # the first process only
            except FileExistsError:
                return
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_mid_run_is_retried_and_its_run_resumes(
    local_ray: None, experiment: dict[str, Any], local: Path, tmp_path: Path
) -> None:
    marker, epochs = tmp_path / "killed", tmp_path / "epochs"
    executor = RayExecutor(threads=1, callbacks=(KillOnce(marker, epochs),))
    run_experiment(spec_from_dict(experiment), tmp_path / "out", executor=executor, **QUIET)
    killed = marker.read_text()
    ends = [line.split() for line in epochs.read_text().splitlines()]
    assert [e for pid, e in ends if pid == killed] == ["1"]  # the killed process ended one epoch, then died
    assert len(ends) == 4 * 2  # every run's epochs once: the killed run went on from its checkpoint after epoch 1
    assert_same_results(tmp_path / "out", local)


class FailAtFirstStep(Callback):
    """A run's own error at its first step; each attempt is recorded in ``attempts``."""

    def __init__(self, attempts: Path) -> None:
        self.attempts = attempts

    def on_step(self, info: StepInfo) -> None:
        with open(self.attempts, "a") as f:
            f.write(f"{os.getpid()}\n")
        raise TrainingError("the run's own error")


def test_a_run_that_fails_on_its_own_is_reported_and_not_retried(
    local_ray: None, experiment: dict[str, Any], tmp_path: Path
) -> None:
    spec = spec_from_dict(experiment | {"variants": experiment["variants"][:1], "expect": []})
    executor = RayExecutor(threads=1, callbacks=(FailAtFirstStep(tmp_path / "attempts"),))
    lines: list[str] = []
    with pytest.raises(RunsFailed, match=r"2 of 2 runs failed .* a seed 0, a seed 1: TrainingError: the run's own"):
        run_experiment(spec, tmp_path / "out", executor=executor, log=lines.append)
    assert len((tmp_path / "attempts").read_text().split()) == 2  # one attempt per run: not retried
    assert sum(": failed (TrainingError: the run's own error)" in x for x in lines) == 2


def test_a_worker_that_cannot_see_the_drivers_folder_fails_at_once_saying_what_is_needed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot see the results folder .*runs.* shared filesystem"):
        check_shared(tmp_path / "runs" / ".cnnlab-driver-x", str(tmp_path))
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / ".cnnlab-driver-x").write_text("{}")
    check_shared(tmp_path / "runs" / ".cnnlab-driver-x", str(tmp_path))  # seen: nothing said
    with pytest.raises(ConfigError, match="working directory"):
        check_shared(tmp_path / "runs" / ".cnnlab-driver-x", str(tmp_path / "elsewhere"))


def test_a_run_asks_for_a_gpu_when_its_recipe_trains_on_cuda() -> None:
    assert [gpus_for(d, 2) for d in ("cuda", "cuda:1", "auto", "cpu")] == [1, 1, 1, 0]
    assert [gpus_for(d, 0) for d in ("auto", "cpu")] == [0, 0]
    with pytest.raises(ConfigError, match="has no GPU"):
        gpus_for("cuda", 0)


def test_without_ray_installed_the_error_names_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray: ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'cnnlab\[ray\]'"):
        import_ray()
    file = tmp_path / "e.yaml"
    file.write_text(yaml.safe_dump({"name": "e", "model": "cifar_resnet20", "grid": {"shortcut": ["A", "B"]}}))
    assert main(["experiment", "run", str(file), "--ray", "--out", str(tmp_path / "out")]) == 2
    assert "cnnlab[ray]" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_ray_and_print_commands_are_two_ways_to_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "e.yaml"
    file.write_text(yaml.safe_dump({"name": "e", "model": "cifar_resnet20", "grid": {"shortcut": ["A", "B"]}}))
    assert main(["experiment", "run", str(file), "--ray", "--print-commands"]) == 2
    assert "give one" in capsys.readouterr().err
