"""Inception-v3, Inception-v4 and Inception-ResNet-v1/v2.

Szegedy, Vanhoucke, Ioffe, Shlens, Wojna 2016, "Rethinking the Inception Architecture for Computer Vision"
(Inception-v3, Table 1); Szegedy, Ioffe, Vanhoucke, Alemi 2017, "Inception-v4, Inception-ResNet and the
Impact of Residual Connections on Learning" (Fig. 9 and 15). The blocks live in :mod:`cnnlab.layers`
(``inception_v3``, ``inception_v4``, ``inception_resnet``, ``grid_reduction``, ``factorized``).

All four take 299x299 images. Their stems and grid reductions use unpadded convs and pools, so the
smallest input is 75x75 (the last grid is then 1x1); below it the model raises InputShapeError. Inception-v3's
auxiliary classifier needs the 17x17 grid of a 299x299 input, so with ``aux_logits=True`` the minimum is 299.

Layouts are the released models': torchvision's Inception-v3 (``TORCHVISION_V3_KEYS``), timm's Inception-v4
and Inception-ResNet-v2 (``TIMM_V4_KEYS``, ``TIMM_IRV2_KEYS``), which load with identical outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch import Tensor, nn

from cnnlab.data.preprocess import TF_INCEPTION, Preprocess
from cnnlab.errors import ModelArgumentError, check_positive
from cnnlab.layers import (
    AuxClassifierV3,
    ClassifierHead,
    Concat,
    ConvBnAct,
    GridReduction,
    InceptionV3A,
    InceptionV3B,
    InceptionV3C,
    InceptionV3Stem,
    InceptionV4A,
    InceptionV4B,
    InceptionV4C,
    InceptionV4Stem,
    conv_chain,
)
from cnnlab.layers.branches import INCEPTION_CONV, chain
from cnnlab.layers.inception_resnet import (
    BLOCK_A_V1,
    BLOCK_A_V2,
    BLOCK_B_V1,
    BLOCK_B_V2,
    BLOCK_C_V1,
    BLOCK_C_V2,
    BranchSpecs,
    InceptionResNetBlock,
    InceptionResNetV1Stem,
    inception_resnet_reduction_b,
)
from cnnlab.layers.inception_v4 import AVG_POOL_3X3_NO_PAD, reduction_a, reduction_b
from cnnlab.layers.types import LayerFactory
from cnnlab.models.base import CnnlabModel, check_count, init_weights
from cnnlab.models.googlenet import AuxHeadsModel, input_transform
from cnnlab.registry import Peer, register_model
from cnnlab.weights import KeyMap

IMAGE_SIZE = 299
"""The input size of all four papers."""
TF_299 = Preprocess.of(TF_INCEPTION, size=IMAGE_SIZE, interpolation="bicubic")
"""timm's Inception-v4 weights (ported from TensorFlow): 299 at crop 0.875, bicubic, input in [-1, 1]."""
MIN_INPUT_SIZE = 75
"""The smallest input of all four: their unpadded stems and reductions leave a 1x1 grid at the end."""

TORCHVISION_V3_KEYS = KeyMap(
    (
        (r"^Conv2d_(\d[ab])_\dx\d\.", r"stem.conv\1."),
        (r"^Mixed_(\d)([a-e])\.", r"mixed\1.\2."),
        (r"^AuxLogits\.", "aux."),
        (r"^fc\.", "head.fc."),
        (r"\.branch_pool\.", ".branch_pool.1."),
        *((rf"\.(branch\w+?)_{i}([ab])\.", rf".\1.{i - 1}.\2.") for i in (2, 3)),
        *((rf"\.(branch\w+?)_{i}\.", rf".\1.{i - 1}.") for i in range(1, 6)),
    )
)
"""torchvision's Inception3 naming: Conv2d_1a_3x3, Mixed_5b, branch7x7dbl_3, branch3x3_2a, AuxLogits, fc."""

_TIMM_SPLIT_BRANCHES = (
    (r"\.branch(\d)_(\d)([ab])\.", r".branch\1.\2.\3."),
    (r"\.branch(\d)_(\d)\.", r".branch\1.\2."),
)

_V4_FEATURES = (
    [f"stem.{n}" for n in ("conv1a", "conv2a", "conv2b", "mixed3a", "mixed4a", "mixed5a")]
    + [f"stage_a.{i}" for i in range(4)]
    + ["stage_b.reduction"]
    + [f"stage_b.blocks.{i}" for i in range(7)]
    + ["stage_c.reduction"]
    + [f"stage_c.blocks.{i}" for i in range(3)]
)
TIMM_V4_KEYS = KeyMap(
    tuple((rf"^features\.{i}\.", f"{name}.") for i, name in enumerate(_V4_FEATURES))
    + _TIMM_SPLIT_BRANCHES
    + ((r"^last_linear\.", "head.fc."),)
)
"""timm's ``inception_v4`` naming: ``features.0`` ... ``features.21``, branch1_1a, last_linear."""

TIMM_IRV2_KEYS = KeyMap(
    (
        (r"^conv2d_7b\.", "stage_c.conv7b."),
        (r"^conv2d_(\d[ab])\.", r"stem.conv\1."),
        (r"^mixed_5b\.", "stage_a.mixed_5b."),
        (r"^repeat\.", "stage_a.blocks."),
        (r"^mixed_6a\.", "stage_b.reduction."),
        (r"^repeat_1\.", "stage_b.blocks."),
        (r"^mixed_7a\.", "stage_c.reduction."),
        (r"^repeat_2\.", "stage_c.blocks."),
        (r"^block8\.", "stage_c.final."),
        (r"^(stage_\w\.(?:blocks\.\d+|final))\.branch", r"\1.branches.branch"),
        (r"\.conv2d\.", ".proj."),
        (r"^classif\.", "head.fc."),
    )
)
"""timm's ``inception_resnet_v2`` naming: conv2d_1a, mixed_5b, repeat, repeat_1, repeat_2, block8, classif."""


class InceptionV3(AuxHeadsModel):
    """Inception-v3 (Table 1 as released): stem to 35x35x192, ``mixed5`` (3 x Fig. 5 module; 288 at 1/8),
    ``mixed6`` (grid reduction, 4 x Fig. 6 module; 768 at 1/16), ``mixed7`` (grid reduction, 2 x Fig. 7
    module; 2048 at 1/32), global average pooling, dropout, fc.

    Args:
        aux_logits: the auxiliary classifier on the 17x17 grid (Sec. 4), off by default: it only helps late in
            training, and it raises the smallest input from 75 to 299. When on, training-mode ``forward``
            returns :class:`~cnnlab.models.base.LogitsWithAux`.
        transform_input: re-normalise ImageNet-normalised input for the TensorFlow-ported weights.
        conv_layer: conv-BN-ReLU with BN eps 0.001.
        drop_rate: dropout before the fc (torchvision's 0.5; the paper does not say).
    """

    default_image_size = IMAGE_SIZE
    min_input_size = MIN_INPUT_SIZE

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = False,
        transform_input: bool = False,
        conv_layer: LayerFactory = INCEPTION_CONV,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        self.transform = input_transform(transform_input, in_chans)  # no parameters
        a, b = partial(InceptionV3A, conv_layer=conv_layer), partial(InceptionV3B, conv_layer=conv_layer)
        c = partial(InceptionV3C, conv_layer=conv_layer)
        reduce6 = {"branch3x3": [(384, 3, 2)], "branch3x3dbl": [(64, 1), (96, 3), (96, 3, 2)]}
        reduce7 = {
            "branch3x3": [(192, 1), (320, 3, 2)],
            "branch7x7x3": [(192, 1), (192, (1, 7)), (192, (7, 1)), (192, 3, 2)],
        }
        grid_reduction = partial(GridReduction, conv_layer=conv_layer)
        chs = self.add_stage("stem", InceptionV3Stem(in_chans, conv_layer=conv_layer), 8)  # N x 192 x 35 x 35
        mixed5 = {
            "b": partial(a, pool_features=32),
            "c": partial(a, pool_features=64),
            "d": partial(a, pool_features=64),
        }
        chs = self.add_stage("mixed5", chain(chs, mixed5), 8)  # N x 288 x 35 x 35
        mixed6 = {
            "a": partial(grid_reduction, convs=reduce6),
            "b": partial(b, c7=128),
            "c": partial(b, c7=160),
            "d": partial(b, c7=160),
            "e": partial(b, c7=192),
        }
        tap_chs = self.add_stage("mixed6", chain(chs, mixed6), 16)  # N x 768 x 17 x 17
        mixed7 = {"a": partial(grid_reduction, convs=reduce7), "b": c, "c": c}
        self.num_features = self.add_stage("mixed7", chain(tap_chs, mixed7), 32)  # N x 2048 x 8 x 8
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate=drop_rate)
        aux = partial(AuxClassifierV3, num_classes=num_classes, conv_layer=conv_layer)
        self.add_aux_heads(aux if aux_logits else None, aux=tap_chs)
        if aux_logits:
            self.min_input_size = IMAGE_SIZE  # the auxiliary head needs the 17x17 grid of a 299x299 input
        init_weights(self)

    weight_key_maps = {"torchvision": TORCHVISION_V3_KEYS}

    def forward_taps(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The features and the auxiliary classifier's input (the 17x17 grid)."""
        x = self.stem(self.transform(x))  # N x 192 x 35 x 35
        x = self.mixed5(x)  # N x 288 x 35 x 35
        tap = self.mixed6(x)  # N x 768 x 17 x 17
        return self.mixed7(tap), tap  # N x 2048 x 8 x 8


class InceptionV4(CnnlabModel):
    """Inception-v4 (Fig. 9): stem (Fig. 3; 384 at 1/8), ``stage_a`` (4 x Inception-A; 384 at 1/8),
    ``stage_b`` (Reduction-A, 7 x Inception-B; 1024 at 1/16), ``stage_c`` (Reduction-B, 3 x Inception-C; 1536
    at 1/32), average pooling, dropout (keep 0.8), fc."""

    default_image_size = IMAGE_SIZE
    min_input_size = MIN_INPUT_SIZE

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        conv_layer: LayerFactory = INCEPTION_CONV,
        drop_rate: float = 0.2,  # "Dropout (keep 0.8)"
    ) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        chs = self.add_stage("stem", InceptionV4Stem(in_chans, conv_layer=conv_layer), 8)  # N x 384 x 35 x 35
        block_a, block_b, block_c = (
            partial(block, conv_layer=conv_layer) for block in (InceptionV4A, InceptionV4B, InceptionV4C)
        )
        chs = self.add_stage("stage_a", chain(chs, [block_a] * 4), 8)
        stage_b = {
            "reduction": partial(reduction_a, k=192, l=224, m=256, n=384, conv_layer=conv_layer),
            "blocks": partial(chain, blocks=[block_b] * 7),
        }
        chs = self.add_stage("stage_b", chain(chs, stage_b), 16)  # N x 1024 x 17 x 17
        stage_c = {
            "reduction": partial(reduction_b, conv_layer=conv_layer),
            "blocks": partial(chain, blocks=[block_c] * 3),
        }
        self.num_features = self.add_stage("stage_c", chain(chs, stage_c), 32)  # N x 1536 x 8 x 8
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate=drop_rate)
        init_weights(self)

    weight_key_maps = {"timm": TIMM_V4_KEYS}

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stem(x)  # N x 384 x 35 x 35
        x = self.stage_a(x)
        x = self.stage_b(x)  # N x 1024 x 17 x 17
        return self.stage_c(x)  # N x 1536 x 8 x 8


def mixed_5b(in_chs: int, *, conv_layer: LayerFactory = INCEPTION_CONV) -> Concat:
    """The 35x35 Inception module with which the released Inception-ResNet-v2 widens its stem's 192 channels to
    320 (timm's ``mixed_5b``; the paper's Fig. 3 stem has none): 1x1 96; 1x1 48, 5x5 64; 1x1 64, 3x3 96,
    3x3 96; avg pool, 1x1 64."""
    return Concat(
        in_chs,
        branch0=conv_layer(in_chs, 96, 1),
        branch1=conv_chain(in_chs, [(48, 1), (64, 5)], conv_layer=conv_layer),
        branch2=conv_chain(in_chs, [(64, 1), (96, 3), (96, 3)], conv_layer=conv_layer),
        branch3=nn.Sequential(AVG_POOL_3X3_NO_PAD(), conv_layer(in_chs, 64, 1)),
    )


@dataclass(frozen=True)
class InceptionResNetVariant:
    """What tells Inception-ResNet-v1 from -v2 (Fig. 15 with each version's figures); one code path builds both.

    The stage widths follow from the stem and the reductions: v1 256 / 896 / 1792, v2 320 / 1088 / 2080.
    """

    stem: Callable[..., nn.Module]  # called with in_chans and conv_layer; 35x35 out
    block_a: BranchSpecs  # the Inception-ResNet-A, -B and -C blocks' branches
    block_b: BranchSpecs
    block_c: BranchSpecs
    reduction_a: tuple[int, int, int, int]  # Table 1's k, l, m, n
    reduction_b: tuple[int, int, int, int, int]  # Reduction-B's widths (see inception_resnet_reduction_b)
    mixed_5b: Callable[..., nn.Module] | None = None  # v2 as released: a 35x35 Inception module before the A blocks
    final_chs: int | None = None  # v2 as released: one more C block (scale 1, no ReLU), a 1x1 conv to this width
    reduction: int = 8  # the stem's: 299 -> 35


INCEPTION_RESNET_V1 = InceptionResNetVariant(
    stem=InceptionResNetV1Stem,  # Fig. 14: 256 at 35x35
    block_a=BLOCK_A_V1,
    block_b=BLOCK_B_V1,
    block_c=BLOCK_C_V1,
    reduction_a=(192, 192, 256, 384),
    reduction_b=(256, 384, 256, 256, 256),
)
"""Inception-ResNet-v1 as in the paper (Fig. 10-14)."""

INCEPTION_RESNET_V2 = InceptionResNetVariant(
    stem=InceptionV3Stem,  # the released model's stem: Inception-v3's (192 at 35x35), not Fig. 3's
    block_a=BLOCK_A_V2,
    block_b=BLOCK_B_V2,
    block_c=BLOCK_C_V2,
    reduction_a=(256, 256, 384, 384),
    reduction_b=(256, 384, 288, 288, 320),
    mixed_5b=mixed_5b,
    final_chs=1536,
)
"""Inception-ResNet-v2 as released (timm's ``inception_resnet_v2``; Fig. 16-19 with the released widths)."""


def small_inception_resnet_variant(width_mult: float = 1.0) -> InceptionResNetVariant:
    """A small Inception-ResNet for 28-60 px images, every width times ``width_mult``.

    Stem: 3x3 conv 32, 3x3/2 conv 64 (valid; 42 -> 20). The blocks have v1's branches (Fig. 10, 11, 13) at a
    half (A: 16), a quarter (B: 32) and a sixth (C: 32) of their widths; Reduction-A (k, l, m, n) =
    (16, 24, 32, 32) and Reduction-B (32, 64, 32, 32, 32) make the stages 64 / 128 / 256 wide (v1: 256 / 896 /
    1792). ``width_mult=4`` makes the last stage 1024 wide, past the paper's "more than 1000 filters".
    """
    w = check_positive("width_mult", width_mult)
    c = lambda chs: max(1, round(chs * w))  # noqa: E731 (a width of the small variant, scaled)
    return InceptionResNetVariant(
        stem=partial(conv_chain, specs=[(c(32), 3), (c(64), 3, 2)]),  # N x 64 x 20 x 20 at 42
        block_a=(((c(16), 1),), ((c(16), 1), (c(16), 3)), ((c(16), 1), (c(16), 3), (c(16), 3))),
        block_b=(((c(32), 1),), ((c(32), 1), (c(32), (1, 7)), (c(32), (7, 1)))),
        block_c=(((c(32), 1),), ((c(32), 1), (c(32), (1, 3)), (c(32), (3, 1)))),
        reduction_a=(c(16), c(24), c(32), c(32)),
        reduction_b=(c(32), c(64), c(32), c(32), c(32)),
        reduction=2,
    )


class InceptionResNet(CnnlabModel):
    """Inception-ResNet-v1 and -v2 (Fig. 15): stem, ``stage_a`` (Inception-ResNet-A blocks at 35x35),
    ``stage_b`` (Reduction-A, -B blocks at 17x17), ``stage_c`` (Reduction-B, -C blocks at 8x8), average
    pooling, dropout (keep 0.8), fc.

    ``variant`` holds what differs between the versions (:data:`INCEPTION_RESNET_V1`, :data:`INCEPTION_RESNET_V2`).
    v2 follows the released model (timm): the Inception-v3 stem with a 35x35 Inception module ``mixed_5b``
    (320 channels) instead of the stem of Fig. 3, and after the C blocks one more C block with scale 1 and no
    activation and a 1x1 conv to 1536 (``final``, ``conv7b``).

    Args:
        variant: the version's stem, block branches and reduction widths.
        blocks: residual blocks per stage (the paper's Fig. 15 draws 5, 10, 5; the released v2 has 10, 20, 9).
        scales: the residual scaling of the A, B, C blocks (the released model's 0.17, 0.10, 0.20).
        plain: blocks without their residual connection (``InceptionResNetBlock(plain=True)``), the same
            parameters: the non-residual twin of Sec. 5's comparison (not a network of the paper).
    """

    default_image_size = IMAGE_SIZE
    min_input_size = MIN_INPUT_SIZE

    def __init__(
        self,
        *,
        variant: InceptionResNetVariant = INCEPTION_RESNET_V2,
        blocks: tuple[int, int, int] = (10, 20, 9),
        scales: tuple[float, float, float] = (0.17, 0.10, 0.20),
        num_classes: int = 1000,
        in_chans: int = 3,
        conv_layer: LayerFactory = INCEPTION_CONV,
        drop_rate: float = 0.2,  # "Dropout (keep 0.8)"
        plain: bool = False,  # the paper's nets are residual
    ) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        if not isinstance(variant, InceptionResNetVariant):
            raise ModelArgumentError(
                f"variant must be an InceptionResNetVariant (INCEPTION_RESNET_V1 or _V2), got {variant!r}"
            )
        if len(blocks) != 3 or len(scales) != 3:
            raise ModelArgumentError(
                f"Inception-ResNet has 3 stages of blocks; got blocks={tuple(blocks)}, scales={tuple(scales)}"
            )
        n_a, n_b, n_c = (check_count("blocks per stage", n, minimum=1) for n in blocks)
        v = variant
        block = partial(InceptionResNetBlock, conv_layer=conv_layer, plain=plain)
        a, b, c = (
            partial(block, branches=branches, scale=scale)
            for branches, scale in zip((v.block_a, v.block_b, v.block_c), scales, strict=True)
        )
        k, l, m, n = v.reduction_a  # noqa: E741 (Table 1's names)

        r = v.reduction
        chs = self.add_stage("stem", v.stem(in_chans, conv_layer=conv_layer), r)  # N x C x 35 x 35
        entry = {"mixed_5b": partial(v.mixed_5b, conv_layer=conv_layer)} if v.mixed_5b is not None else {}
        chs = self.add_stage("stage_a", chain(chs, entry | {"blocks": partial(chain, blocks=[a] * n_a)}), r)
        stage_b = {
            "reduction": partial(reduction_a, k=k, l=l, m=m, n=n, conv_layer=conv_layer),
            "blocks": partial(chain, blocks=[b] * n_b),
        }
        chs = self.add_stage("stage_b", chain(chs, stage_b), 2 * r)  # N x C x 17 x 17
        stage_c = {
            "reduction": partial(inception_resnet_reduction_b, widths=v.reduction_b, conv_layer=conv_layer),
            "blocks": partial(chain, blocks=[c] * n_c),
        }
        if v.final_chs is not None:
            stage_c["final"] = partial(block, branches=v.block_c, scale=1.0, act_layer=None)
            stage_c["conv7b"] = lambda chs: conv_layer(chs, v.final_chs, 1)
        self.num_features = self.add_stage("stage_c", chain(chs, stage_c), 4 * r)  # N x num_features x 8 x 8
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate=drop_rate)
        init_weights(self)

    weight_key_maps = {"timm": TIMM_IRV2_KEYS}

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stem(x)  # N x C x 35 x 35
        x = self.stage_a(x)
        x = self.stage_b(x)  # N x C x 17 x 17
        return self.stage_c(x)  # N x num_features x 8 x 8


class SmallInceptionResNet(InceptionResNet):
    """Inception-ResNet for 28-60 px images (:func:`small_inception_resnet_variant`): stem (64 at 1/2),
    ``stage_a`` (A blocks; 64 at 1/2), ``stage_b`` (Reduction-A, B blocks; 128 at 1/4), ``stage_c``
    (Reduction-B, C blocks; 256 at 1/8), average pooling, dropout, fc. Grids 20 / 9 / 4 at 42 px.

    Args:
        residual_scale: the scale of every block's residual before the addition (Sec. 3.3: 0.1 to 0.3 kept
            nets with more than 1000 filters from "dying"; 1.0: unscaled, as the paper's smaller nets).
        width_mult: every width times this (1.0: 256 features; 4.0: 1024).
        blocks: residual blocks per stage.
        plain: no residual connections: the same branches, projections and widths (278,650 params at
            ``width_mult=1``, and the MACs but for the additions), the Inception twin of the residual_inception
            experiment (Sec. 5: "residual connections ... accelerate the training of Inception networks").
    """

    default_image_size = 42  # mnist5k-rts
    min_input_size = 15
    """15 -> 7 by the stem's valid 3x3/2 conv, -> 3 by Reduction-A, -> 1 by Reduction-B."""

    def __init__(
        self,
        *,
        residual_scale: float = 1.0,  # unscaled; the paper's 0.1-0.3 for wide nets
        width_mult: float = 1.0,
        blocks: tuple[int, int, int] = (2, 2, 2),
        num_classes: int = 10,
        in_chans: int = 3,
        conv_layer: LayerFactory = ConvBnAct,
        drop_rate: float = 0.2,  # "Dropout (keep 0.8)"
        plain: bool = False,  # residual, as the paper's; True: the non-residual twin
    ) -> None:
        super().__init__(
            variant=small_inception_resnet_variant(width_mult),
            blocks=blocks,
            scales=(residual_scale,) * 3,
            num_classes=num_classes,
            in_chans=in_chans,
            conv_layer=conv_layer,
            drop_rate=drop_rate,
            plain=plain,
        )


@register_model(
    peers=(Peer("torchvision", "inception_v3", {"aux_logits": False, "init_weights": False}),),
    preprocess=Preprocess.of(TF_INCEPTION, size=299, crop_pct=299 / 342),  # transform_input's [-1, 1]
)
def inception_v3(**kwargs: Any) -> InceptionV3:
    """Inception-v3 (299x299, min 75): 23,834,568 params, 27,161,264 with ``aux_logits=True``; 5.7 GMACs."""
    return InceptionV3(**kwargs)


@register_model(peers=(Peer("timm", "inception_v4"),), preprocess=TF_299)
def inception_v4(**kwargs: Any) -> InceptionV4:
    """Inception-v4 (299x299, min 75): 42,679,816 params, 12.3 GMACs."""
    return InceptionV4(**kwargs)


@register_model(preprocess=TF_299)
def inception_resnet_v1(**kwargs: Any) -> InceptionResNet:
    """Inception-ResNet-v1 (Fig. 14-15 with 5, 10, 5 blocks; 299x299, min 75): 22,756,328 params, 6.2 GMACs."""
    return InceptionResNet(**(dict(variant=INCEPTION_RESNET_V1, blocks=(5, 10, 5)) | kwargs))


@register_model(
    peers=(Peer("timm", "inception_resnet_v2"),),
    preprocess=Preprocess.of(TF_INCEPTION, size=299, crop_pct=0.8975, interpolation="bicubic"),
)
def inception_resnet_v2(**kwargs: Any) -> InceptionResNet:
    """Inception-ResNet-v2 as released (10, 20, 9 blocks; 299x299, min 75): 55,843,464 params, 13.2 GMACs."""
    return InceptionResNet(**(dict(variant=INCEPTION_RESNET_V2, blocks=(10, 20, 9)) | kwargs))


@register_model
def inception_resnet_small(**kwargs: Any) -> SmallInceptionResNet:
    """Inception-ResNet for 28-60 px (2, 2, 2 blocks): 278,650 params, 31.7 MMACs at 42 px.

    ``residual_scale`` (1.0) scales every residual; ``width_mult=4`` (4,378,570 params, 490 MMACs) makes the last
    stage 1024 wide; ``plain=True`` leaves out every residual connection (the same parameters)."""
    return SmallInceptionResNet(**kwargs)
