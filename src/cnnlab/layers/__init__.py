"""Building blocks: one design trick per module."""

from cnnlab.layers.classifier import ClassifierHead
from cnnlab.layers.conv_bn_act import ConvBnAct, create_act, same_padding
from cnnlab.layers.preact_residual import BnActConv, PreActBasicBlock, PreActBottleneck
from cnnlab.layers.residual import BasicBlock, Bottleneck, ResidualBlock
from cnnlab.layers.shortcut import SHORTCUT_OPTIONS, ShortcutOption, ZeroPadShortcut, make_shortcut
from cnnlab.layers.squeeze_excite import SqueezeExcite
from cnnlab.layers.types import LayerFactory, pair
from cnnlab.layers.channel_shuffle import ChannelShuffle, channel_shuffle
from cnnlab.layers.deformable import DeformConv2d
from cnnlab.layers.dense import DenseBlock, DenseLayer, Transition
from cnnlab.layers.depthwise_separable import DepthwiseSeparableConv
from cnnlab.layers.dilated import DilatedConvStack, HdcReport, Verdict, hdc_check
from cnnlab.layers.inverted_residual import InvertedResidual
from cnnlab.layers.shuffle_unit import ShuffleV1Unit, ShuffleV2Unit
from cnnlab.layers.types import make_divisible

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
    "ChannelShuffle",
    "DeformConv2d",
    "DenseBlock",
    "DenseLayer",
    "DepthwiseSeparableConv",
    "DilatedConvStack",
    "HdcReport",
    "InvertedResidual",
    "ShuffleV1Unit",
    "ShuffleV2Unit",
    "Transition",
    "Verdict",
    "channel_shuffle",
    "hdc_check",
    "make_divisible",
]
