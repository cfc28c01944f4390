"""NaN and Inf where a layer cannot take them. torchvision's CPU deformable-conv kernel indexes its input with
the sampling offsets and dies with a segmentation fault on NaN ones, so each case runs in a subprocess: a
regression fails its test (exit -11) instead of killing pytest. A clean refusal is a NonFiniteError."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import cnnlab
from cnnlab.analysis import analyze

SCRIPT = """
import sys
import torch
from torch import nn
import cnnlab
from cnnlab.errors import NonFiniteError
from cnnlab.layers import DeformConv2d

case = sys.argv[1]
x = torch.randn(1, 4, 8, 8)
layer = DeformConv2d(4, 4, 3, modulated=case == "modulated")
if case == "weights":  # a diverged offset conv, a finite input
    with torch.no_grad():
        layer.offset.weight.fill_(float("nan"))
elif case == "model":  # a whole network whose last stage is deformable
    layer = cnnlab.create_model("resnet18", num_classes=2, stage_conv_layers=(nn.Conv2d,) * 3 + (DeformConv2d,))
    x = torch.randn(1, 3, 32, 32)
    x[0, 0, 0, 0] = float("nan")
else:
    x[0, 1, 3, 3] = float("inf" if case == "inf" else "nan")
try:
    layer.eval()(x)
except NonFiniteError as e:
    print(e)
else:
    sys.exit("no error")
"""


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("nan", "DeformConv2d (4 -> 4 channels, 3x3): the sampling offsets hold NaN or Inf because its input holds"),
        ("inf", "because its input holds NaN or Inf"),
        ("modulated", "because its input holds NaN or Inf"),
        ("weights", "because its offset conv's weights do"),
        ("model", "DeformConv2d (256 -> 512 channels, 3x3): the sampling offsets hold NaN or Inf"),
    ],
)
def test_nonfinite_offsets_are_an_error_not_a_crash(case: str, expected: str) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, case], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"exit {done.returncode} (-11: the kernel crashed): {done.stderr[-2000:]}"
    assert expected in done.stdout and "there is nowhere to sample" in done.stdout


def test_the_guard_keeps_the_deformable_net_traceable() -> None:
    """The check sits in the fx-wrapped kernel call, so the analyzer still traces the model on the meta device."""
    with torch.device("meta"):
        model = cnnlab.create_model("deform_resnet50")
    report = analyze(model, (3, 64, 64))
    assert report.params == 25_805_918 and report.depth == 50
