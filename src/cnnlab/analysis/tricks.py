"""The arithmetic behind each design trick, measured live from cnnlab's own blocks.

Each :class:`Figure` puts a formula's value (from the papers and ../shared/REFERENCE.md) beside the value that
:func:`cnnlab.analyze` measures on the real layers: parameters, MACs (FlopCounterMode FLOPs / 2) and receptive
fields. A few rows are measurements that a formula does not predict (a timing, a gradient ratio): they are shown
beside the figure an argument assumes, and not checked against it.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from cnnlab.analysis.analyze import analyze, count_macs
from cnnlab.analysis.latency import measure_latencies
from cnnlab.analysis.report import ModelReport, format_table, rows_to_csv
from cnnlab.errors import AnalysisError, CnnlabWarning
from cnnlab.layers import Bottleneck, ConvBnAct, SqueezeExcite
from cnnlab.layers.depthwise_separable import DepthwiseSeparableConv
from cnnlab.layers.inception_v1 import GOOGLENET_3A, InceptionV1
from cnnlab.layers.sparse_conv import SparseConv2d, prune_
from cnnlab.registry import create_model, on_meta


@dataclass(frozen=True)
class Figure:
    """One number of one trick: the formula's value beside the measured one.

    ``rel_tol`` is 0 where the two must be equal (exact counts and ratios); a paper's rounded figure gets a
    relative tolerance. ``role`` marks the two costs that a trick compares: ``"before"`` (without the trick)
    and ``"after"`` (with it); ``cnnlab tricks --plot`` draws them side by side. ``checked=False`` marks a
    measurement shown beside what an argument assumes (``expected``, or None) without being held to it: a
    timing, a gradient ratio; its ``agrees`` is None.
    """

    trick: str
    quantity: str
    formula: str
    expected: float | None
    measured: float
    rel_tol: float = 0.0
    role: str = ""
    checked: bool = True

    @property
    def agrees(self) -> bool | None:
        if not self.checked or self.expected is None:
            return None
        return math.isclose(self.measured, self.expected, rel_tol=max(self.rel_tol, 1e-9))


def _conv_macs(report: ModelReport) -> int:
    return sum(r.macs for r in report.layers if r.kind == "Conv2d")


def _field(report: ModelReport) -> int:
    if report.receptive_field is None:
        raise AnalysisError(f"no receptive field for {report.model}: {report.unsupported}")
    return report.receptive_field[0]


def _conv_weights(module: nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d))


def stacked_small_kernels(*, big: int, chs: int = 64, size: int = 56) -> list[Figure]:
    """One ``big`` x ``big`` conv against ``(big - 1) / 2`` stacked 3x3 convs (VGG, Simonyan & Zisserman 2015,
    Sec. 2.3): the same receptive field, ``9n / big^2`` of the weights and MACs. Measured on ConvBnAct units."""
    n = (big - 1) // 2
    trick = f"{big}x{big} vs {n} x 3x3"
    single = ConvBnAct(chs, chs, big)
    stack = nn.Sequential(*[ConvBnAct(chs, chs, 3) for _ in range(n)])
    one, many = analyze(single, (chs, size, size)), analyze(stack, (chs, size, size))
    return [
        Figure(
            trick,
            f"weights {big}x{big}",
            f"{big * big} C^2 (C={chs})",
            big * big * chs * chs,
            _conv_weights(single),
            role="before",
        ),
        Figure(trick, f"weights {n} x 3x3", f"{9 * n} C^2", 9 * n * chs * chs, _conv_weights(stack), role="after"),
        Figure(trick, "MACs ratio stack / single", f"{9 * n}/{big * big}", 9 * n / big**2, many.macs / one.macs),
        Figure(trick, f"receptive field {big}x{big}", f"{big}", big, _field(one)),
        Figure(trick, f"receptive field {n} x 3x3", f"1 + 2 x {n}", 1 + 2 * n, _field(many)),
    ]


def bottleneck_weights(*, chs: int = 256, planes: int = 64) -> list[Figure]:
    """A 3x3 conv on a 256-d map against the ResNet bottleneck 1x1 -> 3x3 -> 1x1 (He et al. 2016, Fig. 5)."""
    trick = "256-d bottleneck"
    dense = nn.Conv2d(chs, chs, 3, padding=1, bias=False)
    block = Bottleneck(chs, planes)
    formula = chs * planes + 9 * planes * planes + planes * chs
    measured_dense, measured_block = _conv_weights(dense), _conv_weights(block)
    return [
        Figure(trick, "weights 3x3 256->256", "256 x 3 x 3 x 256", 9 * chs * chs, measured_dense, role="before"),
        Figure(trick, "weights bottleneck convs", "256x64 + 3x3x64x64 + 64x256", formula, measured_block, role="after"),
        Figure(trick, "saving (x fewer)", "589,824 / 69,632", 9 * chs * chs / formula, measured_dense / measured_block),
    ]


def inception_reduction(*, size: int = 28, in_chs: int = 192, out_chs: int = 32, reduce: int = 16) -> list[Figure]:
    """28x28x192 to 32 channels by a 5x5 conv, against a 1x1 to 16 channels first (GoogLeNet, Sec. 4)."""
    trick = "1x1 reduction before 5x5"
    direct = analyze(ConvBnAct(in_chs, out_chs, 5), (in_chs, size, size))
    reduced = analyze(nn.Sequential(ConvBnAct(in_chs, reduce, 1), ConvBnAct(reduce, out_chs, 5)), (in_chs, size, size))
    hw = size * size
    return [
        Figure(
            trick, "MACs 5x5 192->32", "28x28 x 32 x 5x5x192", hw * out_chs * 25 * in_chs, direct.macs, role="before"
        ),
        Figure(
            trick,
            "MACs 1x1 192->16, 5x5 16->32",
            "28x28 x (16x192 + 32x5x5x16)",
            hw * (reduce * in_chs + out_chs * 25 * reduce),
            reduced.macs,
            role="after",
        ),
    ]


def depthwise_separable(*, in_chs: int = 128, out_chs: int = 256, k: int = 3, size: int = 28) -> list[Figure]:
    """Depthwise k x k then pointwise 1x1 against a standard k x k conv: ``1/N + 1/k^2`` of the MACs
    (MobileNet, Howard et al. 2017, Sec. 3.1; N output channels)."""
    trick = "depthwise-separable"
    formula = 1 / out_chs + 1 / k**2
    quantity, text = f"MACs ratio ({in_chs}->{out_chs}, {k}x{k})", f"1/{out_chs} + 1/{k}^2"
    standard = analyze(nn.Conv2d(in_chs, out_chs, k, padding=k // 2, bias=False), (in_chs, size, size))
    separable = analyze(DepthwiseSeparableConv(in_chs, out_chs, kernel_size=k), (in_chs, size, size))
    hw = size * size
    return [
        Figure(trick, "MACs standard", f"{size}x{size} x {out_chs} x {k}x{k}x{in_chs}", hw * out_chs * k * k * in_chs,
               _conv_macs(standard), role="before"),
        Figure(trick, "MACs separable", f"{size}x{size} x {in_chs} x ({k}x{k} + {out_chs})",
               hw * in_chs * (k * k + out_chs), _conv_macs(separable), role="after"),
        Figure(trick, quantity, text, formula, _conv_macs(separable) / _conv_macs(standard)),
    ]  # fmt: skip


def group_conv(*, chs: int = 256, groups: int = 32, size: int = 28) -> list[Figure]:
    """A 3x3 conv in ``groups`` groups against the dense one: 1/g of the weights and MACs (AlexNet, ResNeXt)."""
    trick = f"group conv g={groups}"
    dense, grouped = ConvBnAct(chs, chs, 3), ConvBnAct(chs, chs, 3, groups=groups)
    dense_report, grouped_report = analyze(dense, (chs, size, size)), analyze(grouped, (chs, size, size))
    dense_macs = size * size * chs * 9 * chs
    return [
        Figure(trick, "MACs dense", f"{size}x{size} x {chs} x 3x3x{chs}", dense_macs, dense_report.macs, role="before"),
        Figure(
            trick, f"MACs {groups} groups", f"dense / {groups}", dense_macs / groups, grouped_report.macs, role="after"
        ),
        Figure(trick, "weights ratio", f"1/{groups}", 1 / groups, _conv_weights(grouped) / _conv_weights(dense)),
        Figure(trick, "MACs ratio", f"1/{groups}", 1 / groups, grouped_report.macs / dense_report.macs),
    ]


def _se_params(c: int, r: int) -> int:
    return 2 * c * (c // r) + c + c // r  # two FCs (as 1x1 convs) with biases


def se_overhead(*, chs: int = 256, reduction: int = 16) -> list[Figure]:
    """The squeeze-and-excitation block's cost (Hu et al. 2018, Sec. 4): ``2C^2/r`` weights per block; on
    SE-ResNet-50 about 10% more parameters and well under 1% more MACs."""
    trick = f"SE block r={reduction}"
    se = analyze(SqueezeExcite(chs, reduction=reduction), (chs, 56, 56))
    c, r = chs, reduction
    stages = ((256, 3), (512, 4), (1024, 6), (2048, 3))  # ResNet-50: output channels and blocks per stage
    with on_meta():
        se50 = create_model("se_resnet50")
        plain50 = create_model("se_resnet50", attn_layer=None)  # the same net (stride on 1x1, Caffe pool), no SE
    se_params, plain_params = (sum(p.numel() for p in m.parameters()) for m in (se50, plain50))
    params = se_params - plain_params
    macs = count_macs(se50) - count_macs(plain50)
    return [
        Figure(trick, "params ResNet-50", "REFERENCE.md", 25_557_032, plain_params, role="before"),
        Figure(trick, "params SE-ResNet-50", "REFERENCE.md", 28_088_024, se_params, role="after"),
        Figure(trick, f"params per block (C={c})", "2C^2/r + C + C/r", _se_params(c, r), se.params),
        Figure(trick, f"MACs per block (C={c})", "2C^2/r", 2 * c * (c // r), se.macs),
        Figure(
            trick,
            "params SE-ResNet-50 - ResNet-50",
            "sum over 16 blocks",
            sum(n * _se_params(ch, r) for ch, n in stages),
            params,
        ),
        Figure(
            trick,
            "MACs SE-ResNet-50 - ResNet-50",
            "sum of 2C^2/r",
            sum(n * 2 * ch * (ch // r) for ch, n in stages),
            macs,
        ),
    ]


def inception_modules(*, size: int = 28) -> list[Figure]:
    """GoogLeNet's inception (3a) module, naive (Fig. 2a: 1x1, 3x3, 5x5 and a pool on the 192-channel input)
    against the version with 1x1 reductions (Fig. 2b), at 28x28x192 (Szegedy et al. 2015, Table 1)."""
    trick = "Inception 3a naive vs reduced"
    c, hw = 192, size * size
    c1, c3r, c3, c5r, c5, pool_proj = 64, 96, 128, 16, 32, 32  # Table 1, inception (3a)
    naive_w = c * c1 + 9 * c * c3 + 25 * c * c5
    reduced_w = c * (c1 + c3r + c5r + pool_proj) + 9 * c3r * c3 + 25 * c5r * c5
    w = GOOGLENET_3A
    naive = analyze(InceptionV1(c, w, naive=True), (c, size, size))
    reduced = analyze(InceptionV1(c, w), (c, size, size))
    return [
        Figure(
            trick, "MACs naive", "28x28 x 192 x (c1 + 9 c3 + 25 c5)", hw * naive_w, _conv_macs(naive), role="before"
        ),
        Figure(
            trick,
            "MACs reduced",
            "28x28 x (reductions + 3x3 + 5x5 + pool proj)",
            hw * reduced_w,
            _conv_macs(reduced),
            role="after",
        ),
        Figure(
            trick,
            "MACs naive / reduced",
            "Fig. 2a / Fig. 2b",
            naive_w / reduced_w,
            _conv_macs(naive) / _conv_macs(reduced),
        ),
        Figure(
            trick, "output channels naive", "c1 + c3 + c5 + 192", c1 + c3 + c5 + c, naive.layers[-1].output_shape[1]
        ),
        Figure(
            trick,
            "output channels reduced",
            "c1 + c3 + c5 + pool proj",
            c1 + c3 + c5 + pool_proj,
            reduced.layers[-1].output_shape[1],
        ),
    ]


def vgg_vs_resnet() -> list[Figure]:
    """VGG-19 against ResNet-34 (He et al. 2016, Fig. 3: 19.6 and 3.6 billion multiply-adds, "18%"), and
    ResNet-50 with the paper's stride placement (on the first 1x1 of a bottleneck: 3.8 G in Table 1)."""
    trick = "VGG-19 vs ResNet-34"
    with on_meta():
        resnet34 = count_macs(create_model("resnet34", stride_in="1x1")) / 1e9
        resnet50 = count_macs(create_model("resnet50", stride_in="1x1")) / 1e9
        vgg19 = count_macs(create_model("vgg19")) / 1e9
    return [
        Figure(trick, "GMACs VGG-19", "paper Fig. 3", 19.6, vgg19, rel_tol=0.01, role="before"),
        Figure(trick, "GMACs ResNet-34", "paper Fig. 3", 3.6, resnet34, rel_tol=0.02, role="after"),
        Figure(
            trick,
            "ResNet-34 / VGG-19",
            "3.6 / 19.6 (18%)",
            3.6 / 19.6,
            resnet34 / vgg19,
            rel_tol=0.02,
        ),
        Figure(
            "ResNet-50 stride on 1x1", "GMACs ResNet-50 (paper placement)", "paper Table 1", 3.8, resnet50, rel_tol=0.02
        ),
    ]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the block on one intra-op thread: small ops on a shared machine, where a busy core stalls a pool of
    threads (tens of times slower) far more than it slows one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


NOTES_FACTOR = 0.6
"""The per-layer factor of the design notes' vanishing-gradient arithmetic (a gradient multiplied by 0.6 at each
of 19 layers)."""


def _grad_ratio(make: Callable[[], nn.Sequential], x_shape: tuple[int, ...], target: Callable, seed: int) -> float:
    """The norm of the loss's gradient on the first layer's weights over that on the last layer's, for the net
    ``make()`` builds with ``seed``, at that initialisation: one batch of N(0, 1) input, a squared-error loss to
    ``target``-drawn targets."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = make()
        x = torch.randn(*x_shape)
        out = net(x)
        loss = 0.5 * ((out - target(out)) ** 2).sum() / x.shape[0]
    loss.backward()
    norms = [m.weight.grad.norm().item() for m in net.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    return norms[0] / norms[-1]


def vanishing_gradient(*, depth: int = 19, seeds: int = 5) -> list[Figure]:
    """The design notes' arithmetic of vanishing gradients: a gradient multiplied by 0.6 at each of 19 layers
    shrinks to 0.6^19 = 6.09e-5 (the notes print 0.00061, one decimal place off), computed by autograd through 19
    multiplications; beside it the gradient ratio measured through two real 19-layer plain stacks at PyTorch's
    default initialisation (the median over ``seeds`` initialisations):

    * ``Linear(64, 64)`` + sigmoid, the net the vanishing-gradient argument was first made about (Hochreiter 1991;
      Bengio et al. 1994): the sigmoid passes at most 1/4 of a gradient and the default init's weights shrink it
      by about 1/sqrt(3) more, so the gradient vanishes far faster than the notes' 0.6 per layer;
    * ``ConvBnAct(16, 16, 3)`` (conv, batch norm in training mode, ReLU), the unit of the plain nets of He et al.
      2016, who note (Sec. 4.1) that with BN "the backward propagated gradients exhibit healthy norms": the first
      layer's gradient is the *larger* one, as cnnlab's degradation experiment found in plain-56.

    The ratio compares the weight gradients of layers 1 and ``depth``, ``depth - 1`` layers apart; the per-layer
    factor is its ``(depth - 1)``-th root. Measured, not checked: what the notes' factor would give is shown beside.
    """
    trick = f"vanishing gradient, {depth} layers"
    x = torch.ones((), dtype=torch.float64, requires_grad=True)
    y = x
    for _ in range(depth):
        y = y * NOTES_FACTOR
    y.backward()
    nets = {
        "Linear+sigmoid": (
            lambda: nn.Sequential(*[nn.Sequential(nn.Linear(64, 64), nn.Sigmoid()) for _ in range(depth)]),
            (64, 64),
            torch.rand_like,  # targets in (0, 1), where a sigmoid's outputs are
        ),
        "conv+BN+ReLU": (
            lambda: nn.Sequential(*[ConvBnAct(16, 16, 3) for _ in range(depth)]),
            (8, 16, 16, 16),
            torch.randn_like,
        ),
    }
    gap, slip = depth - 1, " (the notes print 0.00061)" if depth == 19 else ""
    figures = [Figure(trick, f"0.6^{depth}{slip}", f"0.6^{depth}", NOTES_FACTOR**depth, x.grad.item())]
    for name, (make, shape, target) in nets.items():
        with one_thread():
            ratio = statistics.median(_grad_ratio(make, shape, target, seed) for seed in range(seeds))
        figures += [
            Figure(trick, f"grad layer 1 / layer {depth}, {name}", f"0.6^{gap} if each layer passed 0.6",
                   NOTES_FACTOR**gap, ratio, checked=False),
            Figure(trick, f"per-layer factor, {name}", f"(ratio)^(1/{gap}); the notes: 0.6", NOTES_FACTOR,
                   ratio ** (1 / gap), checked=False),
        ]  # fmt: skip
    return figures


def sparse_conv(*, chs: int = 64, size: int = 28, sparsity: float = 0.9, runs: int = 15, seed: int = 0) -> list[Figure]:
    """A 3x3 conv whose weights are ``sparsity`` zeros, run as a sparse product (the unfolded input times the
    weights as a CSR matrix, :class:`~cnnlab.layers.sparse_conv.SparseConv2d`) against the same dense conv: the
    MACs each does, and the time each takes on this machine (the median of ``runs`` forward passes at batch 1 on
    one thread, the three taken in turns so that a busy moment slows all of them). GoogLeNet's argument
    (Szegedy et al. 2015, Sec. 3): dense hardware and libraries do not turn fewer multiplications on sparse data
    into proportionally less time, so the Inception module is built of dense blocks. The MACs are exact; the times
    are measured, not checked (they depend on the machine and its load)."""
    trick = f"{sparsity:.0%} zero weights, sparse vs dense"
    conv = prune_(nn.Conv2d(chs, chs, 3, padding=1, bias=False), sparsity,
                  generator=torch.Generator().manual_seed(seed))  # fmt: skip
    sparse, unfolded = SparseConv2d(conv), SparseConv2d(conv, sparse=False)
    hw, n = size * size, conv.weight.numel()
    kept = n - round(sparsity * n)
    with one_thread():
        dense_t, unfolded_t, sparse_t = measure_latencies([conv, unfolded, sparse], [(chs, size, size)] * 3,
                                                          runs=runs, warmup=2)  # fmt: skip
    timed = f"median of {runs}, 1 thread"
    return [
        Figure(trick, "MACs dense conv", f"{size}x{size} x {chs} x 3x3x{chs}", hw * n,
               analyze(conv, (chs, size, size)).macs, role="before"),
        Figure(trick, "MACs sparse (nonzero weights only)", f"{size}x{size} x {kept:,} nonzero weights", hw * kept,
               hw * sparse.nonzeros, role="after"),
        Figure(trick, "ms dense conv", timed, None, dense_t.median_ms, checked=False),
        Figure(trick, "ms unfolded input x dense weights", timed, None, unfolded_t.median_ms, checked=False),
        Figure(trick, "ms unfolded input x CSR weights", timed, None, sparse_t.median_ms, checked=False),
        Figure(trick, "time sparse / dense conv", f"{kept / n:.2g} if time followed the MACs", kept / n,
               sparse_t.median_ms / dense_t.median_ms, checked=False),
    ]  # fmt: skip


TRICKS: dict[str, Callable[[], list[Figure]]] = {
    "5x5": lambda: stacked_small_kernels(big=5),
    "7x7": lambda: stacked_small_kernels(big=7),
    "bottleneck": bottleneck_weights,
    "reduction": inception_reduction,
    "depthwise": depthwise_separable,
    "group": group_conv,
    "se": se_overhead,
    "inception": inception_modules,
    "vgg": vgg_vs_resnet,
    "vanishing": vanishing_gradient,
    "sparse": sparse_conv,
}
"""Every trick by a short name (``cnnlab tricks --only se``)."""


FAMILY_TRICKS: dict[str, tuple[str, ...]] = {
    "resnet": ("bottleneck", "se", "group", "vgg"),
    "classic": ("5x5", "7x7", "vgg"),
    "googlenet": ("reduction", "inception"),
    "inception": ("5x5", "7x7", "reduction"),
    "mobilenet": ("depthwise",),
    "xception": ("depthwise",),
    "shufflenet": ("group", "depthwise"),
}
"""The tricks that concern each model family (the report of a model shows their rows)."""


def before_after(figures: list[Figure]) -> list[tuple[Figure, Figure]]:
    """Each trick's two compared costs, (without, with)."""
    pairs: dict[str, dict[str, Figure]] = {}
    for f in figures:
        if f.role:
            pairs.setdefault(f.trick, {})[f.role] = f
    return [(p["before"], p["after"]) for p in pairs.values() if {"before", "after"} <= set(p)]


def tricks_report(names: list[str] | None = None) -> list[Figure]:
    """The figures of the tricks ``names`` (default: all), measured now."""
    figures = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CnnlabWarning)
        for name in names or list(TRICKS):
            figures += TRICKS[name]()
    return figures


def value_label(v: float | None) -> str:
    """A figure as the table prints it: an integer with separators, else four significant digits ("-": none)."""
    if v is None:
        return "-"
    if float(v).is_integer() and abs(v) >= 1:
        return f"{int(v):,}"
    return f"{v:.4g}"


def figures_table(figures: list[Figure]) -> str:
    rows = [
        [
            f.trick,
            f.quantity,
            f.formula,
            value_label(f.expected),
            value_label(f.measured),
            {True: "yes", False: "NO", None: "-"}[f.agrees],
        ]
        for f in figures
    ]
    return format_table(rows, ["trick", "quantity", "formula", "formula value", "measured", "agree"])


def figures_dicts(figures: list[Figure]) -> list[dict[str, Any]]:
    return [asdict(f) | {"agrees": f.agrees} for f in figures]


def figures_csv(figures: list[Figure]) -> str:
    return rows_to_csv(figures_dicts(figures))
