"""Local response normalisation (Krizhevsky, Sutskever, Hinton 2012, "ImageNet Classification with Deep
Convolutional Neural Networks", Sec. 3.3): each ReLU output is divided by the energy of its ``n`` neighbouring
channels at the same position, "a form of lateral inhibition inspired by ... real neurons",

    b[i] = a[i] / (k + alpha * sum_{j = max(0, i - n/2)}^{min(N - 1, i + n/2)} a[j]^2) ^ beta,

with k = 2, n = 5, alpha = 1e-4, beta = 0.75; it lowered AlexNet's top-1 error by 1.4%.

``torch.nn.LocalResponseNorm`` computes the same window but divides alpha by the window size,
``k + alpha / n * sum``; :func:`local_response_norm` takes the paper's alpha and passes ``alpha * size`` on.
(Caffe's LRN also divides by n, so its reference AlexNet, with alpha = 1e-4 and k = 1, normalises less than the
paper does.)
"""

from __future__ import annotations

from torch import nn


def local_response_norm(
    size: int = 5,  # n, the channels in the window (centred, clipped at the ends)
    alpha: float = 1e-4,  # the paper's alpha: the weight of each squared neighbour
    beta: float = 0.75,
    k: float = 2.0,
) -> nn.LocalResponseNorm:
    """The paper's response normalisation (its constants by default) as a ``torch.nn.LocalResponseNorm``."""
    return nn.LocalResponseNorm(size, alpha=alpha * size, beta=beta, k=k)
