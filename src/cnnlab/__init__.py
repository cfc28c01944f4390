"""cnnlab: the classic ideas of convolutional network design, executable, measurable and reproducible.

>>> import cnnlab
>>> model = cnnlab.create_model("cifar_resnet20", num_classes=10)
>>> cnnlab.list_models("resnet*")[:2]
['resnet101', 'resnet152']
"""

from cnnlab import models as models  # registers every family
from cnnlab.analysis import analyze
from cnnlab.errors import (
    CnnlabError,
    CnnlabWarning,
    InputShapeError,
    ModelArgumentError,
    RegistryError,
    UnknownModelError,
    WeightsError,
)
from cnnlab.inference import fold_conv_bn, optimize_for_inference
from cnnlab.models.base import CnnlabModel, FeatureInfo, LogitsWithAux
from cnnlab.models.features import FeatureListNet
from cnnlab.registry import Peer, create_model, list_models, model_entries, model_entry, register_model
from cnnlab.weights import LoadReport, load_pretrained

__version__ = "0.1.0"

__all__ = [
    "CnnlabError",
    "CnnlabModel",
    "CnnlabWarning",
    "FeatureInfo",
    "FeatureListNet",
    "InputShapeError",
    "LoadReport",
    "LogitsWithAux",
    "ModelArgumentError",
    "Peer",
    "RegistryError",
    "UnknownModelError",
    "WeightsError",
    "__version__",
    "analyze",
    "create_model",
    "fold_conv_bn",
    "list_models",
    "load_pretrained",
    "model_entries",
    "model_entry",
    "optimize_for_inference",
    "register_model",
]
