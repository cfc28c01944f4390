"""The analyzer's report: per-layer rows and totals as dataclasses, exported as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from cnnlab.errors import AnalysisError

OutputFormat = Literal["table", "json", "csv"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("table", "json", "csv")
MACS_NOTE = (
    "MACs = multiply-accumulates = FLOPs / 2 as counted by torch.utils.flop_counter.FlopCounterMode "
    "(convolutions and matrix products; norms, activations, pooling and additions are not counted)"
)


@dataclass(frozen=True)
class LayerReport:
    """One operation: ``path`` (module path, or the owning module's path plus the function name), ``kind``
    (module type or function), output shape (with the batch), parameters, MACs, receptive field size and jump
    (height, width; ``None`` where an unsupported operation lies on the way) and activation memory in bytes."""

    path: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    trainable_params: int
    macs: int
    rf: tuple[int, int] | None
    jump: tuple[int, int] | None
    activation_bytes: int

    @property
    def rf_label(self) -> str:
        return _pair_label(self.rf)

    @property
    def jump_label(self) -> str:
        return _pair_label(self.jump)


def _pair_label(v: tuple[int, int] | None) -> str:
    if v is None:
        return "?"
    return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"


@dataclass(frozen=True)
class ModelReport:
    """What :func:`cnnlab.analyze` returns: per-layer rows and the totals of one model at one input size.

    ``receptive_field`` and ``jump`` are those of the last spatial feature map (before a global pooling), or
    of the output units when the model returns a map (a dense prediction, such as segmentation);
    ``depth`` counts the layers with weights on the longest path (50 for ResNet-50, as the paper counts);
    ``macs_by_op`` is what the flop counter counted, by aten op; ``unsupported`` names every operation whose
    effect on the receptive field is unknown and where it occurs.
    """

    model: str
    input_size: tuple[int, int, int]
    layers: list[LayerReport]
    params: int
    trainable_params: int
    macs: int
    activation_bytes: int
    receptive_field: tuple[int, int] | None
    jump: tuple[int, int] | None
    depth: int
    macs_by_op: dict[str, int]
    unsupported: dict[str, list[str]] = field(default_factory=dict)
    macs_note: str = MACS_NOTE
    auxiliary: list[LayerReport] = field(default_factory=list)  # modules the eval graph never runs (aux heads)
    taps: dict[str, list[str]] = field(default_factory=dict)  # auxiliary path -> modules whose output it reads
    module_kinds: dict[str, str] = field(default_factory=dict, repr=False)  # module path -> class name
    dense_output: bool = False  # the model returns a map: the field is its output pixels'

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def rf_label(self) -> str:
        return _pair_label(self.receptive_field)

    def layer(self, path: str) -> LayerReport:
        """The row of module ``path`` (exact match), for example ``"layer4.2.conv3.conv"``."""
        for row in self.layers:
            if row.path == path:
                return row
        raise AnalysisError(f"no layer {path!r} in the report of {self.model}")

    @property
    def rf_exceeds_input(self) -> bool:
        """True when the receptive field is wider than the input (ResNet-50's 427 at 224)."""
        rf = self.receptive_field
        return rf is not None and (rf[0] > self.input_size[1] or rf[1] > self.input_size[2])

    def grouped(self, depth: int | None = None) -> list[LayerReport]:
        """Rows merged to module paths of at most ``depth`` components (None: every operation), each named by
        its module's class (``Bottleneck``, ``InceptionV1``): parameters, MACs and activation memory summed; the
        shape, field and jump of the group's last operation. The :attr:`auxiliary` modules (the training-only
        heads, outside the eval graph) follow as rows of their own."""
        if depth is None:
            return [*self.layers, *self.auxiliary]
        groups: dict[str, list[LayerReport]] = {}
        for row in self.layers:
            groups.setdefault(group_path(row.path, depth), []).append(row)
        return [self.merged(path, rows) for path, rows in groups.items()] + list(self.auxiliary)

    def merged(self, path: str, rows: Sequence[LayerReport]) -> LayerReport:
        """One row for the operations ``rows`` of the module at ``path``: sums, and the last one's shape and field."""
        last = rows[-1]
        return LayerReport(
            path=path,
            kind=rows[0].kind if len(rows) == 1 else self.module_kinds.get(path, "group"),
            output_shape=last.output_shape,
            params=sum(r.params for r in rows),
            trainable_params=sum(r.trainable_params for r in rows),
            macs=sum(r.macs for r in rows),
            rf=last.rf,
            jump=last.jump,
            activation_bytes=sum(r.activation_bytes for r in rows),
        )

    # -- export -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["module_kinds"]
        return d

    def to_json(self, *, depth: int | None = None, indent: int | None = 2) -> str:
        d = self.to_dict()
        d["layers"] = [asdict(r) for r in self.grouped(depth)]
        d["gmacs"] = self.gmacs
        return json.dumps(d, indent=indent)

    def to_csv(self, *, depth: int | None = None) -> str:
        return rows_to_csv([_row_dict(r) for r in self.grouped(depth)])

    def table(self, *, depth: int | None = None) -> str:
        rows = [
            [
                r.path,
                r.kind,
                shape_label(r.output_shape),
                r.params,
                r.macs,
                r.rf_label,
                r.jump_label,
                r.activation_bytes / 2**20,
            ]
            for r in self.grouped(depth)
        ]
        headers = ["layer", "type", "output", "params", "MACs", "RF", "jump", "act MiB"]
        lines = [format_table(rows, headers), "", *self.totals_lines()]
        return "\n".join(lines)

    @property
    def rf_of(self) -> str:
        """Whose receptive field :attr:`receptive_field` is."""
        return "output pixels" if self.dense_output else "last feature map"

    def totals_lines(self) -> list[str]:
        ops = ", ".join(f"{op} {m:,}" for op, m in self.macs_by_op.items()) or "none"
        lines = [
            f"model             {self.model}  input {'x'.join(map(str, self.input_size))}",
            f"params            {self.params:,} ({self.trainable_params:,} trainable)",
            f"MACs              {self.macs:,} ({format_macs(self.macs)})",
            f"receptive field   {self.rf_label} px, jump {_pair_label(self.jump)} ({self.rf_of})",
            f"depth             {self.depth} layers with weights on the longest path",
            f"activations       {self.activation_bytes / 2**20:.2f} MiB (outputs of every operation, batch 1)",
            f"counted ops       {ops}",
            f"note              {self.macs_note}",
        ]
        if self.rf_exceeds_input:
            lines.insert(4, f"                  {self.rf_note()}")
        if self.auxiliary:
            names = ", ".join(r.path for r in self.auxiliary)
            lines.append(f"auxiliary         {names}: run in training only; their params are in the total")
        for op, paths in self.unsupported.items():
            lines.append(f"unsupported       {op!r} at {', '.join(paths[:3])}{' ...' if len(paths) > 3 else ''}")
        return lines

    def rf_note(self) -> str:
        """Why a receptive field can be wider than the image."""
        return (
            f"wider than the {self.input_size[1]}x{self.input_size[2]} input: the field counts every position a "
            "unit's windows span, the zero padding outside the image included"
        )

    def render(self, fmt: OutputFormat, *, depth: int | None = None) -> str:
        """The report as ``table``, ``json`` or ``csv``."""
        return {"table": self.table, "json": self.to_json, "csv": self.to_csv}[fmt](depth=depth)


def group_path(path: str, depth: int) -> str:
    """``path`` cut to its first ``depth`` components: ``group_path("layer3.2.conv1.conv", 2) == "layer3.2"``."""
    return ".".join(path.split(".")[: max(depth, 1)])


def shape_label(shape: Sequence[int]) -> str:
    """An output shape without the batch: ``(1, 256, 56, 56)`` -> ``"256x56x56"`` (``"-"`` for none)."""
    return "x".join(map(str, shape[1:])) or "-"


def format_macs(macs: float) -> str:
    """The one way cnnlab prints a MAC count: GMACs from a billion, MMACs below (LeNet-5's 0.416 MMACs, not
    0.000 GMACs), three decimals."""
    if macs == 0:
        return "0 MACs"
    return f"{macs / 1e9:.3f} GMACs" if macs >= 1e9 else f"{macs / 1e6:.3f} MMACs"


def format_count(n: float) -> str:
    """A count in a few characters: ``25557032`` -> ``"25.56M"``, ``75008`` -> ``"75.0K"``, ``64`` -> ``"64"``."""
    if abs(n) >= 1e6:
        return f"{n / 1e6:.2f}M"
    return f"{n / 1e3:.1f}K" if abs(n) >= 1e3 else f"{n:g}"


def _row_dict(r: LayerReport) -> dict[str, Any]:
    d = asdict(r)
    d["output_shape"] = "x".join(map(str, r.output_shape))
    d["rf"], d["jump"] = r.rf_label, r.jump_label
    return d


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Dicts with the same keys as CSV text with a header line."""
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def format_table(
    rows: Sequence[Sequence[Any]], headers: Sequence[str], *, right_aligned: Sequence[bool] | None = None
) -> str:
    """An aligned text table: numbers right-aligned with thousands separators, text left-aligned.
    ``right_aligned`` names the right-aligned columns instead, for rows of preformatted strings."""

    def cell(v: Any) -> str:
        if isinstance(v, bool) or v is None:
            return "" if v is None else str(v)
        if isinstance(v, int):
            return f"{v:,}"
        if isinstance(v, float):
            return f"{v:,.3f}"
        return str(v)

    text = [[cell(v) for v in row] for row in rows]
    numeric = right_aligned or [
        all(isinstance(r[i], int | float) and not isinstance(r[i], bool) for r in rows) for i in range(len(headers))
    ]
    widths = [max([len(h)] + [len(r[i]) for r in text]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in text)])
