"""Dilated convolutions and the gridding effect (Yu & Koltun 2016; Wang et al. 2018, "Understanding
Convolution for Semantic Segmentation", Sec. 3.2, Hybrid Dilated Convolution).

A K x K conv with dilation r samples its input at offsets ``-(K-1)/2 * r .. (K-1)/2 * r`` in steps of r, so it
sees a field of ``(K-1) * r + 1`` pixels with ``K`` weights; padding ``(K-1)/2 * r`` keeps the size. Stacking
convs with a common rate (2, 2, 2) leaves a checkerboard of input pixels that reach no output: gridding.

:func:`hdc_check` answers twice. The paper's rule: with ``M_n = r_n`` and
``M_i = max(M_{i+1} - 2 r_i, M_{i+1} - 2 (M_{i+1} - r_i), r_i)``, require ``M_2 <= K``, a first rate of 1 and
no common factor > 1 among the rates. The exact answer: an offset d (per axis) is reached when
``d = sum_i t_i r_i`` with every ``t_i`` in ``-(K-1)/2 .. (K-1)/2``; the offsets of the receptive field that no
such sum gives are its holes (a 2-D input pixel is missed when either of its coordinates is a hole). The rule is
sufficient but stricter than needed: [1, 3, 1] fails it and has no holes.

The rule is stated for one *group* of rates, and the paper repeats a group through a stage ("a sawtooth
wave-like heuristic", Sec. 3.3: [1, 2, 5, 1, 2, 5]). :func:`hdc_check` therefore applies it to each group:
the repeated cycle that it finds (:func:`find_cycle`), or consecutive groups of ``group`` rates. Every
group passing is enough for the whole stack: a group that passes reaches every offset of its own field, and
the offsets of stacked groups add up, so contiguous ranges stay contiguous. The exact answer is always
computed over the whole stack.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from cnnlab.errors import GriddingWarning, ModelArgumentError
from cnnlab.layers.conv_bn_act import ConvBnAct
from cnnlab.layers.types import LayerFactory


@dataclass(frozen=True)
class Verdict:
    """Whether a stack passes a test, and why."""

    ok: bool
    reason: str


@dataclass(frozen=True)
class HdcReport:
    """The two verdicts on a stack of dilated K x K convs; ``holes`` are the unreachable offsets per axis.

    ``paper`` is the rule applied to each of ``groups`` (``group_verdicts``, one per group); ``grouping`` says
    how the groups were chosen. ``exact`` is the coverage of the whole stack.
    """

    paper: Verdict
    exact: Verdict
    rates: tuple[int, ...] = ()
    kernel_size: int = 3
    holes: tuple[int, ...] = ()
    groups: tuple[tuple[int, ...], ...] = ()
    group_verdicts: tuple[Verdict, ...] = ()
    grouping: str = "on the whole stack"

    @property
    def conclusion(self) -> str:
        """What the two verdicts say together."""
        if self.paper.ok:
            return "no holes, as the rule guarantees"
        if self.exact.ok:
            return "the rule is sufficient, not necessary: these rates fail it and still reach every offset"
        return "holes, as the rule warns"

    def __str__(self) -> str:
        def line(name: str, v: Verdict) -> str:
            return f"  {name}: {'ok' if v.ok else 'FAILS'} ({v.reason})"

        head = f"dilation rates {list(self.rates)} with {self.kernel_size}x{self.kernel_size} kernels"
        rule = line(f"HDC rule (Wang et al. 2018) {self.grouping}", self.paper)
        return "\n".join((head, rule, line("exact coverage", self.exact), f"  so: {self.conclusion}"))


MAX_FIELD = 4097
"""The widest receptive field (pixels per axis) of a dilated stack: wider than any image these models take.
:func:`hdc_check` enumerates every offset of the field, and a conv dilated by r pads its input by r per side."""


def check_rates(rates: Sequence[int], kernel_size: int) -> tuple[int, ...]:
    """``rates`` as a tuple if they are integers >= 1 for an odd ``kernel_size`` whose stacked receptive field
    ``1 + (K - 1) * sum(rates)`` is at most :data:`MAX_FIELD`; a ModelArgumentError that says which otherwise."""
    rates = tuple(rates)
    if not rates or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in rates):
        raise ModelArgumentError(f"dilation rates must be a non-empty list of integers >= 1, got {list(rates)}")
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ModelArgumentError(f"kernel_size must be an odd integer >= 1, got {kernel_size!r}")
    field = 1 + (kernel_size - 1) * sum(rates)
    if field > MAX_FIELD:
        k, most = kernel_size, (MAX_FIELD - 1) // (kernel_size - 1)
        raise ModelArgumentError(
            f"dilation rates {list(rates)} with {k}x{k} kernels span a {field}-pixel receptive field; the limit is "
            f"{MAX_FIELD} pixels (rates summing to at most {most}), wider than any input these models take"
        )
    return rates


def hdc_max_distances(rates: Sequence[int]) -> list[int]:
    """``[M_1, ..., M_n]`` of the paper's recursion (``M_n = r_n``)."""
    m = [0] * len(rates)
    m[-1] = rates[-1]
    for i in range(len(rates) - 2, -1, -1):
        m[i] = max(m[i + 1] - 2 * rates[i], m[i + 1] - 2 * (m[i + 1] - rates[i]), rates[i])
    return m


def reachable_offsets(rates: Sequence[int], kernel_size: int = 3) -> set[int]:
    """The offsets (per axis) at which some path through the stack reads its input."""
    half = (kernel_size - 1) // 2
    reached = {0}
    for r in rates:
        reached = {d + t * r for d in reached for t in range(-half, half + 1)}
    return reached


def find_cycle(rates: Sequence[int]) -> int:
    """The length of the shortest group of two or more rates whose repetition is ``rates``: 3 for
    [1, 2, 5, 1, 2, 5]; ``len(rates)`` when no group repeats, and for a constant rate ([2, 2, 2] is one group)."""
    rates = tuple(rates)
    n = len(rates)
    if len(set(rates)) > 1:
        for p in range(2, n // 2 + 1):
            if n % p == 0 and rates == rates[:p] * (n // p):
                return p
    return n


def _paper_verdict(rates: tuple[int, ...], kernel_size: int) -> Verdict:
    """The rule on one group: first rate 1, no common factor > 1, ``M_2 <= K``."""
    m2 = hdc_max_distances(rates)[1] if len(rates) > 1 else None
    common = math.gcd(*rates)
    failures = [
        f"the first rate is {rates[0]}, not 1" if rates[0] != 1 else "",
        f"the rates share the factor {common}" if common > 1 else "",
        f"M_2 = {m2} > K = {kernel_size}" if m2 is not None and m2 > kernel_size else "",
    ]
    failures = [f for f in failures if f]
    if failures:
        return Verdict(False, "; ".join(failures))
    m2_text = f"M_2 = {m2} <= K = {kernel_size}, " if m2 is not None else ""
    return Verdict(True, f"{m2_text}first rate 1, no common factor > 1")


def _groups(rates: tuple[int, ...], group: int | None) -> tuple[tuple[tuple[int, ...], ...], str]:
    """The groups the rule is applied to, and how they were chosen (in words)."""
    n = len(rates)
    if group is not None:
        if isinstance(group, bool) or not isinstance(group, int) or not 1 <= group <= n:
            raise ModelArgumentError(f"group must be an integer from 1 to the {n} rates, got {group!r}")
        size = group
    else:
        size = find_cycle(rates)
    groups = tuple(rates[i : i + size] for i in range(0, n, size))
    if len(groups) == 1:
        return groups, "on the whole stack"
    if group is None:
        return groups, f"on each group of the cycle {list(groups[0])} x {len(groups)}"
    return groups, f"on each group of {size} rates (given): " + ", ".join(str(list(g)) for g in groups)


def _combined(groups: tuple[tuple[int, ...], ...], verdicts: tuple[Verdict, ...]) -> Verdict:
    """The rule over every group: the one group's verdict, else which groups fail and why."""
    if len(groups) == 1:
        return verdicts[0]
    failing = [f"group {i} {list(g)}: {v.reason}" for i, (g, v) in enumerate(zip(groups, verdicts, strict=True), 1)
               if not v.ok]  # fmt: skip
    if failing:
        return Verdict(False, "; ".join(failing))
    distinct = dict.fromkeys(zip(groups, verdicts, strict=True))
    return Verdict(True, "every group passes: " + "; ".join(f"{list(g)} {v.reason}" for g, v in distinct))


def hdc_check(rates: Sequence[int], kernel_size: int = 3, *, group: int | None = None) -> HdcReport:
    """Check a stack of dilated ``kernel_size`` convs against the HDC rule, applied to each group of the stack
    (the repeated cycle that :func:`find_cycle` finds, or consecutive groups of ``group`` rates, the last one
    possibly shorter), and against exact coverage of the whole stack."""
    rates = check_rates(rates, kernel_size)
    radius = (kernel_size - 1) // 2 * sum(rates)  # the field is 2 * radius + 1, as check_rates counts it
    reached = reachable_offsets(rates, kernel_size)
    holes = tuple(d for d in range(-radius, radius + 1) if d not in reached)
    field = 2 * radius + 1
    if holes:
        shown = ", ".join(map(str, holes[:12])) + (", ..." if len(holes) > 12 else "")
        exact = Verdict(False, f"{len(holes)} of {field} offsets per axis are never reached: {shown}")
    else:
        exact = Verdict(True, f"every offset of the {field}x{field} receptive field is reached")
    groups, grouping = _groups(rates, group)
    verdicts = tuple(_paper_verdict(g, kernel_size) for g in groups)
    paper = _combined(groups, verdicts)
    return HdcReport(paper, exact, rates, kernel_size, holes, groups, verdicts, grouping)


class DilatedConvStack(nn.Sequential):
    """K x K conv-BN-act layers with dilations ``rates`` and size-keeping padding, named ``conv1``, ``conv2``...

    Building a stack whose receptive field has holes warns with :class:`~cnnlab.errors.GriddingWarning`;
    ``self.hdc`` holds the :class:`HdcReport`.
    """

    def __init__(
        self,
        chs: int,
        rates: Sequence[int],
        *,
        kernel_size: int = 3,
        norm_layer: LayerFactory | None = nn.BatchNorm2d,
        act_layer: LayerFactory | None = nn.ReLU,
    ) -> None:
        super().__init__()
        self.hdc = hdc_check(rates, kernel_size)
        if not self.hdc.exact.ok:
            warnings.warn(f"gridding: {self.hdc.exact.reason} (rates {list(rates)})", GriddingWarning, stacklevel=2)
        for i, r in enumerate(rates, start=1):
            conv = ConvBnAct(chs, chs, kernel_size, dilation=r, norm_layer=norm_layer, act_layer=act_layer)
            self.add_module(f"conv{i}", conv)
