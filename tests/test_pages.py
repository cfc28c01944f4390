"""``cnnlab report``: one self-contained HTML page for a model, a run folder and an experiment folder, opened in
headless Chromium (where it is installed; ``.ci/run`` installs Debian's ``chromium``): no console errors, one
diagram node per collapsed block, a header click sorts the layer table, and a screenshot."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from cnnlab.analysis import analyze
from cnnlab.cli import main
from cnnlab.pages import REPORT, report_after_training, write_report
from cnnlab.registry import create_model
from tests.train_fixtures import TINY, write_mnist

BROWSER_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--virtual-time-budget=5000",
]  # fmt: skip


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An experiment's results folder: two tiny nets, two seeds, one epoch, gradient norms recorded."""
    from cnnlab.experiments.experiment import run_experiment
    from cnnlab.experiments.spec import spec_from_dict

    root = tmp_path_factory.mktemp("experiment")
    write_mnist(root / "data")
    recipe = {"data_dir": str(root / "data"), "epochs": 1, "batch_size": 16, "record_grad_norms": True}
    kw = TINY["model_kwargs"]
    spec = spec_from_dict({
        "name": "tiny", "claim": "Shortcuts help.", "data": "mnist", "seeds": [0, 1], "recipe": recipe,
        "variants": [{"label": "resnet-8", "model": "cifar_resnet20", "model_kwargs": kw},
                     {"label": "plain-8", "model": "cifar_plain20", "model_kwargs": kw}],
        "expect": [{"better": "resnet-8", "worse": "plain-8", "metric": "train_error"}],
    })  # fmt: skip
    run_experiment(spec, root / "results", jobs=1, log=lambda _s: None)
    return root / "results"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of the tiny ResNet, one epoch on a 64-image MNIST, trained by ``cnnlab train`` (which writes the
    report)."""
    root = tmp_path_factory.mktemp("pages")
    write_mnist(root / "data")
    args = ["train", "--model", TINY["model"], "--model-kwargs", json.dumps(TINY["model_kwargs"]), "--data", "mnist",
            "--data-dir", str(root / "data"), "--epochs", "1", "--batch-size", "16", "--no-progress",
            "--out-dir", str(root / "runs"), "--run-name", "r"]  # fmt: skip
    assert main(args) == 0
    return root / "runs" / "r"


@pytest.fixture(scope="module")
def model_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "resnet50.html"
    assert main(["report", "resnet50", "--out", str(out), "--erf-samples", "1"]) == 0
    return out


def self_contained(page: str) -> None:
    """Nothing fetched: no external script, style, image or font."""
    assert not re.search(r"""src\s*=\s*["'](?!data:)""", page), "an image or script from another file"
    assert not re.search(r"""href\s*=\s*["']https?:""", page), "a link to the network"
    assert "<link" not in page and "@import" not in page and "url(http" not in page


def test_train_writes_a_run_report(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = (run_dir / REPORT).read_text()
    self_contained(page)
    for part in ("Test results", "Curves", "confusion matrix", "Misclassified test images", "Timings", "Config"):
        assert part in page
    assert page.count('<td class="num" data-v=') > 20 and "images/s" in page
    # a report that cannot be built is a warning, never a failed run
    (run_dir.parent / "broken").mkdir()
    assert report_after_training(run_dir.parent / "broken") is None
    assert capsys.readouterr().err.startswith(f"warning: no report for {run_dir.parent / 'broken'}")


def test_model_and_experiment_reports_are_self_contained(model_report: Path, experiment: Path, tmp_path: Path) -> None:
    page = model_report.read_text()
    self_contained(page)
    for part in ("<svg", 'data-tree="1"', "Receptive field", "Effective receptive field", "256-d bottleneck",
                 "Deep Residual Learning"):  # fmt: skip
        assert part in page, part
    assert "zero padding outside the image" in page  # 427 px at 224
    out = write_report(experiment, tmp_path / "exp.html")
    page = out.read_text()
    self_contained(page)
    assert "plain-8" in page and page.count("data:image/png;base64") == 2  # summary.md's table and both plots


def test_report_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "neither a run folder" in capsys.readouterr().err
    assert main(["report", "resnt50"]) == 2
    assert "unknown model 'resnt50'" in capsys.readouterr().err


# -- in the browser ----------------------------------------------------------------------------------------


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium): reports not opened in a browser")


def open_page(page: Path, tmp_path: Path, *, hash: str = "#test", screenshot: Path | None = None) -> dict[str, Any]:
    """Load ``page`` in headless Chromium and return the self-check its script writes (see cnnlab.pages.page)."""
    exe = chromium()
    profile = [f"--user-data-dir={tmp_path / 'chromium-profile'}"]
    done = subprocess.run([exe, *BROWSER_FLAGS, *profile, "--dump-dom", page.as_uri() + hash],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    found = re.search(r'<pre id="test-result">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no self-check in the page; chromium said: {done.stderr[-2000:]}"
    if screenshot is not None:
        subprocess.run([exe, *BROWSER_FLAGS, *profile, "--window-size=1280,1800", f"--screenshot={screenshot}",
                        page.as_uri()], capture_output=True, timeout=120, check=True)  # fmt: skip
        with Image.open(screenshot) as image:
            assert image.size == (1280, 1800)
    return json.loads(html.unescape(found.group(1)))


def test_the_model_report_renders_with_one_node_per_block_and_sorts(model_report: Path, tmp_path: Path) -> None:
    check = open_page(model_report, tmp_path, hash="#test-sort", screenshot=tmp_path / "model.png")
    assert check["errors"] == []
    rows = [r for r in analyze(create_model("resnet50")).grouped(1) if r.kind != "Identity"]
    assert check["nodes"] == ["input", *(r.path for r in rows)]  # one node per collapsed block
    assert check["geometry"] == {"overlaps": 0, "labels_outside": 0}  # as the browser measured the text
    params = check["top_params"]
    assert params == sorted(params, reverse=True) and check["top_rows"][:2] == ["layer4", "layer3"]
    assert sorted(check["top_rows"]) == sorted(r.path for r in rows)
    assert check["images"] == 2  # the receptive-field plot and the ERF map


def test_the_run_and_experiment_reports_render(run_dir: Path, experiment: Path, tmp_path: Path) -> None:
    check = open_page(run_dir / REPORT, tmp_path, screenshot=tmp_path / "run.png")
    assert check["errors"] == [] and check["images"] >= 3  # curves, confusion matrix, misclassified digits
    out = write_report(experiment, tmp_path / "exp.html")
    check = open_page(out, tmp_path)
    assert check["errors"] == [] and check["images"] == 2
