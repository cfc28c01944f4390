"""Xception: the Inception hypothesis taken to its extreme.

Chollet 2017, "Xception: Deep Learning with Depthwise Separable Convolutions". An Inception module maps
cross-channel correlations (1x1 convs) and spatial correlations (3x3 convs) separately, in a few branches; with as
many branches as channels it becomes a depthwise-separable conv, a 3x3 per channel and a 1x1 across them (Sec. 2,
Fig. 4). Xception is 36 such convs in 14 modules, each module but the first and last with a residual connection
(Fig. 5): the entry flow (two 3x3 convs, then three modules that halve the size), the middle flow (eight modules
of three separable convs of 728 channels, identity shortcuts) and the exit flow (a module to 1024 channels, then
separable convs of 1536 and 2048), global average pooling and a fc. 22,855,952 params at 1000 classes (Table 3:
22,855,952), 8.4 GMACs at 299 x 299.

The separable convs are :class:`~cnnlab.layers.SeparableConv2d` with nothing between the depthwise and the
pointwise conv (Sec. 4.7); every conv is followed by batch norm ("not included in the diagram"). Departures, as
timm's ``legacy_xception`` (whose weights, ported from Keras, load into this layout): the max pools pad one pixel
on every side (Keras's "same" pads only the bottom and right of an even map), and the stem's two 3x3 convs have no
padding, as in Fig. 5 (299 -> 149 -> 147).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from cnnlab.data.preprocess import TF_INCEPTION, Preprocess
from cnnlab.layers import ClassifierHead, ConvBnAct
from cnnlab.layers.depthwise_separable import SeparableConv2d
from cnnlab.models.base import CnnlabModel, init_weights
from cnnlab.registry import Peer, register_model
from cnnlab.weights import KeyMap

MIDDLE_MODULES = 8
"""Fig. 5: "repeated 8 times"."""


class XceptionModule(nn.Module):
    """One module of Fig. 5: ``reps`` times (ReLU, 3x3 separable conv, BN) in ``rep``, then a 3x3/2 max pool when
    ``stride`` is 2, plus a shortcut: a 1x1/``stride`` conv with BN where the shape changes (``skip``), else the
    identity.

    ``grow_first``: the first separable conv changes the width (entry and middle flow); otherwise the last does
    (the exit flow's 728 -> 728 -> 1024). ``first_relu=False`` leaves out the leading ReLU (the first module follows
    the stem's ReLU).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        reps: int,
        stride: int = 1,
        first_relu: bool = True,
        grow_first: bool = True,
    ) -> None:
        super().__init__()
        self.out_chs = out_chs
        widths = [in_chs] + [out_chs] * reps if grow_first else [in_chs] * reps + [out_chs]
        rep: list[nn.Module] = []
        for k in range(reps):
            # the first ReLU is not in place: the shortcut still needs the module's input
            sep = SeparableConv2d(widths[k], widths[k + 1], 3, padding=1, bias=False)
            rep += [nn.ReLU(inplace=k > 0), sep, nn.BatchNorm2d(widths[k + 1])]
        if not first_relu:
            rep = rep[1:]
        if stride != 1:
            rep.append(nn.MaxPool2d(3, stride, padding=1))
        self.rep = nn.Sequential(*rep)
        change = out_chs != in_chs or stride != 1
        self.skip = ConvBnAct(in_chs, out_chs, 1, stride=stride, act_layer=None) if change else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.rep(x) + self.skip(x)


TIMM_KEYS = KeyMap(
    (
        (r"^conv(\d)\.", r"stem.conv\1.conv."),
        (r"^bn(\d)\.", r"stem.conv\1.bn."),
        (r"^stem\.conv([34])\.", r"exit.conv\1."),  # the exit flow's two separable convs
        (r"^block([123])\.", r"entry\1."),
        *((rf"^block{i}\.", f"middle.{i - 4}.") for i in range(4, 4 + MIDDLE_MODULES)),
        (r"^block12\.", "exit.module."),
        (r"\.skip\.", ".skip.conv."),
        (r"\.skipbn\.", ".skip.bn."),
        (r"\.conv1\.weight$", ".depthwise.weight"),
        (r"^fc\.", "head.fc."),
    )
)
"""timm's ``legacy_xception`` naming: ``conv1``/``bn1``/``conv2``/``bn2`` (stem), ``block1``-``block12`` with
``rep`` lists of ReLU, SeparableConv2d (``conv1`` depthwise, ``pointwise``) and BatchNorm2d, ``skip``/``skipbn``,
``conv3``/``bn3``/``conv4``/``bn4`` (exit), ``fc``."""


class Xception(CnnlabModel):
    """Xception (Fig. 5) as stages ``stem``, ``entry1``-``entry3``, ``middle`` (8 modules) and ``exit``.

    ``middle_modules`` changes the middle flow's depth (Fig. 5: 8; Sec. 4.6 does not vary it).
    """

    default_image_size = 299
    min_input_size = 7  # the two unpadded 3x3 convs of the stem need 3x3 after the first (stride 2)
    weight_key_maps = {"timm": TIMM_KEYS}

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        middle_modules: int = MIDDLE_MODULES,
        drop_rate: float = 0.0,  # dropout before the fc (the paper's ImageNet model has none)
    ) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        stem = nn.Sequential()
        stem.add_module("conv1", ConvBnAct(in_chans, 32, 3, stride=2, padding=0))
        stem.add_module("conv2", ConvBnAct(32, 64, 3, padding=0))
        chs = self.add_stage("stem", stem, 2)
        for j, (out_chs, reduction) in enumerate(((128, 4), (256, 8), (728, 16)), start=1):
            module = XceptionModule(chs, out_chs, reps=2, stride=2, first_relu=j > 1)
            chs = self.add_stage(f"entry{j}", module, reduction)
        modules = [XceptionModule(chs, chs, reps=3) for _ in range(middle_modules)]
        self.add_stage("middle", nn.Sequential(*modules), 16)
        exit_flow = nn.Sequential()
        exit_flow.add_module("module", XceptionModule(chs, 1024, reps=2, stride=2, grow_first=False))
        exit_flow.add_module("conv3", ConvBnAct(1024, 1536, 3, conv_layer=SeparableConv2d))
        exit_flow.add_module("conv4", ConvBnAct(1536, 2048, 3, conv_layer=SeparableConv2d))
        self.num_features = self.add_stage("exit", exit_flow, 32)
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate=drop_rate)
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stem(x)  # N x 64 x 147 x 147 at 299
        x = self.entry1(x)  # N x 128 x 74 x 74
        x = self.entry2(x)  # N x 256 x 37 x 37
        x = self.entry3(x)  # N x 728 x 19 x 19
        x = self.middle(x)
        return self.exit(x)  # N x 2048 x 10 x 10


@register_model(
    peers=(Peer("timm", "legacy_xception"),),
    preprocess=Preprocess.of(TF_INCEPTION, size=299, crop_pct=0.8975, interpolation="bicubic"),
)
def xception(**kwargs: Any) -> Xception:
    """Xception (Chollet 2017, Fig. 5): 22,855,952 params (Table 3), 8.4 GMACs at 299; timm's weights load."""
    return Xception(**kwargs)
