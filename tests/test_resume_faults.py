"""Resumes that cannot go on as the checkpoints are, and a stop that comes after the last step: a best.pt that is not
the run's own, weights that are NaN on arrival, and Ctrl-C while the last epoch's checkpoints are written. Each ends
with one line that says what is wrong and what to do, leaves the run folder as it was, and resumes where it can."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from cnnlab.cli import main
from cnnlab.train import checkpoint, fit
from cnnlab.train.checkpoint import load_checkpoint, save_checkpoint
from tests.train_fixtures import TINY_FLAGS, StopAt, assert_same_weights, tiny_config, write_mnist

QUIET = {"log": lambda _s: None}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mnist(tmp_path_factory.mktemp("mnist"))


def files(run: Path) -> dict[str, bytes]:
    """Every file the run folder holds (TensorBoard's events aside), by name."""
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}


OTHER = {  # where a best.pt that is not the run's comes from
    "another model": {"model": "cifar_vgg", "model_kwargs": {}},  # other tensors: load_state_dict would raise
    "a model with the same tensors": {"model": "cifar_plain20"},  # ResNet-20 without shortcuts: it would load
    "another run": {"seed": 1},  # the same model: only the history tells
}


def other_best(data: Path, out: Path, source: str) -> Path:
    return fit(tiny_config(data, out, run_name="other", epochs=1, **OTHER[source]), **QUIET).run_dir / "best.pt"


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("another model", "holds a cifar_vgg, not a cifar_resnet20"),
        ("a model with the same tensors", "holds a cifar_plain20, not a cifar_resnet20"),
        ("another run", "holds the history of another run"),
        ("deleted", None),
    ],
)
def test_a_best_pt_that_is_not_the_runs_is_refused_when_the_run_resumes(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, why: str | None
) -> None:
    run = fit(tiny_config(data, tmp_path, run_name="r"), **QUIET).run_dir  # finished: no epoch would replace best.pt
    if source == "deleted":
        (run / "best.pt").unlink()
    else:
        shutil.copy(other_best(data, tmp_path, source), run / "best.pt")
    before = files(run)
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    best_epoch = load_checkpoint(run)["best"]["epoch"]
    way_out = f"the run names epoch {best_epoch} its best and its final test needs those weights: put the run's own "
    assert err.startswith("cnnlab: error: ") and way_out in err and "or start the run again with --overwrite" in err
    if why is None:
        assert f"{str(run)!r} holds no best.pt" in err
    else:
        assert f"{str(run / 'best.pt')!r} is not this run's best checkpoint ({why}" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert files(run) == before  # results.json of the finished run too


def test_weights_that_are_nan_on_arrival_blame_the_checkpoint_not_the_recipe(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tiny_config(data, tmp_path, run_name="r")
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, callbacks=[StopAt(5)], **QUIET)  # in epoch 2: steps left to train
    run = tmp_path / "r"
    state = load_checkpoint(run)
    state["model"]["stem.conv.weight"][0, 0, 0, 0] = float("nan")
    save_checkpoint({k: v for k, v in state.items() if k != "path"}, run / "last.pt")
    before = files(run)
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    nan = f"the weights in {str(run / 'last.pt')!r} are not finite: 1 tensor(s) hold NaN or Inf (stem.conv.weight)"
    assert nan in err
    assert f"; start a new run from its best weights (--pretrained {run / 'best.pt'}), or start this run again" in err
    assert "--lr" not in err and "Traceback" not in err
    assert files(run) == before  # no results.json that calls the run diverged

    best = load_checkpoint(run, prefer="best.pt")
    best["model"]["stem.conv.weight"].fill_(float("inf"))
    save_checkpoint({k: v for k, v in best.items() if k != "path"}, run / "best.pt")
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"so {run} cannot go on from them; start this run again (--overwrite)" in err and "--pretrained" not in err


def interrupt_at(monkeypatch: pytest.MonkeyPatch, nth: int) -> None:
    """Ctrl-C (a real SIGINT to this process) while the ``nth`` last.pt of the run is written."""
    real, seen = checkpoint.write_atomic, []

    def write(path: Path, *chunks: bytes | memoryview) -> Path:
        seen.append(path.name)
        if path.name == "last.pt" and seen.count("last.pt") == nth:
            os.kill(os.getpid(), signal.SIGINT)
        return real(path, *chunks)

    monkeypatch.setattr(checkpoint, "write_atomic", write)


@pytest.mark.parametrize(
    ("case", "last_pt", "epochs_run"),
    [("the last epoch", 2, 2), ("the epoch that stops early", 3, 3)],
)
def test_ctrl_c_while_the_last_checkpoints_are_written_stops_before_the_test_and_resumes(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], case: str,
    last_pt: int, epochs_run: int,
) -> None:  # fmt: skip
    from cnnlab.train import trainer

    flags = ["--data", "mnist", "--data-dir", str(data), "--batch-size", "16", "--no-progress",
             "--out-dir", str(tmp_path)]  # fmt: skip
    recipe = {"epochs": 2} if case == "the last epoch" else {"epochs": 6, "early_stop": 2}
    if "early_stop" in recipe:
        monkeypatch.setattr(trainer, "improves", lambda m, best, **_: best is None)  # only epoch 1 is ever "better"
    straight = fit(tiny_config(data, tmp_path, run_name="straight", **recipe), **QUIET)
    args = [f"--{k.replace('_', '-')}={v}" for k, v in recipe.items()]
    real = checkpoint.write_atomic
    interrupt_at(monkeypatch, last_pt)
    assert main(["train", *TINY_FLAGS, *flags, *args, "--run-name", "r"]) == 130
    out, err = capsys.readouterr()
    run = tmp_path / "r"
    assert f"interrupted after epoch {epochs_run}: saved {run / 'last.pt'}; resume: --resume {run}" in out
    assert err.strip().endswith("cnnlab: interrupted") and "test (" not in out
    assert not (run / "results.json").exists() and load_checkpoint(run)["epoch"] == epochs_run + 1

    monkeypatch.setattr(checkpoint, "write_atomic", real)
    assert main(["train", "--resume", str(run)]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["epochs_run"] == epochs_run and results["stopped_early"] == straight.stopped_early
    assert results["test"] == {k: t.to_dict() for k, t in straight.test.items()}
    assert_same_weights(straight.model.state_dict(), load_checkpoint(run)["model"])
