"""The analyzer: per-layer shapes, parameters, MACs and receptive fields, and the arithmetic behind each trick.

One concern per module: :mod:`.receptive_field` (the arithmetic), :mod:`.flops` (the FLOP counter), :mod:`.graph`
(the torch.fx walk), :mod:`.report` (dataclasses, JSON/CSV/table), :mod:`.analyze` (``analyze``), :mod:`.erf`
(effective receptive field), :mod:`.gridding` (dilation maps), :mod:`.tricks` (the design-trick report),
:mod:`.cam` (Grad-CAM: why a classifier decided), :mod:`.sampling` (where a deformable stack samples),
:mod:`.latency` (CPU timing), :mod:`.plots` (PNG figures, matplotlib imported on use), :mod:`.auxiliary` (the
modules outside the eval graph: auxiliary heads), and the drawing of a network: :mod:`.diagram` (blocks and arrows
from the graph), :mod:`.layout` (grandalf's layered layout) and :mod:`.scene` (SVG by hand, PNG by matplotlib).

May import: cnnlab.errors, cnnlab.layers, cnnlab.models, cnnlab.plotting, cnnlab.registry.
"""

from cnnlab.analysis.analyze import analyze, count_macs, meta_copy, parse_input_size
from cnnlab.analysis.cam import GradCam, gradcam
from cnnlab.analysis.diagram import Diagram, diagram
from cnnlab.analysis.receptive_field import Field, merge, stack_field
from cnnlab.analysis.report import MACS_NOTE, LayerReport, ModelReport
from cnnlab.analysis.sampling import Sampling, sampling_points

__all__ = [
    "MACS_NOTE",
    "Diagram",
    "Field",
    "GradCam",
    "LayerReport",
    "ModelReport",
    "Sampling",
    "analyze",
    "count_macs",
    "diagram",
    "gradcam",
    "merge",
    "meta_copy",
    "parse_input_size",
    "sampling_points",
    "stack_field",
]
