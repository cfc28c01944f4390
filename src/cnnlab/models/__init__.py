"""Whole networks, one architecture family per module. Importing this package registers them all."""

from cnnlab.models import googlenet, inception, resnet
from cnnlab.models.base import CnnlabModel, FeatureInfo, LogitsWithAux, feature_shapes, init_weights

FAMILIES = (resnet, googlenet, inception)

__all__ = ["FAMILIES", "CnnlabModel", "FeatureInfo", "LogitsWithAux", "feature_shapes", "init_weights"]
