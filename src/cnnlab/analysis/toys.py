"""Residual learning in miniature: the design notes' two-number example, computed and trained.

The notes explain He et al.'s argument (2016, Sec. 3.1: "if an identity mapping were optimal, it would be easier
to push the residual to zero than to fit an identity mapping by a stack of nonlinear layers") with a toy: a layer
at its initialisation outputs something small, about [0.6, 0.6] for the input x = [2, 1], far closer to 0 than to
x, so a layer that must output 0 (the residual F of ``h(x) = x + F(x)`` when h should be the identity) starts
near its goal, and a layer that must output x itself (a plain layer learning ``h(x) = x``) starts far from it.

Here the layer is a real ``nn.Linear(2, 2)`` at PyTorch's default initialisation, over many seeds
(:func:`init_outputs`), and then trained (:func:`residual_toy`): plain SGD on the squared distance
``0.5 |h(x) - x|^2`` until the root-mean-square distance over the inputs falls below a tolerance, with the shortcut
(``h = x + F(x)`` at every layer, F one linear layer) and without it (``h = W x + b``), from the same
initialisation. Two tasks: ``point`` is the notes' single input x; ``identity`` asks for h(x) = x on ``points``
inputs (x and points drawn from N(0, I)), which is what learning the identity means: on one point a plain stack
only has to output a constant, which its last bias can do alone. Depth 1 is the notes' example; deeper stacks of
such layers (8 or 19) are where the two differ most.

The layers are linear (no activation): the notes' example is linear, and a linear stack is where the argument can
be checked exactly. At depth 1 on one point the number of steps has a closed form (every SGD step multiplies the
output's error by ``1 - lr (|x|^2 + 1)``), which the tests check; a shortcut then saves only the steps that its
smaller starting error is worth.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from cnnlab.errors import AnalysisError

NOTES_X = (2.0, 1.0)
"""The notes' input x."""

ToyTask = Literal["point", "identity"]
TOY_TASKS: tuple[ToyTask, ...] = ("point", "identity")

DIVERGED = 1e6
"""A distance |h(x) - x| above this (or not finite) counts as diverged."""


@dataclass(frozen=True)
class ToyConfig:
    """What :func:`residual_toy` trains. Every default carries its reason."""

    seeds: int = 200  # initialisations (torch seeds 0 .. seeds - 1), the same for both variants
    depths: tuple[int, ...] = (1, 8)  # linear layers in the stack: the notes' one, and a deep stack
    tasks: tuple[ToyTask, ...] = TOY_TASKS  # the notes' single x, and the identity on `points` inputs
    lr: float = 0.01  # plain SGD, full batch; 0.01 keeps most 8-layer residual stacks from diverging
    tol: float = 0.01  # reached: root-mean-square |h(x) - x| over the inputs below this
    max_steps: int = 2000  # a run that has not reached tol by then is counted as not reached
    points: int = 16  # inputs of the identity task: x and points - 1 drawn from N(0, I) with data seed 0
    init_scale: float = 1.0  # 1: PyTorch's default init; below 1 shrinks it (the notes' "weights near zero")

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be {rule}, got {value!r}"
            for name, value, ok, rule in (
                ("seeds", self.seeds, self.seeds >= 1, "at least 1"),
                ("depths", self.depths, bool(self.depths) and min(self.depths) >= 1, "one or more depths >= 1"),
                ("tasks", self.tasks, bool(self.tasks) and set(self.tasks) <= set(TOY_TASKS), f"some of {TOY_TASKS}"),
                ("lr", self.lr, self.lr > 0, "positive"),
                ("tol", self.tol, self.tol > 0, "positive"),
                ("max_steps", self.max_steps, self.max_steps >= 1, "at least 1"),
                ("points", self.points, self.points >= 2, "at least 2 (x and one more)"),
                ("init_scale", self.init_scale, self.init_scale > 0, "positive"),
            )
            if not ok
        ]
        if problems:
            raise AnalysisError("residual toy: " + "; ".join(problems))


def default_linears(seed: int, depth: int) -> list[nn.Linear]:
    """``depth`` ``nn.Linear(2, 2)`` layers made one after another after ``torch.manual_seed(seed)``: PyTorch's
    default initialisation (weights and biases uniform in +-1/sqrt(2)). The global random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return [nn.Linear(2, 2) for _ in range(depth)]


def stacked_weights(seeds: int, depth: int, scale: float = 1.0) -> tuple[Tensor, Tensor]:
    """The weights (seeds x depth x 2 x 2) and biases (seeds x depth x 2) of :func:`default_linears` for seeds
    0 .. seeds - 1, times ``scale``, in float64."""
    layers = [default_linears(s, depth) for s in range(seeds)]
    weights = torch.stack([torch.stack([lin.weight.detach() for lin in ls]) for ls in layers]).double()
    biases = torch.stack([torch.stack([lin.bias.detach() for lin in ls]) for ls in layers]).double()
    return weights * scale, biases * scale


def stack_output(weights: Tensor, biases: Tensor, x: Tensor, *, shortcut: bool) -> Tensor:
    """h(x) of every seed's stack for the inputs ``x`` (n x 2): ``h <- W h + b`` per layer, or ``h <- h + W h + b``
    with the shortcut; seeds x n x 2. Each layer is an affine map, so the stack is the product of their 3 x 3
    homogeneous matrices, multiplied in pairs (log2(depth) batched products rather than depth)."""
    s, depth = weights.shape[:2]
    linear = weights + torch.eye(2, dtype=weights.dtype) if shortcut else weights
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=weights.dtype).expand(s, depth, 1, 3)
    m = torch.cat([torch.cat([linear, biases[..., None]], -1), bottom], -2)  # seeds x depth x 3 x 3
    while m.shape[1] > 1:  # layer 2 after layer 1: pairs (A2 A1), (A4 A3), ...; an odd last one waits
        even = m.shape[1] // 2 * 2
        paired = m[:, 1:even:2] @ m[:, 0:even:2]
        m = torch.cat([paired, m[:, even:]], 1)
    total = m[:, 0]
    return x @ total[:, :2, :2].transpose(1, 2) + total[:, None, :2, 2]


def train_stack(
    weights: Tensor, biases: Tensor, x: Tensor, *, shortcut: bool, lr: float, tol: float, max_steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Plain SGD on ``0.5 |h(x) - x|^2`` (mean over the inputs) for every seed's stack at once (each seed's loss
    depends on its own weights only). Returns the steps each seed took to bring the root-mean-square distance
    below ``tol`` (-1: not within ``max_steps``) and whether it diverged (:data:`DIVERGED`)."""
    w, b = weights.clone().requires_grad_(), biases.clone().requires_grad_()
    steps = np.full(w.shape[0], -1)
    diverged = np.zeros(w.shape[0], dtype=bool)
    for step in range(max_steps + 1):
        sq = ((stack_output(w, b, x, shortcut=shortcut) - x) ** 2).sum(-1).mean(-1)  # per seed
        dist = sq.detach().sqrt().numpy()
        diverged |= ~(dist < DIVERGED)  # NaN included
        steps[(dist < tol) & (steps < 0) & ~diverged] = step
        if step == max_steps or ((steps >= 0) | diverged).all():
            break
        loss = torch.where(torch.as_tensor(diverged), 0.0, 0.5 * sq).sum()
        gw, gb = torch.autograd.grad(loss, (w, b))
        with torch.no_grad():
            w -= lr * gw
            b -= lr * gb
    return steps, diverged


def toy_inputs(task: ToyTask, points: int) -> Tensor:
    """The inputs of ``task``: the notes' x alone, or x and ``points - 1`` N(0, I) points (data seed 0)."""
    x = torch.tensor([NOTES_X], dtype=torch.float64)
    if task == "point":
        return x
    more = torch.randn(points - 1, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return torch.cat([x, more])


@dataclass(frozen=True)
class InitStats:
    """F(x) = nn.Linear(2, 2)(x) at the notes' x over ``seeds`` default initialisations."""

    x: tuple[float, float]
    seeds: int
    seed0: tuple[float, float]  # F(x) of seed 0, to compare with the notes' [0.6, 0.6]
    norm_f: tuple[float, float, float]  # |F(x)|: 25th, 50th, 75th percentiles
    norm_f_minus_x: tuple[float, float, float]  # |F(x) - x|: the distance a plain layer has to cover
    closer_to_zero: float  # share of seeds with |F(x)| < |F(x) - x|
    mean_sq_f: float  # mean |F(x)|^2; in expectation 2 (|x|^2 + 1) / 6 = 2 at x = [2, 1] (times the scale^2)
    norms: tuple[float, ...] = field(repr=False, default=())  # |F(x)| per seed
    distances: tuple[float, ...] = field(repr=False, default=())  # |F(x) - x| per seed

    @property
    def norm_x(self) -> float:
        return math.hypot(*self.x)


def init_outputs(seeds: int = 200, *, scale: float = 1.0) -> InitStats:
    """F(x) of the first layer of each seed's stack (:func:`default_linears`) at the notes' x."""
    w, b = stacked_weights(seeds, 1, scale)
    x = torch.tensor(NOTES_X, dtype=torch.float64)
    f = (w[:, 0] @ x + b[:, 0]).numpy()
    norms, dists = np.linalg.norm(f, axis=1), np.linalg.norm(f - x.numpy(), axis=1)
    quartiles = lambda v: tuple(float(q) for q in np.percentile(v, [25, 50, 75]))  # noqa: E731
    return InitStats(
        x=NOTES_X,
        seeds=seeds,
        seed0=(float(f[0, 0]), float(f[0, 1])),
        norm_f=quartiles(norms),
        norm_f_minus_x=quartiles(dists),
        closer_to_zero=float(np.mean(norms < dists)),
        mean_sq_f=float(np.mean(norms**2)),
        norms=tuple(norms.tolist()),
        distances=tuple(dists.tolist()),
    )


@dataclass(frozen=True)
class ToyRow:
    """One variant of one setting: the steps each seed took (-1: not reached)."""

    task: ToyTask
    depth: int
    variant: Literal["shortcut", "plain"]
    steps: tuple[int, ...]
    diverged: int  # seeds whose distance blew up
    max_steps: int

    @property
    def reached(self) -> int:
        return sum(s >= 0 for s in self.steps)

    def quantile(self, q: float) -> float:
        """The ``q`` quantile of the steps over every seed, a seed that never reached counting as infinitely many
        (so the median is infinite when fewer than half reached)."""
        return float(np.quantile([s if s >= 0 else math.inf for s in self.steps], q, method="inverted_cdf"))

    def summary(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "depth": self.depth,
            "variant": self.variant,
            "seeds": len(self.steps),
            "reached": self.reached,
            "diverged": self.diverged,
            "steps_q25": self.quantile(0.25),
            "steps_median": self.quantile(0.5),
            "steps_q75": self.quantile(0.75),
        }


@dataclass(frozen=True)
class ToyReport:
    config: ToyConfig
    init: InitStats
    rows: list[ToyRow]

    def pairs(self) -> list[tuple[ToyRow, ToyRow]]:
        """(shortcut, plain) of each setting, in the order trained."""
        return [(a, b) for a, b in zip(self.rows[::2], self.rows[1::2], strict=True)]

    @staticmethod
    def shortcut_wins(shortcut: ToyRow, plain: ToyRow) -> float:
        """Share of seeds (same initialisation for both) where the shortcut reached the tolerance in fewer steps
        (a seed that never reached counts as taking forever; two that never reached are no win)."""
        never = math.inf
        wins = [(a if a >= 0 else never) < (b if b >= 0 else never) for a, b in zip(shortcut.steps, plain.steps,
                                                                                     strict=True)]  # fmt: skip
        return float(np.mean(wins))

    def to_dict(self) -> dict[str, Any]:
        init = {k: v for k, v in asdict(self.init).items() if k not in ("norms", "distances")}
        rows = []
        for shortcut, plain in self.pairs():
            wins = self.shortcut_wins(shortcut, plain)
            rows += [shortcut.summary() | {"shortcut_wins": wins}, plain.summary() | {"shortcut_wins": wins}]
        return {"config": asdict(self.config), "init": init | {"norm_x": self.init.norm_x}, "training": rows}


def residual_toy(config: ToyConfig | None = None) -> ToyReport:
    """The notes' example at initialisation, then trained with and without the shortcut: every task at every
    depth, both variants from the same ``config.seeds`` initialisations."""
    c = config or ToyConfig()
    rows = []
    for task in c.tasks:
        x = toy_inputs(task, c.points)
        for depth in c.depths:
            w, b = stacked_weights(c.seeds, depth, c.init_scale)
            for variant in ("shortcut", "plain"):
                steps, diverged = train_stack(w, b, x, shortcut=variant == "shortcut", lr=c.lr, tol=c.tol,
                                              max_steps=c.max_steps)  # fmt: skip
                rows.append(ToyRow(task, depth, variant, tuple(steps.tolist()), int(diverged.sum()), c.max_steps))
    return ToyReport(c, init_outputs(c.seeds, scale=c.init_scale), rows)


def steps_label(v: float, max_steps: int) -> str:
    return f">{max_steps}" if math.isinf(v) else f"{v:.0f}"


def toy_tables(report: ToyReport) -> tuple[list[list[str]], list[list[str]]]:
    """The rows of the two tables ``cnnlab toy residual`` prints: the layer at initialisation, then training."""
    i, s = report.init, report.config.init_scale
    scaled = "" if s == 1 else f" x {s:g}^2"  # Var(U(-a, a)) = a^2 / 3 with a = 1/sqrt(2) at the default init
    q = lambda t: f"{t[1]:.2f} [{t[0]:.2f}, {t[2]:.2f}]"  # noqa: E731
    init = [
        ["x", f"[{i.x[0]:g}, {i.x[1]:g}]", f"|x| = {i.norm_x:.3f}"],
        ["F(x), seed 0", f"[{i.seed0[0]:.2f}, {i.seed0[1]:.2f}]", "the notes: about [0.6, 0.6]"],
        ["|F(x)|: median [quartiles]", q(i.norm_f), "the distance to 0 (a residual F must reach 0)"],
        ["|F(x) - x|: median [quartiles]", q(i.norm_f_minus_x), "the distance to x (a plain layer must reach x)"],
        ["closer to 0 than to x", f"{i.closer_to_zero:.0%} of {i.seeds} seeds", ""],
        ["mean |F(x)|^2", f"{i.mean_sq_f:.3f}", f"expected 2 (|x|^2 + 1) / 6{scaled} = {2 * s**2:.3g}"],
    ]
    train = []
    for shortcut, plain in report.pairs():
        wins = report.shortcut_wins(shortcut, plain)
        for r in (shortcut, plain):
            s = r.summary()
            steps = [steps_label(s[k], r.max_steps) for k in ("steps_median", "steps_q25", "steps_q75")]
            train.append([r.task, str(r.depth), r.variant, f"{r.reached}/{len(r.steps)}", str(r.diverged),
                          f"{steps[0]} [{steps[1]}, {steps[2]}]", f"{wins:.0%}" if r is shortcut else ""])  # fmt: skip
    return init, train


TOY_INIT_HEADERS = ["quantity", "value", "note"]
TOY_TRAIN_HEADERS = ["task", "depth", "variant", "reached", "diverged", "steps: median [quartiles]", "shortcut wins"]
