"""The ledger: every committed claim, its source's figures, what we measured, and the verdict.

It reads the experiment files (``experiments/*.yaml``) and their committed results
(``experiments/results/NAME/results.json``); nothing is retrained to print it. A claim whose results are missing,
or were made from another version of its file (another recipe, seeds, variants or expectations), is listed as
"not run". :func:`find_experiments` finds that folder wherever ``cnnlab claims`` runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cnnlab.errors import ConfigError
from cnnlab.experiments.spec import ExperimentSpec, is_fraction, load_spec

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
    verdict: str  # holds / contradicted / not shown / not run
    results: str  # the folder


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


def _measured(results: dict) -> str:
    parts = []
    for c in results.get("comparisons", []):
        scale = 100 if is_fraction(c["metric"]) else 1
        unit = "%" if scale == 100 else ""
        sign = "<" if c["direction"] == "lower" else ">"

        def text(v: float, scale: int = scale, unit: str = unit) -> str:
            return f"{v:,.0f}" if scale == 1 and float(v).is_integer() else f"{v * scale:.3g}{unit}"  # counts exact

        better, worse = text(c["better_mean"]), text(c["worse_mean"])
        margin = c.get("margin") or 0.0
        within = f" within {margin * scale:.3g}{' points' if unit else ''}" if margin else ""
        expected = f"expected {sign}{within}: p = {c['p_expected']:.2g}"
        parts.append(f"{c['better']} {better} vs {c['worse']} {worse} ({c['metric']}, {expected})")
    return "; ".join(parts) or "-"


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
        out.append(
            Entry(
                name=spec.name,
                claim=spec.claim,
                source=spec.source.cite() if spec.source else "",
                paper_figures=spec.source.figures if spec.source else "",
                measured=_measured(results) if current else "-",
                verdict=(results.get("verdict") or "not shown") if current else "not run",
                results=str(folder),
            )
        )
    return out
