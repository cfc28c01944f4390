"""Probes of a trained model: lesions (Veit et al. 2016, "Residual Networks Behave Like Ensembles of Relatively
Shallow Networks", Sec. 4), how far a deformable conv's offsets move its kernel points (Dai et al. 2017), and how
the gradient reaching the first block compares with the last block's (He et al. 2016, Sec. 4.1).

Removing a residual block's branch leaves ``act(shortcut(x))``: the identity (or the projection, at a
downsampling block) that the block adds its branch to. A block of a plain net has no shortcut: removing it leaves
the identity where the block keeps the shape (stride 1, as many channels out as in), and cannot be removed where it
does not. The paper's claim: a ResNet's error barely changes when one block goes (except at downsampling blocks),
while a plain net's drops to chance, and a ResNet's error grows smoothly with the number of blocks removed.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from cnnlab.layers.residual import ResidualBlock
from cnnlab.train.engine import block_names

GRAD_RATIOS = {"init": "grad_ratio", "end": "grad_ratio_end"}
"""The metric of each moment at which the runs record their blocks' gradient norms (``record_grad_norms``)."""


def removable_blocks(model: nn.Module) -> list[str]:
    """The blocks whose branch can be removed, from input to output: every residual block with a shortcut, and
    every plain block that keeps its input's shape."""
    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, ResidualBlock) and (m.shortcut is not None or (m.stride == 1 and m.in_chs == m.out_chs))
    ]


def downsampling_blocks(model: nn.Module, names: Sequence[str]) -> list[str]:
    """Those of the blocks ``names`` that change the shape (a stride or a new width): their shortcut projects."""
    blocks = [(n, model.get_submodule(n)) for n in names]
    return [n for n, b in blocks if isinstance(b, ResidualBlock) and (b.stride != 1 or b.in_chs != b.out_chs)]


def lesion_step(lesion: Mapping[str, Any]) -> float | None:
    """The steepest rise of the lesion curve: the mean error with k random blocks removed against k, from the
    intact net (k = 0) through each k measured, as error added per block removed between consecutive points. Veit
    et al. (Fig. 5a) find a residual net's curve smooth, where a plain net's jumps to chance at the first block."""
    points = [(0, lesion["intact"]), *sorted((int(k), v["mean"]) for k, v in lesion["random"].items())]
    steps = [(e2 - e1) / (k2 - k1) for (k1, e1), (k2, e2) in itertools.pairwise(points)]
    return max(steps) if steps else None


def downsampling_excess(lesion: Mapping[str, Any]) -> float | None:
    """How much more removing a downsampling block costs than removing the other blocks of its stage (the blocks
    with the same parent module): each downsampling block's error minus the mean of its stage's others, averaged
    over the stages. Veit et al. (Sec. 4.2, Fig. 3) find the downsampling blocks the exception, where removing one
    block hurts. None: no downsampling block was measured (a plain net cannot lose one)."""
    blocks, down = lesion["blocks"], lesion.get("downsampling") or []
    excess = []
    for d in (d for d in down if d in blocks):
        stage = d.rpartition(".")[0]
        others = [e for n, e in blocks.items() if n.rpartition(".")[0] == stage and n not in down]
        if others:
            excess.append(blocks[d] - sum(others) / len(others))
    return sum(excess) / len(excess) if excess else None


def _without_branch(block: ResidualBlock, inputs: tuple[Tensor, ...], _output: Tensor) -> Tensor:
    x = inputs[0]
    return x if block.shortcut is None else block.act(block.shortcut(x))


@contextlib.contextmanager
def lesioned(model: nn.Module, names: Sequence[str]) -> Iterator[nn.Module]:
    """``model`` with the branches of the blocks ``names`` removed, restored on exit."""
    handles = [model.get_submodule(n).register_forward_hook(_without_branch) for n in names]
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


def lesion_errors(
    model: nn.Module,
    error: Callable[[nn.Module], float],
    *,
    random_k: Sequence[int] = (),
    samples: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """``error(model)`` intact, with each removable block removed in turn, and with ``k`` random blocks removed
    (``samples`` draws for each k, mean and the draws).

    Returns ``{"intact", "blocks": {name: error}, "mean", "max", "random": {k: {"mean", "errors"}}, "downsampling":
    [the removable blocks that change the shape]}``.
    """
    names = removable_blocks(model)
    out: dict[str, Any] = {"intact": error(model), "blocks": {}, "downsampling": downsampling_blocks(model, names)}
    for name in names:
        with lesioned(model, [name]):
            out["blocks"][name] = error(model)
    values = list(out["blocks"].values())
    out["mean"] = sum(values) / len(values) if values else None
    out["max"] = max(values) if values else None
    rng, out["random"] = random.Random(seed), {}
    for k in random_k:
        if k > len(names):
            continue
        errs = []
        for _ in range(samples):
            with lesioned(model, rng.sample(names, k)):
                errs.append(error(model))
        out["random"][str(k)] = {"mean": sum(errs) / len(errs), "errors": errs}
    return out


def offset_lengths(model: nn.Module, run: Callable[[nn.Module], object]) -> dict[str, float]:
    """The mean length, in pixels of the layer's input map, of the sampling offsets of every layer with an offset
    conv (``offset_modules``: :class:`cnnlab.layers.DeformConv2d`) while ``run(model)`` evaluates the model:
    ``{layer name: mean |(dy, dx)|}`` over every kernel point, position and image. Empty: no such layer. A run whose
    offsets ran away shows here (the 11x11 maps of ResNet-20's last stage had offsets of 193 px in one such run)."""
    sums: dict[str, list[float]] = {}

    def recorder(name: str) -> Callable[[nn.Module, Any, Tensor], None]:
        def record(_conv: nn.Module, _inputs: Any, out: Tensor) -> None:
            n, c, h, w = out.shape  # N x 2*points x H' x W': (dy, dx) per kernel point
            lengths = out.detach().float().reshape(n, c // 2, 2, h, w).norm(dim=2)
            total = sums.setdefault(name, [0.0, 0.0])
            total[0] += lengths.sum().item()
            total[1] += lengths.numel()

        return record

    layers = [(n, m) for n, m in model.named_modules() if "offset" in getattr(m, "offset_modules", ())]
    if not layers:
        return {}
    handles = [m.offset.register_forward_hook(recorder(n)) for n, m in layers]
    try:
        run(model)
    finally:
        for h in handles:
            h.remove()
    return {name: s / count for name, (s, count) in sums.items() if count}


def grad_ratios(grad_norms: Mapping[str, Mapping[str, float]], model: nn.Module) -> dict[str, float]:
    """The gradient reaching the first block (the stem conv) over that at the last block before the head, at each
    moment recorded (:data:`GRAD_RATIOS`: the first step and the last), per weight: each block's gradient norm
    (:func:`cnnlab.train.engine.block_grad_norms`, over its weights and BN parameters) divided by the square root
    of its parameter count, the root mean square of its gradient entries, so that a last block with 420 times the
    stem's parameters (plain-56) does not look healthier for its size alone. Below 1 the gradient shrinks on its way
    to the input; vanishing gradients (Hochreiter 1991; Bengio et al. 1994) would make it tiny, where He et al. 2016
    (Sec. 4.1) "verify that the backward propagated gradients exhibit healthy norms with BN". A moment whose
    norms miss either block, or whose last block's gradient is zero, is left out."""
    body = [n for n in block_names(model) if n not in getattr(model, "head_modules", ())]
    if not body:
        return {}
    first, last = body[0], body[-1]
    size = {n: sum(p.numel() for p in model.get_submodule(n).parameters()) for n in (first, last)}
    out = {}
    for when, metric in GRAD_RATIOS.items():
        norms = grad_norms.get(when) or {}
        if first in norms and last in norms and norms[last] > 0:
            rms_first = norms[first] / math.sqrt(size[first])
            out[metric] = rms_first / (norms[last] / math.sqrt(size[last]))
    return out
