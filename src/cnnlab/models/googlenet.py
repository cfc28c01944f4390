"""GoogLeNet (Szegedy et al. 2015, "Going Deeper with Convolutions", Table 1, Fig. 3).

Nine Inception modules (:class:`~cnnlab.layers.inception_v1.InceptionV1`, widths of Table 1) on a conv stem,
global average pooling instead of fully connected layers, and two auxiliary classifiers on (4a) and (4d)
whose losses the trainer adds with weight ``aux_loss_weight`` = 0.3 in training only.

The default layout is torchvision's, whose weights load through ``TORCHVISION_KEYS``. It departs from the
paper in four ways, named here and selectable where they change the network:

* the "5x5" branch uses a 3x3 conv (``kernel_5x5=3``; the paper's 5x5 is ``kernel_5x5=5``, registered as
  ``googlenet_paper``);
* batch norm (eps 0.001) after every conv and no local response normalisation (the paper has LRN in the
  stem and no BN: pass ``conv_layer=partial(ConvBnAct, norm_layer=None)`` for BN-free convs);
* the last max pool before (5a) is 2x2/2 instead of 3x3/2 (same output size at 224);
* ``transform_input=True`` re-normalises an ImageNet-normalised input to ``(x - 0.5) / 0.5``, the input of
  the weights ported from TensorFlow; off by default (as torchvision does without pretrained weights).
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from cnnlab.data.stats import IMAGENET
from cnnlab.errors import ModelArgumentError
from cnnlab.layers import AuxClassifier, ClassifierHead, InceptionV1
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


def _inception_stage(in_chs: int, names: str, *, pool: nn.Module | None = None, **kwargs: Any) -> nn.Sequential:
    """``pool`` (if any), then the Inception modules of Table 1 named in ``names`` (for example "4b 4c 4d"),
    each on the previous one's output; ``kwargs`` go to :class:`~cnnlab.layers.InceptionV1`."""
    modules = {name[-1]: partial(InceptionV1, widths=GOOGLENET_WIDTHS[name], **kwargs) for name in names.split()}
    return chain(in_chs, ({"pool": pool} if pool is not None else {}) | modules)


class AuxHeadsModel(CnnlabModel):
    """A model with auxiliary classifiers: ``forward_taps`` returns the features and one tap per head in
    ``head_modules[1:]`` (absent heads are ``None``); in training mode ``forward`` returns
    :class:`~cnnlab.models.base.LogitsWithAux`, in eval mode plain logits."""

    def forward_taps(self, x: Tensor) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def aux_heads(self) -> list[nn.Module]:
        return [self.get_submodule(name) for name in self.head_modules[1:]]

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
        transform_input: re-normalise ImageNet-normalised input for the TensorFlow-ported weights.
        conv_layer: the conv unit (conv-BN-ReLU, BN eps 0.001).
        drop_rate: dropout before the fc (the paper's 40%); ``aux_drop_rate`` in the auxiliary heads (70%).
    """

    min_input_size = 15
    """Each ceil-mode 3x3/2 pool needs at least a 2x2 input; 15 gives 2x2 before the pool of stage 4."""

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = True,
        kernel_5x5: int = 3,  # torchvision's; the paper's is 5
        transform_input: bool = False,
        conv_layer: LayerFactory = INCEPTION_CONV,
        drop_rate: float = 0.4,  # "dropout layer with 40% ratio of dropped outputs"
        aux_drop_rate: float = 0.7,
    ) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        ceil_pool = partial(nn.MaxPool2d, 3, stride=2, ceil_mode=True)
        stage = partial(_inception_stage, conv_layer=conv_layer, kernel_5x5=kernel_5x5)
        self.transform = input_transform(transform_input, in_chans)  # no parameters
        stem = nn.Sequential(
            OrderedDict(
                conv1=conv_layer(in_chans, 64, 7, stride=2),
                pool1=ceil_pool(),
                conv2=conv_layer(64, 64, 1),
                conv3=conv_layer(64, 192, 3),
            )
        )
        chs = self.add_stage("stem", stem, 4)
        chs = self.add_stage("inception3", stage(chs, "3a 3b", pool=ceil_pool()), 8)
        tap1_chs = self.add_stage("inception4a", stage(chs, "4a", pool=ceil_pool()), 16)
        tap2_chs = self.add_stage("inception4d", stage(tap1_chs, "4b 4c 4d"), 16)
        chs = self.add_stage("inception4e", stage(tap2_chs, "4e"), 16)
        last_pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.num_features = self.add_stage("inception5", stage(chs, "5a 5b", pool=last_pool), 32)
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate=drop_rate)
        aux = partial(AuxClassifier, num_classes=num_classes, drop_rate=aux_drop_rate, conv_layer=conv_layer)
        self.aux1 = aux(tap1_chs) if aux_logits else None
        self.aux2 = aux(tap2_chs) if aux_logits else None
        self.head_modules = ("head", "aux1", "aux2") if aux_logits else ("head",)
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


@register_model(peers=(Peer("torchvision", "googlenet", {"init_weights": False}),))  # PyTorch's fast init
def googlenet(**kwargs: Any) -> GoogLeNet:
    """GoogLeNet (torchvision's layout, aux heads on): 13,004,888 params, 6,624,904 without; 1.50 GMACs at 224.

    ``aux_logits=False`` drops the auxiliary heads (they only act in training)."""
    return GoogLeNet(**kwargs)


@register_model
def googlenet_paper(**kwargs: Any) -> GoogLeNet:
    """GoogLeNet with the paper's 5x5 "5x5" branches (Table 1): 13,385,816 params with aux heads, 1.58 GMACs.

    Otherwise as ``googlenet`` (batch norm, no LRN)."""
    return GoogLeNet(**(dict(kernel_5x5=5) | kwargs))
