"""Whole networks, one architecture family per module. Importing this package registers them all.

May import: cnnlab.data (normalisation statistics), cnnlab.errors, cnnlab.layers, cnnlab.registry,
cnnlab.weights (weight key maps).
"""

from cnnlab.models import classic, densenet, googlenet, inception, mobilenet, resnet, shufflenet
from cnnlab.models.base import CnnlabModel, FeatureInfo, LogitsWithAux, feature_shapes, init_weights

FAMILIES = (resnet, googlenet, inception, classic, densenet, mobilenet, shufflenet)

__all__ = ["FAMILIES", "CnnlabModel", "FeatureInfo", "LogitsWithAux", "feature_shapes", "init_weights"]
