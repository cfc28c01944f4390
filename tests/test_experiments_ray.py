"""Experiments on a real Ray of this machine (started once for the module, stopped after it): the same run
folders, metrics and verdicts as this machine's own executor with the same threads per run; a worker killed in
the middle of a run is retried and the run resumes from its checkpoint; a run that fails for a reason of its own
is reported, not retried; --until-decided on Ray; and the errors that say what Ray needs."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import sys
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
