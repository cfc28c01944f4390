"""``cnnlab toy residual``: the notes' example computed from real ``nn.Linear(2, 2)`` layers at PyTorch's default
initialisation, and trained by SGD with and without a shortcut; the steps checked against the closed form (one
layer, one point) and against an independent training loop over real ``nn.Linear`` modules."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlab.analysis.toys import (
    NOTES_X,
    ToyConfig,
    init_outputs,
    residual_toy,
    stack_output,
    stacked_weights,
    toy_inputs,
    train_stack,
)
from cnnlab.cli import main
from cnnlab.errors import AnalysisError
from tests.helpers import png_figure

X = torch.tensor([NOTES_X], dtype=torch.float64)


def real_layers(seed: int, depth: int) -> list[nn.Linear]:
    torch.manual_seed(seed)
    return [nn.Linear(2, 2).double() for _ in range(depth)]


def test_the_weights_are_pytorchs_default_linear_init() -> None:
    w, b = stacked_weights(4, 3)
    for seed in range(4):
        for i, layer in enumerate(real_layers(seed, 3)):
            assert torch.equal(w[seed, i], layer.weight.detach()) and torch.equal(b[seed, i], layer.bias.detach())
    assert w.abs().max() <= 1 / math.sqrt(2)  # U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = 2


@pytest.mark.parametrize("shortcut", [True, False])
def test_the_stack_is_the_layers_applied_one_after_another(shortcut: bool) -> None:
    w, b = stacked_weights(3, 5)
    x = toy_inputs("identity", 6)
    out = stack_output(w, b, x, shortcut=shortcut)
    for seed in range(3):
        h = x
        for layer in real_layers(seed, 5):
            h = h + layer(h) if shortcut else layer(h)
        assert torch.allclose(out[seed], h, atol=1e-12)


def test_at_init_the_output_is_nearer_0_than_x() -> None:
    stats = init_outputs(200)
    # E|Wx + b|^2 = 2 (|x|^2 + 1) Var(U(-a, a)) with a = 1/sqrt(2): 2 * 6 / 6 = 2; 200 seeds: standard error ~0.14
    assert stats.mean_sq_f == pytest.approx(2.0, abs=0.45)
    assert stats.norm_x == pytest.approx(math.sqrt(5))
    assert stats.norm_f[1] < stats.norm_f_minus_x[1] and stats.closer_to_zero > 0.5
    assert stats.closer_to_zero == sum(a < b for a, b in zip(stats.norms, stats.distances, strict=True)) / 200
    f0 = real_layers(0, 1)[0](X)[0]
    assert stats.seed0 == pytest.approx(tuple(f0.tolist()))


def closed_form_steps(r0: float, lr: float, tol: float) -> int:
    """One layer, one input x: an SGD step on 0.5 |Wx + b - t|^2 multiplies the error by 1 - lr (|x|^2 + 1)."""
    factor, steps = 1 - lr * (5 + 1), 0
    while r0 >= tol:
        r0 *= abs(factor)
        steps += 1
    return steps


def test_one_layer_one_point_takes_the_closed_form_number_of_steps() -> None:
    w, b = stacked_weights(40, 1)
    lr, tol = 0.01, 0.01
    for shortcut in (True, False):
        steps, diverged = train_stack(w, b, X, shortcut=shortcut, lr=lr, tol=tol, max_steps=500)
        f = (w[:, 0] @ X[0] + b[:, 0]) - (0 if shortcut else X[0])  # the error at the start
        assert not diverged.any()
        assert steps.tolist() == [closed_form_steps(e.norm().item(), lr, tol) for e in f]


def sgd_steps(seed: int, depth: int, x: torch.Tensor, *, shortcut: bool, lr: float, tol: float, max_steps: int) -> int:
    """SGD over real nn.Linear modules, one layer after another, written from the toy's definition: the steps
    until the RMS distance |h(x) - x| is below ``tol`` (-1: not within ``max_steps``)."""
    layers = real_layers(seed, depth)
    params = [p for layer in layers for p in layer.parameters()]
    for step in range(max_steps + 1):
        h = x
        for layer in layers:
            h = h + layer(h) if shortcut else layer(h)
        sq = ((h - x) ** 2).sum(-1).mean()
        if sq.sqrt() < tol:
            return step
        grads = torch.autograd.grad(0.5 * sq, params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p -= lr * g
    return -1


def test_deep_stacks_train_as_an_independent_sgd_loop_does() -> None:
    x = toy_inputs("identity", 8)
    w, b = stacked_weights(2, 3)
    for shortcut in (True, False):
        steps, _ = train_stack(w, b, x, shortcut=shortcut, lr=0.05, tol=0.1, max_steps=250)
        expected = [sgd_steps(seed, 3, x, shortcut=shortcut, lr=0.05, tol=0.1, max_steps=250) for seed in range(2)]
        assert steps.tolist() == expected and min(expected) > 0  # every seed reached, after some steps


def test_the_report_pairs_both_variants_of_every_setting() -> None:
    report = residual_toy(ToyConfig(seeds=12, depths=(1, 3), tasks=("point",), max_steps=400))
    assert [(r.task, r.depth, r.variant) for r in report.rows] == [
        ("point", 1, "shortcut"), ("point", 1, "plain"), ("point", 3, "shortcut"), ("point", 3, "plain")
    ]  # fmt: skip
    shortcut, plain = report.pairs()[0]
    wins = report.shortcut_wins(shortcut, plain)
    assert wins == sum(a < b for a, b in zip(shortcut.steps, plain.steps, strict=True)) / 12
    # one layer: the steps grow with the starting error, so the shortcut wins only where |F(x)| < |F(x) - x|
    assert 0 < wins <= report.init.closer_to_zero
    rows = report.to_dict()["training"]
    assert rows[0]["steps_median"] == sorted(shortcut.steps)[5]  # the 6th of 12 (inverted CDF)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(AnalysisError, match="lr must be positive"):
        ToyConfig(lr=0)
    with pytest.raises(AnalysisError, match="tasks must be some of"):
        ToyConfig(tasks=("circle",))  # type: ignore[arg-type]


def test_the_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = ["toy", "residual", "--seeds", "6", "--depths", "1", "2", "--tasks", "point", "--max-steps", "100"]
    assert main([*args, "--plot", str(tmp_path / "toy.png")]) == 0
    out = capsys.readouterr().out
    assert "closer to 0 than to x" in out and "shortcut wins" in out and png_figure(tmp_path / "toy.png")
    assert main([*args, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["depth"] for r in data["training"]] == [1, 1, 2, 2] and data["init"]["seeds"] == 6
    assert main([*args[:5], "1", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("task,depth,variant,seeds,reached")
    with pytest.raises(SystemExit) as e:
        main(["toy", "residual", "--lr", "0"])
    assert e.value.code == 2 and "expected a positive number" in capsys.readouterr().err
