"""``cnnlab tricks``: every formula agrees with the figure measured from the real blocks, and the formulas
give the numbers of ../shared/REFERENCE.md."""

from __future__ import annotations

import math
import warnings

import pytest

from cnnlab.analysis.tricks import Figure, tricks_report


@pytest.fixture(scope="module")
def figures() -> dict[tuple[str, str], Figure]:
    return {(f.trick, f.quantity): f for f in tricks_report()}


# Each trick's figures, in the order of the report: what ``cnnlab tricks`` promises to show.
EXPECTED = {
    "5x5 vs 2 x 3x3": ["weights 5x5", "weights 2 x 3x3", "MACs ratio stack / single", "receptive field 5x5",
                       "receptive field 2 x 3x3"],
    "7x7 vs 3 x 3x3": ["weights 7x7", "weights 3 x 3x3", "MACs ratio stack / single", "receptive field 7x7",
                       "receptive field 3 x 3x3"],
    "256-d bottleneck": ["weights 3x3 256->256", "weights bottleneck convs", "saving (x fewer)"],
    "1x1 reduction before 5x5": ["MACs 5x5 192->32", "MACs 1x1 192->16, 5x5 16->32"],
    "depthwise-separable": ["MACs standard", "MACs separable", "MACs ratio (128->256, 3x3)"],
    "group conv g=32": ["MACs dense", "MACs 32 groups", "weights ratio", "MACs ratio"],
    "SE block r=16": ["params ResNet-50", "params SE-ResNet-50", "params per block (C=256)", "MACs per block (C=256)",
                      "params SE-ResNet-50 - ResNet-50", "MACs SE-ResNet-50 - ResNet-50"],
    "Inception 3a naive vs reduced": ["MACs naive", "MACs reduced", "MACs naive / reduced", "output channels naive",
                                      "output channels reduced"],
    "VGG-19 vs ResNet-34": ["GMACs VGG-19", "GMACs ResNet-34", "ResNet-34 / VGG-19"],
    "ResNet-50 stride on 1x1": ["GMACs ResNet-50 (paper placement)"],
    "vanishing gradient, 19 layers": ["0.6^19 (the notes print 0.00061)", "grad layer 1 / layer 19, Linear+sigmoid",
                                      "per-layer factor, Linear+sigmoid", "grad layer 1 / layer 19, conv+BN+ReLU",
                                      "per-layer factor, conv+BN+ReLU"],
    "90% zero weights, sparse vs dense": ["MACs dense conv", "MACs sparse (nonzero weights only)", "ms dense conv",
                                          "ms unfolded input x dense weights", "ms unfolded input x CSR weights",
                                          "time sparse / dense conv"],
}  # fmt: skip

# measurements shown beside what an argument assumes, not held to it
UNCHECKED = set(EXPECTED["vanishing gradient, 19 layers"][1:] + EXPECTED["90% zero weights, sparse vs dense"][2:])


def test_every_measured_figure_agrees_with_its_formula(figures: dict[tuple[str, str], Figure]) -> None:
    assert list(figures) == [(trick, q) for trick, quantities in EXPECTED.items() for q in quantities]
    assert len(figures) == 48
    for (_, quantity), f in figures.items():
        if quantity in UNCHECKED:
            assert not f.checked and f.agrees is None, f
        else:
            assert f.checked and f.agrees, f


def test_the_notes_vanishing_gradient_arithmetic_and_the_measured_ratios() -> None:
    figures = {f.quantity: f for f in tricks_report(["vanishing"])}
    power = figures["0.6^19 (the notes print 0.00061)"]
    assert power.expected == pytest.approx(6.0935e-5, rel=1e-4) and power.agrees  # the notes' 0.00061 is 10x this
    assert not math.isclose(power.measured, 0.00061, rel_tol=0.1)
    # Linear(64, 64) + sigmoid at PyTorch's default init: each layer passes sigmoid'(z) ~ 1/4 of the gradient, times
    # the gain of a weight matrix with Var(w) = 1/(3 fan_in), sqrt(64 / (3 x 64)) = 1/sqrt(3)
    sigmoid = figures["per-layer factor, Linear+sigmoid"].measured
    assert sigmoid == pytest.approx(0.25 / math.sqrt(3), rel=0.1)
    assert figures["grad layer 1 / layer 19, Linear+sigmoid"].measured == pytest.approx(sigmoid**18, rel=1e-9)
    # with batch norm the first layer's gradient is the larger one (He et al. 2016, Sec. 4.1: "healthy norms")
    assert figures["grad layer 1 / layer 19, conv+BN+ReLU"].measured > 1


@pytest.mark.parametrize(
    ("trick", "quantity", "value"),
    [
        ("5x5 vs 2 x 3x3", "weights 5x5", 25 * 64 * 64),
        ("5x5 vs 2 x 3x3", "weights 2 x 3x3", 18 * 64 * 64),
        ("5x5 vs 2 x 3x3", "receptive field 2 x 3x3", 5),
        ("7x7 vs 3 x 3x3", "MACs ratio stack / single", 27 / 49),
        ("7x7 vs 3 x 3x3", "receptive field 3 x 3x3", 7),
        ("256-d bottleneck", "weights 3x3 256->256", 589_824),
        ("256-d bottleneck", "weights bottleneck convs", 69_632),
        ("1x1 reduction before 5x5", "MACs 5x5 192->32", 120_422_400),  # "about 120 million"
        ("1x1 reduction before 5x5", "MACs 1x1 192->16, 5x5 16->32", 12_443_648),  # "about 12.4 million"
        ("5x5 vs 2 x 3x3", "MACs ratio stack / single", 18 / 25),
        ("5x5 vs 2 x 3x3", "receptive field 5x5", 5),
        ("7x7 vs 3 x 3x3", "weights 7x7", 49 * 64 * 64),
        ("7x7 vs 3 x 3x3", "weights 3 x 3x3", 27 * 64 * 64),
        ("256-d bottleneck", "saving (x fewer)", 589_824 / 69_632),
        ("group conv g=32", "weights ratio", 1 / 32),
        ("group conv g=32", "MACs ratio", 1 / 32),
        ("SE block r=16", "params per block (C=256)", 2 * 256 * 16 + 256 + 16),  # two 1x1 convs with biases
        ("SE block r=16", "MACs per block (C=256)", 2 * 256 * 16),
        # 3, 4, 6, 3 blocks of 256, 512, 1024, 2048 channels: sum of 2 C^2 / 16
        (
            "SE block r=16",
            "MACs SE-ResNet-50 - ResNet-50",
            2 * (3 * 256 * 16 + 4 * 512 * 32 + 6 * 1024 * 64 + 3 * 2048 * 128),
        ),
        ("Inception 3a naive vs reduced", "MACs naive", 28 * 28 * 192 * (64 + 9 * 128 + 25 * 32)),  # Fig. 2a
        ("Inception 3a naive vs reduced", "output channels naive", 64 + 128 + 32 + 192),
        ("Inception 3a naive vs reduced", "output channels reduced", 256),  # Table 1, inception (3a)
        ("VGG-19 vs ResNet-34", "GMACs VGG-19", 19.6),
        ("VGG-19 vs ResNet-34", "ResNet-34 / VGG-19", 3.6 / 19.6),
        ("SE block r=16", "params SE-ResNet-50 - ResNet-50", 28_088_024 - 25_557_032),  # REFERENCE.md counts
        ("VGG-19 vs ResNet-34", "GMACs ResNet-34", 3.6),
        ("ResNet-50 stride on 1x1", "GMACs ResNet-50 (paper placement)", 3.8),
    ],
)
def test_formula_values_are_the_reference_figures(
    figures: dict[tuple[str, str], Figure], trick: str, quantity: str, value: float
) -> None:
    f = figures[(trick, quantity)]
    assert f.expected == pytest.approx(value, rel=1e-9)
    assert f.measured == pytest.approx(value, rel=max(f.rel_tol, 1e-9))


def test_depthwise_separable_costs_1_over_n_plus_1_over_k2() -> None:
    standard, separable, f = tricks_report(["depthwise"])
    assert (standard.role, separable.role) == ("before", "after")
    assert standard.measured / separable.measured == pytest.approx(1 / f.measured)
    assert f.expected == pytest.approx(1 / 256 + 1 / 9)
    assert f.measured == pytest.approx(1 / 256 + 1 / 9, rel=1e-9)


def test_naive_against_reduced_inception_3a() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figures = {f.quantity: f for f in tricks_report(["inception"])}
    reduced = 28 * 28 * (192 * (64 + 96 + 16 + 32) + 9 * 96 * 128 + 25 * 16 * 32)  # Table 1, inception (3a)
    assert figures["MACs reduced"].expected == reduced == 128_049_152
    assert all(f.agrees for f in figures.values()), figures
    assert figures["output channels reduced"].measured == 256


def test_vgg19_against_resnet34() -> None:
    figures = {f.quantity: f for f in tricks_report(["vgg"])}
    assert round(figures["GMACs VGG-19"].measured, 1) == 19.6  # the ResNet paper's figure, to its digits
    assert figures["ResNet-34 / VGG-19"].agrees
