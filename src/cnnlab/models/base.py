"""The model contract that every registered cnnlab model keeps, and that the analyzer and trainer rely on.

* ``in_chans >= 1`` and ``num_classes >= 0`` are honoured.
* ``forward(x) == forward_head(forward_features(x))``; ``forward_features`` returns ``num_features`` channels;
  ``forward_head(x, pre_logits=True)`` stops before the classifier and returns ``head_hidden_size`` features
  (``num_features``, pooled, or the width of the head's hidden layers where it has some: AlexNet's and VGG's
  fc7). ``num_classes=0``, or ``reset_classifier(0)``, leaves out the classifier alone, so that ``forward``
  returns those same pre-logits, as in timm; ``reset_classifier(n)`` puts a fresh one back.
* ``feature_info`` lists the stages from input to output: the module whose output is the stage's feature
  map, its channels and its reduction: the product of the strides before that output (timm's "reduction",
  the output stride), which is the input size over the feature size where every layer pads, and otherwise
  the pixels of input per pixel of map as the input grows. The stage modules together with
  ``head_modules`` hold every parameter, so the trainer can freeze "the first N stages" by name.
* ``create_model(name, features_only=True, out_indices=(0, -1))`` gives instead the stages' feature maps: a
  :class:`~cnnlab.models.features.FeatureListNet` whose ``forward`` returns the list of the maps of the
  selected stages (indices into ``feature_info``, negative ones from the end; default all) and whose
  ``feature_info`` describes exactly those maps. It holds no head, and no stage after the last selected one.
* A model with auxiliary classifiers returns :class:`LogitsWithAux` in training mode (and plain logits in
  eval mode); training code adds ``aux_loss_weight`` times each auxiliary loss.
* A dense-prediction model (``dense_output = True``: the segmentation family) returns logits per pixel,
  N x num_classes x H x W at the input's size, and ``forward_head`` returns them at the feature map's
  resolution (see :mod:`cnnlab.models.segmentation` for what else departs).
* An input that is not a floating-point tensor, or has the wrong rank, channels or size, raises
  :class:`~cnnlab.errors.InputShapeError` before any layer runs. The check is a forward pre-hook, so
  ``forward`` stays straight-line and ``torch.fx`` traces it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from cnnlab.errors import check_count
from cnnlab.layers.branches import output_channels
from cnnlab.layers.context_module import ContextModule
from cnnlab.layers.deformable import DeformConv2d
from cnnlab.models.features import FeatureListNet
from cnnlab.models.shapes import FeatureInfo, check_input
from cnnlab.weights import KeyMap


class LogitsWithAux(NamedTuple):
    """What a model with auxiliary classifiers (GoogLeNet, Inception-v3) returns in training mode."""

    logits: Tensor
    aux: tuple[Tensor, ...]


class CnnlabModel(nn.Module):
    """Base class of every registered model: the contract above, shared once.

    Subclasses call ``super().__init__(in_chans=..., num_classes=...)``, add their stages with
    :meth:`add_stage` (which fills ``feature_info``), build ``self.head`` (a
    :class:`~cnnlab.layers.ClassifierHead` or anything with ``forward(x, pre_logits)`` and ``reset(n)``, and a
    ``hidden_size`` where its pre-logits are not its input features), set ``num_features`` and implement
    ``forward_features``.
    """

    default_image_size: ClassVar[int] = 224
    """The input height and width of the paper (and the analyzer's default)."""
    min_input_size: ClassVar[int] = 1
    """The smallest height and width the network can take."""
    head_modules: ClassVar[tuple[str, ...]] = ("head",)
    """Modules outside the stages: classifiers, trained even when every stage is frozen."""
    dense_output: ClassVar[bool] = False
    """True where ``forward`` returns a map of logits (N x num_classes x H x W) rather than one row per image."""
    aux_loss_weight: ClassVar[float] = 0.3
    """Weight of each auxiliary classifier's loss, for models that return :class:`LogitsWithAux` in training
    (GoogLeNet, Sec. 6: "their loss was added to the total loss with a discount weight (0.3)")."""
    weight_key_maps: ClassVar[dict[str, KeyMap]] = {}
    """How other libraries name this architecture's weights (see :func:`cnnlab.load_pretrained`)."""

    head: nn.Module
    num_features: int
    feature_info: list[FeatureInfo]

    def __init__(self, *, in_chans: int, num_classes: int) -> None:
        super().__init__()
        self.in_chans = check_count("in_chans", in_chans, minimum=1)
        self.num_classes = check_count("num_classes", num_classes, minimum=0)
        self.model_name = type(self).__name__
        self.feature_info = []
        self.register_forward_pre_hook(check_input)

    @property
    def default_input_size(self) -> tuple[int, int, int]:
        """``(in_chans, H, W)`` at the paper's resolution."""
        return self.in_chans, self.default_image_size, self.default_image_size

    @property
    def head_hidden_size(self) -> int:
        """The width of ``forward_head(x, pre_logits=True)``, and of ``forward`` without a classifier: the
        head's ``hidden_size`` where it has hidden layers (AlexNet's and VGG's fc7), else ``num_features``."""
        return getattr(self.head, "hidden_size", self.num_features)

    def add_stage(self, name: str, module: nn.Module, reduction: int) -> int:
        """Add ``module`` as the next stage, at 1/``reduction`` of the input size, and describe it in
        ``feature_info``; returns its output channels, derived from its layers
        (:func:`~cnnlab.layers.branches.output_channels` on the previous stage's channels, or ``in_chans``)."""
        in_chs = self.feature_info[-1].num_chs if self.feature_info else self.in_chans
        self.add_module(name, module)
        self.feature_info.append(FeatureInfo(name, output_channels(module, in_chs), reduction))
        return self.feature_info[-1].num_chs

    def stage_names(self) -> list[str]:
        """Stage module names from input to output (what ``--freeze N`` counts)."""
        return [f.module for f in self.feature_info]

    def forward_features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialised classifier with ``num_classes`` outputs (0: the head returns features)."""
        self.head.reset(check_count("num_classes", num_classes, minimum=0))
        self.num_classes = num_classes

    def as_features(self, out_indices: Sequence[int] | None = None) -> nn.Module:
        """This model's stages as a :class:`~cnnlab.models.features.FeatureListNet` (what
        ``create_model(name, features_only=True, out_indices=...)`` returns): the feature maps of the stages
        ``out_indices`` selects, without the head."""
        return FeatureListNet(self, out_indices)


def init_weights(model: nn.Module) -> None:
    """He (Kaiming) normal init for convs, fan-out mode (He et al. 2015, "Delving Deep into Rectifiers");
    norms start as the identity (weight 1, bias 0); linear layers keep PyTorch's default. A deformable conv's
    offset (and mask) convs are zeroed again afterwards, so that it starts as the plain conv (Dai et al. 2017),
    and a context module built with its identity initialisation gets it back (Yu & Koltun 2016)."""
    if any(p.is_meta for p in model.parameters()):
        return  # built on the meta device (structure and counts only): there are no values to initialise
    for m in model.modules():
        if isinstance(m, nn.Conv2d | DeformConv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in model.modules():
        if isinstance(m, DeformConv2d):
            m.zero_offsets()
        elif isinstance(m, ContextModule) and m.identity_init:
            m.init_identity()


@torch.no_grad()
def calibrate_norms(model: nn.Module, x: Tensor) -> nn.Module:
    """Set every BatchNorm's running statistics to those of the batch ``x`` and switch to eval mode.

    An untrained network in eval mode with the initial statistics (mean 0, var 1) has activations of an
    unrealistic scale (ResNet-1202 doubles their variance at every block and overflows); one batch's statistics
    keep them at the scale a trained network has, for benchmarks and comparisons of eval outputs.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: after one batch, exactly that batch's statistics
    model.train()(x)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return model.eval()


def run_input_checks(module: nn.Module, x: Tensor) -> None:
    """Run ``module``'s forward pre-hooks on ``x`` by hand (a :class:`CnnlabModel`'s input check), for the
    callers that do not call the module itself: a compiled graph, which lacks the hooks, and the analyzer,
    which checks a size before tracing."""
    for hook in module._forward_pre_hooks.values():
        hook(module, (x,))
