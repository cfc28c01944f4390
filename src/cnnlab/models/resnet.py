"""The residual family: ResNet, SE-ResNet, ResNeXt, Wide ResNet, the CIFAR ResNets and their plain twins.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385):
ImageNet nets of Table 1 (18 to 152 layers) and CIFAR-10 nets of Sec. 4.2 (6n+2 layers, option A).
He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016: pre-activation blocks.
Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018: SE-ResNet. Xie et al., "Aggregated Residual
Transformations", CVPR 2017: ResNeXt. Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016.

Layouts follow torchvision (their weights load through ``TORCHVISION_KEYS``) and, for SE-ResNet, the SENet
authors' Caffe models as kept by timm's ``legacy_seresnet*`` (``TIMM_LEGACY_SENET_KEYS``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch import Tensor, nn

from cnnlab.data.preprocess import TORCHVISION_V2
from cnnlab.errors import ModelArgumentError
from cnnlab.layers import (
    BasicBlock,
    Bottleneck,
    ClassifierHead,
    ConvBnAct,
    DeformConv2d,
    LayerFactory,
    PreActBasicBlock,
    PreActBottleneck,
    ResidualBlock,
    ShortcutOption,
    SqueezeExcite,
    create_act,
)
from cnnlab.layers.residual import StrideIn
from cnnlab.models.base import CnnlabModel, FeatureInfo, check_count, init_weights
from cnnlab.registry import Peer, register_model
from cnnlab.weights import KeyMap

_BLOCK_KEYS = KeyMap(
    (
        (r"^(layer\d\.\d+)\.conv(\d)\.", r"\1.conv\2.conv."),
        (r"^(layer\d\.\d+)\.bn(\d)\.", r"\1.conv\2.bn."),
        (r"\.downsample\.0\.", ".shortcut.conv."),
        (r"\.downsample\.1\.", ".shortcut.bn."),
    )
)
TORCHVISION_KEYS = KeyMap(((r"^conv1\.", "stem.conv."), (r"^bn1\.", "stem.bn."), (r"^fc\.", "head.fc."))) + _BLOCK_KEYS
"""torchvision's (and timm's) ResNet naming: conv1, bn1, layerN.i.{conv,bn}K, downsample.{0,1}, fc."""
TIMM_LEGACY_SENET_KEYS = (
    KeyMap(
        (
            (r"^layer0\.conv1\.", "stem.conv."),
            (r"^layer0\.bn1\.", "stem.bn."),
            (r"^last_linear\.", "head.fc."),
            (r"\.se_module\.", ".attn."),
        )
    )
    + _BLOCK_KEYS
)
"""timm's ``legacy_seresnet*`` naming: layer0, se_module, last_linear."""

DEFAULT_STEM_POOL: LayerFactory = partial(nn.MaxPool2d, kernel_size=3, stride=2, padding=1)
CAFFE_STEM_POOL: LayerFactory = partial(nn.MaxPool2d, kernel_size=3, stride=2, ceil_mode=True)
"""The SENet authors' Caffe pooling: no padding, ceil mode (the same output size at 224, other windows)."""


def make_stage(
    block: type[ResidualBlock],
    in_chs: int,
    planes: int,
    num_blocks: int,
    *,
    stride: int,
    names: Sequence[str] | None = None,
    dilations: Sequence[int] | None = None,
    **block_kwargs: Any,
) -> nn.Sequential:
    """``num_blocks`` blocks; the first changes the stride and width, the others keep them.

    ``names`` names the blocks (default "0", "1", ...), for example ``S2U1, S2U2, ...``; ``dilations`` gives
    each block's 3x3 dilation (default 1).
    """
    check_count("blocks per stage", num_blocks, minimum=1)
    names = names or [str(i) for i in range(num_blocks)]
    dilations = dilations or [1] * num_blocks
    if len(dilations) != num_blocks:
        raise ModelArgumentError(f"a stage of {num_blocks} blocks needs {num_blocks} dilation rates, got {dilations}")
    blocks = nn.Sequential()
    for i, name in enumerate(names):
        blk = block(in_chs, planes, stride=stride if i == 0 else 1, dilation=dilations[i], **block_kwargs)
        blocks.add_module(name, blk)
        in_chs = blk.out_chs
    return blocks


@dataclass(frozen=True)
class StagePlan:
    """Where one stage of a network runs: its first block's stride, its map's reduction (input size / map size)
    and the dilation of its 3x3s that keeps the receptive field where a stride was given up."""

    stride: int
    reduction: int
    dilation: int


def plan_stages(first_reduction: int, num_stages: int, output_stride: int, *, context: str = "") -> list[StagePlan]:
    """The output-stride rule (Yu & Koltun 2016; DeepLab): stages whose maps would be at 1/``first_reduction``
    of the input and half as large in each later stage stop shrinking at 1/``output_stride``; a stage that would
    go further keeps its input's resolution (stride 1) and dilates its 3x3s by the factor it gave up, so that
    the receptive field stays as it was. ``output_stride`` must be one of the stages' own reductions (a
    ModelArgumentError names them, followed by ``context``)."""
    nominal = [first_reduction * 2**j for j in range(num_stages)]
    if output_stride not in nominal:
        raise ModelArgumentError(f"output_stride must be one of {tuple(nominal)}{context}, got {output_stride!r}")
    plans, previous = [], first_reduction
    for n in nominal:
        reduction = min(n, output_stride)
        plans.append(StagePlan(stride=reduction // previous, reduction=reduction, dilation=n // reduction))
        previous = reduction
    return plans


def check_zero_init_last(zero_init_last: bool, plain: bool) -> None:
    """Refuse ``zero_init_last`` for a plain net, whose blocks have no shortcut to start as."""
    if zero_init_last and plain:
        raise ModelArgumentError(
            "zero_init_last starts each block as its shortcut; a plain block (plain=True) has none and would "
            "start as zero: leave zero_init_last off for the plain nets"
        )


def init_residual_weights(model: nn.Module, *, zero_init_last: bool) -> None:
    """:func:`~cnnlab.models.base.init_weights`; with ``zero_init_last`` each residual block then starts as
    ``act(shortcut(x))`` (:meth:`~cnnlab.layers.residual.ResidualBlock.zero_init_last`)."""
    init_weights(model)
    if zero_init_last:
        for m in model.modules():
            if isinstance(m, ResidualBlock):
                m.zero_init_last()


class ResNet(CnnlabModel):
    """An ImageNet ResNet (Table 1): 7x7/2 conv stem, 3x3/2 max pool, four stages at strides 4, 8, 16, 32
    with 64, 128, 256, 512 ``planes``, global average pooling, a fc.

    ``block`` and ``layers`` choose the depth (BasicBlock (2, 2, 2, 2) is ResNet-18, Bottleneck (3, 4, 6, 3)
    is ResNet-50); ``shortcut``, ``plain``, ``attn_layer``, ``groups``, ``base_width`` and ``stride_in`` go to
    every block (see :mod:`cnnlab.layers.residual`). Defaults give torchvision's layout: option B
    shortcuts and the bottleneck's stride on its 3x3 ("v1.5"; the paper puts it on the first 1x1).

    ``output_stride`` 16 or 8 removes the stride of stage 4, or of stages 3 and 4 (Yu & Koltun 2016; DeepLab;
    :func:`plan_stages`), so the last map is 1/16 or 1/8 of the input; ``stage_dilations`` then gives each
    block's 3x3 dilation per stage (default: the constant rate that keeps the receptive field, 2 or 4, which
    grids; see :func:`~cnnlab.layers.dilated.hdc_check`). ``stage_conv_layers`` is the 3x3 conv class of each
    stage, e.g. :class:`~cnnlab.layers.deformable.DeformConv2d` in the last one. ``zero_init_last=True`` starts
    each block as its shortcut (timm's argument; off by default, as torchvision initialises).
    """

    def __init__(
        self,
        *,
        block: type[ResidualBlock] = Bottleneck,
        layers: Sequence[int] = (3, 4, 6, 3),
        num_classes: int = 1000,
        in_chans: int = 3,
        stem_width: int = 64,  # channels of the 7x7 stem conv
        stem_pool: LayerFactory = DEFAULT_STEM_POOL,
        shortcut: ShortcutOption = "B",
        plain: bool = False,
        attn_layer: LayerFactory | None = None,
        groups: int = 1,  # ResNeXt cardinality
        base_width: int = 64,  # ResNeXt width per group; 128 for Wide ResNet-50-2
        stride_in: StrideIn = "3x3",
        norm_layer: LayerFactory | None = nn.BatchNorm2d,  # None: no normalisation (the BN ablations)
        act_layer: LayerFactory = nn.ReLU,
        drop_rate: float = 0.0,  # dropout before the fc
        output_stride: int = 32,  # 16 or 8 (or 4): dilate the last stage or two (or three) instead of downsampling
        stage_dilations: Sequence[Sequence[int]] | None = None,  # per stage, each block's 3x3 dilation
        stage_conv_layers: Sequence[LayerFactory] = (nn.Conv2d,) * 4,  # per stage, the 3x3 conv class
        zero_init_last: bool = False,  # True: each block starts as its shortcut (off: torchvision's init)
    ) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        check_zero_init_last(zero_init_last, plain)
        if len(layers) != 4 or len(stage_conv_layers) != 4 or len(stage_dilations or layers) != 4:
            raise ModelArgumentError(
                f"an ImageNet ResNet has 4 stages; got layers={tuple(layers)}, {len(stage_conv_layers)} conv layers, "
                f"stage_dilations={stage_dilations}"
            )
        plans = plan_stages(4, 4, output_stride)  # layer1 runs at 1/4, after the stem's conv and pool
        dilations = stage_dilations or [[p.dilation] * n for p, n in zip(plans, layers, strict=True)]
        stage = partial(
            make_stage,
            block,
            shortcut=shortcut,
            plain=plain,
            attn_layer=attn_layer,
            groups=groups,
            base_width=base_width,
            stride_in=stride_in,
            norm_layer=norm_layer,
            act_layer=act_layer,
        )
        self.stem = ConvBnAct(in_chans, stem_width, 7, stride=2, norm_layer=norm_layer, act_layer=act_layer)
        self.pool = stem_pool()
        if stem_pool is CAFFE_STEM_POOL:
            self.min_input_size = 3  # the unpadded pool needs a 2x2 map from the 7x7/2 conv (ceil(H/2) >= 2)
        self.feature_info = [FeatureInfo("stem", stem_width, 2)]
        chs = stem_width
        for i, planes in enumerate((64, 128, 256, 512)):
            blocks = stage(
                chs,
                planes,
                layers[i],
                stride=plans[i].stride,
                dilations=dilations[i],
                conv_layer=stage_conv_layers[i],
            )
            chs = blocks[-1].out_chs
            self.add_module(f"layer{i + 1}", blocks)
            self.feature_info.append(FeatureInfo(f"layer{i + 1}", chs, plans[i].reduction))
        self.num_features = chs
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate=drop_rate)
        init_residual_weights(self, zero_init_last=zero_init_last)

    weight_key_maps = {"torchvision": TORCHVISION_KEYS, "timm_legacy_senet": TIMM_LEGACY_SENET_KEYS}

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stem(x)  # N x 64 x H/2 x W/2
        x = self.pool(x)  # N x 64 x H/4 x W/4
        x = self.layer1(x)
        x = self.layer2(x)  # N x C x H/8 x W/8
        x = self.layer3(x)  # N x C x H/16 x W/16 (H/8 at output_stride 8)
        return self.layer4(x)  # N x num_features x H/32 x W/32 (or H/output_stride)


class CifarResNet(CnnlabModel):
    """A ResNet for 32x32 images (Sec. 4.2): a 3x3 conv, three stages ``S1``-``S3`` at 32x32, 16x16 and 8x8
    whose widths double (16, 32, 64 in the paper), global average pooling, a fc: 6n+2 layers for
    ``layers=(n, n, n)`` with BasicBlock. Option A shortcuts as in the paper.

    Unit k of stage j is ``model.get_submodule(f"S{j}.S{j}U{k}")``, after MATLAB's naming, so the same
    class is also MATLAB's configurable residual network (:func:`cifar_residual_net`).
    With a pre-activation block the stem is a bare conv and the last stage ends with BN-ReLU.
    ``zero_init_last=True`` starts each block as its shortcut (off by default: the paper's init, with which
    the committed experiments ran; on in :func:`cifar_resnet1202`). ``block_args`` go to every block:
    ``{"branch_layers": 1}`` gives BasicBlocks a one-layer branch (Sec. 3.1, ``y = W1 x + x``); the builders
    then put 3n blocks in each stage, so that ``cifar_resnet56(block_args={"branch_layers": 1})`` still has 56
    layers, and its plain twin the very layers of plain-56.

    For dense prediction on larger images (not in the paper): ``stem_stride=2`` halves the input in the stem
    (the last map is then 1/8 of the input); ``output_stride`` below ``4 * stem_stride`` removes the stride of
    S3, or of S2 and S3, and ``stage_dilations`` gives each block's 3x3 dilation per stage (default: the
    constant rate that keeps the receptive field, as in :class:`ResNet`).
    """

    default_image_size = 32

    def __init__(
        self,
        *,
        block: type[ResidualBlock] = BasicBlock,
        layers: Sequence[int] = (3, 3, 3),
        widths: Sequence[int] = (16, 32, 64),  # planes of each stage
        num_classes: int = 10,
        in_chans: int = 3,
        shortcut: ShortcutOption = "A",
        plain: bool = False,
        attn_layer: LayerFactory | None = None,
        norm_layer: LayerFactory | None = nn.BatchNorm2d,  # None: no normalisation (the BN ablations)
        act_layer: LayerFactory = nn.ReLU,
        drop_rate: float = 0.0,  # dropout before the fc
        stage_conv_layers: Sequence[LayerFactory] = (nn.Conv2d,) * 3,  # per stage, the 3x3 conv class
        stem_stride: int = 1,  # 2: the stem halves the input (dense prediction on 64x64 canvases)
        output_stride: int | None = None,  # None: 4 * stem_stride; smaller: dilate S3 (and S2) instead
        stage_dilations: Sequence[Sequence[int]] | None = None,  # per stage, each block's 3x3 dilation
        zero_init_last: bool = False,  # True: each block starts as its shortcut (off: the experiments' init)
        block_args: Mapping[str, Any] | None = None,  # more keyword arguments of every block: {"branch_layers": 1}
    ) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        check_zero_init_last(zero_init_last, plain)
        if len(layers) != 3 or len(widths) != 3 or len(stage_conv_layers) != 3 or len(stage_dilations or layers) != 3:
            raise ModelArgumentError(
                f"a CIFAR ResNet has 3 stages; got layers={tuple(layers)}, widths={tuple(widths)}, "
                f"{len(stage_conv_layers)} conv layers, stage_dilations={stage_dilations}"
            )
        if stem_stride not in (1, 2):
            raise ModelArgumentError(f"stem_stride must be 1 or 2, got {stem_stride!r}")
        output_stride = 4 * stem_stride if output_stride is None else output_stride
        # S1 runs at the stem's resolution
        plans = plan_stages(stem_stride, 3, output_stride, context=f" with stem_stride={stem_stride}")
        dilations = stage_dilations or [[p.dilation] * n for p, n in zip(plans, layers, strict=True)]
        pre = block.pre_activation
        stage = partial(
            make_stage,
            block,
            shortcut=shortcut,
            plain=plain,
            attn_layer=attn_layer,
            norm_layer=norm_layer,
            act_layer=act_layer,
            **(block_args or {}),
        )
        self.stem = ConvBnAct(
            in_chans,
            widths[0],
            3,
            stride=stem_stride,
            norm_layer=None if pre else norm_layer,
            act_layer=None if pre else act_layer,
            bias=False,
        )
        chs = widths[0]
        self.feature_info = [FeatureInfo("stem", chs, stem_stride)]
        for j, (n, planes) in enumerate(zip(layers, widths, strict=True), start=1):
            names = [f"S{j}U{k}" for k in range(1, n + 1)]
            units = stage(
                chs,
                planes,
                n,
                stride=plans[j - 1].stride,
                names=names,
                dilations=dilations[j - 1],
                conv_layer=stage_conv_layers[j - 1],
            )
            chs = units[-1].out_chs
            self.add_module(f"S{j}", units)
            self.feature_info.append(FeatureInfo(f"S{j}", chs, plans[j - 1].reduction))
        if pre:  # the pre-activation net's last BN-ReLU, kept in the last stage
            norm = [norm_layer(chs)] if norm_layer is not None else []
            self.S3.add_module("post_norm", nn.Sequential(*norm, create_act(act_layer)))
        self.num_features = chs
        self.head = ClassifierHead(chs, num_classes, drop_rate=drop_rate)
        init_residual_weights(self, zero_init_last=zero_init_last)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stem(x)  # N x 16 x 32 x 32 (at a 32x32 input, stem_stride 1)
        x = self.S1(x)
        x = self.S2(x)  # N x 32 x 16 x 16
        return self.S3(x)  # N x 64 x 8 x 8 (H / output_stride)


# ---------------------------------------------------------------------------------------------------------
# ImageNet variants (Table 1). Counts and GMACs: ../shared/REFERENCE.md.


def _tv(name: str) -> tuple[Peer, ...]:
    return (Peer("torchvision", name), Peer("timm", name))


@register_model(peers=_tv("resnet18"))
def resnet18(**kwargs: Any) -> ResNet:
    """ResNet-18: BasicBlock x (2, 2, 2, 2); 11,689,512 params, 1.81 GMACs at 224."""
    return ResNet(**(dict(block=BasicBlock, layers=(2, 2, 2, 2)) | kwargs))


@register_model(peers=_tv("resnet34"))
def resnet34(**kwargs: Any) -> ResNet:
    """ResNet-34: BasicBlock x (3, 4, 6, 3); 21,797,672 params, 3.66 GMACs."""
    return ResNet(**(dict(block=BasicBlock, layers=(3, 4, 6, 3)) | kwargs))


@register_model(peers=_tv("resnet50"), preprocess=TORCHVISION_V2)
def resnet50(**kwargs: Any) -> ResNet:
    """ResNet-50: Bottleneck x (3, 4, 6, 3); 25,557,032 params; 4.09 GMACs (v1.5), 3.8 with ``stride_in="1x1"``."""
    return ResNet(**(dict(block=Bottleneck, layers=(3, 4, 6, 3)) | kwargs))


@register_model(peers=_tv("resnet101"), preprocess=TORCHVISION_V2)
def resnet101(**kwargs: Any) -> ResNet:
    """ResNet-101: Bottleneck x (3, 4, 23, 3); 44,549,160 params."""
    return ResNet(**(dict(block=Bottleneck, layers=(3, 4, 23, 3)) | kwargs))


@register_model(peers=_tv("resnet152"), preprocess=TORCHVISION_V2)
def resnet152(**kwargs: Any) -> ResNet:
    """ResNet-152: Bottleneck x (3, 8, 36, 3); 60,192,808 params."""
    return ResNet(**(dict(block=Bottleneck, layers=(3, 8, 36, 3)) | kwargs))


HDC_RATES: dict[int, tuple[tuple[int, ...], ...]] = {
    16: ((1,) * 3, (1,) * 4, (1,) * 6, (1, 2, 3)),
    8: ((1,) * 3, (1,) * 4, (1, 2, 3, 1, 2, 3), (1, 3, 9)),
}
"""ResNet-50's 3x3 dilations per stage and output stride, after Wang et al. 2018 (Hybrid Dilated Convolution):
each dilated stage reaches about as far as the constant rate it replaces (2 or 4 per conv) and passes
:func:`~cnnlab.layers.dilated.hdc_check`, where the constant rates (2, 2, 2) and (4, 4, 4) grid."""


@register_model
def dilated_resnet50(*, output_stride: int = 8, **kwargs: Any) -> ResNet:
    """Dilated ResNet-50 (Yu & Koltun 2016; Wang et al. 2018): the last stage (``output_stride=16``) or two
    (8) keep their resolution and dilate their 3x3s with the HDC rates of ``HDC_RATES``. torchvision's
    resnet50 weights load unchanged."""
    if output_stride not in HDC_RATES:
        raise ModelArgumentError(f"dilated_resnet50 takes output_stride 8 or 16, got {output_stride!r}")
    variant = dict(block=Bottleneck, layers=(3, 4, 6, 3), output_stride=output_stride)
    return ResNet(**(variant | dict(stage_dilations=HDC_RATES[output_stride]) | kwargs))


@register_model
def deform_resnet50(**kwargs: Any) -> ResNet:
    """Deformable ResNet-50 (Dai et al. 2017, Sec. 3): the three 3x3 convs of the last stage are deformable
    (zero-initialised offsets); torchvision's resnet50 weights load, the offset convs start at zero."""
    variant = dict(block=Bottleneck, layers=(3, 4, 6, 3), stage_conv_layers=(nn.Conv2d,) * 3 + (DeformConv2d,))
    return ResNet(**(variant | kwargs))


@register_model
def plain18(**kwargs: Any) -> ResNet:
    """Plain-18: ResNet-18 without shortcuts (Table 2: 27.94% top-1 error against ResNet-18's 27.88%)."""
    return ResNet(**(dict(block=BasicBlock, layers=(2, 2, 2, 2), plain=True) | kwargs))


@register_model
def plain34(**kwargs: Any) -> ResNet:
    """Plain-34: ResNet-34 without shortcuts (Table 2: 28.54% against 25.03%, the degradation problem)."""
    return ResNet(**(dict(block=BasicBlock, layers=(3, 4, 6, 3), plain=True) | kwargs))


def _se_resnet(layers: tuple[int, int, int, int], kwargs: dict[str, Any]) -> ResNet:
    """SE-ResNet as the SENet authors built it: SE (r=16) in every bottleneck, stride on the first 1x1,
    Caffe's ceil-mode stem pool."""
    variant = dict(
        block=Bottleneck,
        layers=layers,
        attn_layer=partial(SqueezeExcite, reduction=16),
        stride_in="1x1",
        stem_pool=CAFFE_STEM_POOL,
    )
    return ResNet(**(variant | kwargs))


@register_model(peers=(Peer("timm", "legacy_seresnet50"),))
def se_resnet50(**kwargs: Any) -> ResNet:
    """SE-ResNet-50 (Hu et al. 2018, Table 2: 28.09M params, 3.87 GMACs, 22.28% top-1 err); 28,088,024 params."""
    return _se_resnet((3, 4, 6, 3), kwargs)


@register_model(peers=(Peer("timm", "legacy_seresnet101"),))
def se_resnet101(**kwargs: Any) -> ResNet:
    """SE-ResNet-101 (Hu et al. 2018, Table 2: 49.3M params, 7.6 GMACs)."""
    return _se_resnet((3, 4, 23, 3), kwargs)


@register_model(peers=(Peer("timm", "legacy_seresnet152"),))
def se_resnet152(**kwargs: Any) -> ResNet:
    """SE-ResNet-152 (Hu et al. 2018, Table 2: 66.8M params, 11.3 GMACs)."""
    return _se_resnet((3, 8, 36, 3), kwargs)


@register_model(peers=_tv("resnext50_32x4d"), preprocess=TORCHVISION_V2)
def resnext50_32x4d(**kwargs: Any) -> ResNet:
    """ResNeXt-50 (32x4d): 32 groups of 4 channels in the first stage's 3x3 (Xie et al. 2017); 25,028,904 params."""
    return ResNet(**(dict(block=Bottleneck, layers=(3, 4, 6, 3), groups=32, base_width=4) | kwargs))


@register_model(peers=_tv("resnext101_32x8d"), preprocess=TORCHVISION_V2)
def resnext101_32x8d(**kwargs: Any) -> ResNet:
    """ResNeXt-101 (32x8d)."""
    return ResNet(**(dict(block=Bottleneck, layers=(3, 4, 23, 3), groups=32, base_width=8) | kwargs))


@register_model(peers=_tv("wide_resnet50_2"), preprocess=TORCHVISION_V2)
def wide_resnet50_2(**kwargs: Any) -> ResNet:
    """Wide ResNet-50-2: ResNet-50 with twice the channels in every bottleneck's 3x3 (Zagoruyko & Komodakis)."""
    return ResNet(**(dict(block=Bottleneck, layers=(3, 4, 6, 3), base_width=128) | kwargs))


# ---------------------------------------------------------------------------------------------------------
# CIFAR variants (Sec. 4.2, Table 6): 6n+2 layers, option A. Plain twins for the degradation experiment.


def _cifar(depth: int, kwargs: dict[str, Any], **variant: Any) -> CifarResNet:
    if (depth - 2) % 6:
        raise ModelArgumentError(f"a CIFAR ResNet has 6n+2 layers; {depth} is not of that form")
    per_block = (kwargs.get("block_args") or {}).get("branch_layers", 2)  # conv layers in each block
    n = (depth - 2) // (3 * per_block)
    return CifarResNet(**(dict(layers=(n, n, n)) | variant | kwargs))


@register_model
def cifar_resnet20(**kwargs: Any) -> CifarResNet:
    """ResNet-20 for CIFAR (n=3): 269,722 params with option A, 272,474 with B; 8.75% error in the paper."""
    return _cifar(20, kwargs)


@register_model
def cifar_resnet32(**kwargs: Any) -> CifarResNet:
    """ResNet-32 for CIFAR (n=5): 464,154 params; 7.51% error in the paper."""
    return _cifar(32, kwargs)


@register_model
def cifar_resnet44(**kwargs: Any) -> CifarResNet:
    """ResNet-44 for CIFAR (n=7): 658,586 params; 7.17% error in the paper."""
    return _cifar(44, kwargs)


@register_model
def cifar_resnet56(**kwargs: Any) -> CifarResNet:
    """ResNet-56 for CIFAR (n=9): 853,018 params; 6.97% error in the paper."""
    return _cifar(56, kwargs)


@register_model
def cifar_resnet110(**kwargs: Any) -> CifarResNet:
    """ResNet-110 for CIFAR (n=18): 1,727,962 params; 6.43% error in the paper (warm-up at lr 0.01)."""
    return _cifar(110, kwargs)


@register_model
def cifar_resnet1202(**kwargs: Any) -> CifarResNet:
    """ResNet-1202 for CIFAR (n=200): 19,421,274 params; 7.93% error in the paper (overfitting).

    Departure: ``zero_init_last=True`` by default, each block starting as its shortcut. With the paper's init
    every block adds a branch as large as its input, so in eval mode (BN statistics at their initial mean 0,
    variance 1) the activations double 600 times and overflow: the untrained net outputs NaN. Pass
    ``zero_init_last=False`` for the paper's init."""
    return _cifar(1202, kwargs, zero_init_last=True)


@register_model
def cifar_plain20(**kwargs: Any) -> CifarResNet:
    """Plain-20: ResNet-20 without shortcuts (Fig. 6 left)."""
    return _cifar(20, kwargs, plain=True)


@register_model
def cifar_plain32(**kwargs: Any) -> CifarResNet:
    """Plain-32: ResNet-32 without shortcuts."""
    return _cifar(32, kwargs, plain=True)


@register_model
def cifar_plain44(**kwargs: Any) -> CifarResNet:
    """Plain-44: ResNet-44 without shortcuts."""
    return _cifar(44, kwargs, plain=True)


@register_model
def cifar_plain56(**kwargs: Any) -> CifarResNet:
    """Plain-56: ResNet-56 without shortcuts; trains to a higher error than plain-20 (Fig. 1, 6)."""
    return _cifar(56, kwargs, plain=True)


@register_model
def cifar_plain110(**kwargs: Any) -> CifarResNet:
    """Plain-110: ResNet-110 without shortcuts (Fig. 6: over 60% error; the paper's curve stops)."""
    return _cifar(110, kwargs, plain=True)


@register_model
def cifar_preact_resnet110(**kwargs: Any) -> CifarResNet:
    """Pre-activation ResNet-110 (He et al. 2016b, Table 3: 6.37% error on CIFAR-10)."""
    return _cifar(110, kwargs, block=PreActBasicBlock)


@register_model
def cifar_preact_resnet164(**kwargs: Any) -> CifarResNet:
    """Pre-activation ResNet-164, bottleneck blocks with n=18 (9n+2 layers; Table 3: 5.46% error)."""
    return CifarResNet(**(dict(block=PreActBottleneck, layers=(18, 18, 18)) | kwargs))


@register_model
def cifar_residual_net(*, net_width: int = 16, num_units: int = 9, **kwargs: Any) -> CifarResNet:
    """MATLAB's configurable CIFAR-10 residual network ("Train Residual Network for Image Classification").

    ``net_width`` filters in the first stage, ``num_units`` units per stage, three stages at 32x32, 16x16
    and 8x8 that halve the size and double the filters; each unit is two 3x3 conv-BN-ReLU layers with a
    shortcut that is a 1x1 projection where the shape changes (option B). Unit k of stage j is
    ``S{j}.S{j}U{k}``. The defaults (16, 9) give a 56-layer network.
    """
    check_count("net_width", net_width, minimum=1)
    check_count("num_units", num_units, minimum=1)
    variant = dict(layers=(num_units,) * 3, widths=(net_width, 2 * net_width, 4 * net_width), shortcut="B")
    return CifarResNet(**(variant | kwargs))
