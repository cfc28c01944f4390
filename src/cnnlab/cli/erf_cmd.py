"""``cnnlab erf MODEL``: the effective receptive field of a model's last feature map, as numbers and a heat map."""

from __future__ import annotations

import argparse
import json

import numpy as np

from cnnlab.analysis import parse_input_size
from cnnlab.analysis.erf import EffectiveField, effective_receptive_field
from cnnlab.cli.common import add_model_kwargs_arg, add_output_args, build_model, nonnegative_int, positive_int

SHADES = " .:-=+*#%@"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("erf", help="effective receptive field: input gradient of one output unit, averaged")
    p.add_argument("model")
    p.add_argument("--input", default=None, help="CxHxW (default: the model's own)")
    p.add_argument("--samples", type=positive_int, default=8, help="random inputs to average over (default: 8)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--save", default=None, metavar="NPY", help="save the H x W array with numpy.save")
    add_model_kwargs_arg(p)
    add_output_args(p, plot_default="erf.png")
    p.set_defaults(func=run_erf)


def text_map(grad: np.ndarray, width: int = 48) -> str:
    """A coarse text heat map of ``grad`` (values in [0, 1]), at most ``width`` columns."""
    step = max(1, int(np.ceil(grad.shape[1] / width)))
    h, w = grad.shape[0] // step * step, grad.shape[1] // step * step
    coarse = grad[:h, :w].reshape(h // step, step, w // step, step).max(axis=(1, 3))
    return "\n".join("".join(SHADES[min(len(SHADES) - 1, int(v * len(SHADES)))] for v in row) for row in coarse)


def _summary(erf: EffectiveField) -> dict[str, object]:
    th = erf.theoretical
    return {
        "theoretical_rf": None if th is None else list(th),
        "effective_side_95": erf.effective_side(0.95),
        "share_within_theoretical": None if th is None else round(erf.mass_within(th[0]), 4),
        "samples": erf.samples,
    }


def run_erf(args: argparse.Namespace) -> int:
    model = build_model(args.model, args.model_kwargs)
    size = parse_input_size(args.input) if args.input is not None else None
    erf = effective_receptive_field(model, size, samples=args.samples, seed=args.seed)
    summary = _summary(erf)
    if args.format == "json":
        print(json.dumps(summary | {"grad": np.round(erf.grad, 5).tolist()}))
    elif args.format == "csv":
        print("\n".join(",".join(f"{v:.5g}" for v in row) for row in erf.grad))
    else:
        print(text_map(erf.grad))
        print(f"\n{args.model}: theoretical receptive field {summary['theoretical_rf']}, 95% of the gradient within "
              f"{summary['effective_side_95']} px, {summary['samples']} random inputs")  # fmt: skip
    if args.save:
        np.save(args.save, erf.grad)
        print(f"wrote {args.save}")
    if args.plot:
        from cnnlab.analysis.plots import plot_erf

        print(f"wrote {plot_erf(erf, args.plot, title=f'{args.model}: effective receptive field')}")
    return 0
