"""cnnlab: the classic ideas of convolutional network design, executable, measurable and reproducible.

>>> import cnnlab
>>> model = cnnlab.create_model("cifar_resnet20", num_classes=10)
>>> cnnlab.list_models("resnet*")[:2]
['resnet101', 'resnet152']

The layering: each package and top-level module imports only from those to its left (a test reads every
``May import:`` line below and in each module's docstring, and checks the imports of the source against it)::

    errors <- data, layers, machine, plotting <- registry <- weights <- models <- optimize
           <- analysis, train <- experiments, bench, pages <- cli

``registry`` sits below ``models`` because every family registers its builders into it when ``cnnlab.models``
is imported (as this package does first), and ``build_model`` turns named layers (``cnnlab.layers.named``)
into classes there. This package itself gathers the public API from below ``cli``.

May import: cnnlab.analysis, cnnlab.errors, cnnlab.models, cnnlab.optimize, cnnlab.registry, cnnlab.weights.
"""

from cnnlab import models as models  # registers every family
from cnnlab.analysis import analyze, diagram
from cnnlab.errors import (
    CnnlabError,
    CnnlabWarning,
    InputShapeError,
    ModelArgumentError,
    RegistryError,
    UnknownModelError,
    WeightsError,
)
from cnnlab.models.base import CnnlabModel, FeatureInfo, LogitsWithAux
from cnnlab.models.features import FeatureListNet
from cnnlab.optimize import fold_conv_bn, optimize_for_inference
from cnnlab.registry import (
    Peer,
    build_model,
    create_model,
    list_models,
    model_entries,
    model_entry,
    register_model,
)
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
    "build_model",
    "create_model",
    "diagram",
    "fold_conv_bn",
    "list_models",
    "load_pretrained",
    "model_entries",
    "model_entry",
    "optimize_for_inference",
    "register_model",
]
