"""GoogLeNet (Szegedy et al. 2015, "Going Deeper with Convolutions", Table 1, Fig. 3).

Nine Inception modules (:class:`~cnnlab.layers.inception_v1.InceptionV1`, widths of Table 1) on a conv stem,
global average pooling instead of fully connected layers, and two auxiliary classifiers on (4a) and (4d)
whose losses the trainer adds with weight ``aux_loss_weight`` = 0.3 in training only.

The default layout is torchvision's, whose weights load through ``TORCHVISION_KEYS``. It departs from the
paper in four ways, named here and selectable where they change the network (``googlenet_paper`` takes the
paper's choice in the first two):

* the "5x5" branch uses a 3x3 conv (``kernel_5x5=3``; the paper's 5x5 is ``kernel_5x5=5``);
* the max pool before (5a) is 2x2/2 (``maxpool4=2``) where Table 1 has 3x3/2 (``maxpool4=3``): the same 7x7
  map at 224 (both round up), but the receptive field of the last map is 16 pixels smaller (699 against
  Table 1's 715, with 5x5 branches) and the smallest input 15 pixels against 31;
* batch norm (eps 0.001) after every conv and no local response normalisation (the paper has LRN in the
  stem and no BN: pass ``conv_layer=partial(ConvBnAct, norm_layer=None)`` for BN-free convs);
* ``transform_input=True`` re-normalises an ImageNet-normalised input to ``(x - 0.5) / 0.5``, the input of
  the weights ported from TensorFlow; off by default (as torchvision does without pretrained weights).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from cnnlab.data.preprocess import TF_INCEPTION, Preprocess
from cnnlab.data.stats import IMAGENET
from cnnlab.errors import ModelArgumentError, check_positive
from cnnlab.layers import BN_INCEPTION_WIDTHS, AuxClassifier, BNInception, ClassifierHead, ConvBnAct, InceptionV1
from cnnlab.layers.branches import INCEPTION_CONV, chain
from cnnlab.layers.inception_v1 import GOOGLENET_WIDTHS
from cnnlab.layers.types import LayerFactory
from cnnlab.models.base import CnnlabModel, LogitsWithAux, init_weights
from cnnlab.registry import Peer, register_model
from cnnlab.weights import KeyMap

TORCHVISION_KEYS = KeyMap(
    (
        (r"^conv(\d)\.", r"stem.conv\1."),
        (r"^inception3([ab])\.", r"inception3.\1."),
        (r"^inception4a\.", "inception4a.a."),
        (r"^inception4([bcd])\.", r"inception4d.\1."),
        (r"^inception4e\.", "inception4e.e."),
        (r"^inception5([ab])\.", r"inception5.\1."),
        (r"\.branch1\.", ".branch1x1."),
        (r"\.branch2\.", ".branch3x3."),
        (r"\.branch3\.", ".branch5x5."),
        (r"\.branch4\.", ".branch_pool."),
        (r"^fc\.", "head.fc."),
    )
)
"""torchvision's GoogLeNet naming: conv1-3, inception3a..5b with branch1-4, aux1, aux2, fc."""


class TransformInput(nn.Module):
    """Map an input normalised with ImageNet's mean and std to ``(x - 0.5) / 0.5`` per channel (what the
    Inception weights ported from TensorFlow expect; torchvision's ``transform_input``)."""

    def __init__(self) -> None:
        super().__init__()
        std, mean = torch.tensor(IMAGENET.std), torch.tensor(IMAGENET.mean)
        self.register_buffer("scale", (std / 0.5).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((mean - 0.5) / 0.5).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift


def input_transform(transform_input: bool, in_chans: int) -> nn.Module:
    """:class:`TransformInput` (3 channels only) or an identity."""
    if transform_input and in_chans != 3:
        raise ModelArgumentError(f"transform_input re-normalises RGB input and needs in_chans=3, got {in_chans}")
    return TransformInput() if transform_input else nn.Identity()


def _inception_stage(
    in_chs: int,
    names: str,
    *,
    pool: nn.Module | None = None,
    width_mult: float = 1.0,
    inception_layer: LayerFactory = InceptionV1,
    **kwargs: Any,
) -> nn.Sequential:
    """``pool`` (if any), then the Inception modules of Table 1 named in ``names`` (for example "4b 4c 4d"),
    each on the previous one's output, with its widths times ``width_mult``; ``kwargs`` go to
    ``inception_layer``."""
    modules = {
        name[-1]: partial(inception_layer, widths=GOOGLENET_WIDTHS[name].scaled(width_mult), **kwargs)
        for name in names.split()
    }
    return chain(in_chs, ({"pool": pool} if pool is not None else {}) | modules)


CEIL_POOL: LayerFactory = partial(nn.MaxPool2d, 3, stride=2, ceil_mode=True)
"""GoogLeNet's grid reduction (torchvision's): 3x3 max pool, stride 2, rounding the output size up."""


def googlenet_stem(
    in_chs: int,
    widths: tuple[int, int, int] = (64, 64, 192),  # Table 1: conv 64, 1x1 64 ("#3x3 reduce"), 3x3 192
    *,
    conv1: tuple[int, int] = (7, 2),  # the first conv's kernel and stride: Table 1's 7x7/2
    conv_layer: LayerFactory = INCEPTION_CONV,
) -> nn.Sequential:
    """GoogLeNet's stem as torchvision has it (no LRN): ``conv1``, a 3x3/2 max pool (ceil mode), ``conv2``
    1x1, ``conv3`` 3x3; the pool after it belongs to the next stage."""
    (kernel, stride), (c1, c2, c3) = conv1, widths
    stem = OrderedDict(
        conv1=conv_layer(in_chs, c1, kernel, stride=stride),
        pool1=CEIL_POOL(),
        conv2=conv_layer(c1, c2, 1),
        conv3=conv_layer(c2, c3, 3),
    )
    return nn.Sequential(stem)


class AuxHeadsModel(CnnlabModel):
    """A model with auxiliary classifiers: ``forward_taps`` returns the features and one tap per head in
    ``head_modules[1:]`` (absent heads are ``None``); in training mode ``forward`` returns
    :class:`~cnnlab.models.base.LogitsWithAux`, in eval mode plain logits."""

    def forward_taps(self, x: Tensor) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def aux_heads(self) -> list[nn.Module]:
        return [self.get_submodule(name) for name in self.head_modules[1:]]

    def add_aux_heads(self, make: Callable[[int], nn.Module] | None, **taps: int) -> None:
        """One auxiliary head per tap (name=input channels), each ``make(chs)``, listed in ``head_modules``
        after ``head``; ``make=None`` builds none (the attributes are ``None``)."""
        for name, chs in taps.items():
            setattr(self, name, make(chs) if make is not None else None)
        self.head_modules = ("head", *taps) if make is not None else ("head",)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.forward_taps(x)[0]

    def forward(self, x: Tensor) -> Tensor | LogitsWithAux:  # type: ignore[override]
        x, *taps = self.forward_taps(x)
        logits = self.forward_head(x)
        heads = self.aux_heads()
        if self.training and heads:
            return LogitsWithAux(logits, tuple(head(tap) for head, tap in zip(heads, taps, strict=True)))
        return logits

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        for head in self.aux_heads():
            head.reset(num_classes)


class GoogLeNet(AuxHeadsModel):
    """GoogLeNet / Inception-v1 (Table 1): 22 layers with parameters, 6.6M parameters (torchvision layout).

    Stages: ``stem`` (7x7/2 conv, 3x3/2 pool, 1x1 and 3x3 convs; 192 at 1/4), ``inception3`` (pool, 3a,
    3b; 480 at 1/8), ``inception4a`` (pool, 4a; 512 at 1/16), ``inception4d`` (4b-4d; 528),
    ``inception4e`` (832), ``inception5`` (pool, 5a, 5b; 1024 at 1/32). The stages break where the
    auxiliary classifiers ``aux1`` (on 4a) and ``aux2`` (on 4d) tap the network.

    Args:
        aux_logits: build the two auxiliary classifiers; in training mode ``forward`` then returns
            :class:`~cnnlab.models.base.LogitsWithAux`, in eval mode plain logits.
        kernel_5x5: kernel of the "5x5" branches (3: torchvision; 5: the paper).
        maxpool4: kernel of the stride-2 max pool before (5a) (2: torchvision; 3: the paper's Table 1).
        transform_input: re-normalise ImageNet-normalised input for the TensorFlow-ported weights.
        conv_layer: the conv unit (conv-BN-ReLU, BN eps 0.001).
        drop_rate: dropout before the fc (the paper's 40%); ``aux_drop_rate`` in the auxiliary heads (70%).
    """

    min_input_size = 15
    """Each ceil-mode 3x3/2 pool needs at least a 2x2 input; 15 gives 2x2 before the pool of stage 4, and a
    1x1 map before the 2x2/2 pool before (5a). The paper's 3x3/2 there needs a 2x2 map, which takes 31."""

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = True,
        kernel_5x5: int = 3,  # torchvision's; the paper's is 5
        maxpool4: int = 2,  # torchvision's 2x2/2 before (5a); Table 1's is 3x3/2
        transform_input: bool = False,
        conv_layer: LayerFactory = INCEPTION_CONV,
        drop_rate: float = 0.4,  # "dropout layer with 40% ratio of dropped outputs"
        aux_drop_rate: float = 0.7,
    ) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        stage = partial(_inception_stage, conv_layer=conv_layer, kernel_5x5=kernel_5x5)
        self.transform = input_transform(transform_input, in_chans)  # no parameters
        chs = self.add_stage("stem", googlenet_stem(in_chans, conv_layer=conv_layer), 4)
        chs = self.add_stage("inception3", stage(chs, "3a 3b", pool=CEIL_POOL()), 8)
        tap1_chs = self.add_stage("inception4a", stage(chs, "4a", pool=CEIL_POOL()), 16)
        tap2_chs = self.add_stage("inception4d", stage(tap1_chs, "4b 4c 4d"), 16)
        chs = self.add_stage("inception4e", stage(tap2_chs, "4e"), 16)
        if maxpool4 not in (2, 3):
            raise ModelArgumentError(
                f"maxpool4 must be 2 (torchvision's 2x2/2 pool) or 3 (Table 1's 3x3/2), got {maxpool4!r}"
            )
        self.min_input_size = 15 if maxpool4 == 2 else 31
        last_pool = nn.MaxPool2d(maxpool4, stride=2, ceil_mode=True)
        self.num_features = self.add_stage("inception5", stage(chs, "5a 5b", pool=last_pool), 32)
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate=drop_rate)
        aux = partial(AuxClassifier, num_classes=num_classes, drop_rate=aux_drop_rate, conv_layer=conv_layer)
        self.add_aux_heads(aux if aux_logits else None, aux1=tap1_chs, aux2=tap2_chs)
        init_weights(self)

    weight_key_maps = {"torchvision": TORCHVISION_KEYS}

    def forward_taps(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The features and the inputs of the two auxiliary classifiers (outputs of 4a and 4d)."""
        x = self.stem(self.transform(x))  # N x 192 x H/4 x W/4
        x = self.inception3(x)  # N x 480 x H/8 x W/8
        tap1 = self.inception4a(x)  # N x 512 x H/16 x W/16
        tap2 = self.inception4d(tap1)  # N x 528 x H/16 x W/16
        x = self.inception4e(tap2)  # N x 832 x H/16 x W/16
        return self.inception5(x), tap1, tap2  # N x 1024 x H/32 x W/32


@register_model(
    peers=(Peer("torchvision", "googlenet", {"init_weights": False}),),  # PyTorch's fast init
    preprocess=Preprocess.of(TF_INCEPTION),  # what torchvision's transform_input makes of ImageNet-normalised input
)
def googlenet(**kwargs: Any) -> GoogLeNet:
    """GoogLeNet (torchvision's layout, aux heads on): 13,004,888 params, 6,624,904 without; 1.50 GMACs at 224.

    ``aux_logits=False`` drops the auxiliary heads (they only act in training)."""
    return GoogLeNet(**kwargs)


@register_model
def googlenet_paper(**kwargs: Any) -> GoogLeNet:
    """GoogLeNet as Table 1 lays it out: 5x5 "5x5" branches and a 3x3/2 max pool before (5a) (receptive field
    715); 13,385,816 params with aux heads, 1.58 GMACs.

    Departure kept from ``googlenet``: batch norm after every conv and no LRN."""
    return GoogLeNet(**(dict(kernel_5x5=5, maxpool4=3) | kwargs))


class SmallGoogLeNet(AuxHeadsModel):
    """GoogLeNet for 28-60 px images: six of Table 1's modules at a quarter of their widths on a stride-1 stem.

    Stages at 42x42: ``stem`` (3x3 conv, 3x3/2 pool, 1x1 and 3x3 convs: GoogLeNet's stem without its 7x7/2;
    48 at 1/2), ``inception3`` (3a, 3b; 120 at 1/2), ``inception4a`` (pool, 4a; 128 at 1/4), ``inception4d``
    (4d; 132), ``inception5`` (pool, 5a, 5b; 256 at 1/8), global average pooling, dropout 40%, fc. The
    auxiliary heads ``aux1`` (on 4a) and ``aux2`` (on 4d) are GoogLeNet's (Sec. 6) at the same quarter width
    (1x1 conv 32, fc 256), pooling the 10x10 tap to 4x4; in training ``forward`` returns
    :class:`~cnnlab.models.base.LogitsWithAux` and the trainer adds each head's loss with weight 0.3.

    ``inception_layer`` is the module: :class:`~cnnlab.layers.InceptionV1` with dimension reductions (Fig. 2b),
    or ``partial(InceptionV1, naive=True)`` (Fig. 2a; named ``"inception_naive"`` in a config). Both have the
    same 1x1, 3x3 and 5x5 branch widths; the naive module's pool branch passes its whole input through instead
    of a 1x1 projection, so its output is its input plus the three conv branches and the widths grow from
    module to module (48 -> 836 features here, against 256): that growth, and the 3x3 and 5x5 convs on the grown inputs,
    are the cost that Sec. 4 says made the naive form infeasible, and they are left in, not compensated.

    Args:
        aux_logits: the two auxiliary classifiers (training only).
        inception_layer: the Inception module, called as ``inception_layer(in_chs, widths, conv_layer=...)``.
        width_mult: every width of GoogLeNet (stem, Table 1, auxiliary heads) times this.
        stage_width_mults: the modules of stages 3, 4 and 5 (and the auxiliary heads' inputs with them) times these
            as well: a departure from Table 1 for the one-size control of the parallel_kernels experiment,
            ``inception_layer="inception_3x3"`` at (0.7, 0.6, 0.55), whose parameters and MACs at 42 px are then
            within 1.3% of the Table 1 net's (a 3x3 in place of a 1x1 costs most where the maps are small).
        conv_layer: the conv unit (conv-BN-ReLU).
        drop_rate: dropout before the fc (the paper's 40%); ``aux_drop_rate`` in the auxiliary heads (70%).
    """

    default_image_size = 42  # mnist5k-rts
    min_input_size = 8
    """Each of the three ceil-mode 3x3/2 pools needs at least a 2x2 input."""

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_chans: int = 3,
        aux_logits: bool = True,
        inception_layer: LayerFactory = InceptionV1,  # Fig. 2b; partial(InceptionV1, naive=True): Fig. 2a
        width_mult: float = 0.25,  # of GoogLeNet's widths
        stage_width_mults: tuple[float, float, float] = (1.0, 1.0, 1.0),  # Table 1's widths in every stage
        conv_layer: LayerFactory = ConvBnAct,
        drop_rate: float = 0.4,  # "dropout layer with 40% ratio of dropped outputs"
        aux_drop_rate: float = 0.7,
    ) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        w = check_positive("width_mult", width_mult)
        if len(stage_width_mults) != 3:
            raise ModelArgumentError(f"stage_width_mults: one for each of stages 3, 4, 5, got {stage_width_mults!r}")
        w3, w4, w5 = (w * check_positive("stage_width_mults", m) for m in stage_width_mults)
        c = lambda chs: max(1, round(chs * w))  # noqa: E731 (a width of GoogLeNet, scaled)
        stage = partial(_inception_stage, inception_layer=inception_layer, conv_layer=conv_layer)
        stem = googlenet_stem(in_chans, (c(64), c(64), c(192)), conv1=(3, 1), conv_layer=conv_layer)
        chs = self.add_stage("stem", stem, 2)
        chs = self.add_stage("inception3", stage(chs, "3a 3b", width_mult=w3), 2)
        tap1_chs = self.add_stage("inception4a", stage(chs, "4a", pool=CEIL_POOL(), width_mult=w4), 4)
        tap2_chs = self.add_stage("inception4d", stage(tap1_chs, "4d", width_mult=w4), 4)
        self.num_features = self.add_stage("inception5", stage(tap2_chs, "5a 5b", pool=CEIL_POOL(), width_mult=w5), 8)
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate=drop_rate)
        aux = partial(
            AuxClassifier,
            num_classes=num_classes,
            conv_chs=c(128),
            hidden=c(1024),
            drop_rate=aux_drop_rate,
            conv_layer=conv_layer,
        )
        self.add_aux_heads(aux if aux_logits else None, aux1=tap1_chs, aux2=tap2_chs)
        init_weights(self)

    def forward_taps(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The features and the inputs of the two auxiliary classifiers (outputs of 4a and 4d)."""
        x = self.stem(x)  # N x 48 x H/2 x W/2
        x = self.inception3(x)  # N x 120 x H/2 x W/2
        tap1 = self.inception4a(x)  # N x 128 x H/4 x W/4
        tap2 = self.inception4d(tap1)  # N x 132 x H/4 x W/4
        return self.inception5(tap2), tap1, tap2  # N x 256 x H/8 x W/8


class BNInceptionNet(CnnlabModel):
    """BN-Inception (Ioffe & Szegedy 2015, Sec. 4.2.1 and Figure 5): GoogLeNet with every 5x5 conv replaced by
    two 3x3 ("double 3x3"), batch norm after every conv, the stride-2 modules 3c and 4e as grid reductions.

    Stages: ``stem`` (7x7/2 conv 64, 3x3/2 max pool, 1x1 64, 3x3 192; 192 at 1/4), ``inception3`` (3x3/2 max
    pool, 3a, 3b; 320 at 1/8), ``inception4`` (3c, 4a-4d; 608 at 1/16), ``inception5`` (4e, 5a, 5b; 1024 at
    1/32), global average pooling, fc. The modules are :class:`~cnnlab.layers.BNInception` with Figure 5's
    rows (:data:`~cnnlab.layers.BN_INCEPTION_WIDTHS`): average pool + projection in 3a-5a, max pool +
    projection in 5b, max pool passed through in 3c and 4e.

    Departures: Figure 5 shows no auxiliary classifiers and none are built; Sec. 4.2.1 removes dropout and
    local response normalisation, so ``drop_rate`` defaults to 0. The stem's pools are GoogLeNet's ceil-mode
    3x3/2; the stride-2 modules pad by 1 (see :class:`~cnnlab.layers.BNInception`). 11,285,224 params with
    1000 classes, 2.03 GMACs at 224: the Caffe port that Cadene's ``bninception`` loads has the same layers and
    widths with a bias on every conv as well (10,016 more: 11,295,240, its "about 11.3M"). The paper's
    appendix says "13.6 * 10^6 parameters", which Figure 5's table does not add up to; the 2.3M more may be
    training-only auxiliary heads (a guess: the paper does not describe them).

    Args:
        conv_layer: the conv unit (conv-BN-ReLU).
        drop_rate: dropout before the fc (0: "Remove Dropout", Sec. 4.2.1).
    """

    min_input_size = 7
    """7 -> 4 by the 7x7/2 conv, then 2 and 1 by the stem's two ceil-mode 3x3/2 pools."""

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        conv_layer: LayerFactory = ConvBnAct,
        drop_rate: float = 0.0,  # Sec. 4.2.1: "Remove Dropout"
    ) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)

        def modules(names: str) -> dict[str, Any]:
            """Figure 5's modules named in ``names``, each on the previous one's output."""
            module = partial(BNInception, conv_layer=conv_layer)
            return {n: partial(module, widths=BN_INCEPTION_WIDTHS[n]) for n in names.split()}

        chs = self.add_stage("stem", googlenet_stem(in_chans, conv_layer=conv_layer), 4)
        chs = self.add_stage("inception3", chain(chs, {"pool": CEIL_POOL()} | modules("3a 3b")), 8)
        chs = self.add_stage("inception4", chain(chs, modules("3c 4a 4b 4c 4d")), 16)
        self.num_features = self.add_stage("inception5", chain(chs, modules("4e 5a 5b")), 32)
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate=drop_rate)
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stem(x)  # N x 192 x H/4 x W/4
        x = self.inception3(x)  # N x 320 x H/8 x W/8
        x = self.inception4(x)  # N x 608 x H/16 x W/16
        return self.inception5(x)  # N x 1024 x H/32 x W/32


@register_model
def googlenet_small(**kwargs: Any) -> SmallGoogLeNet:
    """GoogLeNet for 28-60 px (six modules at 1/4 width, aux heads on): 528,998 params, 28.9 MMACs at 42 px.

    ``inception_layer=partial(InceptionV1, naive=True)`` (``"inception_naive"``) builds it from naive modules
    (Fig. 2a): 2,726,462 params, 159.0 MMACs. ``aux_logits=False`` drops the auxiliary heads (252,754 and
    2,434,346 params). ``inception_layer="inception_3x3"`` with ``stage_width_mults=(0.7, 0.6, 0.55)`` is the
    one-size control of the parallel_kernels experiment (3x3 filters in every branch, the same cost)."""
    return SmallGoogLeNet(**kwargs)


@register_model
def bn_inception(**kwargs: Any) -> BNInceptionNet:
    """BN-Inception (Ioffe & Szegedy 2015, Figure 5; no auxiliary heads): 11,285,224 params, 2.03 GMACs."""
    return BNInceptionNet(**kwargs)
