"""The walk over a model's real ``torch.fx`` graph: one record per operation, with its output shape, MACs and
receptive field.

The model is traced symbolically and then interpreted node by node on meta tensors (shapes without data) inside
one :class:`~cnnlab.analysis.flops.FlopCounter` (FlopCounterMode's formulas and counts); the MACs of a node are
the counter's increase while it ran, halved (the counter reports FLOPs = 2 x MACs). Receptive fields follow the
rules of :mod:`cnnlab.analysis.receptive_field`: windows (convs, pooling, strided slices) grow the field,
pointwise operations (norms, activations, additions, concatenations, channel shuffles) take the largest field of
their inputs, global pooling or flattening a spatial map covers the whole map, and resizing (interpolation, a
pixel shuffle) changes the jump by the ratio of the sizes and widens the field by the taps it reads (bilinear: two
neighbouring units per axis, so one input jump more). Any other operation is *unsupported*: its field and every
field that depends on it are unknown (``None``) and it is named in :attr:`GraphWalk.unsupported`, never counted as
1x1."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, fx, nn

from cnnlab.analysis.flops import FlopCounter
from cnnlab.analysis.receptive_field import Field, merge
from cnnlab.errors import AnalysisError

WEIGHT_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
"""Layers that count towards a network's depth ("layers with weights", as the ResNet and VGG papers count);
convs on globally pooled 1x1 maps (the FCs of a squeeze-and-excitation gate) do not count, as in the SENet
paper's SE-ResNet-50."""
POINTWISE_MODULES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.Identity,
    nn.modules.dropout._DropoutNd,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Softplus,
    nn.ChannelShuffle,
    nn.ZeroPad2d,
    nn.ConstantPad2d,
)
"""Modules whose output unit at (y, x) depends on the input at (y, x) only (padding moves, never widens)."""
POINTWISE_FUNCTIONS = frozenset(
    {
        "add", "iadd", "sub", "isub", "mul", "imul", "truediv", "itruediv", "neg", "cat", "concat", "stack",
        "relu", "relu_", "relu6", "leaky_relu", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid",
        "hardtanh", "elu", "dropout", "batch_norm", "layer_norm_2d", "clamp", "clamp_min", "exp", "sqrt", "abs",
        "pad", "contiguous", "clone", "float", "to", "type_as", "chunk", "split", "channel_shuffle",
        "expand_as", "sigmoid_", "mul_", "add_", "div", "div_", "local_response_norm",
    }
)  # fmt: skip
"""Function and method names that act per spatial position (reductions and softmax: see ``_reduces``)."""


def flop_counter() -> FlopCounter:
    """The one MAC counter of the analyzer: PyTorch's formulas, FlopCounterMode's totals."""
    return FlopCounter()


@dataclass
class NodeRecord:
    """One operation of the graph."""

    name: str  # the fx node's name
    path: str  # module path (a function is named after the module it runs in, e.g. "layer1.0.add")
    kind: str  # module type ("Conv2d") or function name ("add", "cat")
    output_shape: tuple[int, ...]
    params: int  # parameters of this module (0 for a function; a shared module is counted once)
    trainable_params: int
    macs: int  # multiply-accumulates = FlopCounterMode FLOPs / 2
    field: Field | None  # None: unknown (an unsupported operation on the way)
    depth: int  # layers with weights on the longest path from the input
    activation_bytes: int  # bytes of the output tensor
    global_op: bool = False  # mixes a whole spatial map (global pooling, flattening a map)
    input_field: Field | None = None  # the largest field of the operation's inputs
    inputs: tuple[str, ...] = ()  # names of the recorded operations (or the input) whose outputs it reads


@dataclass
class GraphWalk:
    records: list[NodeRecord]
    output_field: Field | None
    depth: int
    total_macs: int
    macs_by_op: dict[str, int]  # aten op name -> MACs
    unsupported: dict[str, list[str]] = field(default_factory=dict)  # operation -> paths where it occurs
    output_shape: tuple[int, ...] | None = None  # None unless the model returns one tensor

    @property
    def dense_output(self) -> bool:
        """Whether the model returns a spatial map (N x C x H x W, not 1x1): a dense prediction, whose receptive
        field is that of its output units (a classifier's is that of the map it pools)."""
        shape = self.output_shape
        return shape is not None and len(shape) >= 4 and tuple(shape[-2:]) != (1, 1)


def _name_of(target: Any) -> str:
    if isinstance(target, str):
        return target
    return getattr(target, "__name__", repr(target)).lstrip("_")


def _spatial(t: Tensor) -> tuple[int, int]:
    return (t.shape[-2], t.shape[-1]) if t.ndim >= 3 else (1, t.shape[-1] if t.ndim == 2 else 1)


def _reduces(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], x: Tensor) -> bool | None:
    """For mean/sum/amax/softmax: True if it reduces over the spatial dims, False if not, None if unclear."""
    dims = kwargs.get("dim", args[1] if len(args) > 1 else None)
    if isinstance(dims, Tensor):
        return False  # torch.max(a, b): elementwise
    if dims is None:
        return name != "softmax"  # mean(x) without dims reduces everything; softmax needs a dim
    dims = {d % x.ndim for d in (dims if isinstance(dims, tuple | list) else (dims,))}
    spatial = {x.ndim - 2, x.ndim - 1} if x.ndim >= 3 else set()
    if not dims & spatial:
        return False
    return True if spatial <= dims else None


class _Walker(fx.Interpreter):
    """Runs the traced graph on meta tensors and fills one :class:`NodeRecord` per tensor-valued node."""

    def __init__(self, gm: fx.GraphModule, counter: FlopCounter) -> None:
        super().__init__(gm, garbage_collect_values=False)
        self.counter = counter
        self.fields: dict[fx.Node, Field | None] = {}
        self.depths: dict[fx.Node, int] = {}
        self.records: list[NodeRecord] = []
        self.unsupported: dict[str, list[str]] = {}
        self.seen_params: set[int] = set()
        self.pooled: set[fx.Node] = set()  # 1x1 maps made by a global pooling (an SE gate's side branch)
        self.sources: dict[fx.Node, tuple[str, ...]] = {}  # a node -> the recorded nodes (or input) it reads

    # -- the walk ------------------------------------------------------------------------------------------
    def run_node(self, n: fx.Node) -> Any:
        before = self.counter.get_total_flops()
        out = super().run_node(n)
        macs = (self.counter.get_total_flops() - before) // 2
        inputs = [a for a in n.all_input_nodes if a in self.fields]
        self.depths[n] = max((self.depths[a] for a in inputs), default=0)
        if n.op == "placeholder":
            self.fields[n] = Field()
            self.sources[n] = (n.name,)
            return out
        reads = tuple(dict.fromkeys(s for a in n.all_input_nodes for s in self.sources.get(a, ())))
        self.sources[n] = reads  # a node that is not recorded (a tuple of tensors) passes its sources on
        if n.op in ("output", "get_attr") or not self._carries_tensors(out):
            return out
        module = self.module.get_submodule(n.target) if n.op == "call_module" else None
        pooled = isinstance(out, Tensor) and out.ndim >= 3 and tuple(out.shape[-2:]) == (1, 1)
        # a global pooling (never a conv, even one whose kernel covers the map, such as LeNet-5's C5)
        is_global = isinstance(out, Tensor) and not isinstance(module, WEIGHT_MODULES) and self._is_global(n, out)
        if pooled and (is_global or any(a in self.pooled for a in inputs)):
            self.pooled.add(n)
        weighted = isinstance(module, WEIGHT_MODULES) or (module is None and _name_of(n.target) == "conv2d")
        if isinstance(module, nn.Linear) or (weighted and not set(inputs) & self.pooled):
            self.depths[n] += 1
        in_fields = [self.fields[a] for a in inputs]
        kind = type(module).__name__ if module is not None else _name_of(n.target)
        path = n.target if module is not None else self._function_path(n, kind)
        try:
            fld = self._field(n, module, kind, out) if all(f is not None for f in in_fields) else None
        except _Unsupported as e:
            self.unsupported.setdefault(str(e), []).append(path)
            fld = None
        self.fields[n] = fld
        if isinstance(out, Tensor):
            params, trainable = self._params(module)
            self.records.append(
                NodeRecord(
                    name=n.name,
                    path=path,
                    kind=kind,
                    output_shape=tuple(out.shape),
                    params=params,
                    trainable_params=trainable,
                    macs=macs,
                    field=fld,
                    depth=self.depths[n],
                    activation_bytes=out.numel() * out.element_size(),
                    global_op=is_global,
                    input_field=merge(in_fields) if all(f is not None for f in in_fields) else None,  # type: ignore[arg-type]
                    inputs=reads,
                )
            )
            self.sources[n] = (n.name,)
        return out

    @staticmethod
    def _carries_tensors(out: Any) -> bool:
        return isinstance(out, Tensor) or (isinstance(out, tuple | list) and any(isinstance(o, Tensor) for o in out))

    def _is_global(self, n: fx.Node, out: Tensor) -> bool:
        x = next((self.env[a] for a in n.all_input_nodes if isinstance(self.env.get(a), Tensor)), None)
        if x is None or x.ndim < 3 or tuple(x.shape[-2:]) == (1, 1):
            return False
        return out.ndim < 3 or tuple(out.shape[-2:]) == (1, 1)

    @staticmethod
    def _function_path(n: fx.Node, kind: str) -> str:
        stack = n.meta.get("nn_module_stack") or {}
        owner = next(reversed(stack.values()))[0] if stack else ""
        return f"{owner}.{kind}" if owner else kind

    def _params(self, module: nn.Module | None) -> tuple[int, int]:
        if module is None:
            return 0, 0
        fresh = [p for p in module.parameters() if id(p) not in self.seen_params]
        self.seen_params |= {id(p) for p in fresh}
        return sum(p.numel() for p in fresh), sum(p.numel() for p in fresh if p.requires_grad)

    # -- receptive fields ---------------------------------------------------------------------------------
    def _tensor_inputs(self, n: fx.Node) -> list[tuple[fx.Node, Any]]:
        return [(a, self.env[a]) for a in n.all_input_nodes if a in self.fields and self.fields[a] is not None]

    def _field(self, n: fx.Node, module: nn.Module | None, kind: str, out: Any) -> Field:
        inputs = self._tensor_inputs(n)
        here = merge(self.fields[a] for a, _ in inputs)  # type: ignore[misc]
        x = next((v for _, v in inputs if isinstance(v, Tensor)), None)
        if module is not None:
            return _module_field(module, kind, here, x, out)
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        return _function_field(kind, n.target, args, kwargs, here, x, out)


class _Unsupported(Exception):
    """An operation whose effect on the receptive field the walk does not know."""


def _module_field(module: nn.Module, kind: str, here: Field, x: Tensor | None, out: Any) -> Field:
    if isinstance(module, POINTWISE_MODULES) or (x is not None and x.ndim <= 2):
        return here  # pointwise, or no spatial axes left (a fc, a softmax after flattening)
    if isinstance(module, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d):
        stride = module.stride if module.stride is not None else module.kernel_size
        dilation = getattr(module, "dilation", 1)
        return here.through(module.kernel_size, stride=stride, dilation=dilation)
    if isinstance(module, nn.modules.pooling._AdaptiveAvgPoolNd | nn.modules.pooling._AdaptiveMaxPoolNd):
        return _adaptive(here, x, out)
    if isinstance(module, nn.Flatten):
        return _flatten(here, x, module.start_dim)
    if isinstance(module, nn.PixelShuffle | nn.Upsample) and x is not None:
        mode = module.mode if isinstance(module, nn.Upsample) else "nearest"  # a pixel shuffle moves, never mixes
        return _resized(here, x, out, mode)
    raise _Unsupported(kind)


def _adaptive(here: Field, x: Tensor | None, out: Tensor) -> Field:
    if x is None:
        raise _Unsupported("adaptive pool")
    (h, w), (oh, ow) = _spatial(x), _spatial(out)
    if (oh, ow) == (1, 1):
        return here.global_((h, w))
    kernel = (math.ceil(h / oh), math.ceil(w / ow))
    return here.through(kernel, stride=(max(1, h // oh), max(1, w // ow)))


def _flatten(here: Field, x: Tensor | None, start_dim: int) -> Field:
    """Flattening a spatial map into a vector: whatever follows sees the whole map."""
    if x is None or x.ndim < 3:
        return here
    if start_dim % x.ndim >= x.ndim - 2:
        raise _Unsupported("flatten of the spatial axes only")
    return here.global_(_spatial(x))


def _function_field(
    kind: str, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any], here: Field, x: Tensor | None, out: Any
) -> Field:
    if target is operator.getitem:
        return _getitem(here, args)
    if x is not None and x.ndim <= 2:
        return here  # no spatial axes left
    if kind in ("mean", "sum", "amax", "max", "softmax", "log_softmax") and x is not None:
        reduces = _reduces(kind, args, kwargs, x)
        if reduces is None:
            raise _Unsupported(f"{kind} over one spatial axis")
        return here.global_(_spatial(x)) if reduces else here  # over the whole map, or over channels only
    if kind in POINTWISE_FUNCTIONS:
        return here
    if kind in ("flatten", "view", "reshape", "transpose", "permute", "squeeze", "unsqueeze") and x is not None:
        if isinstance(out, Tensor) and out.ndim >= 3 and x.ndim >= 3 and out.shape[-2:] == x.shape[-2:]:
            return here  # channels rearranged (a channel shuffle), positions kept
        if isinstance(out, Tensor) and out.ndim <= 2 and x.ndim >= 3:
            return here.global_(_spatial(x))
        raise _Unsupported(f"{kind} that moves spatial positions")
    if kind == "conv2d":  # a functional conv (fixed filters, as in GaborConv2d): the weight's shape is the kernel
        weight = kwargs.get("weight", args[1])
        stride = kwargs.get("stride", args[3] if len(args) > 3 else 1)
        dilation = kwargs.get("dilation", args[5] if len(args) > 5 else 1)
        return here.through(tuple(weight.shape[-2:]), stride=stride, dilation=dilation)
    if kind in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
        return _adaptive(here, x, out)
    if kind in ("max_pool2d", "avg_pool2d"):
        return _functional_pool(here, args, kwargs)
    if kind in ("interpolate", "upsample", "pixel_shuffle") and x is not None:
        if kwargs.get("antialias"):
            raise _Unsupported("interpolate with antialias")
        mode = kwargs.get("mode", args[3] if len(args) > 3 else "nearest") if kind != "pixel_shuffle" else "nearest"
        return _resized(here, x, out, mode)
    raise _Unsupported(kind)


INTERPOLATION_TAPS = {"nearest": 1, "nearest-exact": 1, "bilinear": 2, "bicubic": 4}
"""Input units per axis that one output unit of an interpolation reads."""


def _resized(here: Field, x: Tensor, out: Tensor, mode: str) -> Field:
    """The field after resizing a map of ``x``'s size to ``out``'s: each output unit reads ``taps`` neighbouring
    input units per axis (a field one jump wider per extra tap), and units are ``jump * in / out`` input pixels
    apart (rounded; exact when the output size divides it, as at any input size that is a multiple of the output
    stride). A 1x1 map broadcast to a larger one (an image-pooling branch) keeps its field and jump."""
    if mode not in INTERPOLATION_TAPS:
        raise _Unsupported(f"interpolate in {mode!r} mode")
    taps = INTERPOLATION_TAPS[mode]
    size, jump = [], []
    for r, j, n, m in zip(here.size, here.jump, _spatial(x), _spatial(out), strict=True):
        if n == 1 or n == m:  # a broadcast, or the same size: the identity (align_corners=False)
            size.append(r)
            jump.append(j)
        else:
            size.append(r + (taps - 1) * j)
            jump.append(max(1, round(j * n / m)))
    return Field((size[0], size[1]), (jump[0], jump[1]))


def _functional_pool(here: Field, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Field:
    kernel = kwargs.get("kernel_size", args[1] if len(args) > 1 else None)
    stride = kwargs.get("stride", args[2] if len(args) > 2 else None) or kernel
    dilation = kwargs.get("dilation", args[4] if len(args) > 4 and not isinstance(args[4], bool) else 1)
    return here.through(kernel, stride=stride, dilation=dilation)


def _getitem(here: Field, args: tuple[Any, ...]) -> Field:
    source, index = args[0], args[1]
    if not isinstance(source, Tensor):
        return here  # one output of split/chunk
    index = index if isinstance(index, tuple) else (index,)
    if Ellipsis in index:
        pos = index.index(Ellipsis)
        index = index[:pos] + (slice(None),) * (source.ndim - len(index) + 1) + index[pos + 1 :]
    spatial = list(index[source.ndim - 2 : source.ndim]) + [slice(None)] * 2
    steps = []
    for s in spatial[:2]:
        if not isinstance(s, slice):
            raise _Unsupported("indexing a spatial axis")
        steps.append(s.step or 1)
    return here.through(1, stride=(steps[0], steps[1]))


def walk(model: nn.Module, x: Tensor) -> GraphWalk:
    """Trace ``model`` with torch.fx and walk its graph on ``x`` (a meta tensor); see the module docstring."""
    if fx.Tracer().is_leaf_module(model, ""):  # a bare nn.Conv2d: trace it as a call, not as F.conv2d
        model = nn.Sequential(model)
    try:
        gm = fx.symbolic_trace(model)
    except Exception as e:  # fx raises many types (TraceError, TypeError, ...) for untraceable Python
        raise AnalysisError(
            f"cannot trace {type(model).__name__} with torch.fx ({type(e).__name__}: {e}); the receptive-field "
            "walk needs a forward without data-dependent control flow"
        ) from e
    with flop_counter() as counter:
        walker = _Walker(gm, counter)
        result = walker.run(x)
    out_node = next(n for n in reversed(gm.graph.nodes) if n.op == "output")
    out_inputs = out_node.all_input_nodes
    out_fields = [walker.fields.get(a) for a in out_inputs]
    output_field = None if any(f is None for f in out_fields) else merge(out_fields)  # type: ignore[arg-type]
    output_shape = tuple(result.shape) if isinstance(result, Tensor) else None
    del result
    macs_by_op = {str(op): c // 2 for op, c in counter.get_flop_counts().get("Global", {}).items() if c}
    return GraphWalk(
        records=walker.records,
        output_field=output_field,
        depth=max((walker.depths[a] for a in out_inputs), default=0),
        total_macs=counter.get_total_flops() // 2,
        macs_by_op=macs_by_op,
        unsupported=walker.unsupported,
        output_shape=output_shape,
    )
