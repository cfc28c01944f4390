"""``cnnlab compare MODEL MODEL ...``: params, MACs, depth, receptive field and CPU latency side by side."""

from __future__ import annotations

import argparse
import json

from cnnlab.analysis import analyze, parse_input_size
from cnnlab.analysis.latency import measure_latency
from cnnlab.analysis.report import format_macs, format_table, rows_to_csv
from cnnlab.cli.common import add_model_kwargs_arg, add_output_args, meta_model, positive_int
from cnnlab.registry import build_model


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
    latencies = [
        None
        if args.no_latency
        else measure_latency(build_model(name, kwargs), report.input_size, runs=args.runs).median_ms
        for name, report in zip(args.models, reports, strict=True)
    ]
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
        | ({} if args.no_latency else {"cpu_latency_ms": round(t, 2)})
        for r, t in zip(reports, latencies, strict=True)
    ]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    elif args.format == "csv":
        print(rows_to_csv(rows), end="")
    else:
        headers = ["model", "input", "params", "MACs", "depth", "RF", "jump", "CPU ms (median)"][: len(rows[0])]
        table = [
            [v if k != "gmacs" else format_macs(r.macs) for k, v in row.items()]
            for r, row in zip(reports, rows, strict=True)
        ]
        print(format_table(table, headers, right_aligned=[k not in ("model", "input") for k in rows[0]]))
        print("\nMACs: FlopCounterMode FLOPs / 2; depth: layers with weights on the longest path; RF: last feature map")
    if args.plot:
        from cnnlab.analysis.plots import plot_compare

        print(f"wrote {plot_compare(reports, args.plot, latencies)}")
    return 0
