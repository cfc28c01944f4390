"""A conv with 90% zero weights as a sparse product (GoogLeNet's argument against sparse layers): the sparse path
computes the dense conv's output, and ``cnnlab tricks --only sparse`` shows the MACs each does beside the times
(measured, so checked for their structure, not for a speed)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.analysis.tricks import tricks_report
from cnnlab.errors import ModelArgumentError
from cnnlab.layers.sparse_conv import SparseConv2d, prune_


@pytest.mark.parametrize(
    "conv",
    [
        dict(in_channels=8, out_channels=12, kernel_size=3, padding=1, bias=False),
        dict(in_channels=8, out_channels=6, kernel_size=3, stride=2, padding=1, bias=True),
        dict(in_channels=5, out_channels=7, kernel_size=(3, 5), padding=(2, 1), dilation=2),
        dict(in_channels=4, out_channels=4, kernel_size=1),
    ],
)
def test_the_sparse_product_is_the_dense_conv(conv: dict) -> None:
    dense = prune_(nn.Conv2d(**conv), 0.9, generator=torch.Generator().manual_seed(0))
    x = torch.randn(3, conv["in_channels"], 13, 11)
    with torch.no_grad():
        expected = dense(x)
        for layer in (SparseConv2d(dense), SparseConv2d(dense, sparse=False)):
            out = layer(x)
            assert out.shape == expected.shape and torch.allclose(out, expected, atol=1e-5)


def test_pruning_keeps_a_tenth_of_the_weights_and_the_csr_stores_only_those() -> None:
    conv = prune_(nn.Conv2d(64, 64, 3, bias=False), 0.9, generator=torch.Generator().manual_seed(1))
    n = 64 * 64 * 9
    kept = n - round(0.9 * n)
    assert int((conv.weight != 0).sum()) == kept == 3_686
    assert SparseConv2d(conv).nonzeros == kept and SparseConv2d(conv, sparse=False).nonzeros == n
    assert SparseConv2d(conv).weight.layout == torch.sparse_csr


def test_what_it_cannot_copy_is_refused() -> None:
    with pytest.raises(ModelArgumentError, match="groups=1"):
        SparseConv2d(nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(ModelArgumentError, match="share of zero weights"):
        prune_(nn.Conv2d(4, 4, 3), 1.0)


def test_the_tricks_row_counts_the_macs_and_times_both() -> None:
    figures = {f.quantity: f for f in tricks_report(["sparse"])}
    dense_macs = 28 * 28 * 64 * 9 * 64  # positions x output channels x weights per output
    assert figures["MACs dense conv"].expected == dense_macs == figures["MACs dense conv"].measured
    assert figures["MACs sparse (nonzero weights only)"].measured == 28 * 28 * 3_686
    assert (figures["MACs dense conv"].role, figures["MACs sparse (nonzero weights only)"].role) == ("before", "after")
    timed = ("ms dense conv", "ms unfolded input x dense weights", "ms unfolded input x CSR weights")
    times = [figures[q] for q in timed]
    assert all(t.measured > 0 and not t.checked and t.agrees is None for t in times)
    ratio = figures["time sparse / dense conv"]
    assert ratio.expected == pytest.approx(3_686 / (64 * 64 * 9)) and ratio.agrees is None
    assert ratio.measured == pytest.approx(times[2].measured / times[0].measured)
