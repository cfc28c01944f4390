"""The ledger: every committed claim, its source's figures, what we measured, and the verdict.

It reads the experiment files (``experiments/*.yaml``) and their committed results
(``experiments/results/NAME/results.json``); nothing is retrained to print it. A claim whose results are missing,
or were made from another version of its file (another recipe, seeds, variants or expectations), is listed as
"not run". :func:`find_experiments` finds that folder wherever ``cnnlab claims`` runs. Each comparison comes with
its p-value, interval, minimum detectable effect and the seeds that would decide it (computed from the stored
figures where results were written before those existed); a verdict of "not shown" says with them whether the
effect is absent or the experiment too small, and "invalid" says which runs failed.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError
from cnnlab.experiments.spec import ExperimentSpec, is_fraction, load_spec
from cnnlab.experiments.stats import Comparison, seeds_text, with_power

RESULTS_DIR = "results"
CHECKOUT_EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments"
"""The experiment files beside the source this cnnlab runs from (``src/cnnlab/experiments/ledger.py`` -> the
repository's ``experiments/``): there in a checkout or an editable install, absent from an installed wheel."""


@dataclass(frozen=True)
class Entry:
    name: str
    claim: str
    source: str
    paper_figures: str
    measured: str  # the comparisons, as numbers
    verdict: str  # holds / contradicted / not shown / invalid / not run
    results: str  # the folder
    why: str = ""  # for "not shown": each undecided comparison's MDE and seeds to decide; for "invalid": the reason
    seeds: list[int] = field(default_factory=list)  # the seeds run
    comparisons: list[dict[str, Any]] = field(default_factory=list)  # p, interval, mde, seeds_needed, verdict


def results_dir(experiments: Path, spec: ExperimentSpec) -> Path:
    return experiments / RESULTS_DIR / spec.name


def find_experiments(given: str | Path | None = None) -> Path:
    """The folder of experiment files (``*.yaml``, their results in ``results/``): ``given``, else ``experiments``
    in the working directory, else :data:`CHECKOUT_EXPERIMENTS`. A :class:`~cnnlab.errors.ConfigError` names the
    places it looked when none holds an experiment file."""
    places = [Path(given)] if given is not None else [Path("experiments"), CHECKOUT_EXPERIMENTS]
    for place in places:
        if any(place.glob("*.yaml")):
            return place
    looked = " or ".join(str(p.resolve()) for p in places)
    raise ConfigError(
        f"no experiment files (*.yaml) in {looked}; run from cnnlab's repository or pass --experiments DIR "
        "(the folder that holds the experiment files and their results/)"
    )


def _unit(metric: str) -> tuple[int, str]:
    return (100, "%") if is_fraction(metric) else (1, "")


def _value(v: float | None, metric: str) -> str:
    scale, unit = _unit(metric)
    if v is None:
        return "-"
    return f"{v:,.0f}" if scale == 1 and float(v).is_integer() else f"{v * scale:.3g}{unit}"  # counts exact


def _measured(results: dict[str, Any]) -> str:
    """The comparisons of ``results`` (a results.json, or its ``comparisons`` as dicts) in one line."""
    parts = []
    for c in results.get("comparisons", []):
        scale, unit = _unit(c["metric"])
        sign = "<" if c["direction"] == "lower" else ">"
        margin = c.get("margin") or 0.0
        within = f" within {margin * scale:.3g}{' points' if unit else ''}" if margin else ""
        expected = f"expected {sign}{within}: p = {c['p_expected']:.2g}"
        metric = f"median {c['metric']}" if c.get("test") == "logrank" else c["metric"]
        better, worse = _value(c["better_mean"], c["metric"]), _value(c["worse_mean"], c["metric"])
        parts.append(f"{c['better']} {better} vs {c['worse']} {worse} ({metric}, {expected})")
    return "; ".join(parts) or "-"


def _power(c: Comparison) -> str:
    """``"MDE 1.31 points, 57 seeds"``: the smallest detectable effect and the seeds that would decide."""
    scale, unit = _unit(c.metric)
    if c.mde is None:
        mde = "no detectable effect"
    elif c.test == "logrank":
        mde = f"MDE hazard ratio {math.exp(c.mde):.3g}"
    else:
        mde = f"MDE {c.mde * scale:.3g}{' points' if unit else ''}"
    return f"{mde}, {seeds_text(c)}"


def _why(verdict: str, comparisons: list[Comparison]) -> str:
    if verdict == "invalid":
        return "; ".join(f"{c.better} vs {c.worse} in {c.metric}: {c.reason}" for c in comparisons if c.reason)
    if verdict == "not shown":
        return "; ".join(f"{c.better} vs {c.worse} in {c.metric}: {_power(c)}" for c in comparisons
                         if c.verdict == "not shown")  # fmt: skip
    return ""


def entries(experiments: str | Path = "experiments") -> list[Entry]:
    """One entry per experiment file under ``experiments`` that states a claim, in file-name order."""
    root = Path(experiments)
    out = []
    for path in sorted(root.glob("*.yaml")):
        spec = load_spec(path)
        if not spec.claim:
            continue
        folder = results_dir(root, spec)
        saved = folder / "results.json"
        results = json.loads(saved.read_text()) if saved.is_file() else {}
        current = results.get("fingerprint") == json.loads(json.dumps(spec.fingerprint()))  # as JSON reads it back
        stored = results.get("comparisons", []) if current else []
        comparisons = [
            Comparison.from_json(d) if "mde" in d else with_power(Comparison.from_json(d)) for d in stored
        ]  # results written before the power figures existed get them from their own figures
        verdict = (results.get("verdict") or "not shown") if current else "not run"
        out.append(
            Entry(
                name=spec.name,
                claim=spec.claim,
                source=spec.source.cite() if spec.source else "",
                paper_figures=spec.source.figures if spec.source else "",
                measured=_measured({"comparisons": [asdict(c) for c in comparisons]}),
                verdict=verdict,
                results=str(folder),
                why=_why(verdict, comparisons),
                seeds=list(results.get("seeds") or results.get("fingerprint", {}).get("seeds", [])) if current else [],
                comparisons=[asdict(c) for c in comparisons],
            )
        )
    return out
