"""The history before the residual family: LeNet-5, AlexNet and VGG.

LeCun, Bottou, Bengio, Haffner, "Gradient-Based Learning Applied to Document Recognition", Proc. IEEE 1998
(Sec. II.B, Fig. 2). Krizhevsky, Sutskever, Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NIPS 2012. Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015 (Table 1, configurations A, B, D, E).

AlexNet and VGG follow torchvision's layout, whose weights load through ``weight_key_maps["torchvision"]``.
Their three fully connected layers sit in :class:`FcHead` after an adaptive average pool to the 6x6 (AlexNet)
or 7x7 (VGG) map of the 224 input, so any input from the network's minimum size up is accepted.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from cnnlab.data.preprocess import Preprocess
from cnnlab.data.stats import MNIST
from cnnlab.errors import ModelArgumentError, check_drop_rate
from cnnlab.layers import ClassifierHead, ConvBnAct, local_response_norm, make_fc
from cnnlab.layers.types import LayerFactory, pair
from cnnlab.models.base import CnnlabModel, check_count, init_weights
from cnnlab.registry import Peer, register_model
from cnnlab.weights import KeyMap


class FcHead(nn.Module):
    """Adaptive average pool to ``pool_size`` x ``pool_size``, then fc6-ReLU-dropout, fc7-ReLU-dropout, ``fc``.

    ``pre_logits=True`` returns fc7's output (``hidden`` wide). ``num_classes=0`` leaves out only ``fc``, so the
    head returns those same fc7 features, as timm's VGG does: fc6 and fc7 are the features that transfer
    learning takes from these nets. :meth:`reset` replaces only ``fc`` and keeps fc6 and fc7 (fine-tuning).
    """

    def __init__(
        self,
        in_chs: int,
        num_classes: int,
        *,
        pool_size: int,
        hidden: int = 4096,  # width of fc6 and fc7 in both papers
        drop_rate: float = 0.5,  # "dropout ratio set to 0.5" (VGG Sec. 3.1; AlexNet Sec. 4.2)
    ) -> None:
        super().__init__()
        self.hidden_size = hidden  # the width of the pre-logits, and of the output without a classifier
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.flatten = nn.Flatten(1)
        self.fc6 = nn.Linear(in_chs * pool_size**2, hidden)
        self.fc7 = nn.Linear(hidden, hidden)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(check_drop_rate("FcHead drop_rate", drop_rate))
        self.fc = make_fc(hidden, num_classes)

    def reset(self, num_classes: int) -> None:
        """A fresh ``fc`` for ``num_classes`` (0: none), on the device and in the dtype of fc7."""
        self.fc = make_fc(self.hidden_size, num_classes, like=self.fc7)

    def forward(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.flatten(self.pool(x))  # N x C * pool_size^2
        x = self.drop(self.act(self.fc6(x)))
        x = self.drop(self.act(self.fc7(x)))  # N x hidden
        return x if pre_logits else self.fc(x)


_FC_KEYS = (
    (r"^classifier\.(0|1)\.", "head.fc6."),
    (r"^classifier\.(3|4)\.", "head.fc7."),
    (r"^classifier\.6\.", "head.fc."),
)


def _torchvision_feature_keys(stages: Sequence[Sequence[str]]) -> KeyMap:
    """Renames for torchvision's flat ``features`` Sequential: ``stages`` lists, per stage, the torchvision
    layers in order ("conv", "bn", "relu", "pool"); a conv and its bn become ``stage{s}.{j}.conv/bn``."""
    rules = []
    idx = 0
    for s, layers in enumerate(stages, start=1):
        j = -1
        for layer in layers:
            if layer == "conv":
                j += 1
            if layer in ("conv", "bn"):
                rules.append((rf"^features\.{idx}\.", f"stage{s}.{j}.{layer}."))
            idx += 1
    return KeyMap((*rules, *_FC_KEYS))


def add_chain_stage(model: CnnlabModel, name: str, stage: nn.Module) -> int:
    """``model.add_stage`` with the reduction derived from the strides: the last stage's (1 for the first) times
    the strides of ``stage``'s convs and pools. Every stage of this family is a chain (each layer feeds the
    next), so that product is its output stride whatever the padding (LeNet-5's unpadded convs leave a 1x1 map
    at 32 px where its strides say 1/4: each 4 pixels the input grows by add one). Returns its channels."""
    stride = 1
    for m in stage.modules():
        if isinstance(m, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d):
            stride *= pair(m.stride)[0]
    return model.add_stage(name, stage, (model.feature_info[-1].reduction if model.feature_info else 1) * stride)


C3_TABLE: tuple[tuple[int, ...], ...] = (
    *((i, (i + 1) % 6, (i + 2) % 6) for i in range(6)),
    *((i, (i + 1) % 6, (i + 2) % 6, (i + 3) % 6) for i in range(6)),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)  # fmt: skip
"""LeNet-5's Table I: the S2 maps that each of the 16 C3 maps reads (6 x 3, 9 x 4 and 1 x 6: 60 connections)."""


class SparseC3(nn.Module):
    """C3 with the connection table: each map's 5x5 conv reads only its S2 maps, "to break the symmetry in the
    network" (Sec. II.B); 60 x 25 weights and 16 biases, 1,516 parameters. Maps with the same number of inputs
    form one grouped conv over the gathered S2 maps."""

    out_chs = 16

    def __init__(self, act_layer: LayerFactory = nn.Tanh) -> None:
        super().__init__()
        for fan_in in (3, 4, 6):
            maps = [m for m in C3_TABLE if len(m) == fan_in]
            index = torch.tensor([i for m in maps for i in m])
            self.register_buffer(f"index{fan_in}", index, persistent=False)
            self.add_module(f"conv{fan_in}", nn.Conv2d(fan_in * len(maps), len(maps), 5, groups=len(maps)))
        self.act = act_layer()

    def forward(self, x: Tensor) -> Tensor:
        out = [self.conv3(x[:, self.index3]), self.conv4(x[:, self.index4]), self.conv6(x[:, self.index6])]
        return self.act(torch.cat(out, 1))  # N x 16 x H-4 x W-4, maps in Table I's order


class LeNet5(CnnlabModel):
    """LeNet-5 (LeCun et al. 1998, Fig. 2) for 32x32 images: MNIST's 28x28 digits padded by 2 pixels.

    C1 5x5 conv to 6 maps, S2 2x2 average pool, C3 5x5 conv to 16, S4 pool, C5 5x5 conv to 120 (1x1 at 32x32),
    F6 to 84, tanh throughout, then a linear output layer. F6 is a 1x1 conv on C5's map, which at 32x32 is the
    paper's fully connected layer; a larger input gives C5 a larger map that the head averages.

    C3 follows Table I (:class:`SparseC3`, 1,516 parameters; 60,806 in all); ``c3_table=False`` connects it to
    all six S2 maps (2,416; 61,706 in all). Departures: S2 and S4 are plain average pools (the paper's have a
    trainable coefficient and bias each); tanh instead of ``1.7159 tanh(2a/3)``; a linear output layer instead
    of the RBF units.
    """

    default_image_size = 32
    min_input_size = 32

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_chans: int = 1,
        c3_table: bool = True,  # Table I's sparse C3; False: a dense 6 -> 16 conv
        act_layer: LayerFactory = nn.Tanh,
    ) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        conv = {"norm_layer": None, "act_layer": act_layer, "padding": 0}
        c3 = SparseC3(act_layer) if c3_table else ConvBnAct(6, 16, 5, **conv)
        stages = {
            "stage1": nn.Sequential(ConvBnAct(in_chans, 6, 5, **conv), nn.AvgPool2d(2)),  # C1, S2
            "stage2": nn.Sequential(c3, nn.AvgPool2d(2)),  # C3, S4
            "stage3": nn.Sequential(ConvBnAct(16, 120, 5, **conv), ConvBnAct(120, 84, 1, **conv)),  # C5, F6
        }
        for name, stage in stages.items():
            self.num_features = add_chain_stage(self, name, stage)
        self.head = ClassifierHead(self.num_features, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stage1(x)  # N x 6 x 14 x 14 (at 32x32)
        x = self.stage2(x)  # N x 16 x 5 x 5
        return self.stage3(x)  # N x 84 x 1 x 1


class AlexNet(CnnlabModel):
    """AlexNet in torchvision's single-tower form: five convs (64, 192, 384, 256, 256 channels; 11x11/4, 5x5,
    3x3 x 3), three 3x3/2 max pools, three fully connected layers with dropout.

    Departures from the paper (Sec. 3.5, Fig. 2): no local response normalisation, one tower with the widths
    of Krizhevsky's "One weird trick" (2014) instead of two GPUs' 96, 256, 384, 384, 256 in groups; dropout
    after each of fc6 and fc7 instead of before (the same layers are dropped). 61,100,840 params.
    """

    min_input_size = 63

    def __init__(self, *, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        conv = {"norm_layer": None}
        stages = {
            "stage1": nn.Sequential(ConvBnAct(in_chans, 64, 11, stride=4, padding=2, **conv), nn.MaxPool2d(3, 2)),
            "stage2": nn.Sequential(ConvBnAct(64, 192, 5, **conv), nn.MaxPool2d(3, 2)),
            "stage3": nn.Sequential(
                ConvBnAct(192, 384, 3, **conv),
                ConvBnAct(384, 256, 3, **conv),
                ConvBnAct(256, 256, 3, **conv),
                nn.MaxPool2d(3, 2),
            ),
        }
        for name, stage in stages.items():
            self.num_features = add_chain_stage(self, name, stage)
        self.head = FcHead(self.num_features, num_classes, pool_size=6, drop_rate=drop_rate)
        layers = (("conv", "relu", "pool"), ("conv", "relu", "pool"), ("conv", "relu") * 3 + ("pool",))
        self.weight_key_maps = {"torchvision": _torchvision_feature_keys(layers)}

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stage1(x)  # N x 64 x 27 x 27 (at 224)
        x = self.stage2(x)  # N x 192 x 13 x 13
        return self.stage3(x)  # N x 256 x 6 x 6


class AlexNetPaper(CnnlabModel):
    """AlexNet as Krizhevsky et al. 2012 built it (Sec. 3, Fig. 2): convs of 96, 256, 384, 384, 256 channels
    (11x11/4, 5x5, 3x3, 3x3, 3x3), ReLU after each, local response normalisation after the first two
    (:func:`~cnnlab.layers.local_response_norm`: k=2, n=5, alpha=1e-4, beta=0.75, Sec. 3.3), overlapping 3x3/2 max
    pools after the two normalisations and after conv5 (Sec. 3.4), then fc6 and fc7 of 4096 with dropout 0.5 and
    the 1000-way fc. The two GPUs' towers are grouped convolutions: ``groups=2`` in conv2, conv4 and conv5, whose
    kernels "are connected only to those kernel maps in the previous layer which reside on the same GPU", while
    conv3 and the fcs connect across them (Sec. 3.2). ``groups=1`` is the one-tower net of the same widths;
    ``lrn=False`` leaves the normalisation out.

    60,965,224 params, the count of Caffe's reference ``bvlc_alexnet``, and 0.724 GMACs (62,378,344 and 1.135 with
    ``groups=1``). The input is 227x227 with an unpadded conv1: the size at which Fig. 2's 55x55 first map
    follows ((227 - 11) / 4 + 1 = 55; the paper's "224x224" does not divide, and Caffe uses 227 too); torchvision
    pads conv1 by 2 at 224 instead. The last map is 6x6 at 227 and is pooled to 6x6 for other sizes (:class:`FcHead`).
    Departures: dropout after fc6's and fc7's ReLU (the same units are dropped as "dropout in the first two
    fully-connected layers", Sec. 4.2); PyTorch's default initialisation (the paper's: N(0, 0.01) weights, biases
    1 in conv2, conv4, conv5 and the hidden fcs, 0 elsewhere).
    """

    default_image_size = 227
    min_input_size = 67

    def __init__(
        self,
        *,
        groups: int = 2,  # the two GPUs' towers in conv2, conv4, conv5; 1: one tower of the same widths
        lrn: bool = True,  # False: no response normalisation (Sec. 3.3: it lowered top-1 error by 1.4%)
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.5,  # dropout after fc6 and fc7 (Sec. 4.2)
    ) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        conv = {"norm_layer": None}  # no batch norm: ReLU straight after each biased conv
        norm = local_response_norm if lrn else nn.Identity
        stage1 = [("conv1", ConvBnAct(in_chans, 96, 11, stride=4, padding=0, **conv)), ("norm1", norm()),
                  ("pool1", nn.MaxPool2d(3, 2))]  # fmt: skip
        stage2 = [("conv2", ConvBnAct(96, 256, 5, groups=groups, **conv)), ("norm2", norm()),
                  ("pool2", nn.MaxPool2d(3, 2))]  # fmt: skip
        stage3 = [("conv3", ConvBnAct(256, 384, 3, **conv)), ("conv4", ConvBnAct(384, 384, 3, groups=groups, **conv)),
                  ("conv5", ConvBnAct(384, 256, 3, groups=groups, **conv)), ("pool5", nn.MaxPool2d(3, 2))]  # fmt: skip
        add_chain_stage(self, "stage1", nn.Sequential(OrderedDict(stage1)))
        add_chain_stage(self, "stage2", nn.Sequential(OrderedDict(stage2)))
        self.num_features = add_chain_stage(self, "stage3", nn.Sequential(OrderedDict(stage3)))
        self.head = FcHead(self.num_features, num_classes, pool_size=6, drop_rate=drop_rate)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stage1(x)  # N x 96 x 27 x 27 (at 227; conv1's map is 55 x 55)
        x = self.stage2(x)  # N x 256 x 13 x 13
        return self.stage3(x)  # N x 256 x 6 x 6


VGG_WIDTHS = (64, 128, 256, 512, 512)
"""Channels of the five stages of every configuration (Table 1)."""


def vgg_stage(
    in_chs: int,
    widths: Sequence[int],
    *,
    kernel_size: int = 3,
    stem_layer: LayerFactory | None = None,
    **conv: Any,
) -> nn.Sequential:
    """One stage of Table 1: a conv-(norm-)ReLU to each of ``widths`` (stride 1, "same" padding), then a 2x2
    max pool; ``conv`` goes to each :class:`~cnnlab.layers.ConvBnAct`. ``stem_layer(in_chs, widths[0])``, when
    given, is the first unit's conv (its norm and activation stay)."""
    stage = nn.Sequential()
    for j, width in enumerate(widths):
        unit = ConvBnAct(in_chs, width, kernel_size, **conv)
        if j == 0 and stem_layer is not None:
            unit.conv = stem_layer(in_chs, width)
        stage.add_module(str(j), unit)
        in_chs = width
    stage.add_module("pool", nn.MaxPool2d(2, 2))
    return stage


class VGG(CnnlabModel):
    """VGG (Simonyan & Zisserman 2015, Table 1): five stages of 3x3 convs (stride 1, padding 1), each ended by
    a 2x2 max pool; fc6, fc7 (4096, dropout 0.5) and the classifier in :class:`FcHead`.

    ``layers`` counts the convs per stage: (1, 1, 2, 2, 2) is VGG-11 (A), (2, 2, 2, 2, 2) VGG-13 (B),
    (2, 2, 3, 3, 3) VGG-16 (D), (2, 2, 4, 4, 4) VGG-19 (E). ``batch_norm=True`` adds BN after each conv (not in
    the paper, which predates it; torchvision's ``*_bn``, whose convs keep their bias).
    Departure: the paper evaluates the fully connected layers as convolutions over the whole image (Sec. 3.2);
    here, as in torchvision, the last map is pooled to 7x7 first.
    """

    min_input_size = 32

    def __init__(
        self,
        *,
        layers: Sequence[int] = (2, 2, 3, 3, 3),
        batch_norm: bool = False,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        if len(layers) != 5:
            raise ModelArgumentError(f"a VGG has 5 stages; got layers={tuple(layers)}")
        conv = {"norm_layer": nn.BatchNorm2d if batch_norm else None, "bias": True}
        chs = in_chans
        for s, (n, width) in enumerate(zip(layers, VGG_WIDTHS, strict=True), start=1):
            widths = (width,) * check_count("convs per stage", n, minimum=1)
            chs = add_chain_stage(self, f"stage{s}", vgg_stage(chs, widths, **conv))
        self.num_features = chs
        self.head = FcHead(chs, num_classes, pool_size=7, drop_rate=drop_rate)
        per_conv = ("conv", "bn", "relu") if batch_norm else ("conv", "relu")
        stages = [per_conv * n + ("pool",) for n in layers]
        self.weight_key_maps = {"torchvision": _torchvision_feature_keys(stages)}
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stage1(x)  # N x 64 x H/2 x W/2
        x = self.stage2(x)
        x = self.stage3(x)  # N x 256 x H/8 x W/8
        x = self.stage4(x)
        return self.stage5(x)  # N x 512 x H/32 x W/32


CIFAR_VGG_STAGES: tuple[tuple[int, ...], ...] = ((16, 16), (32, 32), (64, 64))
"""``cifar_vgg``'s conv widths per stage: configuration B's pattern (pairs of 3x3) at the widths of the CIFAR
ResNets (He et al. 2015, Sec. 4.2), so that an epoch of 3,600 images of 42x42 takes about 10 s on two shared CPU
cores."""

VggHead = Literal["gap", "fc"]


class CifarVGG(CnnlabModel):
    """A small VGG for 28-60 px images (not in the paper): stages of 3x3 convs (stride 1, "same" padding), each
    ended by a 2x2 max pool as in Table 1, at the widths of ``stages``; then a classifier head. Two of the
    papers' comparisons are arguments:

    * ``kernel_size=5`` replaces each pair of 3x3 convs of a stage by one 5x5 conv of the pair's output width:
      the same receptive field with one layer (and one non-linearity) fewer (VGG Sec. 4.1: "a net with single
      5x5 in place of pairs of 3x3" had a 7% higher top-1 error than net B). A pair a -> b -> b has 9ab + 9b^2
      weights, the 5x5 25ab: the 5x5 has more where a = b (25 against 18 per channel pair) and fewer where the
      stage widens at its first conv (a = b / 2: 12.5 b^2 against 13.5 b^2), as every stage does in the paper's
      net B and here (66,074 against 72,954 params at the defaults). A stage of odd length has no pairs to
      replace and is refused.
    * ``head="gap"``: global average pooling and one fc (Lin et al., Network in Network; GoogLeNet Sec. 5);
      ``head="fc"``: flatten and fully connected layers as in AlexNet and VGG, :class:`FcHead` with fc6 and fc7
      ``fc_hidden`` wide after an adaptive average pool to ``fc_pool`` x ``fc_pool`` (so any input size works):
      at the defaults the head holds 82% of the weights (330,762 of 403,066; the GAP head 650 of 72,954).

    ``stem_layer`` replaces the first conv, called as ``stem_layer(in_chans, stages[0][0])``: ``"gabor"`` by name,
    :class:`~cnnlab.layers.GaborConv2d`, a fixed bank of 16 Gabor filters of 5-11 px (Serre et al. 2007; not
    trained, so the net has 9 x ``in_chans`` x 16 fewer parameters), followed by the first unit's own batch norm
    and ReLU.

    ``norm_layer=None`` is the net without batch norm (its convs then have biases). ``drop_rate`` is the dropout
    before the fc (GAP head) or after fc6 and fc7 (FC head). Each stage halves the input: ``len(stages)`` stages
    need at least ``2 ** len(stages)`` pixels.
    """

    default_image_size = 32

    def __init__(
        self,
        *,
        stages: Sequence[Sequence[int]] = CIFAR_VGG_STAGES,  # conv widths, one tuple per stage
        kernel_size: int = 3,  # 3: the paper's 3x3 convs; 5: one 5x5 in place of each pair of 3x3
        head: VggHead = "gap",  # "gap": global average pooling + fc; "fc": flatten + fc6, fc7, fc (FcHead)
        fc_hidden: int = 256,  # width of fc6 and fc7 of the "fc" head (4096 in the paper, for 224 px)
        fc_pool: int = 4,  # the "fc" head's grid: the last map is pooled to fc_pool x fc_pool, then flattened
        norm_layer: LayerFactory | None = nn.BatchNorm2d,  # None: no normalisation (the BN ablations)
        act_layer: LayerFactory = nn.ReLU,
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,  # no dropout by default: the comparisons set it per head
        stem_layer: LayerFactory | None = None,  # None: a learned first conv; "gabor": Serre et al.'s fixed bank
    ) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        if kernel_size not in (3, 5):
            raise ModelArgumentError(
                f"cifar_vgg: kernel_size must be 3 or 5 (one 5x5 per pair of 3x3), got {kernel_size!r}"
            )
        if not stages:
            raise ModelArgumentError("cifar_vgg needs at least one stage of conv widths; got stages=()")
        conv = {"kernel_size": kernel_size, "norm_layer": norm_layer, "act_layer": act_layer}
        chs = in_chans
        for s, stage_widths in enumerate(stages, start=1):
            widths = tuple(stage_widths)
            if kernel_size == 5 and (not widths or len(widths) % 2):
                raise ModelArgumentError(
                    f"cifar_vgg: kernel_size=5 replaces each pair of 3x3 convs by one 5x5, so every stage needs an "
                    f"even number of convs; stage {s} has {len(widths)}: {widths}"
                )
            convs = widths[1::2] if kernel_size == 5 else widths  # a 5x5 takes its pair's output width
            stem = stem_layer if s == 1 else None
            chs = add_chain_stage(self, f"stage{s}", vgg_stage(chs, convs, stem_layer=stem, **conv))
        self.min_input_size = 2 ** len(stages)
        self.num_features = chs
        if head == "gap":
            self.head = ClassifierHead(chs, num_classes, drop_rate=drop_rate)
        elif head == "fc":
            fc_hidden = check_count("fc_hidden", fc_hidden, minimum=1)
            fc_pool = check_count("fc_pool", fc_pool, minimum=1)
            self.head = FcHead(chs, num_classes, pool_size=fc_pool, hidden=fc_hidden, drop_rate=drop_rate)
        else:
            raise ModelArgumentError(f"cifar_vgg: head must be 'gap' or 'fc', got {head!r}")
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        for stage in self.stage_names():
            x = self.get_submodule(stage)(x)  # each halves H and W: N x 64 x H/8 x W/8 after the default three
        return x


@register_model(preprocess=Preprocess.of(MNIST, size=32, crop_pct=1.0))
def lenet5(**kwargs: Any) -> LeNet5:
    """LeNet-5 (LeCun et al. 1998) for 1 x 32 x 32 input (28x28 digits padded by 2); 60,806 params."""
    return LeNet5(**kwargs)


@register_model(peers=(Peer("torchvision", "alexnet"),))
def alexnet(**kwargs: Any) -> AlexNet:
    """AlexNet (Krizhevsky et al. 2012), torchvision's single-tower form; 61,100,840 params, 0.71 GMACs."""
    return AlexNet(**kwargs)


@register_model(preprocess=Preprocess(size=227, crop_pct=227 / 256))  # Sec. 2: images at 256 x 256
def alexnet_paper(**kwargs: Any) -> AlexNetPaper:
    """AlexNet as the paper built it: two towers as groups=2, LRN, 96-256-384-384-256, 227 px; 60,965,224 params."""
    return AlexNetPaper(**kwargs)


def _vgg(layers: tuple[int, ...], batch_norm: bool, kwargs: dict[str, Any]) -> VGG:
    return VGG(**(dict(layers=layers, batch_norm=batch_norm) | kwargs))


_A, _B, _D, _E = (1, 1, 2, 2, 2), (2, 2, 2, 2, 2), (2, 2, 3, 3, 3), (2, 2, 4, 4, 4)


@register_model(peers=(Peer("torchvision", "vgg11"),))
def vgg11(**kwargs: Any) -> VGG:
    """VGG-11 (configuration A); 132,863,336 params, 7.61 GMACs."""
    return _vgg(_A, False, kwargs)


@register_model(peers=(Peer("torchvision", "vgg13"),))
def vgg13(**kwargs: Any) -> VGG:
    """VGG-13 (configuration B); 133,047,848 params, 11.31 GMACs."""
    return _vgg(_B, False, kwargs)


@register_model(peers=(Peer("torchvision", "vgg16"),))
def vgg16(**kwargs: Any) -> VGG:
    """VGG-16 (configuration D); 138,357,544 params, 15.47 GMACs."""
    return _vgg(_D, False, kwargs)


@register_model(peers=(Peer("torchvision", "vgg19"),))
def vgg19(**kwargs: Any) -> VGG:
    """VGG-19 (configuration E); 143,667,240 params, 19.63 GMACs."""
    return _vgg(_E, False, kwargs)


@register_model(peers=(Peer("torchvision", "vgg11_bn"),))
def vgg11_bn(**kwargs: Any) -> VGG:
    """VGG-11 with batch norm; 132,868,840 params."""
    return _vgg(_A, True, kwargs)


@register_model(peers=(Peer("torchvision", "vgg13_bn"),))
def vgg13_bn(**kwargs: Any) -> VGG:
    """VGG-13 with batch norm; 133,053,736 params."""
    return _vgg(_B, True, kwargs)


@register_model(peers=(Peer("torchvision", "vgg16_bn"),))
def vgg16_bn(**kwargs: Any) -> VGG:
    """VGG-16 with batch norm; 138,365,992 params."""
    return _vgg(_D, True, kwargs)


@register_model(peers=(Peer("torchvision", "vgg19_bn"),))
def vgg19_bn(**kwargs: Any) -> VGG:
    """VGG-19 with batch norm; 143,678,248 params."""
    return _vgg(_E, True, kwargs)


@register_model
def cifar_vgg(**kwargs: Any) -> CifarVGG:
    """A small VGG for 28-60 px images: pairs of 3x3 convs of 16, 32, 64 channels, GAP head; 72,954 params."""
    return CifarVGG(**kwargs)


__all__ = [
    "C3_TABLE",
    "CIFAR_VGG_STAGES",
    "VGG",
    "AlexNet",
    "AlexNetPaper",
    "CifarVGG",
    "FcHead",
    "LeNet5",
    "SparseC3",
    "vgg_stage",
]
