"""No figure typed by hand: every number in a page about the experiments, checked against their results.

:func:`check` reads a markdown text (the experiments page, or the README's experiments section) and an
experiments folder (``experiments/``: the files and ``results/NAME/results.json``), and returns each figure it
cannot trace to the results. The text is read block by block (a paragraph, or a table row); a block is about the
experiments it names (``results/NAME``, or ``**NAME**`` for an experiment's name), else about those its section
names (the text under its heading: a section's later paragraphs need not repeat the folder), and its figures are
looked for among what those experiments' results hold or directly give:

* every number in ``results.json`` (per-run metrics, summaries, comparisons, the architecture, lesions, gradient
  norms, wall times in minutes, counts of seeds, runs and blocks), fractions also in percent;
* means over the seeds: of each lesioned block, of each group of blocks (a stage: ``S1``, ``S2``...), of each
  number of random blocks removed, and of the training and validation error after each epoch;
* between two variants of one metric (or of parameters and MACs): the difference, the ratio and the relative
  difference in percent;
* the numbers of the experiment file's claim, source and description (the paper's own figures), and of the
  reasons its failed runs failed, as counts, percentages or millions (never as minutes, p-values or effect sizes).

A figure matches when a candidate written at the figure's precision (its decimals, or its significant digits) is
the figure; ``p = `` looks among p-values (and the level), ``d = `` among effect sizes, ``%`` and ``points``
among percentages, ``min`` among minutes, a count noun (``blocks``, ``seeds``, ``steps``...) among whole numbers,
and a mean with its spread (``3.67 ± 0.25%``, ``209 ± 66 steps``) among the (mean, standard deviation) pairs of
the summaries: both of one variant's metric, not a mean of one and a spread of another.
Numbers in code (backticks and fenced blocks), inside names (``resnet-56``, ``3x3``, ``mnist5k``) and in headings
are not figures. A block whose section names no experiment is checked only with ``strict`` (then against every
experiment's results).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import statistics
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cnnlab.experiments.spec import load_spec
from cnnlab.experiments.stats import ALPHA, MAX_FISHER_SEEDS, MAX_SEEDS
from cnnlab.train.config import FIRST_RECIPE

KINDS = ("percent", "minutes", "millions", "raw", "p", "d")  # what a figure can be, by how the text gives it
COUNT_NOUNS = ("block", "blocks", "seed", "seeds", "run", "runs", "step", "steps", "epoch", "epochs", "layer",
               "layers", "parameters", "params", "images", "digits", "variants", "groups")  # fmt: skip
_FIGURE = r"\d(?:[\d,]*\d)?(?:\.\d+)?(?:e-?\d+)?"  # 72,666; 3.67; 5.4e-05
_NUMBER = re.compile(
    r"(?:(?<=[\s(\[])[+\-\u2212](?=\d)|(?<![\w.,+\-\u2212/]))"  # a sign after a space, or no name before
    rf"(?P<num>{_FIGURE})(?![A-Za-wyz_\d]|x\w)"  # and no letter after ("3x3", "mnist5k": names)
    rf"(?P<after>(?:\s*(?:±|-|\u2013|to|and|or|vs\.?|against)\s*{_FIGURE})*)"  # "3.67 ± 0.25%"
    r"(?P<unit>\s*(?:%|points|min\b|MMACs|GMACs|M\b)|\s+[a-z]+)?"
)


@dataclass(frozen=True)
class Problem:
    """A figure that no candidate of the experiments its block is about gives."""

    figure: str
    experiments: tuple[str, ...]
    context: str

    def __str__(self) -> str:
        return f"{self.figure!r} ({', '.join(self.experiments) or 'no experiment'}): ...{self.context}..."


def _leaves(value: Any) -> Iterator[float]:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str):  # "444": a receptive field
        if re.fullmatch(r"\d+(?:\.\d+)?", value):
            yield float(value)
    elif isinstance(value, int | float):
        if math.isfinite(value):
            yield float(value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _leaves(v)


def _numbers_in(text: str) -> Iterator[float]:
    for m in re.finditer(r"\d[\d,]*(?:\.\d+)?", text):
        yield float(m.group().replace(",", ""))


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _derived(payload: dict[str, Any]) -> Iterator[tuple[str, float]]:
    """(kind, value): "fraction" (also shown in percent), "seconds" (also in minutes), "count" (also in
    millions: parameters, MACs), "percent" (a relative difference) or "raw"."""
    runs = payload.get("runs", [])
    for key in ("summary", "comparisons", "architecture", "fingerprint", "seeds", "rounds", "alpha"):
        for v in _leaves(payload.get(key)):
            yield "fraction", v
    for a in (payload.get("architecture") or {}).values():
        yield "count", a["params"]
        yield "count", a["macs"]
    yield "fraction", 1 - 2 * payload.get("alpha", ALPHA)  # the interval that goes with the test
    for key in ("wall_s", "runs_wall_s", "collect_s"):
        if payload.get("meta", {}).get(key) is not None:
            yield "seconds", payload["meta"][key]
    yield "raw", float(len(payload.get("seeds") or payload.get("fingerprint", {}).get("seeds", [])))
    yield "raw", float(len(runs))
    variants = (payload.get("fingerprint") or {}).get("variants", [])
    yield "raw", float(len(variants))
    for v in variants:  # "probe-360": a label names its recipe
        for x in _numbers_in(v["label"]):
            yield "raw", x
    for r in runs:
        for key in ("metrics", "lesion", "grad_norms", "wall_s"):
            for v in _leaves(r.get(key)):
                yield "fraction", v
        for row in r.get("history") or []:
            for key in ("train_acc", "val_acc"):
                if row.get(key) is not None:
                    yield "fraction", row[key]
        if r.get("wall_s"):
            yield "seconds", r["wall_s"]
        for norms in (r.get("grad_norms") or {}).values():
            if norms:
                yield "raw", min(norms.values())
                yield "raw", max(norms.values())
    yield from _lesion_means(runs)
    yield from _epoch_means(runs)
    yield from _between_variants(payload)


def _lesion_means(runs: list[dict[str, Any]]) -> Iterator[tuple[str, float]]:
    by_label: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        if r.get("lesion"):
            by_label.setdefault(r["label"], []).append(r["lesion"])
    for lesions in by_label.values():
        blocks = list(lesions[0]["blocks"])
        yield "raw", float(len(blocks))
        for b in blocks:
            yield "fraction", statistics.fmean(les["blocks"][b] for les in lesions)
        for _stage, names in itertools.groupby(blocks, key=lambda b: b.split(".")[0]):
            group = list(names)
            yield "fraction", statistics.fmean(les["blocks"][b] for les in lesions for b in group)
        yield "fraction", statistics.fmean(les["intact"] for les in lesions)
        for k in lesions[0].get("random", {}):
            yield "fraction", statistics.fmean(les["random"][k]["mean"] for les in lesions)
    common = [set(les["blocks"]) for ls in by_label.values() for les in ls]
    if common:
        yield "raw", float(len(set.intersection(*common)))


def _epoch_means(runs: list[dict[str, Any]]) -> Iterator[tuple[str, float]]:
    by_label: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        if r.get("history"):
            by_label.setdefault(r["label"], []).append(r)
    for group in by_label.values():
        for epoch in range(min(len(r["history"]) for r in group)):
            for key in ("train_acc", "val_acc"):
                values = [r["history"][epoch].get(key) for r in group]
                if all(v is not None for v in values):
                    yield "fraction", 1 - statistics.fmean(values)


def _between_variants(payload: dict[str, Any]) -> Iterator[tuple[str, float]]:
    series: dict[str, dict[str, float]] = {}
    for label, metrics in payload.get("summary", {}).items():
        for metric, s in metrics.items():
            if s.get("mean") is not None:
                series.setdefault(metric, {})[label] = s["mean"]
    for label, a in (payload.get("architecture") or {}).items():
        for key in ("params", "macs"):
            series.setdefault(key, {})[label] = float(a[key])
    for metric, values in series.items():
        for x, y in itertools.permutations(values.values(), 2):
            yield ("count" if metric in ("params", "macs") else "fraction"), x - y
            if y:
                yield "raw", x / y
                yield "percent", 100 * (x / y - 1)


def _payload(experiments: Path, name: str) -> dict[str, Any]:
    """The experiment's ``results.json``; for a claim not yet run, its file's claim, description and source (the
    paper's figures, which its ledger row and section may cite before any run)."""
    saved, planned = experiments / "results" / name / "results.json", experiments / f"{name}.yaml"
    if saved.is_file():
        return json.loads(saved.read_text())
    if not planned.is_file():
        return {}
    spec = load_spec(planned)
    return {
        "claim": spec.claim,
        "description": spec.description,
        "source": asdict(spec.source) if spec.source else None,
    }


def spreads(experiments: Path, name: str) -> set[tuple[float, float]]:
    """What ``mean ± spread`` about the experiment ``name`` may be: each summary's (mean, standard deviation) over
    the seeds, as a fraction in percent and as it is (counts: steps, parameters)."""
    payload = _payload(experiments, name)
    out = set()
    for metrics in payload.get("summary", {}).values():
        for s in metrics.values():
            if s.get("mean") is not None and s.get("std") is not None:
                out |= {(s["mean"], s["std"]), (100 * s["mean"], 100 * s["std"])}
    return out


def candidates(experiments: Path, name: str) -> dict[str, set[float]]:
    """What a figure about the experiment ``name`` may be: each of :data:`KINDS` -> values (unsigned: prose gives
    a sign in words, "0.3 points below")."""
    out: dict[str, set[float]] = {k: set() for k in KINDS}
    payload = _payload(experiments, name)
    out["p"] |= {ALPHA, payload.get("alpha", ALPHA)}  # "p < 0.05"
    for c in payload.get("comparisons", []):  # "p = 0.005" is a p-value, "d = 3.7" an effect size
        out["p"] |= {c["p_expected"], c["p_other"]}
        out["d"] |= {abs(c["cohens_d"])} if c.get("cohens_d") is not None else set()
    for kind, v in _derived(payload):
        out["raw"].add(abs(v))
        if kind == "fraction":
            out["percent"].add(abs(100 * v))
        if kind == "seconds":
            out["minutes"].add(v / 60)
        if kind == "count":
            out["millions"].add(abs(v) / 1e6)
        if kind == "percent":  # already in percent
            out["percent"].add(abs(v))
    failures = [r.get("failure") or "" for r in payload.get("runs", [])]  # "training accuracy 16.8%"
    spec_text = " ".join(
        [*failures, *(str(payload.get(k) or "") for k in ("claim", "description")), json.dumps(payload.get("source"))]
    )
    for v in _numbers_in(spec_text):  # figures of a paper or a failure: counts, percentages, millions; no times
        for kind in ("raw", "percent", "millions"):
            out[kind].add(v)
    return out


def _matches(figure: str, values: set[float]) -> bool:
    text = figure.replace(",", "").lstrip("+-\u2212")
    target = float(text)
    mantissa, _, exponent = text.partition("e")
    if exponent:  # "5.4e-05": the value in scientific notation at the mantissa's digits
        return any(float(f"{v:.{len(mantissa.replace('.', '')) - 1}e}") == target for v in values)
    decimals = len(text.split(".")[1]) if "." in text else 0
    digits = len(text.replace(".", "").lstrip("0")) or 1
    for v in values:
        if abs(v - target) <= 0.5 * 10**-decimals + 1e-9 * max(1.0, abs(v)):
            return True
        if float(f"{v:.{digits}g}") == target:
            return True
    return False


def _blocks(markdown: str) -> Iterator[tuple[str, str]]:
    """(block, its section): each paragraph and table row outside fenced code, with the text under its heading."""
    prose = re.sub(r"^```.*?^```[^\n]*$", "", markdown, flags=re.M | re.S)
    for section in re.split(r"^#.*$", prose, flags=re.M):
        block: list[str] = []
        for line in [*section.splitlines(), ""]:
            if line.startswith("|") or not line.strip():
                if block:
                    yield "\n".join(block), section
                block = []
                if line.startswith("|") and not re.fullmatch(r"\|[\s|:-]+\|?", line.strip()):
                    yield line, section
            else:
                block.append(line)


def _names(text: str, names: list[str]) -> tuple[str, ...]:
    """The experiments ``text`` is about: those whose results folder or bold name it gives."""
    return tuple(n for n in names if re.search(rf"results/{re.escape(n)}(?![\w-])|\*\*{re.escape(n)}\*\*", text))


def _pair_matches(mean: str, spread: str, pairs: set[tuple[float, float]]) -> bool:
    """Whether one (mean, spread) of ``pairs`` is ``mean ± spread``, both at the text's precision."""
    return any(_matches(mean, {m}) and _matches(spread, {s}) for m, s in pairs)


def check(markdown: str, experiments: str | Path, *, strict: bool = False) -> list[Problem]:
    """Every figure of ``markdown`` that the results of the experiments its block is about do not give."""
    root = Path(experiments)
    names = sorted(load_spec(p).name for p in root.glob("*.yaml"))
    cache: dict[str, tuple[dict[str, set[float]], set[tuple[float, float]]]] = {}

    def pool(about: tuple[str, ...]) -> tuple[dict[str, set[float]], set[tuple[float, float]]]:
        out: dict[str, set[float]] = {k: set() for k in KINDS}
        out["raw"] |= {*_leaves(dict(FIRST_RECIPE)), MAX_SEEDS, MAX_FISHER_SEEDS}  # "more than 1000 seeds"
        pairs: set[tuple[float, float]] = set()
        for name in about:
            if name not in cache:
                cache[name] = candidates(root, name), spreads(root, name)
            for kind, values in cache[name][0].items():
                out[kind] |= values
            pairs |= cache[name][1]
        return out, pairs

    problems = []
    for block, section in _blocks(markdown):
        about = _names(block, names) or _names(section, names)
        if not about and not strict:
            continue
        values, pairs = pool(about or tuple(names))
        prose = re.sub(r"`[^`]*`", " ", block)  # code, paths and commands are not figures
        prose = re.sub(r"\]\([^)]*\)", "]", prose)  # nor link targets
        for m in _NUMBER.finditer(prose):
            unit = (m.group("unit") or "").strip()
            before = prose[max(0, m.start() - 4) : m.start()]
            figures = [m.group("num"), *re.findall(_FIGURE, m.group("after") or "")]
            context = " ".join(prose[max(0, m.start() - 40) : m.end() + 30].split())
            if re.fullmatch(rf"\s*±\s*{_FIGURE}", m.group("after") or ""):  # a mean and its spread: one summary's
                if not _pair_matches(*figures, pairs):
                    problems.append(Problem(" ± ".join(figures), about, context))
                continue
            if re.search(r"\bp [=<>] $", before):
                kinds = ("p",)
            elif re.search(r"\bd = $", before):
                kinds = ("d",)
            elif unit in ("%", "points"):
                kinds = ("percent",)
            elif unit == "min":
                kinds = ("minutes",)
            elif unit in ("MMACs", "M"):
                kinds = ("millions",)
            elif unit in COUNT_NOUNS:
                kinds = ("raw",)
            else:
                kinds = ("raw", "percent")
            allowed = set().union(*(values[k] for k in kinds))
            if unit in COUNT_NOUNS and not m.group("after"):  # a count is a whole number (not a mean ± spread)
                allowed = {v for v in allowed if float(v).is_integer()}
            problems += [Problem(f, about, context) for f in figures if not _matches(f, allowed)]
    return problems
