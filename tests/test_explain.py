"""`cnnlab explain` and the run report's "Why" section (Grad-CAM; sampling points of a deformable run), and
`cnnlab predict --weights` reading images with the preprocessing of weights trained elsewhere."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image

from cnnlab.cli import main
from cnnlab.pages import REPORT
from tests.helpers import png_figure, randomize_norm_stats
from tests.train_fixtures import TINY, class_images, write_mnist

DEFORMABLE = {**TINY["model_kwargs"], "stage_conv_layers": ["conv", "conv", "deformable"]}
"""The tiny ResNet with deformable 3x3s in its last stage (two of them: one unit of two convs)."""


@pytest.fixture(scope="module")
def deform_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of the tiny deformable ResNet on a 64-image MNIST, by `cnnlab train` (which writes the report)."""
    root = tmp_path_factory.mktemp("explain")
    write_mnist(root / "data")
    args = ["train", "--model", TINY["model"], "--model-kwargs", json.dumps(DEFORMABLE), "--data", "mnist",
            "--data-dir", str(root / "data"), "--epochs", "1", "--batch-size", "16", "--no-progress",
            "--out-dir", str(root / "runs"), "--run-name", "r"]  # fmt: skip
    assert main(args) == 0
    return root / "runs" / "r"


def digit_png(path: Path, label: int) -> Path:
    x, y = class_images(10, 28, 1, 10, seed=3)
    Image.fromarray(x[list(y).index(label), :, :, 0]).save(path)
    return path


def test_the_report_explains_with_gradcam_and_sampling_points(deform_run: Path) -> None:
    page = (deform_run / REPORT).read_text()
    why = page.split("Why: Grad-CAM", 1)[1]
    assert "layer S3" in why and why.count("Grad-CAM of ") >= 6  # one figure per class of the first six
    sampling = why.split("Deformable sampling points", 1)[1]
    assert sampling.count("data:image/png;base64") == 2


def test_explain_writes_gradcam_and_sampling_pngs(
    deform_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = digit_png(tmp_path / "seven.png", 7)
    out = tmp_path / "why" / "seven.png"
    assert main(["explain", str(deform_run), str(image), "--class", "7", "--out", str(out), "--cell", "1,2"]) == 0
    text = capsys.readouterr().out
    assert "explained '7 - seven' at layer S3" in text and f"Grad-CAM {out}" in text
    sampling = out.with_name("seven_sampling.png")
    assert f"sampling points {sampling}" in text
    assert png_figure(out)[0] > png_figure(out)[1] and png_figure(sampling)
    assert main(["explain", str(deform_run), str(image), "--layer", "S2", "--out", str(tmp_path / "s2.png")]) == 0
    assert "at layer S2" in capsys.readouterr().out
    assert main(["explain", str(deform_run), str(image), "--class", "eleven"]) == 2
    assert "--class must be a class name or an index in 0..9, got 'eleven'" in capsys.readouterr().err
    assert main(["explain", str(deform_run), str(image), "--cell", "9,9", "--out", str(tmp_path / "c.png")]) == 2
    assert "cell must lie in the top deformable layer's" in capsys.readouterr().err


def test_predict_with_weights_from_elsewhere_reads_images_as_they_expect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """resnet18 with torchvision's architecture's weights (random here, saved to a file): cnnlab predict gives the
    top classes and probabilities that torchvision's model gives after its own published transform."""
    peer = randomize_norm_stats(torchvision.models.resnet18()).eval()
    torch.save(peer.state_dict(), tmp_path / "r18.pth")
    picture = Image.fromarray(class_images(1, 300, 3, 10, seed=5)[0][0]).resize((320, 280))
    picture.save(tmp_path / "cat.png")
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    with torch.no_grad():
        probs = peer(weights.transforms()(picture)[None]).softmax(1)[0]
    top, names = probs.topk(3), weights.meta["categories"]
    expected = ", ".join(f"{names[i]} {p:.3f}" for p, i in zip(top.values, top.indices, strict=True))
    assert main(["predict", "resnet18", str(tmp_path / "cat.png"), "--weights", str(tmp_path / "r18.pth")]) == 0
    assert capsys.readouterr().out.strip() == f"{tmp_path / 'cat.png'}: {expected}"
    assert main(["predict", "resnet18", str(tmp_path / "cat.png")]) == 2
    assert re.search(r"resnet18 is a model name: give --weights", capsys.readouterr().err)
