"""fit(): run folders, reproducibility, NaN handling, auxiliary losses, transfer learning, callbacks (resuming:
test_resume_exact.py; the run folder's lock and files: test_run_folder.py)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cnnlab import registry
from cnnlab.errors import TrainingError
from cnnlab.models.base import LogitsWithAux
from cnnlab.registry import create_model
from cnnlab.train import Callback, StepInfo, TrainConfig, block_grad_norms, fit
from cnnlab.train.engine import classification_loss
from tests.helpers import randomize_norm_stats
from tests.train_fixtures import (
    CHILD_ENV,
    TINY,
    TinyAuxNet,
    metrics,
    state_of,
    tiny_config,
    write_image_folder,
    write_mnist,
)


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mnist(tmp_path_factory.mktemp("mnist"))


def test_fit_writes_the_run_folder_and_is_reproducible(mnist_dir: Path, tmp_path: Path) -> None:
    a = fit(tiny_config(mnist_dir, tmp_path, run_name="a"), log=lambda _s: None)
    b = fit(tiny_config(mnist_dir, tmp_path, run_name="b"), log=lambda _s: None)
    assert metrics(a) == metrics(b)  # same seed, same machine, same metrics
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    run = tmp_path / "a"
    for name in ("config.yaml", "metrics.csv", "results.json", "curves.png", "best.pt", "last.pt"):
        assert (run / name).is_file(), name
    assert any((run / "tb").glob("events.out.tfevents.*"))
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[-1]["val_acc"]) == pytest.approx(a.final.val_acc)
    assert "test_acc" not in rows[-1]  # the test split is not looked at during training
    c = fit(tiny_config(mnist_dir, tmp_path, run_name="c", seed=1, epochs=1), log=lambda _s: None)
    assert metrics(c)[0] != metrics(a)[0]


class PoisonAt(Callback):
    """After the backward pass of epoch 2, step 1: fill the first weight (``what="weight"``) or its gradient
    with NaN, or raise a layer's FloatingPointError."""

    def __init__(self, what: str) -> None:
        self.what = what

    def on_step(self, info: StepInfo) -> None:
        if info.epoch == 2 and info.step == 0:
            p = next(info.model.parameters())
            with torch.no_grad():
                (p if self.what == "weight" else p.grad).fill_(float("nan"))


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("weight", r"the loss became nan at epoch 2, step 2; the weights were not updated with it"),
        ("grad", r"the gradient norm became nan at epoch 2, step 1; the weights were not updated with it"),
    ],
)
def test_a_nan_stops_with_the_step_before_the_weights_take_it(
    mnist_dir: Path, tmp_path: Path, what: str, message: str
) -> None:
    with pytest.raises(TrainingError, match=message + r".*Try a lower --lr, a longer warm-up, or --grad-clip"):
        fit(tiny_config(mnist_dir, tmp_path, run_name="nan"), callbacks=[PoisonAt(what)], log=lambda _s: None)
    state = torch.load(tmp_path / "nan" / "last.pt", weights_only=True)
    assert state["epoch"] == 2 and all(
        torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point()
    )


class Raises(torch.nn.Module):
    """A layer that raises FloatingPointError on NaN input (as DeformConv2d's guard does on NaN offsets), or a
    ValueError at its ``value_error_at``-th call (0-based)."""

    def __init__(self, value_error_at: int | None = None) -> None:
        super().__init__()
        self.calls, self.value_error_at = 0, value_error_at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls - 1 == self.value_error_at:
            raise ValueError("a shape rule was broken")
        if not torch.isfinite(x).all():
            raise FloatingPointError("the sampling offsets hold NaN")
        return x


@pytest.mark.parametrize(
    ("layer", "poison", "message"),
    [
        (Raises(), [PoisonAt("weight")], r"a layer met NaN or Inf values \(FloatingPointError: the sampling offsets "
         r"hold NaN\) at epoch 2, step 2; the weights were not updated .* Try a lower --lr"),
        (Raises(value_error_at=1), [], r"the training step failed at epoch 1, step 2: ValueError: a shape rule was "
         r"broken$"),
    ],
)  # fmt: skip
def test_an_error_raised_by_a_layer_names_the_epoch_and_step(
    mnist_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    layer: Raises,
    poison: list[Callback],
    message: str,
) -> None:
    from cnnlab.train import trainer

    real = trainer.build_model

    def with_layer(*args: object, **kwargs: object) -> torch.nn.Module:
        model = real(*args, **kwargs)  # type: ignore[arg-type]
        model.head.global_pool = torch.nn.Sequential(layer, model.head.global_pool)
        return model

    monkeypatch.setattr(trainer, "build_model", with_layer)
    with pytest.raises(TrainingError, match=message):
        fit(tiny_config(mnist_dir, tmp_path, run_name="nan"), callbacks=poison, log=lambda _s: None)


@pytest.mark.slow
def test_a_diverging_deformable_resnet_stops_with_the_nan_message(mnist_dir: Path, tmp_path: Path) -> None:
    # lr 1e30: finite but huge weights after the first step, NaN activations and sampling offsets in the second
    cmd = [sys.executable, "-m", "cnnlab", "train", "--model", "deform_resnet50", "--model-kwargs",
           '{"layers": [1, 1, 1, 1]}', "--data", "mnist", "--data-dir", str(mnist_dir), "--lr", "1e30",
           "--epochs", "1", "--batch-size", "16", "--no-progress", "--out-dir", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=CHILD_ENV)
    assert proc.returncode == 2, proc.stderr[-2000:]  # not -11: no segmentation fault
    assert "at epoch 1, step 2" in proc.stderr and "Try a lower --lr" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_aux_losses_are_added_with_the_models_weight() -> None:
    y = torch.tensor([0, 2, 1])
    main, aux1, aux2 = torch.randn(3, 3), torch.randn(3, 3), torch.randn(3, 3)
    loss, logits = classification_loss(LogitsWithAux(main, (aux1, aux2)), y, label_smoothing=0.0, aux_weight=0.3)
    want = F.cross_entropy(main, y) + 0.3 * (F.cross_entropy(aux1, y) + F.cross_entropy(aux2, y))
    assert torch.allclose(loss, want) and logits is main


def test_fit_trains_a_model_with_aux_classifiers(
    mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry._REGISTRY, "_entries", dict(registry._REGISTRY._entries))

    @registry.register_model
    def tiny_aux_net(**kwargs: object) -> TinyAuxNet:
        return TinyAuxNet(**kwargs)  # type: ignore[arg-type]

    seen = []

    class Grads(Callback):
        def on_step(self, info: StepInfo) -> None:
            if info.global_step == 0:
                seen.append(block_grad_norms(info.model))

    result = fit(
        TrainConfig(model="tiny_aux_net", data="mnist", data_dir=str(mnist_dir), epochs=1, batch_size=32,
                    out_dir=str(tmp_path), progress=False),
        callbacks=[Grads()], log=lambda _s: None,
    )  # fmt: skip
    saved = json.loads((result.run_dir / "results.json").read_text())  # the test split scored once, as written
    assert result.final.val_acc is not None and saved["test"]["final"]["test_acc"] == result.test["final"].test_acc
    assert seen[0].keys() == {"stem", "body", "head", "aux"} and seen[0]["aux"] > 0  # the aux head got gradients


def test_finetuning_with_all_but_head_frozen_keeps_every_frozen_tensor(tmp_path: Path) -> None:
    net = randomize_norm_stats(create_model("cifar_resnet20", num_classes=10, **TINY["model_kwargs"]))
    torch.save(net.state_dict(), tmp_path / "pre.pth")
    before = state_of(net)
    data = write_image_folder(tmp_path / "imgs", per_class=6)
    lines: list[str] = []
    result = fit(
        TrainConfig(**TINY, data=f"imagefolder:{data}", image_size=8, epochs=1, batch_size=4, progress=False,
                    pretrained=str(tmp_path / "pre.pth"), freeze="all-but-head", out_dir=str(tmp_path / "runs")),
        log=lines.append,
    )  # fmt: skip
    after = result.model.state_dict()
    body = [k for k in before if not k.startswith("head.")]
    assert body and all(torch.equal(before[k], after[k]) for k in body)  # weights and BN buffers bit-identical
    assert after["head.fc.weight"].shape == (3, 8)  # a new head for the 3 classes
    n_head = 8 * 3 + 3
    assert any(f"{n_head:,} trainable of" in line for line in lines)
    opt = torch.load(result.run_dir / "last.pt", weights_only=True)["optimizer"]
    assert len(opt["state"]) == 2  # momentum buffers for the fc weight and bias only


def test_freeze_by_stage_count_and_pattern(tmp_path: Path) -> None:
    from cnnlab.errors import ConfigError
    from cnnlab.train.transfer import freeze, frozen_modules, set_train_mode

    net = create_model("cifar_resnet20")
    assert frozen_modules(net, "2") == ["stem", "S1"]
    assert frozen_modules(net, "stem, S2*") == ["stem", "S2"]
    with pytest.raises(ConfigError, match="matches no module"):
        frozen_modules(net, "S9*")
    frozen = freeze(net, "1")
    set_train_mode(net, frozen)
    assert not net.stem.bn.training and net.S1.training  # frozen BN keeps its statistics
    assert not any(p.requires_grad for p in net.stem.parameters())


def test_best_is_chosen_on_validation_and_the_test_split_is_evaluated_once(
    mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from cnnlab.data import load_dataset, make_loader
    from cnnlab.train import trainer
    from cnnlab.train.engine import evaluate
    from cnnlab.train.predict import input_pipeline, model_from_checkpoint

    splits: list[str] = []
    real = trainer.make_loader
    monkeypatch.setattr(
        trainer, "make_loader", lambda data, split, *a, **k: splits.append(split) or real(data, split, *a, **k)
    )
    result = fit(tiny_config(mnist_dir, tmp_path, run_name="v", epochs=3, lr=0.3), log=lambda _s: None)
    assert splits == ["train", "val", "test"]  # one test loader, made after training
    rank = {m.epoch: (m.val_acc, -m.val_loss) for m in result.history}
    assert result.best_epoch == max(rank, key=lambda e: rank[e])
    saved = json.loads((tmp_path / "v" / "results.json").read_text())
    assert saved["best_epoch"] == result.best_epoch and saved["splits"] == {"train": 54, "val": 10, "test": 32}
    # the best checkpoint, evaluated independently on the test split, gives the reported test accuracy
    model, meta = model_from_checkpoint(tmp_path / "v")
    data = load_dataset("mnist", data_dir=str(mnist_dir))
    totals = evaluate(
        model, make_loader(data, "test", input_pipeline(meta), batch_size=7).batches(), device=torch.device("cpu")
    )
    assert totals.correct / totals.count == pytest.approx(saved["test"]["best"]["test_acc"])
    assert saved["test"]["final"]["test_acc"] == pytest.approx(result.test["final"].test_acc)


def test_early_stop_ends_the_run_after_patience_validations_without_improvement(
    mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cnnlab.train import trainer

    monkeypatch.setattr(trainer, "improves", lambda m, best, **_: best is None)  # only epoch 1 is ever "better"
    lines: list[str] = []
    result = fit(tiny_config(mnist_dir, tmp_path, run_name="es", epochs=6, early_stop=2), log=lines.append)
    assert [m.epoch for m in result.history] == [1, 2, 3] and result.stopped_early and result.best_epoch == 1
    assert any("early stop" in line for line in lines)
    assert result.test["best"].epoch == 1 and result.test["final"].epoch == 3
