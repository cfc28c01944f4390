"""Building blocks: one design trick per module.

May import: cnnlab.errors.
"""

from cnnlab.layers.aspp import ASPP, DeepLabHead, ImagePooling
from cnnlab.layers.aux_classifier import AuxClassifier, AuxClassifierV3
from cnnlab.layers.bn_inception import BN_INCEPTION_WIDTHS, BNInception, BNInceptionWidths
from cnnlab.layers.branches import Concat, conv_chain
from cnnlab.layers.channel_shuffle import ChannelShuffle, channel_shuffle
from cnnlab.layers.classifier import ClassifierHead, make_fc
from cnnlab.layers.context_module import CONTEXT_RATES, ContextModule
from cnnlab.layers.conv_bn_act import ConvBnAct, create_act, same_padding
from cnnlab.layers.deformable import DeformConv2d
from cnnlab.layers.dense import DenseBlock, DenseLayer, Transition
from cnnlab.layers.depthwise_separable import DepthwiseSeparableConv
from cnnlab.layers.dilated import DilatedConvStack, HdcReport, Verdict, find_cycle, hdc_check
from cnnlab.layers.duc import DUC, DUCHead
from cnnlab.layers.factorized import asymmetric, expanded_asymmetric, stacked_3x3
from cnnlab.layers.fcn_head import FCNHead, make_conv_fc, upsample
from cnnlab.layers.gabor import GaborConv2d, gabor_bank
from cnnlab.layers.grid_reduction import GridReduction
from cnnlab.layers.inception_resnet import InceptionResNetBlock
from cnnlab.layers.inception_v1 import GOOGLENET_3A, InceptionV1, InceptionV1Widths
from cnnlab.layers.inception_v3 import InceptionV3A, InceptionV3B, InceptionV3C, InceptionV3Stem
from cnnlab.layers.inception_v4 import InceptionV4A, InceptionV4B, InceptionV4C, InceptionV4Stem
from cnnlab.layers.inverted_residual import InvertedResidual
from cnnlab.layers.lrn import local_response_norm
from cnnlab.layers.preact_residual import BnActConv, PreActBasicBlock, PreActBottleneck
from cnnlab.layers.residual import BasicBlock, Bottleneck, ResidualBlock
from cnnlab.layers.shortcut import SHORTCUT_OPTIONS, ShortcutOption, ZeroPadShortcut, make_shortcut
from cnnlab.layers.shuffle_unit import ShuffleV1Unit, ShuffleV2Unit
from cnnlab.layers.squeeze_excite import SqueezeExcite
from cnnlab.layers.types import LayerFactory, make_divisible, pair

__all__ = [
    "ASPP",
    "BN_INCEPTION_WIDTHS",
    "CONTEXT_RATES",
    "DUC",
    "GOOGLENET_3A",
    "SHORTCUT_OPTIONS",
    "AuxClassifier",
    "AuxClassifierV3",
    "BNInception",
    "BNInceptionWidths",
    "BasicBlock",
    "BnActConv",
    "Bottleneck",
    "ChannelShuffle",
    "ClassifierHead",
    "Concat",
    "ContextModule",
    "ConvBnAct",
    "DUCHead",
    "DeepLabHead",
    "DeformConv2d",
    "DenseBlock",
    "DenseLayer",
    "DepthwiseSeparableConv",
    "DilatedConvStack",
    "FCNHead",
    "GaborConv2d",
    "GridReduction",
    "HdcReport",
    "ImagePooling",
    "InceptionResNetBlock",
    "InceptionV1",
    "InceptionV1Widths",
    "InceptionV3A",
    "InceptionV3B",
    "InceptionV3C",
    "InceptionV3Stem",
    "InceptionV4A",
    "InceptionV4B",
    "InceptionV4C",
    "InceptionV4Stem",
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
    "asymmetric",
    "channel_shuffle",
    "conv_chain",
    "create_act",
    "expanded_asymmetric",
    "find_cycle",
    "gabor_bank",
    "hdc_check",
    "local_response_norm",
    "make_conv_fc",
    "make_divisible",
    "make_fc",
    "make_shortcut",
    "pair",
    "same_padding",
    "stacked_3x3",
    "upsample",
]
