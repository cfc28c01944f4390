"""Building blocks: one design trick per module."""

from cnnlab.layers.channel_shuffle import ChannelShuffle, channel_shuffle
from cnnlab.layers.classifier import ClassifierHead
from cnnlab.layers.conv_bn_act import ConvBnAct, create_act, same_padding
from cnnlab.layers.deformable import DeformConv2d
from cnnlab.layers.dense import DenseBlock, DenseLayer, Transition
from cnnlab.layers.depthwise_separable import DepthwiseSeparableConv
from cnnlab.layers.dilated import DilatedConvStack, HdcReport, Verdict, hdc_check
from cnnlab.layers.inverted_residual import InvertedResidual
from cnnlab.layers.preact_residual import BnActConv, PreActBasicBlock, PreActBottleneck
from cnnlab.layers.residual import BasicBlock, Bottleneck, ResidualBlock
from cnnlab.layers.shortcut import SHORTCUT_OPTIONS, ShortcutOption, ZeroPadShortcut, make_shortcut
from cnnlab.layers.shuffle_unit import ShuffleV1Unit, ShuffleV2Unit
from cnnlab.layers.squeeze_excite import SqueezeExcite
from cnnlab.layers.types import LayerFactory, make_divisible, pair

__all__ = [
    "SHORTCUT_OPTIONS",
    "BasicBlock",
    "BnActConv",
    "Bottleneck",
    "ChannelShuffle",
    "ClassifierHead",
    "ConvBnAct",
    "DeformConv2d",
    "DenseBlock",
    "DenseLayer",
    "DepthwiseSeparableConv",
    "DilatedConvStack",
    "HdcReport",
    "InvertedResidual",
    "LayerFactory",
    "PreActBasicBlock",
    "PreActBottleneck",
    "ResidualBlock",
    "ShortcutOption",
    "ShuffleV1Unit",
    "ShuffleV2Unit",
    "SqueezeExcite",
    "Transition",
    "Verdict",
    "ZeroPadShortcut",
    "channel_shuffle",
    "create_act",
    "hdc_check",
    "make_divisible",
    "make_shortcut",
    "pair",
    "same_padding",
]
