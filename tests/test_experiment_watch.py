"""Measurements that match the claims (issue 28): validation within epochs and the zeros entering the head
(cnnlab.train.watch), steps to a target as censored times, failed runs that make a verdict invalid, runs trained
to convergence, seeds until decided end to end, and the test set rendered several times."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cnnlab.errors import ConfigError, DataError
from cnnlab.experiments.collect import FAILURE_GAP, RunRecord, failure, judge, reach
from cnnlab.experiments.experiment import run_experiment, run_until_decided
from cnnlab.experiments.spec import spec_from_dict
from cnnlab.experiments.stats import compare_times
from cnnlab.train import fit
from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.train.runlog import read_metrics
from cnnlab.train.watch import zero_fraction
from tests.train_fixtures import StopAt, tiny_config, write_mnist

TINY = {"layers": [1, 1, 1], "widths": [4, 8, 8]}
QUIET = {"log": lambda _s: None}


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mnist(tmp_path_factory.mktemp("mnist"), n_train=64, n_test=32)


def _watch(folder: Path) -> dict:
    return json.loads((folder / "watch.json").read_text())


def test_validation_within_epochs_is_recorded_and_changes_nothing(mnist_dir: Path, tmp_path: Path) -> None:
    """Every 3rd update and each epoch's end (4 steps an epoch): the points' steps, the epoch ends' accuracies
    equal to the epoch log's, the zeros equal to a count by hand; and the weights and metrics exactly those of
    the same run without it."""
    plain = fit(tiny_config(mnist_dir, tmp_path, epochs=3, run_name="plain"), **QUIET)
    watched = fit(tiny_config(mnist_dir, tmp_path, epochs=3, run_name="watched", val_every_steps=3), **QUIET)
    a, b = (load_checkpoint(r.run_dir)["model"] for r in (plain, watched))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [(m.train_loss, m.val_acc) for m in plain.history] == [(m.train_loss, m.val_acc) for m in watched.history]
    points = _watch(watched.run_dir)["points"]
    assert [p[0] for p in points] == [3, 4, 6, 8, 9, 12]  # multiples of 3 within epochs, and 4, 8, 12
    by_step = {p[0]: p[1] for p in points}
    assert [by_step[4 * e] for e in (1, 2, 3)] == [float(r["val_acc"]) for r in read_metrics(watched.run_dir)]
    from cnnlab.data import load_dataset, make_loader
    from cnnlab.train.predict import input_pipeline, model_from_checkpoint

    model, meta = model_from_checkpoint(watched.run_dir, prefer="last.pt")
    data = load_dataset("mnist", data_dir=str(mnist_dir))
    with torch.no_grad():
        feats = torch.cat([model.forward_features(x) for x, _ in make_loader(data, "val", input_pipeline(meta),
                                                                              batch_size=16).batches()])  # fmt: skip
    assert points[-1][2] == pytest.approx(float((feats == 0).float().mean()))


def test_a_resumed_run_records_the_same_points(mnist_dir: Path, tmp_path: Path) -> None:
    straight = fit(tiny_config(mnist_dir, tmp_path, epochs=3, run_name="s", val_every_steps=3), **QUIET)
    config = tiny_config(mnist_dir, tmp_path, epochs=3, run_name="r", val_every_steps=3)
    with pytest.raises(KeyboardInterrupt):
        fit(config, callbacks=[StopAt(6)], **QUIET)  # stopped after 7 updates, in epoch 2
    assert [p[0] for p in _watch(tmp_path / "r")["points"]] == [3, 4, 6]
    fit(config.replace(resume=str(tmp_path / "r")), **QUIET)
    assert _watch(tmp_path / "r") == _watch(straight.run_dir)


def test_the_zero_fraction_counts_the_zeros_entering_the_head() -> None:
    from cnnlab.registry import create_model

    model = create_model("cifar_resnet20", num_classes=10, in_chans=1, layers=[1, 1, 1], widths=[4, 8, 8]).eval()
    x = torch.randn(6, 1, 28, 28)
    out, zeros = zero_fraction(model, lambda net: net(x))
    feats = model.forward_features(x)
    assert torch.equal(out, model(x)) and zeros == pytest.approx(float((feats == 0).float().mean()))
    last = model.get_submodule(model.stage_names()[-1])  # a dead net: its last stage's ReLU sees only negatives
    last.register_forward_hook(lambda _m, _i, out: torch.relu(out - 1e6))
    assert zero_fraction(model, lambda net: net(x))[1] == 1.0


def _record(label: str, seed: int, **kw: object) -> RunRecord:
    return RunRecord(label, seed, "", kw.pop("status", "ok"), num_classes=10, **kw)  # type: ignore[arg-type]


def test_a_run_near_chance_has_failed() -> None:
    """A fifth of the gap from chance to perfect: 28% for ten classes, 36% for five (computed here)."""
    for k in (10, 5):
        floor = 1 / k + FAILURE_GAP * (1 - 1 / k)
        below = RunRecord("a", 0, "", "ok", {"train_error": 1 - floor + 0.01}, num_classes=k)
        above = RunRecord("a", 0, "", "ok", {"train_error": 1 - floor - 0.01}, num_classes=k)
        assert failure(below) and "near chance" in failure(below) and failure(above) is None
    assert failure(RunRecord("a", 0, "", "diverged", {"train_error": 0.9}, num_classes=10)) == "its loss diverged"
    seg = RunRecord("a", 0, "", "ok", {"test_miou": 0.1}, [{"val_miou": 0.2}], num_classes=11)
    assert "validation mean IoU 20.0%" in failure(seg)
    assert failure(RunRecord("a", 0, "", "ok", {"train_error": 0.9})) is None  # classes unknown: not judged


V = [{"label": "a", "model": "cifar_resnet20"}, {"label": "b", "model": "cifar_resnet20"}]


def test_an_expectation_on_failed_runs_is_invalid_unless_it_is_about_failure() -> None:
    good = [_record("a", s, metrics={"train_error": 0.01, "test_error": 0.03 + s / 100, "diverged": 0.0})
            for s in range(3)]  # fmt: skip
    dead = [_record("b", s, metrics={"train_error": 0.9, "test_error": 0.9, "diverged": 0.0}) for s in range(3)]
    for r in dead:
        r.failure = failure(r)
    expect = [{"better": "a", "worse": "b", "metric": "test_error"},
              {"better": "a", "worse": "b", "metric": "test_error", "about_failure": True},
              {"better": "a", "worse": "b", "metric": "diverged"}]  # fmt: skip
    spec = spec_from_dict({"variants": V, "expect": expect})
    (first, second, third), verdict = judge(spec, good + dead)
    assert first.verdict == "invalid" and first.reason.startswith("3 of 3 b runs failed (seeds 0, 1, 2: training")
    assert first.p_expected < 0.05 and first.mde is not None  # the numbers are still shown
    assert second.verdict == "holds" and third.verdict == "not shown" and verdict == "invalid"
    assert spec.expect[2].about_failure  # divergence is about failure by default


def test_final_errors_of_runs_that_hit_the_epoch_cap_are_invalid() -> None:
    spec = spec_from_dict({"variants": V, "recipe": {"early_stop": 3, "epochs": 40},
                           "expect": [{"better": "a", "worse": "b", "metric": "test_error"},
                                      {"better": "a", "worse": "b", "metric": "params"}]})  # fmt: skip
    runs = [_record(lab, s, metrics={"test_error": 0.03 + (lab == "b") / 10 + s / 1000, "params": 5.0},
                    converged=(lab, s) != ("b", 2)) for lab in "ab" for s in range(3)]  # fmt: skip
    (error, params), _ = judge(spec, runs)
    assert error.verdict == "invalid" and error.reason == "1 of 3 b runs hit the 40-epoch cap before converging"
    assert params.verdict == "not shown"  # the parameter count does not depend on convergence


def test_steps_to_a_target_end_to_end_are_censored_times_and_the_log_rank_test(mnist_dir: Path, tmp_path: Path) -> None:
    spec = spec_from_dict({
        "name": "t", "data": "mnist", "seeds": [0, 1], "target": [0.25, 0.99], "validate_every": 2,
        "recipe": {"data_dir": str(mnist_dir), "epochs": 2, "batch_size": 16, "channels_last": False},
        "variants": [{"label": "fast", "model": "cifar_resnet20", "model_kwargs": TINY},
                     {"label": "slow", "model": "cifar_resnet20", "model_kwargs": TINY, "recipe": {"lr": 0.001}}],
        "expect": [{"better": "fast", "worse": "slow", "metric": "steps_to_target"},
                   {"better": "fast", "worse": "slow", "metric": "steps_to_target", "target": 0.99}],
    })  # fmt: skip
    result = run_experiment(spec, tmp_path, jobs=1, **QUIET)
    first, second = result.comparisons
    assert first.test == second.test == "logrank" and second.metric == "steps_to_0.99"

    def times(label: str, target: float) -> tuple[list[float], list[bool]]:  # read by hand from watch.json
        out = []
        for seed in (0, 1):
            points = _watch(tmp_path / "runs" / f"{label}-seed{seed}")["points"]
            hit = [p[0] for p in points if p[1] >= target]
            out.append((float(hit[0]), True) if hit else (float(points[-1][0]), False))
        return [t for t, _ in out], [e for _, e in out]

    for c, target in ((first, 0.25), (second, 0.99)):
        ref = compare_times("fast", *times("fast", target), "slow", *times("slow", target), metric="steps_to_target")
        assert (c.p_expected, c.effect, c.events) == (ref.p_expected, ref.effect, ref.events)
    assert reach([[2, 0.1, 0.0], [4, 0.3, 0.0]], 0.25) == (4.0, True) and reach([[2, 0.1, 0.0]], 0.5) == (2.0, False)
    summary = (tmp_path / "summary.md").read_text()
    assert "steps to 25% (median)" in summary and "reached)" in summary and "log-rank" in summary


def test_until_decided_adds_rounds_while_undecided_and_keeps_finished_runs(mnist_dir: Path, tmp_path: Path) -> None:
    base = {
        "name": "t", "data": "mnist", "seeds": [0, 1], "until_decided": {"seeds_per_round": 1, "max_seeds": 3},
        "recipe": {"data_dir": str(mnist_dir), "epochs": 1, "batch_size": 16, "channels_last": False},
        "variants": [{"label": "a", "model": "cifar_resnet20", "model_kwargs": TINY},
                     {"label": "b", "model": "cifar_resnet20", "model_kwargs": TINY}],
    }  # fmt: skip
    # twin variants (the tiny runs stay near chance: about failure, so that they count): never decided
    twins = {"better": "a", "worse": "b", "metric": "val_error", "about_failure": True}
    same = spec_from_dict(base | {"expect": [twins]})
    lines: list[str] = []
    result = run_until_decided(same, tmp_path, log=lines.append, jobs=1)
    assert result.rounds["ran"] == 2 and not result.rounds["decided"] and result.seeds == (0, 1, 2)
    assert result.rounds["alpha"] == pytest.approx(0.05 / 2) == same.alpha()  # looks at 2 and 3 seeds
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["seeds"] == [0, 1, 2] and saved["rounds"]["ran"] == 2 and len(saved["runs"]) == 6
    summary = (tmp_path / "summary.md").read_text()
    assert "Until decided: round 2 of 2 planned" in summary and "maximum of 3 seeds reached" in summary
    again: list[str] = []
    run_until_decided(same, tmp_path, log=again.append, jobs=1)  # a later session: nothing left to train
    assert not any(": ok" in x for x in again) and sum("already done" in x for x in again) == 2
    exact = spec_from_dict(base | {"variants": [base["variants"][0], {"label": "b", "model": "cifar_resnet20",
                                                "model_kwargs": {"layers": [1, 1, 1], "widths": [4, 8, 16]}}],
                                   "expect": [{"better": "a", "worse": "b", "metric": "params"}]})  # fmt: skip
    decided = run_until_decided(exact, tmp_path / "exact", jobs=1, **QUIET)
    assert decided.rounds["ran"] == 1 and decided.rounds["decided"] and decided.verdict == "holds"
    with pytest.raises(ConfigError, match="between the first round's 2 seeds and the plan's max_seeds"):
        run_until_decided(same, tmp_path, max_seeds=4, **QUIET)
    with pytest.raises(ConfigError, match="add 'until_decided"):
        run_until_decided(spec_from_dict({k: v for k, v in base.items() if k != "until_decided"}), tmp_path, **QUIET)


def test_the_test_digits_can_be_rendered_several_times() -> None:
    from cnnlab.data import load_any

    one, three = load_any("mnist5k-rts"), load_any("mnist5k-rts", test_copies=3)
    assert len(three.test) == 3 * len(one.test) == 3000
    assert torch.equal(three.test.x[:1000], one.test.x)  # copy 0 is the usual test split
    assert torch.equal(three.test.y[1000:2000], one.test.y) and torch.equal(three.test.y[2000:], one.test.y)
    assert not torch.equal(three.test.x[1000:2000], one.test.x)  # other rotations, scales and places
    assert torch.equal(load_any("mnist5k-rts", test_copies=3).train.x, one.train.x)  # training data untouched
    with pytest.raises(DataError, match="mnist5k's digits are the files' own"):
        load_any("mnist5k", test_copies=2)
    seg = load_any("mnist5k-seg", test_copies=2)
    assert len(seg.test) == 2000 and seg.test.sizes.shape[0] == 2000


def test_runs_trained_to_convergence_record_whether_they_converged(mnist_dir: Path, tmp_path: Path) -> None:
    """A patience of one validation under a cap of three epochs: a run converged when it stopped by its patience,
    or reached the cap after a validation without a better one; and the generalization gap is test minus
    training error."""
    spec = spec_from_dict({
        "name": "t", "data": "mnist", "seeds": [0, 1, 2],
        "recipe": {"data_dir": str(mnist_dir), "epochs": 3, "batch_size": 16, "channels_last": False,
                   "early_stop": 1, "schedule": "constant", "warmup_epochs": 0},
        "variants": [{"label": "a", "model": "cifar_resnet20", "model_kwargs": TINY}],
    })  # fmt: skip
    result = run_experiment(spec, tmp_path, jobs=1, **QUIET)
    for r in result.records:
        saved = json.loads((Path(r.folder) / "results.json").read_text())
        after_best = [h for h in r.history if h["epoch"] > saved["best_epoch"]]
        assert r.converged == (saved["stopped_early"] or len(after_best) >= 1)
        assert r.metrics["generalization_gap"] == pytest.approx(r.metrics["test_error"] - r.metrics["train_error"])
    assert "converged" in (tmp_path / "summary.md").read_text()
