"""``cnnlab compare MODEL MODEL ...``: params, MACs, depth, receptive field and CPU latency side by side.

The models are timed in turns (one forward pass of each per round); each one's latency is the median of its runs,
shown with their range, and a range wider than :data:`~cnnlab.analysis.latency.WIDE_SPREAD` is warned about: the
machine was busy and the figures say more about its load than about the models.
"""

from __future__ import annotations

import argparse
import json
import sys

from cnnlab.analysis import analyze, parse_input_size
from cnnlab.analysis.latency import WIDE_SPREAD, measure_latencies
from cnnlab.analysis.report import format_macs, format_table, rows_to_csv
from cnnlab.cli.common import add_model_kwargs_arg, add_output_args, build_model, meta_model, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="params, MACs, depth, receptive field and CPU latency side by side")
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--input", default=None, help="CxHxW for every model (default: each model's own)")
    p.add_argument("--runs", type=positive_int, default=5, help="timed forward passes per model (default: 5)")
    p.add_argument("--no-latency", action="store_true", help="skip the CPU timing (it builds the real weights)")
    add_model_kwargs_arg(p)  # the same arguments for every model
    add_output_args(p, plot_default="compare.png")
    p.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    size = parse_input_size(args.input) if args.input is not None else None
    kwargs = args.model_kwargs
    reports = [analyze(meta_model(name, kwargs), size) for name in args.models]  # every name checked before timing
    latencies = (
        [None] * len(reports)
        if args.no_latency
        else measure_latencies(
            [build_model(name, kwargs) for name in args.models], [r.input_size for r in reports], runs=args.runs
        )
    )
    rows = [
        {
            "model": r.model,
            "input": "x".join(map(str, r.input_size)),
            "params": r.params,
            "gmacs": round(r.gmacs, 4),
            "depth": r.depth,
            "receptive_field": r.rf_label,
            "jump": r.jump[0] if r.jump else None,
        }
        | (
            {}
            if t is None
            else {
                f"cpu_latency_{k}ms": round(v, 2)
                for k, v in (("", t.median_ms), ("min_", t.min_ms), ("max_", t.max_ms))
            }
        )
        for r, t in zip(reports, latencies, strict=True)
    ]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    elif args.format == "csv":
        print(rows_to_csv(rows), end="")
    else:
        headers = ["model", "input", "params", "MACs", "depth", "RF", "jump"]
        table = []
        for row, r, t in zip(rows, reports, latencies, strict=True):
            cells = [row["model"], row["input"], r.params, format_macs(r.macs), r.depth, r.rf_label, row["jump"]]
            table.append(cells + ([] if t is None else [f"{t.median_ms:,.1f}", f"{t.min_ms:,.1f}-{t.max_ms:,.1f}"]))
        if not args.no_latency:
            headers += ["CPU ms (median)", "min-max"]
        print(format_table(table, headers, right_aligned=[h not in ("model", "input") for h in headers]))
        print("\nMACs: FlopCounterMode FLOPs / 2; depth: layers with weights on the longest path; RF: last feature map")
        if not args.no_latency:
            print(f"CPU ms: the median and the range of {args.runs} forward passes of each model, timed in turns")
    for r, t in zip(reports, latencies, strict=True):
        if t is not None and t.wide:
            print(
                f"cnnlab: warning: {r.model}'s runs took {t.min_ms:,.1f} to {t.max_ms:,.1f} ms ({t.spread:.1f}x, more "
                f"than {WIDE_SPREAD}x): the machine was busy; compare on an idle machine or with more --runs",
                file=sys.stderr,
            )
    if args.plot:
        from cnnlab.analysis.plots import plot_compare

        medians = [None if t is None else t.median_ms for t in latencies]
        print(f"wrote {plot_compare(reports, args.plot, medians)}")
    return 0
