"""Whole networks, one architecture family per module. Importing this package registers them all.

May import: cnnlab.data (normalisation statistics), cnnlab.errors, cnnlab.layers, cnnlab.registry,
cnnlab.weights (weight key maps).
"""

from cnnlab.models import (
    classic,
    densenet,
    googlenet,
    inception,
    mobilenet,
    resnet,
    segmentation,
    shufflenet,
    xception,
)
from cnnlab.models.base import CnnlabModel, FeatureInfo, LogitsWithAux, init_weights
from cnnlab.models.features import FeatureList, FeatureListNet, feature_shapes

FAMILIES = (resnet, googlenet, inception, xception, classic, densenet, mobilenet, shufflenet, segmentation)

__all__ = [
    "FAMILIES",
    "CnnlabModel",
    "FeatureInfo",
    "FeatureList",
    "FeatureListNet",
    "LogitsWithAux",
    "feature_shapes",
    "init_weights",
]
