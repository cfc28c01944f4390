"""Dense prediction with dilated convolutions: FCN and DeepLabV3 on dilated ResNets, and small segmentation nets
for the embedded digit canvases (``mnist5k-seg``).

Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015 (FCN).
Yu & Koltun, "Multi-Scale Context Aggregation by Dilated Convolutions", ICLR 2016 (dilated backbones).
Chen, Papandreou, Schroff & Adam, "Rethinking Atrous Convolution for Semantic Image Segmentation", 2017
(DeepLabV3: ASPP on a backbone at output stride 8 or 16). Wang et al., "Understanding Convolution for Semantic
Segmentation", WACV 2018 (dense upsampling convolution, hybrid dilated convolution).

A :class:`SegmentationNet` is a backbone's stages (a cnnlab ResNet whose last stages dilate instead of
downsampling), a dense head on the last map, and bilinear upsampling to the input size; an optional auxiliary
FCN head reads an earlier stage. The layouts of ``fcn_resnet50/101`` and ``deeplabv3_resnet50/101`` are
torchvision's (``TORCHVISION_FCN_KEYS``, ``TORCHVISION_DEEPLABV3_KEYS``), so their weights load through
:func:`cnnlab.load_pretrained` and give the same ``out`` and ``aux``.

The model contract of :mod:`cnnlab.models.base` holds, with these departures, all because the output is a map
(``dense_output = True``):

* ``forward(x)`` returns N x num_classes x H x W at the input's height and width; ``forward_head`` returns the
  head's output at the feature map's resolution (1/``output_stride``), which ``forward`` resizes with
  :func:`~cnnlab.layers.fcn_head.upsample` (so ``forward(x) == upsample(forward_head(forward_features(x)), x)``).
* ``num_classes=0`` leaves out the head's classifier alone: ``forward`` returns the pre-logits, upsampled,
  N x head_hidden_size x H x W (an FCN head's 3x3 conv, DeepLabV3's ASPP and refining conv stay; a DUC head
  has no layer before its classifier, so its pre-logits are the backbone's features).
* With an auxiliary head, ``forward`` in training mode returns
  :class:`~cnnlab.models.base.LogitsWithAux` ``(out, (aux,))``, both N x num_classes x H x W (torchvision's
  ``{"out", "aux"}``), and the trainer adds ``aux_loss_weight`` = 0.5 times the auxiliary loss (torchvision's
  segmentation recipe). In eval mode ``forward`` returns ``out`` only; ``forward_with_aux`` returns both in any
  mode (torchvision's models return ``aux`` in eval mode too).
* ``num_features`` and ``feature_info`` are the backbone's (its stages keep their names: ``stem``,
  ``layer1``.. ``layer4``; ``S1``..``S3``), so ``features_only``, freezing stages and the analyzer work as for
  the classifiers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, ClassVar

from torch import Tensor

from cnnlab.data.preprocess import Preprocess
from cnnlab.data.stats import MNIST5K_SEG
from cnnlab.errors import ModelArgumentError
from cnnlab.layers import Bottleneck, DeepLabHead, DUCHead, FCNHead, LayerFactory, upsample
from cnnlab.models.base import CnnlabModel, LogitsWithAux, init_weights
from cnnlab.models.resnet import TORCHVISION_KEYS as RESNET_KEYS
from cnnlab.models.resnet import CifarResNet, ResNet, plan_stages
from cnnlab.registry import Peer, register_model
from cnnlab.weights import KeyMap

_TV_BACKBONE = KeyMap(((r"^backbone\.", ""),)) + RESNET_KEYS
_TV_AUX = KeyMap(
    (
        (r"^aux_classifier\.0\.", "aux_head.conv.conv."),
        (r"^aux_classifier\.1\.", "aux_head.conv.bn."),
        (r"^aux_classifier\.4\.", "aux_head.fc."),
    )
)
TORCHVISION_FCN_KEYS = (
    _TV_BACKBONE
    + KeyMap(
        (
            (r"^classifier\.0\.", "head.conv.conv."),
            (r"^classifier\.1\.", "head.conv.bn."),
            (r"^classifier\.4\.", "head.fc."),
        )
    )
    + _TV_AUX
)
"""torchvision's FCN naming: ``backbone.`` + ResNet, ``classifier`` (FCNHead: 0 conv, 1 bn, 4 conv),
``aux_classifier`` (the same)."""
TORCHVISION_DEEPLABV3_KEYS = (
    _TV_BACKBONE
    + KeyMap(
        (
            (r"^classifier\.0\.convs\.0\.0\.", "head.aspp.branch1x1.conv."),
            (r"^classifier\.0\.convs\.0\.1\.", "head.aspp.branch1x1.bn."),
            *((rf"^classifier\.0\.convs\.{i + 1}\.0\.", f"head.aspp.branch3x3.{i}.conv.") for i in range(3)),
            *((rf"^classifier\.0\.convs\.{i + 1}\.1\.", f"head.aspp.branch3x3.{i}.bn.") for i in range(3)),
            (r"^classifier\.0\.convs\.4\.1\.", "head.aspp.image_pool.conv.conv."),
            (r"^classifier\.0\.convs\.4\.2\.", "head.aspp.image_pool.conv.bn."),
            (r"^classifier\.0\.project\.0\.", "head.aspp.project.conv."),
            (r"^classifier\.0\.project\.1\.", "head.aspp.project.bn."),
            (r"^classifier\.1\.", "head.conv.conv."),
            (r"^classifier\.2\.", "head.conv.bn."),
            (r"^classifier\.4\.", "head.fc."),
        )
    )
    + _TV_AUX
)
"""torchvision's DeepLabV3 naming: ``classifier`` (DeepLabHead: 0 ASPP with ``convs`` 0-4 and ``project``,
1 conv, 2 bn, 4 conv), ``aux_classifier`` (FCNHead)."""


class SegmentationNet(CnnlabModel):
    """The stages of ``backbone``, ``head`` on the last one, bilinear upsampling to the input size; with
    ``aux_layer``, ``aux_head`` on ``aux_stage`` (default: the stage before the last).

    Args:
        backbone: builds a :class:`~cnnlab.models.base.CnnlabModel` from ``in_chans`` and ``num_classes=0``
            (for example ``partial(ResNet, layers=(3, 4, 6, 3), output_stride=8)``). Its stages and the
            modules between them (a stem pool) are adopted under their own names and run in the order the
            backbone registered them, which is the order its ``forward_features`` runs them (the assumption
            of torchvision's ``IntermediateLayerGetter``); its classifier head is dropped.
        head_layer: the dense head, called ``head_layer(num_features, num_classes)``: ``FCNHead``,
            ``DeepLabHead``, ``DUCHead`` or anything with ``forward(x, pre_logits)``, ``reset(n)`` and
            ``hidden_size``.
        aux_layer: the auxiliary head, called ``aux_layer(channels of aux_stage, num_classes)``; None: none.
    """

    dense_output: ClassVar[bool] = True
    aux_loss_weight: ClassVar[float] = 0.5  # torchvision's references/segmentation: loss = out + 0.5 * aux
    default_image_size: ClassVar[int] = 520  # torchvision evaluates its segmentation weights at 520 px
    weight_key_maps = {"torchvision_fcn": TORCHVISION_FCN_KEYS, "torchvision_deeplabv3": TORCHVISION_DEEPLABV3_KEYS}

    def __init__(
        self,
        *,
        backbone: Callable[..., CnnlabModel],
        head_layer: LayerFactory = FCNHead,
        aux_layer: LayerFactory | None = None,
        aux_stage: str | None = None,  # None: the stage before the last
        num_classes: int = 21,  # Pascal VOC's 20 classes and the background, as torchvision's weights
        in_chans: int = 3,
    ) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        net = backbone(in_chans=in_chans, num_classes=0)
        self.body = tuple(name for name, _ in net.named_children() if name not in net.head_modules)
        for name in self.body:
            self.add_module(name, net.get_submodule(name))
        self.feature_info = list(net.feature_info)
        self.num_features = net.num_features
        stages = {f.module: f.num_chs for f in self.feature_info}
        self.aux_stage = None if aux_layer is None else aux_stage or self.feature_info[-2].module
        if self.aux_stage is not None and self.aux_stage not in stages:
            raise ModelArgumentError(f"aux_stage must be one of the stages {list(stages)}, got {aux_stage!r}")
        self.head = head_layer(self.num_features, num_classes)
        self.aux_head = aux_layer(stages[self.aux_stage], num_classes) if self.aux_stage is not None else None
        self.head_modules = ("head", "aux_head") if self.aux_head is not None else ("head",)
        for name in self.head_modules:  # the backbone initialised itself
            init_weights(self.get_submodule(name))

    def forward_taps(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """The last feature map and the input of the auxiliary head (None without one)."""
        tap = None
        for name in self.body:
            x = self.get_submodule(name)(x)  # the stages in order: N x num_features x H/os x W/os at the end
            if name == self.aux_stage:
                tap = x
        return x, tap

    def forward_features(self, x: Tensor) -> Tensor:
        return self.forward_taps(x)[0]

    def forward_with_aux(self, x: Tensor) -> LogitsWithAux:
        """``out`` and the auxiliary head's prediction (an empty tuple without one), both at the input's size,
        in any mode: torchvision's ``{"out", "aux"}``."""
        size = x.shape[-2:]
        features, tap = self.forward_taps(x)
        out = upsample(self.forward_head(features), size)  # N x num_classes x H x W
        aux = () if self.aux_head is None or tap is None else (upsample(self.aux_head(tap), size),)
        return LogitsWithAux(out, aux)

    def forward(self, x: Tensor) -> Tensor | LogitsWithAux:  # type: ignore[override]
        if self.training and self.aux_head is not None:
            return self.forward_with_aux(x)
        return upsample(self.forward_head(self.forward_features(x)), x.shape[-2:])  # N x num_classes x H x W

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        if self.aux_head is not None:
            self.aux_head.reset(num_classes)


class DigitSegmentationNet(SegmentationNet):
    """A :class:`SegmentationNet` for the 64x64 ``mnist5k-seg`` canvases (its builders default to one grey
    channel and 11 classes: the background and the ten digits)."""

    default_image_size: ClassVar[int] = 64


# ---------------------------------------------------------------------------------------------------------
# torchvision's FCN and DeepLabV3 (counts: ../shared/REFERENCE.md, "Segmentation")


def torchvision_dilations(layers: Sequence[int]) -> list[list[int]]:
    """Each block's 3x3 dilation in torchvision's ResNet with ``replace_stride_with_dilation=[False, True,
    True]``: a stage that gives up its stride keeps the previous rate in its first block and doubles it in the
    others, so stage 3 is (1, 2, 2, ...) and stage 4 (2, 4, 4)."""
    return [[1] * layers[0], [1] * layers[1], [1] + [2] * (layers[2] - 1), [2] + [4] * (layers[3] - 1)]


def dilated_resnet(layers: Sequence[int]) -> Callable[..., ResNet]:
    """The backbone of torchvision's segmentation models: a bottleneck ResNet at output stride 8."""
    return partial(
        ResNet, block=Bottleneck, layers=tuple(layers), output_stride=8, stage_dilations=torchvision_dilations(layers)
    )


TORCHVISION_SEG_PEER = {"weights_backbone": None, "aux_loss": True}
"""The peers' arguments: random weights everywhere (nothing downloaded) and the auxiliary head on."""


TORCHVISION_SEG = Preprocess(size=520, crop_pct=1.0)
"""torchvision's segmentation weights: the shorter side resized to 520, not cropped."""
DIGIT_CANVAS = Preprocess.of(MNIST5K_SEG, size=64, crop_pct=1.0)
"""mnist5k-seg's 64x64 canvases."""


def _tv_peer(name: str) -> tuple[Peer, ...]:
    return (Peer("torchvision", name, TORCHVISION_SEG_PEER),)


def _torchvision_seg(layers: Sequence[int], head_layer: LayerFactory, kwargs: dict[str, Any]) -> SegmentationNet:
    variant = dict(backbone=dilated_resnet(layers), head_layer=head_layer, aux_layer=FCNHead)
    return SegmentationNet(**(variant | kwargs))


@register_model(peers=_tv_peer("fcn_resnet50"), preprocess=TORCHVISION_SEG)
def fcn_resnet50(**kwargs: Any) -> SegmentationNet:
    """FCN-ResNet50 (torchvision's layout): 35,322,218 params with the auxiliary head, 32,957,013 without.

    ``aux_layer=None`` drops the auxiliary FCN head on ``layer3`` (it only acts in training)."""
    return _torchvision_seg((3, 4, 6, 3), FCNHead, kwargs)


@register_model(peers=_tv_peer("fcn_resnet101"), preprocess=TORCHVISION_SEG)
def fcn_resnet101(**kwargs: Any) -> SegmentationNet:
    """FCN-ResNet101 (torchvision's layout): 54,314,346 params with the auxiliary head, 51,949,141 without."""
    return _torchvision_seg((3, 4, 23, 3), FCNHead, kwargs)


@register_model(peers=_tv_peer("deeplabv3_resnet50"), preprocess=TORCHVISION_SEG)
def deeplabv3_resnet50(**kwargs: Any) -> SegmentationNet:
    """DeepLabV3-ResNet50 (torchvision's layout, ASPP rates 12, 24, 36): 42,004,074 params with the auxiliary
    head, 39,638,869 without."""
    return _torchvision_seg((3, 4, 6, 3), DeepLabHead, kwargs)


@register_model(peers=_tv_peer("deeplabv3_resnet101"), preprocess=TORCHVISION_SEG)
def deeplabv3_resnet101(**kwargs: Any) -> SegmentationNet:
    """DeepLabV3-ResNet101 (torchvision's layout): 60,996,202 params with the auxiliary head, 58,630,997
    without."""
    return _torchvision_seg((3, 4, 23, 3), DeepLabHead, kwargs)


# ---------------------------------------------------------------------------------------------------------
# Small nets for the 64x64 digit canvases: a CIFAR ResNet-20 whose stem halves the input, at output stride 8
# (S3 at 8x8) or 4 (S3 keeps 16x16 and dilates its 3x3s), trainable on the CPU in minutes.

DIGITS = {"num_classes": 11, "in_chans": 1}
"""mnist5k-seg: the background and the ten digits, one grey channel."""


def cifar_backbone(output_stride: int, dilations: Sequence[int] | None) -> Callable[..., CifarResNet]:
    """ResNet-20 (16, 32, 64 channels, option A) with a stride-2 stem; ``dilations``: S3's three blocks' 3x3
    rates (default: 2 at output stride 4, which keeps the receptive field; 1 at 8)."""
    if output_stride not in (4, 8):
        raise ModelArgumentError(f"the digit segmentation nets take output_stride 4 or 8, got {output_stride!r}")
    rates = list(dilations) if dilations is not None else [plan_stages(2, 3, output_stride)[2].dilation] * 3
    if len(rates) != 3:
        raise ModelArgumentError(f"dilations are S3's three blocks' rates, got {list(rates)}")
    dilations_per_stage = ([1] * 3, [1] * 3, rates)
    return partial(
        CifarResNet, layers=(3, 3, 3), stem_stride=2, output_stride=output_stride, stage_dilations=dilations_per_stage
    )


@register_model(preprocess=DIGIT_CANVAS)
def fcn_cifar_resnet20(
    *, output_stride: int = 8, dilations: Sequence[int] | None = None, **kwargs: Any
) -> DigitSegmentationNet:
    """FCN on a CIFAR ResNet-20 for the 64x64 digit canvases: 11 classes, output stride 8 (or 4, dilated);
    ``aux_layer=FCNHead`` adds an auxiliary head on S2."""
    backbone = cifar_backbone(output_stride, dilations)
    return DigitSegmentationNet(**(DIGITS | dict(backbone=backbone, head_layer=FCNHead) | kwargs))


@register_model(preprocess=DIGIT_CANVAS)
def deeplabv3_cifar_resnet20(
    *, output_stride: int = 4, dilations: Sequence[int] | None = None, rates: Sequence[int] | None = None, **kwargs: Any
) -> DigitSegmentationNet:
    """DeepLabV3 on a CIFAR ResNet-20 for the digit canvases: output stride 4 (S3 dilated) and the paper's head
    (ASPP of 64 channels, no extra 3x3); ``rates`` default to (2, 4, 6) on the 16x16 map (output stride 4) and
    (1, 2, 3) on the 8x8 one, a third to a half of the map as the paper's 6, 12, 18 are on its 33x33."""
    rates = tuple(rates) if rates is not None else (2, 4, 6) if output_stride == 4 else (1, 2, 3)
    head = partial(DeepLabHead, rates=rates, chs=64, refine=False)
    backbone = cifar_backbone(output_stride, dilations)
    return DigitSegmentationNet(**(DIGITS | dict(backbone=backbone, head_layer=head) | kwargs))


@register_model(preprocess=DIGIT_CANVAS)
def duc_cifar_resnet20(
    *, output_stride: int = 8, dilations: Sequence[int] | None = None, **kwargs: Any
) -> DigitSegmentationNet:
    """Dense upsampling convolution on a CIFAR ResNet-20 for the digit canvases: a 3x3 conv to
    ``output_stride^2 x 11`` channels and a pixel shuffle, so no interpolation remains (Wang et al. 2018)."""
    head = partial(DUCHead, scale=output_stride)
    backbone = cifar_backbone(output_stride, dilations)
    return DigitSegmentationNet(**(DIGITS | dict(backbone=backbone, head_layer=head) | kwargs))
