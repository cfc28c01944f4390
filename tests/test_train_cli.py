"""cnnlab train / eval / predict / export through the command line, their errors, and a 2-process DDP run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlab.cli import main
from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.train.predict import model_from_checkpoint
from tests.train_fixtures import CHILD_ENV, TINY_FLAGS, write_image_folder, write_mnist

TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")
needs_torchrun = pytest.mark.skipif(not os.path.exists(TORCHRUN), reason="no torchrun next to this Python")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder of the tiny ResNet trained for one epoch on a 64-image MNIST written as IDX files."""
    root = tmp_path_factory.mktemp("cli")
    write_mnist(root / "data")
    config = root / "run.yaml"
    config.write_text(f"data: mnist\ndata-dir: {root / 'data'}\nepochs: 1\nbatch_size: 16\nprogress: false\n")
    args = ["train", "--config", str(config), *TINY_FLAGS, "--out-dir", str(root / "runs"), "--run-name", "r"]
    assert main(args) == 0
    return root / "runs" / "r"


def test_train_prints_epochs_and_eval_reports_accuracy(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert load_checkpoint(trained)["config"]["batch_size"] == 16  # the YAML's value, under either spelling
    assert main(["eval", str(trained)]) == 0  # on the data it was trained with
    out = capsys.readouterr().out
    assert "accuracy" in out and "top-5" in out and (trained / "confusion.png").is_file()
    _, meta = model_from_checkpoint(trained)
    assert meta["classes"] == [f"{d} - {w}" for d, w in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])]  # fmt: skip


def test_predict_prints_topk_class_names(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(tmp_path / "digit.png")
    assert main(["predict", str(trained), str(tmp_path / "digit.png"), "--topk", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{tmp_path / 'digit.png'}: ") and line.count(" - ") == 2
    (tmp_path / "bad.png").write_text("not an image")
    assert main(["predict", str(trained), str(tmp_path / "bad.png")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_predict_in_onnxruntime_gives_the_torch_answer(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    from PIL import Image

    images = []
    for i in range(2):
        images.append(str(tmp_path / f"digit{i}.png"))
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (28, 28), dtype=np.uint8)).save(images[-1])
    lines = {}
    for runtime in ("torch", "onnxruntime"):
        assert main(["predict", str(trained), *images, "--topk", "3", "--runtime", runtime]) == 0
        lines[runtime] = capsys.readouterr().out
    assert lines["onnxruntime"] == lines["torch"] and lines["torch"].count(" - ") == 6  # same classes, same p


def test_export_onnx_matches_pytorch_in_onnxruntime(trained: Path, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "m.onnx"
    assert main(["export", str(trained), "--format", "onnx", "--output", str(out)]) == 0
    model, _ = model_from_checkpoint(trained)
    x = torch.randn(3, 1, 28, 28)  # another batch size than the export's
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        want = model(x)
    assert np.abs(got - want.numpy()).max() < 1e-4
    import onnx

    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert "BatchNormalization" not in ops  # folded into the convolutions


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_export_torchscript_matches_pytorch(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    assert main(["export", str(trained), "--format", "torchscript", "--output", str(out)]) == 0
    model, _ = model_from_checkpoint(trained)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(str(out))(x), model(x), atol=1e-5)


@needs_torchrun
def test_torchrun_two_cpu_processes_agree_and_write_once(tmp_path: Path) -> None:
    data = write_image_folder(tmp_path / "imgs", per_class=8, size=8)
    cmd = [TORCHRUN, "--standalone", "--nproc-per-node", "2", "-m", "cnnlab", "train", *TINY_FLAGS,
           "--data", f"imagefolder:{data}", "--image-size", "8", "--epochs", "1", "--batch-size", "4",
           "--out-dir", str(tmp_path / "runs"), "--no-progress", "--device", "cpu"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=CHILD_ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "weights identical on all 2 ranks" in proc.stdout
    assert proc.stdout.count("epoch   1/1") == 1  # only rank 0 logs
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "last.pt").is_file()
    assert len(list((runs[0] / "metrics.csv").read_text().splitlines())) == 2


def test_flags_override_the_yaml_which_overrides_the_defaults(tmp_path: Path) -> None:
    from cnnlab.cli import build_parser
    from cnnlab.cli.train_cmd import resolve_config

    (tmp_path / "c.yaml").write_text("lr: 0.5\nepochs: 3\n")
    args = build_parser().parse_args(
        ["train", "--config", str(tmp_path / "c.yaml"), "--lr", "0.2", "--no-channels-last"]
    )
    config = resolve_config(args)
    assert (config.lr, config.epochs, config.channels_last, config.batch_size) == (0.2, 3, False, 64)


def test_finetune_from_a_cnnlab_checkpoint_freezing_stages(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = trained.parent.parent / "data"
    args = ["train", *TINY_FLAGS, "--data", "mnist", "--data-dir", str(data_dir), "--epochs", "1", "--no-progress",
            "--pretrained", str(trained / "best.pt"), "--freeze", "2",
            "--out-dir", str(trained.parent), "--run-name", "ft"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"pretrained {trained / 'best.pt'}: loaded" in out and "(frozen: stem, S1)" in out
    before, after = load_checkpoint(trained, prefer="best.pt")["model"], load_checkpoint(trained.parent / "ft")["model"]
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("stem.", "S1.")))
    assert not torch.equal(before["S3.S3U1.conv2.conv.weight"], after["S3.S3U1.conv2.conv.weight"])


def test_lenet5_trains_on_mnist5k_padded_to_32(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "--model", "lenet5", "--epochs", "1", "--batch-size", "256", "--no-progress",
            "--out-dir", str(tmp_path), "--run-name", "lenet"]  # fmt: skip
    assert main(args) == 0
    assert "padded to 32x32" in capsys.readouterr().out
    meta = load_checkpoint(tmp_path / "lenet")["meta"]
    assert (meta["image_size"], meta["input"]["fit"], meta["input"]["native_size"]) == (32, "pad", 28)


def test_image_size_resizes_tensor_data_for_training_eval_predict_and_export(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    data_dir = trained.parent.parent / "data"
    args = ["train", *TINY_FLAGS, "--data", "mnist", "--data-dir", str(data_dir), "--epochs", "1", "--no-progress",
            "--image-size", "16", "--out-dir", str(tmp_path), "--run-name", "small"]  # fmt: skip
    assert main(args) == 0
    assert "resized to 16" in capsys.readouterr().out
    run = tmp_path / "small"
    meta = load_checkpoint(run)["meta"]
    assert (meta["image_size"], meta["input"]["fit"]) == (16, "resize")
    assert main(["eval", str(run)]) == 0 and "accuracy" in capsys.readouterr().out
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(tmp_path / "digit.png")
    assert main(["predict", str(run), str(tmp_path / "digit.png")]) == 0
    assert main(["export", str(run), "--format", "torchscript", "--output", str(tmp_path / "m.pt")]) == 0
    model, _ = model_from_checkpoint(run)
    seen: list[tuple[int, ...]] = []
    model.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape)))
    from cnnlab.train.predict import predict

    predict(model, meta, [tmp_path / "digit.png"])
    assert seen == [(1, 1, 16, 16)]  # a 28x28 file becomes the 16x16 input the model was trained on
