"""Modules that the analyzed (eval-mode) graph never runs: auxiliary classifiers such as GoogLeNet's ``aux1`` and
``aux2`` (Szegedy et al. 2015, Sec. 5) or Inception-v3's ``AuxLogits``, which only training uses.

Their parameters count in the model's total, so each gets a row of its own: the outermost modules none of whose
parameters the graph touched, measured by one training-mode forward pass of the meta copy (shapes and MACs, no
data), with the module whose output each one reads (the tap: ``inception4a`` for ``aux1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from cnnlab.analysis.graph import NodeRecord, flop_counter


@dataclass(frozen=True)
class SideModule:
    """One module outside the eval graph: its parameters, and what the training pass measured (``None`` where
    that pass could not run it)."""

    path: str
    kind: str
    params: int
    trainable_params: int
    output_shape: tuple[int, ...] = ()
    macs: int = 0
    taps: tuple[str, ...] = ()  # the modules that returned its input, innermost first ("inception4a.a", ...)


def _used_params(model: nn.Module, records: list[NodeRecord]) -> set[int]:
    used: set[int] = set()
    for r in records:
        try:
            module = model.get_submodule(r.path)
        except AttributeError:  # a function's path ("layer1.0.add")
            continue
        used |= {id(p) for p in module.parameters()}
    return used


def _unused_modules(model: nn.Module, used: set[int]) -> list[tuple[str, nn.Module]]:
    """The outermost modules that hold parameters, none of them used."""
    found: list[tuple[str, nn.Module]] = []

    def visit(prefix: str, module: nn.Module) -> None:
        params = list(module.parameters())
        if params and not any(id(p) in used for p in params):
            found.append((prefix, module))
            return
        for name, child in module.named_children():
            visit(f"{prefix}.{name}" if prefix else name, child)

    visit("", model)
    return [(path, m) for path, m in found if path]  # the whole model unused: nothing to add


def side_modules(meta: nn.Module, x: Tensor, records: list[NodeRecord]) -> list[SideModule]:
    """The modules of ``meta`` (a meta copy, in eval mode) that ``records`` never ran, measured in training mode."""
    unused = _unused_modules(meta, _used_params(meta, records))
    if not unused:
        return []
    measured: dict[str, dict[str, Any]] = {path: {} for path, _ in unused}
    producers: dict[int, list[str]] = {}  # id of a module's output -> the modules that returned it
    keep: list[Tensor] = []  # outputs kept alive so that their ids stay unique
    counter = flop_counter()

    def record_output(path: str) -> Any:
        def hook(_m: nn.Module, _args: Any, out: Any) -> None:
            if isinstance(out, Tensor):
                producers.setdefault(id(out), []).append(path)
                keep.append(out)

        return hook

    def before(path: str) -> Any:
        def hook(_m: nn.Module, args: Any) -> None:
            tap = next((a for a in args if isinstance(a, Tensor)), None)
            measured[path]["taps"] = tuple(producers.get(id(tap), ())) if tap is not None else ()
            measured[path]["flops"] = counter.get_total_flops()

        return hook

    def after(path: str) -> Any:
        def hook(_m: nn.Module, _args: Any, out: Any) -> None:
            if isinstance(out, Tensor):
                measured[path]["shape"] = tuple(out.shape)
            measured[path]["macs"] = (counter.get_total_flops() - measured[path]["flops"]) // 2

        return hook

    handles = [m.register_forward_hook(record_output(p)) for p, m in meta.named_modules() if p]
    for path, module in unused:
        handles += [module.register_forward_pre_hook(before(path)), module.register_forward_hook(after(path))]
    meta.train()
    try:
        with counter:
            meta(x)
    except (RuntimeError, ValueError, IndexError, TypeError):
        pass  # a model that cannot run in training mode at this size: the rows keep their parameters only
    finally:
        meta.eval()
        for h in handles:
            h.remove()
    return [
        SideModule(
            path=path,
            kind=type(module).__name__,
            params=sum(p.numel() for p in module.parameters()),
            trainable_params=sum(p.numel() for p in module.parameters() if p.requires_grad),
            output_shape=measured[path].get("shape", ()),
            macs=measured[path].get("macs", 0),
            taps=measured[path].get("taps", ()),
        )
        for path, module in unused
    ]
