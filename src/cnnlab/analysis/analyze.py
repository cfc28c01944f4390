"""``cnnlab.analyze(model, input_size)``: per-layer shapes, parameters, MACs and receptive fields of a model.

The model is never run on data: a weightless copy on the meta device is traced with torch.fx and walked
(:mod:`cnnlab.analysis.graph`), so nothing is allocated and ResNet-152 at 224 takes about 0.2 s on 2 cores; the
first call in a process takes about a second more, PyTorch's one-time import of ``torch._dynamo`` (its Python
meta kernels for elementwise operations are wrapped to keep ``torch.compile`` out, which imports it).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from cnnlab.analysis.auxiliary import SideModule, side_modules
from cnnlab.analysis.graph import GraphWalk, flop_counter, walk
from cnnlab.analysis.report import LayerReport, ModelReport
from cnnlab.errors import AnalysisError, InputShapeError
from cnnlab.models.base import run_input_checks

InputSize = tuple[int, int, int] | Sequence[int] | str | int


def parse_input_size(size: InputSize) -> tuple[int, int, int]:
    """``"3x224x224"`` or ``(3, 224, 224)`` -> (3, 224, 224); ``"224"`` or ``224`` -> (3, 224, 224)."""
    text = size if isinstance(size, str) else "x".join(map(str, size if not isinstance(size, int) else [size]))
    try:
        dims = tuple(int(d) for d in text.lower().replace(" ", "").split("x"))
    except ValueError:
        dims = ()
    if len(dims) == 1:
        dims = (3, dims[0], dims[0])
    if len(dims) != 3 or min(dims) < 1:
        raise AnalysisError(f"expected an input size CxHxW such as 3x224x224 (or one size such as 224), got {size!r}")
    return dims  # type: ignore[return-value]


def _same_shape(x: Tensor) -> Tensor:
    return x


NORMS: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._BatchNorm,)
"""Modules that a meta copy passes its input through: a norm keeps the shape, FlopCounterMode counts nothing for
it, and PyTorch's meta kernel for batch norm (a Python decomposition) took most of the analysis' time."""

FLOP_FREE: tuple[type[nn.Module], ...] = (
    *NORMS, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish,
    nn.Hardsigmoid, nn.Hardtanh, nn.Dropout, nn.Dropout2d, nn.Identity,
)  # fmt: skip
"""Modules that keep their input's shape and in which FlopCounterMode counts nothing (its formulas cover matrix
products, convolutions and attention only): :func:`count_macs` passes them through too, the analyzer's walk does
not (it keeps each module's own output tensor). Their Python meta kernels were a quarter of ``cnnlab models``'
counting time."""


def meta_copy(model: nn.Module, passthrough: tuple[type[nn.Module], ...] = NORMS) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers live on the meta device (no data copied), in eval mode.

    Its ``passthrough`` modules (by default its batch norms, see :data:`NORMS`) return their input.
    """
    memo: dict[int, Tensor] = {}
    for t in itertools.chain(model.parameters(), model.buffers()):
        empty = torch.empty_like(t, device="meta")
        memo[id(t)] = nn.Parameter(empty, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else empty
    meta = copy.deepcopy(model, memo).eval()
    for m in meta.modules():
        if isinstance(m, passthrough):
            m.forward = _same_shape  # type: ignore[method-assign]
    return meta


@contextlib.contextmanager
def meta_view(model: nn.Module, passthrough: tuple[type[nn.Module], ...] = NORMS) -> Iterator[nn.Module]:
    """:func:`meta_copy`, except that a model already wholly on the meta device is used in place (in eval mode,
    ``passthrough`` modules passing through) and restored on exit: copying is a third of ``cnnlab models``'
    time."""
    if not all(t.is_meta for t in itertools.chain(model.parameters(), model.buffers())):
        yield meta_copy(model, passthrough)
        return
    modes = [(m, m.training) for m in model.modules()]
    norms = [m for m in model.modules() if isinstance(m, passthrough) and "forward" not in m.__dict__]
    model.eval()
    for m in norms:
        m.forward = _same_shape  # type: ignore[method-assign]
    try:
        yield model
    finally:
        for m in norms:
            del m.forward
        for m, training in modes:
            m.training = training


def default_input_size(model: nn.Module) -> tuple[int, int, int]:
    size = getattr(model, "default_input_size", None)
    if size is None:
        raise AnalysisError(f"{type(model).__name__} has no default input size; pass input_size such as (3, 224, 224)")
    return tuple(size)  # type: ignore[return-value]


def _meta_input(model: nn.Module, size: tuple[int, int, int], batch: int = 1) -> Tensor:
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    return torch.empty(batch, *size, device="meta", dtype=dtype)


def check_input(model: nn.Module, size: tuple[int, int, int]) -> None:
    """Run the model's own input checks (a :class:`~cnnlab.CnnlabModel` names its channels and smallest size)."""
    run_input_checks(model, _meta_input(model, size))


def _runs(model: nn.Module, size: tuple[int, int, int]) -> bool:
    try:
        with torch.no_grad():
            model(_meta_input(model, size))
    except (RuntimeError, ValueError, IndexError):
        return False
    return True


def _explain_failure(meta: nn.Module, size: tuple[int, int, int], error: Exception) -> InputShapeError:
    """An input the model cannot take: name the channels it expects, or the smallest size it takes."""
    name = getattr(meta, "model_name", type(meta).__name__)
    first = next((m for m in meta.modules() if isinstance(m, nn.Conv2d | nn.Linear)), None)
    expected = getattr(first, "in_channels", None)
    if expected is not None and expected != size[0]:
        return InputShapeError(f"{name} expects {expected} input channels; got {size[0]} (input size {size})")
    lo, hi = max(size[1], size[2]), 4096
    if not _runs(meta, (size[0], hi, hi)):
        return InputShapeError(f"{name} cannot take input of size {size}: {error}")
    while lo < hi:  # the smallest square size that runs
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _runs(meta, (size[0], mid, mid)) else (mid + 1, hi)
    return InputShapeError(
        f"input {size[1]}x{size[2]} is too small for {name}: the smallest input it takes is {lo}x{lo}"
    )


def analyze(model: nn.Module, input_size: InputSize | None = None) -> ModelReport:
    """Per-layer module path, type, output shape, parameters, MACs, receptive field, jump and activation memory
    of ``model`` for one input of ``input_size`` (C, H, W; default: the model's ``default_input_size``).

    MACs come from ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2); receptive fields from the real
    torch.fx graph, the largest over the paths where branches meet. Raises
    :class:`~cnnlab.errors.InputShapeError` for an input the model cannot take and
    :class:`~cnnlab.errors.AnalysisError` for a model torch.fx cannot trace.
    """
    return analyze_graph(model, input_size)[0]


def analyze_graph(model: nn.Module, input_size: InputSize | None = None) -> tuple[ModelReport, GraphWalk]:
    """:func:`analyze` and the walk it came from: ``report.layers[i]`` is ``walk.records[i]``, whose ``inputs``
    say which operations feed it (what :mod:`cnnlab.analysis.diagram` draws)."""
    size = parse_input_size(input_size) if input_size is not None else default_input_size(model)
    check_input(model, size)
    with meta_view(model) as meta:
        try:
            result = walk(meta, _meta_input(meta, size))
        except (RuntimeError, ValueError, IndexError) as e:
            if isinstance(e, AnalysisError):
                raise
            raise _explain_failure(meta, size, e) from e
        side = side_modules(meta, _meta_input(meta, size), result.records)
    return _report(model, size, result, side), result


def _side_row(m: SideModule) -> LayerReport:
    return LayerReport(m.path, m.kind, m.output_shape, m.params, m.trainable_params, m.macs, None, None, 0)


def _report(model: nn.Module, size: tuple[int, int, int], result: GraphWalk, side: list[SideModule]) -> ModelReport:
    layers = [
        LayerReport(
            path=r.path,
            kind=r.kind,
            output_shape=r.output_shape,
            params=r.params,
            trainable_params=r.trainable_params,
            macs=r.macs,
            rf=r.field.size if r.field else None,
            jump=r.field.jump if r.field else None,
            activation_bytes=r.activation_bytes,
        )
        for r in result.records
    ]
    pools = [r for r in result.records if r.global_op]  # the last one pools the last feature map
    spatial = [r for r in result.records if len(r.output_shape) >= 4]
    if result.dense_output:  # a dense prediction: its output units' field, global pools inside it included
        last = result.output_field
    else:
        last = pools[-1].input_field if pools else spatial[-1].field if spatial else result.output_field
    return ModelReport(
        model=getattr(model, "model_name", type(model).__name__),
        input_size=size,
        layers=layers,
        params=sum(p.numel() for p in model.parameters()),
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        macs=result.total_macs,
        activation_bytes=sum(r.activation_bytes for r in result.records),
        receptive_field=last.size if last else None,
        jump=last.jump if last else None,
        depth=result.depth,
        macs_by_op=result.macs_by_op,
        unsupported=result.unsupported,
        auxiliary=[_side_row(m) for m in side],
        taps={m.path: list(m.taps) for m in side},
        module_kinds={path: type(m).__name__ for path, m in model.named_modules() if path},
        dense_output=result.dense_output,
    )


def count_macs(model: nn.Module, input_size: InputSize | None = None) -> int:
    """MACs of one forward pass (FlopCounterMode FLOPs / 2) on a weightless meta copy: cheap for any model."""
    size = parse_input_size(input_size) if input_size is not None else default_input_size(model)
    check_input(model, size)
    with meta_view(model, FLOP_FREE) as meta, torch.no_grad(), flop_counter() as counter:
        try:
            meta(_meta_input(meta, size))
        except (RuntimeError, ValueError, IndexError) as e:
            raise _explain_failure(meta, size, e) from e
    return counter.get_total_flops() // 2
