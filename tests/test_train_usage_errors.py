"""Usage errors of ``cnnlab train``, ``eval``, ``predict`` and ``export``: each is exit code 2 and one line that names
the wrong value and what is accepted, never a traceback, and a refused run leaves no run folder behind."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cnnlab.cli import main
from cnnlab.errors import ConfigError
from cnnlab.train import fit
from cnnlab.train.checkpoint import load_checkpoint, save_checkpoint
from tests.train_fixtures import TINY_FLAGS, tiny_config, write_image_folder, write_mnist


@dataclass(frozen=True)
class Where:
    data: Path  # write_mnist's digits
    run: Path  # a finished 2-epoch run of the tiny ResNet on them
    tmp: Path  # an empty folder of this test
    out: Path  # where refused runs would have written (must stay absent)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("usage")
    data = write_mnist(root / "data")
    return data, fit(tiny_config(data, root / "runs", run_name="r"), log=lambda _s: None).run_dir


@pytest.fixture
def where(trained: tuple[Path, Path], tmp_path: Path) -> Where:
    return Where(trained[0], trained[1], tmp_path, tmp_path / "out")


def tiny(w: Where, *flags: str) -> list[str]:
    """``cnnlab train`` of the tiny ResNet on the digits, into ``w.out``, with ``flags``."""
    return ["train", *TINY_FLAGS, "--data", "mnist", "--data-dir", str(w.data), "--epochs", "1", "--no-progress",
            "--out-dir", str(w.out), *flags]  # fmt: skip


def file_at(w: Where) -> Path:
    (w.tmp / "afile").write_text("not a folder")
    return w.tmp / "afile"


def yaml_file(w: Where, text: str) -> Path:
    (w.tmp / "c.yaml").write_text(text)
    return w.tmp / "c.yaml"


def one_image_per_class(w: Where) -> Path:
    return write_image_folder(w.tmp / "imgs", per_class=1)


Argv = Callable[[Where], list[str]]


def out_args(w: Where) -> list[str]:
    return ["--out-dir", str(w.out)]


TRAIN: dict[str, tuple[Argv, str]] = {  # name: (the command line, what the error says)
    "momentum -1": (lambda w: tiny(w, "--momentum", "-1"), "momentum must be in [0, 1), got -1.0"),
    "momentum 2": (lambda w: tiny(w, "--momentum", "2"), "momentum must be in [0, 1), got 2.0"),
    "image size -5": (
        lambda w: tiny(w, "--image-size", "-5"),
        "image_size must be an integer in [1, 4096] (or None: the data's own), got -5",
    ),
    "grad clip -1": (
        lambda w: tiny(w, "--grad-clip", "-1"),
        "grad_clip must be a finite number > 0 (or None: no clipping), got -1.0",
    ),
    "lr nan": (lambda w: tiny(w, "--lr", "nan"), "lr must be a finite number > 0, got nan"),
    "lr inf": (lambda w: tiny(w, "--lr", "inf"), "lr must be a finite number > 0, got inf"),
    "lr 0": (lambda w: tiny(w, "--lr", "0"), "lr must be a finite number > 0, got 0.0"),
    "batch size 0": (lambda w: tiny(w, "--batch-size", "0"), "batch_size must be an integer >= 1, got 0"),
    "epochs 0": (lambda w: tiny(w, "--epochs", "0"), "epochs must be an integer in [1, 10000], got 0"),
    "seed -1": (lambda w: tiny(w, "--seed", "-1"), "seed must be an integer in [0, 2**63), got -1"),
    "label smoothing 1": (lambda w: tiny(w, "--label-smoothing", "1"), "label_smoothing must be in [0, 1), got 1.0"),
    "warm-up -1": (
        lambda w: tiny(w, "--warmup-epochs", "-1"),
        "warmup_epochs must be a finite number >= 0, got -1.0",
    ),
    "weight decay nan": (lambda w: tiny(w, "--weight-decay", "nan"), "weight_decay must be >= 0, got nan"),
    "workers -1": (lambda w: tiny(w, "--workers", "-1"), "workers must be an integer in [0, 256], got -1"),
    "val fraction 1": (lambda w: tiny(w, "--val-fraction", "1"), "val_fraction must be in [0, 1), got 1.0"),
    "eval every 0": (lambda w: tiny(w, "--eval-every", "0"), "eval_every must be an integer >= 1, got 0"),
    "early stop 0": (
        lambda w: tiny(w, "--early-stop", "0"),
        "early_stop must be an integer >= 1 (or None: never), got 0",
    ),
    "early stop without validation": (
        lambda w: tiny(w, "--early-stop", "2", "--val-fraction", "0"),
        "early_stop needs a validation split: set val_fraction > 0",
    ),
    "run name with a slash": (
        lambda w: tiny(w, "--run-name", "a/b"),
        "run_name must be a folder name (no '/', not '.' or '..'), got 'a/b'",
    ),
    "momentum not a number": (lambda w: tiny(w, "--momentum", "fast"), "argument --momentum: invalid float value"),
    "unknown optimizer": (lambda w: tiny(w, "--optimizer", "adam"), "argument --optimizer: invalid choice: 'adam'"),
    "num_classes in model_kwargs": (
        lambda w: ["train", "--model-kwargs", '{"num_classes": 5}', "--out-dir", str(w.out)],
        "num_classes comes from the data (10 classes of mnist5k); remove it from model_kwargs",
    ),
    "a segmentation model": (
        lambda w: ["train", "--model", "fcn_cifar_resnet20", "--out-dir", str(w.out)],
        "fcn_cifar_resnet20 predicts a label per pixel (segmentation) and mnist5k has one label per image; train it on "
        "a segmentation data set (mnist5k-seg, segfolder:PATH)",
    ),
    "a classifier on segmentation data": (
        lambda w: ["train", "--data", "mnist5k-seg", "--out-dir", str(w.out)],
        "mnist5k-seg has a label per pixel (segmentation) and cifar_vgg predicts one label per image; train a "
        "segmentation model on it (`cnnlab models` lists them: fcn_cifar_resnet20, duc_cifar_resnet20, ...)",
    ),
    "rotation of segmentation data": (
        lambda w: ["train", "--model", "fcn_cifar_resnet20", "--data", "mnist5k-seg", "--rotate", "5", *out_args(w)],
        "rotate and scale augment in-memory classification data (mnist5k, mnist, cifar10, ...), not mnist5k-seg",
    ),
    "rotate out of range": (
        lambda w: ["train", "--rotate", "200", *out_args(w)],
        "rotate must be degrees in [0, 180] (or None: the data set's standard), got 200.0",
    ),
    "in_chans in model_kwargs": (
        lambda w: ["train", "--model-kwargs", '{"in_chans": 3}', "--out-dir", str(w.out)],
        "in_chans comes from the data (1-channel images of mnist5k); remove it from model_kwargs",
    ),
    "model_kwargs not JSON": (
        lambda w: ["train", "--model-kwargs", "{drop_rate: 0.2}", "--out-dir", str(w.out)],
        "argument --model-kwargs: not valid JSON (Expecting property name enclosed in double quotes: line 1 "
        "column 2 (char 1)): '{{drop_rate: 0.2}}'",
    ),
    "model_kwargs a list": (
        lambda w: ["train", "--model-kwargs", "[0.2]", "--out-dir", str(w.out)],
        """argument --model-kwargs: expected a JSON object such as '{{"drop_rate": 0.2}}', got '[0.2]'""",
    ),
    "a misspelt model argument": (
        lambda w: tiny(w, "--model-kwargs", json.dumps({"drop_rat": 0.2})),
        "cifar_resnet20 does not accept 'drop_rat'. Did you mean: drop_rate?",
    ),
    "a misspelt YAML key": (
        lambda w: ["train", "--config", str(yaml_file(w, "epohcs: 2\n"))],
        "unknown config key 'epohcs'. Did you mean: epochs?",
    ),
    "out dir is a file": (
        lambda w: tiny(w, "--out-dir", str(file_at(w))),
        "out_dir '{tmp}/afile' is a file; give a folder (it is created when missing)",
    ),
    "out dir inside a file": (
        lambda w: tiny(w, "--out-dir", str(file_at(w) / "runs")),
        "out_dir '{tmp}/afile/runs' is inside '{tmp}/afile', which is a file; give a folder",
    ),
    "model larger than the data": (
        lambda w: ["train", "--model", "inception_v3", "--image-size", "28", "--out-dir", str(w.out)],
        "image size 28 is below the model's minimum input size 75",
    ),
    "unknown model": (lambda w: tiny(w, "--model", "resnt50"), "unknown model 'resnt50'"),
    "a split left empty": (
        lambda w: tiny(w, "--data", f"imagefolder:{one_image_per_class(w)}"),
        "class 'ant' has 1 image(s): too few to put 20% in the test split and keep one for training",
    ),
    "no CUDA": (lambda w: tiny(w, "--device", "cuda:0"), "CUDA is not available on this machine; use --device cpu"),
}
RESUME: dict[str, tuple[Argv, str]] = {
    "another lr": (
        lambda w: ["train", "--resume", str(w.run), "--lr", "0.05"],
        "a resumed run continues its recorded recipe: lr was 0.1 in {run} (given: 0.05). Start a new run with "
        "--pretrained {run}/best.pt to train on with another lr",
    ),
    "two other fields": (
        lambda w: ["train", "--resume", str(w.run), "--batch-size", "8", "--momentum", "0.5"],
        "batch_size was 16 in {run} (given: 8); momentum was 0.9 in {run} (given: 0.5). Start a new run",
    ),
    "more epochs under one-cycle": (
        lambda w: ["train", "--resume", str(w.run), "--epochs", "4"],
        "epochs was 2 in {run} (given: 4) (the onecycle schedule spans all the epochs)",
    ),
    "pretrained": (
        lambda w: ["train", "--resume", str(w.run), "--pretrained", str(w.run / "best.pt")],
        "pretrained with resume: a resumed run continues from its own checkpoint in {run}, so it loads no other "
        "weights ('{run}/best.pt' given, None recorded)",
    ),
    "overwrite": (
        lambda w: ["train", "--resume", str(w.run), "--overwrite"],
        "resume continues a run and overwrite starts it again from scratch: give one of them",
    ),
    "a missing run": (
        lambda w: ["train", "--resume", str(w.tmp / "nothing")],
        "no checkpoint or run folder at '{tmp}/nothing'",
    ),
}
CHECKPOINT: dict[str, tuple[Argv, str]] = {
    "eval: unknown split": (lambda w: ["eval", str(w.run), "--split", "dev"], "argument --split: invalid choice"),
    "eval: --out is a file": (
        lambda w: ["eval", str(w.run), "--out", str(file_at(w))],
        "--out '{tmp}/afile' is a file; give a folder",
    ),
    "predict: no such image": (lambda w: ["predict", str(w.run), str(w.tmp / "x.png")], "no image at '{tmp}/x.png'"),
    "export: unknown format": (
        lambda w: ["export", str(w.run), "--format", "tflite"],
        "argument --format: invalid choice: 'tflite'",
    ),
    "eval: no checkpoint in the folder": (
        lambda w: ["eval", str(w.tmp)],
        "the run folder '{tmp}' holds no checkpoint (last.pt or best.pt)",
    ),
}
CASES = {**TRAIN, **RESUME, **CHECKPOINT}  # messages are format strings of {tmp} and {run}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """(exit code, stderr) of ``cnnlab ARGV`` (argparse's errors exit through SystemExit)."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES)
def test_a_usage_error_is_one_line_with_exit_code_2(
    case: str, where: Where, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, message = CASES[case]
    before = sorted((where.run).iterdir())
    code, err = run_cli(argv(where), capsys)
    assert code == 2, err
    assert "error: " in err and message.format(tmp=where.tmp, run=where.run) in err.replace("\n", " "), err
    assert "Traceback" not in err
    assert not where.out.exists()  # a refused run leaves nothing behind
    assert sorted(where.run.iterdir()) == before  # nor changes a run it was pointed at


def test_fields_that_do_not_change_the_math_may_change_on_resume(where: Where, capsys: pytest.CaptureFixture) -> None:
    argv = ["train", "--resume", str(where.run), "--workers", "2", "--device", "cpu", "--eval-every", "2"]
    assert main(argv) == 0  # a finished run: nothing left to train, the test split evaluated again
    assert "resumed from" in capsys.readouterr().out


def test_python_resumes_follow_the_same_rules(where: Where) -> None:
    cfg = tiny_config(where.data, where.run.parent, run_name="r")
    with pytest.raises(ConfigError, match=r"lr was 0.1 in .*r \(given: 0.05\)"):
        fit(cfg.replace(resume=str(where.run), lr=0.05), log=lambda _s: None)
    with pytest.raises(ConfigError, match="pretrained with resume"):
        fit(cfg.replace(resume=str(where.run), pretrained=str(where.run / "best.pt")), log=lambda _s: None)
    state = load_checkpoint(where.run)
    state["world_size"] = 2
    save_checkpoint({k: v for k, v in state.items() if k != "path"}, where.tmp / "ddp.pt")
    with pytest.raises(ConfigError, match=r"was trained by 2 process\(es\) and this run has 1: .*--nproc-per-node 2"):
        fit(cfg.replace(resume=str(where.tmp / "ddp.pt")), log=lambda _s: None)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("grad_clip", -1.0, "grad_clip must be a finite number > 0 (or None: no clipping), got -1.0"),
        ("momentum", 2.0, "momentum must be in [0, 1), got 2.0"),
        ("image_size", -3, "image_size must be an integer in [1, 4096] (or None: the data's own), got -3"),
        ("lr", float("inf"), "lr must be a finite number > 0, got inf"),
        ("lr", "0.1", "lr must be a finite number > 0, got '0.1'"),
        ("epochs", 2.5, "epochs must be an integer in [1, 10000], got 2.5"),
        ("batch_size", True, "batch_size must be an integer >= 1, got True"),
        ("label_smoothing", float("nan"), "label_smoothing must be in [0, 1), got nan"),
        ("model_kwargs", [1], "model_kwargs must be a mapping, got [1]"),
    ],
)
def test_train_config_checks_each_field_where_it_enters(field: str, value: object, message: str) -> None:
    from cnnlab.train import TrainConfig

    with pytest.raises(ConfigError) as error:
        TrainConfig(**{field: value})  # type: ignore[arg-type]
    assert str(error.value) == message
