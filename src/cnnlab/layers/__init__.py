"""Building blocks: one design trick per module."""

from cnnlab.layers.classifier import ClassifierHead
from cnnlab.layers.conv_bn_act import ConvBnAct, create_act, same_padding
from cnnlab.layers.preact_residual import BnActConv, PreActBasicBlock, PreActBottleneck
from cnnlab.layers.residual import BasicBlock, Bottleneck, ResidualBlock
from cnnlab.layers.shortcut import SHORTCUT_OPTIONS, ShortcutOption, ZeroPadShortcut, make_shortcut
from cnnlab.layers.squeeze_excite import SqueezeExcite
from cnnlab.layers.types import LayerFactory, pair

__all__ = [
    "SHORTCUT_OPTIONS",
    "BasicBlock",
    "BnActConv",
    "Bottleneck",
    "ClassifierHead",
    "ConvBnAct",
    "LayerFactory",
    "PreActBasicBlock",
    "PreActBottleneck",
    "ResidualBlock",
    "ShortcutOption",
    "SqueezeExcite",
    "ZeroPadShortcut",
    "create_act",
    "make_shortcut",
    "pair",
    "same_padding",
]
