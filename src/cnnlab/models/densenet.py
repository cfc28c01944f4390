"""DenseNet (Huang, Liu, van der Maaten, Weinberger, "Densely Connected Convolutional Networks", CVPR 2017).

ImageNet nets of Table 1 (DenseNet-BC: bottleneck layers and compression 0.5; k = 32, or 48 for DenseNet-161):
a 7x7/2 conv and 3x3/2 max pool, four dense blocks joined by transitions, BN-ReLU, global average pooling, a fc.
CIFAR DenseNet-BC (Sec. 4, L=100, k=12): a 3x3 conv to 2k channels and three dense blocks of (L-4)/6 layers.
The blocks are :mod:`cnnlab.layers.dense`. torchvision's ``densenet*`` load through ``TORCHVISION_KEYS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from torch import Tensor, nn

from cnnlab.errors import ModelArgumentError
from cnnlab.layers import ClassifierHead, ConvBnAct, DenseBlock, Transition, create_act
from cnnlab.layers.types import LayerFactory
from cnnlab.models.base import CnnlabModel, FeatureInfo, check_count, init_weights
from cnnlab.registry import Peer, register_model
from cnnlab.weights import KeyMap

_TRANSITIONS = tuple((rf"^features\.transition{i}\.", f"stage{i + 1}.transition.") for i in range(1, 4))
TORCHVISION_KEYS = KeyMap(
    (
        (r"^features\.conv0\.", "stem.conv."),
        (r"^features\.norm0\.", "stem.bn."),
        *_TRANSITIONS,
        (r"^features\.denseblock(\d)\.", r"stage\1.block."),
        (r"^features\.norm5\.", "stage4.norm."),  # ImageNet nets have four blocks
        (r"\.denselayer(\d+)\.", r".layer\1."),
        (r"\.norm(\d)\.", r".conv\1.bn."),
        (r"\.conv(\d)\.weight$", r".conv\1.conv.weight"),
        (r"\.transition\.norm\.", ".transition.conv.bn."),
        (r"\.transition\.conv\.weight$", ".transition.conv.conv.weight"),
        (r"^classifier\.", "head.fc."),
    )
)
"""torchvision's naming: features.{conv0,norm0,denseblockN.denselayerM.{norm,conv}K,transitionN,norm5}, classifier."""

StemType = Literal["imagenet", "cifar"]


class DenseNet(CnnlabModel):
    """A DenseNet: stem, then stage j = (transition, for j > 1) + dense block j; the last stage ends with the
    final BN-ReLU.

    Args:
        growth_rate: k, the channels each dense layer adds.
        block_config: layers per dense block.
        num_init_features: the stem's channels (2k in the paper).
        bn_size: the bottleneck's width in multiples of k (4; 0 for no bottleneck, DenseNet without B).
        theta: the transitions' compression (0.5; 1.0 for DenseNet without C).
        stem: "imagenet" (7x7/2 conv-BN-ReLU and 3x3/2 max pool) or "cifar" (one 3x3 conv).
    """

    min_input_size = 29
    """The ImageNet stem's padded 7x7/2 conv and 3x3/2 pool leave ceil(H/4), which the three transitions' 2x2/2
    average pools (unpadded, rounding down) must halve three times: ceil(H/4) >= 8."""

    def __init__(
        self,
        *,
        growth_rate: int = 32,
        block_config: Sequence[int] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int = 4,
        theta: float = 0.5,
        stem: StemType = "imagenet",
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,  # dropout after each dense layer's 3x3 (the paper's CIFAR nets without augmentation)
        norm_layer: LayerFactory = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        check_count("growth_rate", growth_rate, minimum=1)
        if not 0.0 < theta <= 1.0:
            raise ModelArgumentError(f"the compression theta must be in (0, 1], got {theta!r}")
        layer = {"norm_layer": norm_layer, "act_layer": act_layer}
        if stem == "imagenet":
            self.stem = ConvBnAct(in_chans, num_init_features, 7, stride=2, **layer)
            self.pool = nn.MaxPool2d(3, stride=2, padding=1)
            stem_reduction = 2
        elif stem == "cifar":
            self.stem = ConvBnAct(in_chans, num_init_features, 3, norm_layer=None, act_layer=None, bias=False)
            self.pool = nn.Identity()
            stem_reduction = 1
        else:
            raise ModelArgumentError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        self.feature_info = [FeatureInfo("stem", num_init_features, stem_reduction)]
        chs, reduction = num_init_features, stem_reduction * (2 if stem == "imagenet" else 1)
        for j, n in enumerate(block_config, start=1):
            stage = nn.Sequential()
            if j > 1:
                stage.add_module("transition", Transition(chs, theta=theta, **layer))
                chs, reduction = stage.transition.out_chs, reduction * 2
            block = DenseBlock(
                chs,
                check_count("layers per block", n, minimum=1),
                growth_rate,
                bn_size=bn_size,
                drop_rate=drop_rate,
                **layer,
            )
            stage.add_module("block", block)
            chs = block.out_chs
            self.add_module(f"stage{j}", stage)
            self.feature_info.append(FeatureInfo(f"stage{j}", chs, reduction))
        last = self.get_submodule(f"stage{len(block_config)}")
        last.add_module("norm", norm_layer(chs))  # the final BN-ReLU before pooling
        last.add_module("act", create_act(act_layer))
        self.num_features = chs
        self.head = ClassifierHead(chs, num_classes)
        init_weights(self)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    weight_key_maps = {"torchvision": TORCHVISION_KEYS}

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.pool(self.stem(x))  # N x 2k x H/4 x W/4 (ImageNet), H x W (CIFAR)
        for info in self.feature_info[1:]:
            x = self.get_submodule(info.module)(x)  # each stage after the first halves H and W
        return x


class CifarDenseNet(DenseNet):
    """A DenseNet for 32x32 images (built with ``stem="cifar"`` and three blocks)."""

    default_image_size = 32
    min_input_size = 4
    """The stride-1 stem keeps H, which the two transitions' 2x2/2 average pools must halve twice."""


def _densenet(k: int, blocks: tuple[int, ...], init: int, kwargs: dict[str, Any]) -> DenseNet:
    return DenseNet(**(dict(growth_rate=k, block_config=blocks, num_init_features=init) | kwargs))


@register_model(peers=(Peer("torchvision", "densenet121"),))
def densenet121(**kwargs: Any) -> DenseNet:
    """DenseNet-121 (k=32; blocks 6, 12, 24, 16); 7,978,856 params, 2.83 GMACs."""
    return _densenet(32, (6, 12, 24, 16), 64, kwargs)


@register_model(peers=(Peer("torchvision", "densenet161"),))
def densenet161(**kwargs: Any) -> DenseNet:
    """DenseNet-161 (k=48; blocks 6, 12, 36, 24; 96 stem channels); 28,681,000 params, 7.73 GMACs."""
    return _densenet(48, (6, 12, 36, 24), 96, kwargs)


@register_model(peers=(Peer("torchvision", "densenet169"),))
def densenet169(**kwargs: Any) -> DenseNet:
    """DenseNet-169 (k=32; blocks 6, 12, 32, 32); 14,149,480 params, 3.36 GMACs."""
    return _densenet(32, (6, 12, 32, 32), 64, kwargs)


@register_model(peers=(Peer("torchvision", "densenet201"),))
def densenet201(**kwargs: Any) -> DenseNet:
    """DenseNet-201 (k=32; blocks 6, 12, 48, 32); 20,013,928 params, 4.29 GMACs."""
    return _densenet(32, (6, 12, 48, 32), 64, kwargs)


def _cifar_densenet_bc(depth: int, growth_rate: int, kwargs: dict[str, Any]) -> CifarDenseNet:
    """DenseNet-BC of depth L = 6n + 4 for CIFAR (Sec. 3-4): a 3x3 conv to 2k channels, three dense blocks of n
    bottleneck layers (1x1 to 4k, 3x3 to k) joined by two transitions of compression 0.5, the fc: 1 + 3 x 2n + 2 + 1
    layers with weights."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ModelArgumentError(
            f"DenseNet-BC depth L must be 6n + 4 with n >= 1 (three blocks of n two-conv layers, the first conv, two "
            f"transitions and the fc): 40, 52, 64, 100, ...; got depth={depth!r}"
        )
    n = (depth - 4) // 6
    variant = dict(growth_rate=growth_rate, block_config=(n, n, n), num_init_features=2 * growth_rate, stem="cifar",
                   num_classes=10)  # fmt: skip
    return CifarDenseNet(**(variant | kwargs))


@register_model
def densenet_bc(*, depth: int = 100, growth_rate: int = 12, **kwargs: Any) -> CifarDenseNet:
    """DenseNet-BC for CIFAR: depth L = 6n + 4 (``depth``: 100) growth k (``growth_rate``: 12); L=40: 176,122 params.

    L=52: 264,586; L=64: 368,122; L=100: 769,162, as ``densenet_bc_100_12``; L=250, k=24: 15.3M (Table 2).
    """
    return _cifar_densenet_bc(depth, growth_rate, kwargs)


@register_model
def densenet_bc_100_12(**kwargs: Any) -> CifarDenseNet:
    """DenseNet-BC for CIFAR (L=100, k=12: three blocks of 16 layers); 769,162 params, 4.51% C10+ error."""
    return _cifar_densenet_bc(100, 12, kwargs)
