"""Per-channel normalisation statistics: the one place every dataset, model and checkpoint takes them from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelStats:
    """Mean and standard deviation of each channel of images scaled to [0, 1]."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


IMAGENET = ChannelStats((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
"""The RGB statistics that ImageNet-trained weights (torchvision's, timm's) expect."""
MNIST = ChannelStats((0.1307,), (0.3081,))  # over the 60,000 MNIST training digits
FASHION_MNIST = ChannelStats((0.2860,), (0.3530,))  # over the 60,000 Fashion-MNIST training images
CIFAR10 = ChannelStats((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))  # over the 50,000 training images
CIFAR100 = ChannelStats((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))  # over the 50,000 training images
MNIST5K_RTS = ChannelStats((0.0537,), (0.1959,))  # over its 3,600 training images (cnnlab.data.synthetic)
MNIST5K_CLUTTERED = ChannelStats((0.0429,), (0.1871,))  # over its 3,600 training images
MNIST5K_SEG = ChannelStats((0.1477,), (0.3019,))  # over its 3,600 training canvases (cnnlab.data.segmentation)
