"""Training, evaluation and transfer learning for cnnlab models.

>>> from cnnlab.train import TrainConfig, fit
>>> result = fit(TrainConfig(epochs=1))  # doctest: +SKIP
>>> result.final.val_acc, result.test["best"].test_acc, result.run_dir  # doctest: +SKIP

``fit`` is what ``cnnlab train`` runs; :class:`Callback` hooks into it (per step, after backward, with the
gradients in place; per epoch), and :func:`block_grad_norms` reads the gradient norm of each stage.

May import: cnnlab.data, cnnlab.errors, cnnlab.layers, cnnlab.machine (a device's memory), cnnlab.models,
cnnlab.optimize (export folds batch norms), cnnlab.plotting, cnnlab.registry, cnnlab.weights.
"""

from cnnlab.train.config import TrainConfig, config_from_dict, load_yaml
from cnnlab.train.engine import Callback, StepInfo, block_grad_norms
from cnnlab.train.runlog import EpochMetrics
from cnnlab.train.trainer import RunResult, TestResult, fit

__all__ = [
    "Callback",
    "EpochMetrics",
    "RunResult",
    "StepInfo",
    "TestResult",
    "TrainConfig",
    "block_grad_norms",
    "config_from_dict",
    "fit",
    "load_yaml",
]
