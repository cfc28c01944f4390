"""Pages: one self-contained HTML file (no network, scripts and styles inline) for a model, a training run or an
experiment's results folder, which opens from disk in any browser.

:mod:`.page` (the HTML, its sortable tables and its self-check), :mod:`.model_page` (diagram, layer table,
receptive fields, tricks, paper), :mod:`.run_page` (config, curves, test results, confusion matrix,
misclassified images, timings) and :mod:`.experiment_page` (summary.md, verdicts, plots).

May import: cnnlab.analysis, cnnlab.data, cnnlab.errors, cnnlab.plotting, cnnlab.registry, cnnlab.train.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.pages.experiment_page import experiment_page, is_experiment_folder
from cnnlab.pages.model_page import model_page
from cnnlab.pages.run_page import is_run_folder, run_page

REPORT = "report.html"  # the name of the report inside a run or results folder


def write_report(target: str | Path, out: str | Path | None = None, **model_args: Any) -> Path:
    """The report of ``target``: a run folder, an experiment results folder (both written into the folder by
    default), or a registered model's name (``NAME-report.html`` by default; ``model_args`` go to
    :func:`model_page`)."""
    path = Path(target)
    data_dir = model_args.pop("data_dir", None)
    if is_run_folder(path):
        return run_page(path, data_dir=data_dir).write(out or path / REPORT)
    if is_experiment_folder(path):
        return experiment_page(path).write(out or path / REPORT)
    if path.is_dir():
        raise CnnlabError(f"{path} is neither a run folder (config.yaml, metrics.csv) nor a results one (summary.md)")
    return model_page(str(target), **model_args).write(out or f"{target}-report.html")


def report_after_training(run_dir: str | Path | None) -> Path | None:
    """Write ``RUN/report.html`` after ``cnnlab train`` and print its path; never fails the training: a report
    that cannot be built is a one-line warning."""
    if run_dir is None:  # a rank other than 0
        return None
    try:
        path = run_page(run_dir).write(Path(run_dir) / REPORT)
    except Exception as e:  # the run is saved; its report is a convenience
        print(f"warning: no report for {run_dir}: {type(e).__name__}: {e}", file=sys.stderr)
        return None
    print(f"report: {path}")
    return path


__all__ = ["REPORT", "experiment_page", "model_page", "report_after_training", "run_page", "write_report"]
