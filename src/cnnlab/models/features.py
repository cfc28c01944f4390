"""Feature maps instead of logits: ``create_model(name, features_only=True, out_indices=...)``.

timm's contract: the features model's ``forward`` returns a list with the feature map of each selected stage
of ``feature_info`` (in the order of the stages), and its ``feature_info`` describes exactly those maps. The
default selection is every stage. Indices count from 0 (the first stage, usually the stem) and may be
negative, as in Python.

One implementation serves every family, Inception and GoogLeNet included, whose stages are not a plain
sequence: the model's ``forward_features`` is traced with ``torch.fx``, each stage module kept whole as one
node, and the graph is cut to return the selected stages' outputs. What no selected map depends on is pruned:
the classifier and auxiliary heads (``forward_features`` never calls them) and every stage after the last
selected one, which are then neither run nor held.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, fx, nn

from cnnlab.errors import ModelArgumentError
from cnnlab.models.shapes import FeatureInfo, check_input

Index = int | Sequence[int] | None
"""Which entries an accessor of :class:`FeatureList` reads: all (``None``), one (an index) or several."""


class FeatureList(list[FeatureInfo]):
    """A list of :class:`~cnnlab.models.shapes.FeatureInfo` with the accessors of timm's ``feature_info``:
    ``channels()``, ``reduction()`` and ``module_name()`` give that column of every entry as a list; with
    ``idx`` an index, of that entry alone; with a sequence of indices, of those entries as a list."""

    def _column(self, field: str, idx: Index) -> Any:
        if idx is None:
            return [getattr(f, field) for f in self]
        if isinstance(idx, int):
            return getattr(self[idx], field)
        return [getattr(self[i], field) for i in idx]

    def channels(self, idx: Index = None) -> list[int] | int:
        return self._column("num_chs", idx)

    def reduction(self, idx: Index = None) -> list[int] | int:
        return self._column("reduction", idx)

    def module_name(self, idx: Index = None) -> list[str] | str:
        return self._column("module", idx)


def select_stages(model: nn.Module, out_indices: Sequence[int] | None) -> FeatureList:
    """The ``feature_info`` entries that ``out_indices`` selects (all for ``None``), in stage order; a
    ModelArgumentError for an index out of range, a repeated stage or something that is not an index."""
    stages = model.feature_info
    if out_indices is None:
        return FeatureList(stages)
    n = len(stages)
    valid = f"{model.model_name} has {n} stages, valid indices 0..{n - 1} or -{n}..-1: " + ", ".join(
        f"{i} {f.module}" for i, f in enumerate(stages)
    )
    if isinstance(out_indices, str | int) or not isinstance(out_indices, Sequence) or not out_indices:
        raise ModelArgumentError(f"out_indices must be a non-empty sequence of stage indices, got {out_indices!r}")
    picked: list[int] = []
    for i in out_indices:
        if isinstance(i, bool) or not isinstance(i, int):
            raise ModelArgumentError(f"out_indices: {i!r} is not a stage index; {valid}")
        if not -n <= i < n:
            raise ModelArgumentError(f"out_indices: {i} is out of range; {valid}")
        if i % n in picked:
            raise ModelArgumentError(f"out_indices {tuple(out_indices)} selects stage {i % n} twice; {valid}")
        picked.append(i % n)
    return FeatureList(stages[i] for i in sorted(picked))


class _StageTracer(fx.Tracer):
    """Traces ``forward_features`` and keeps each stage module (and each module that holds no stage) as one node."""

    traced_func_name = "forward_features"

    def __init__(self, stages: Sequence[str]) -> None:
        super().__init__()
        self.stages = set(stages)

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        name = module_qualified_name
        return name in self.stages or not any(s.startswith(f"{name}.") for s in self.stages)


def stage_graph(model: nn.Module, stages: Sequence[str]) -> fx.Graph:
    """The graph of ``model.forward_features`` cut to return the list of the outputs of the ``stages`` modules,
    without the nodes that they do not depend on."""
    try:
        graph = _StageTracer(stages).trace(model)
    except Exception as e:
        raise ModelArgumentError(
            f"{model.model_name}: features_only needs a forward_features that torch.fx traces ({type(e).__name__}: {e})"
        ) from e
    calls: dict[str, list[fx.Node]] = {s: [] for s in stages}
    for node in graph.nodes:
        if node.op == "call_module" and node.target in calls:
            calls[node.target].append(node)
    wrong = {s: len(nodes) for s, nodes in calls.items() if len(nodes) != 1}
    if wrong:
        raise ModelArgumentError(
            f"{model.model_name}.forward_features must call each stage module once; calls per stage: {wrong}"
        )
    graph.erase_node(next(n for n in graph.nodes if n.op == "output"))
    graph.output([calls[s][0] for s in stages])
    graph.owning_module = model  # eliminate_dead_code asks the modules whether they are pure
    graph.eliminate_dead_code()
    graph.owning_module = None  # the graph must not keep the whole model (head included) alive
    return graph


class FeatureListNet(nn.Module):
    """The stages of ``model`` up to the last one that ``out_indices`` selects; ``forward`` returns their
    feature maps as a list, described by ``feature_info`` (a :class:`FeatureList`). ``forward`` runs the cut
    graph of :func:`stage_graph` on the held modules (``torch.fx.Interpreter``), so it works in training and
    eval mode, under ``torch.no_grad`` and on any device, and ``torch.fx`` traces it.

    ``model`` is a :class:`~cnnlab.models.base.CnnlabModel`; what is used of it: ``feature_info``,
    ``model_name``, ``in_chans``, ``min_input_size`` and ``forward_features``.

    The features model holds the model's own modules under their names in the model (its ``state_dict`` is the
    model's without the head and the unused stages) and shares them: to extract features with trained
    weights, load them into the model first (:func:`cnnlab.load_pretrained`), then wrap it. Inputs are
    checked as by the model (:class:`~cnnlab.errors.InputShapeError`).
    """

    def __init__(self, model: nn.Module, out_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        self.feature_info = select_stages(model, out_indices)
        self.model_name, self.in_chans, self.min_input_size = model.model_name, model.in_chans, model.min_input_size
        self.graph = stage_graph(model, self.feature_info.module_name())
        used = {str(n.target).split(".")[0] for n in self.graph.nodes if n.op in ("call_module", "get_attr")}
        for name, module in model.named_children():
            if name in used:
                self.add_module(name, module)
        self.register_forward_pre_hook(check_input)

    def forward(self, x: Tensor) -> list[Tensor]:
        return fx.Interpreter(self, graph=self.graph).run(x)


@torch.no_grad()
def feature_shapes(model: nn.Module, x: Tensor) -> dict[str, torch.Size]:
    """The real output shape of each ``feature_info`` module for input ``x`` (one pass, no head)."""
    return {f.module: fmap.shape for f, fmap in zip(model.feature_info, FeatureListNet(model)(x), strict=True)}
