"""Probes of a trained model: lesions (Veit et al. 2016, "Residual Networks Behave Like Ensembles of Relatively
Shallow Networks", Sec. 4).

Removing a residual block's branch leaves ``act(shortcut(x))``: the identity (or the projection, at a
downsampling block) that the block adds its branch to. A block of a plain net has no shortcut: removing it leaves
the identity where the block keeps the shape (stride 1, as many channels out as in), and cannot be removed where it
does not. The paper's claim: a ResNet's error barely changes when one block goes (except at downsampling blocks),
while a plain net's drops to chance, and a ResNet's error grows smoothly with the number of blocks removed.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from torch import Tensor, nn

from cnnlab.layers.residual import ResidualBlock


def removable_blocks(model: nn.Module) -> list[str]:
    """The blocks whose branch can be removed, from input to output: every residual block with a shortcut, and
    every plain block that keeps its input's shape."""
    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, ResidualBlock) and (m.shortcut is not None or (m.stride == 1 and m.in_chs == m.out_chs))
    ]


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

    Returns ``{"intact", "blocks": {name: error}, "mean", "max", "random": {k: {"mean", "errors"}}}``.
    """
    names = removable_blocks(model)
    out: dict[str, Any] = {"intact": error(model), "blocks": {}}
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
