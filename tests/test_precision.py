"""``precision``: bfloat16 autocast in training where the processor has it, float32 where it must stay float32 (the
weights, their optimizer state, the batch-norm statistics, the loss), recorded by the run and kept on resume."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from cnnlab.cli import main
from cnnlab.cli.train_cmd import register, resolve_config
from cnnlab.errors import ConfigError
from cnnlab.train import engine, fit, precision
from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.train.config import FIRST_RECIPE, recorded_config
from cnnlab.train.resume import open_run
from tests.train_fixtures import TINY_FLAGS, tiny_config, write_mnist


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture
def bf16_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A processor with bfloat16 dot products, whatever this one has (autocast itself runs bfloat16 on any CPU)."""
    monkeypatch.setattr(precision, "bf16_supported", lambda device: True)


@pytest.fixture
def no_bf16_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A processor without bfloat16 dot products (AVX2 only, say)."""
    monkeypatch.setattr(precision, "bf16_supported", lambda device: False)


def test_bf16_trains_under_autocast_and_keeps_weights_state_statistics_and_loss_float32(
    mnist_dir: Path, tmp_path: Path, bf16_cpu: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[torch.dtype, torch.dtype]] = []
    loss_fn = engine.classification_loss

    def spy(output: Any, target: Any, **kw: Any) -> Any:
        loss, logits = loss_fn(output, target, **kw)
        seen.append((logits.dtype, loss.dtype))
        return loss, logits

    monkeypatch.setattr(engine, "classification_loss", spy)
    result = fit(tiny_config(mnist_dir, tmp_path, precision="bf16", run_name="bf16"), log=lambda _s: None)
    assert seen and all(s == (torch.bfloat16, torch.float32) for s in seen)  # bf16 products, a float32 loss
    state = load_checkpoint(result.run_dir / "last.pt")
    model = state["model"]
    assert all(t.dtype == torch.float32 for k, t in model.items() if not k.endswith("num_batches_tracked"))
    means = [k for k in model if k.endswith("running_mean")]
    assert means and all(model[k].dtype == model[k.replace("mean", "var")].dtype == torch.float32 for k in means)
    momentum = [s["momentum_buffer"] for s in state["optimizer"]["state"].values()]
    assert momentum and all(m.dtype == torch.float32 for m in momentum)
    assert result.final.train_loss == result.final.train_loss  # finite: it trained
    assert state["config"]["precision"] == "bf16"
    assert yaml.safe_load((result.run_dir / "config.yaml").read_text())["precision"] == "bf16"


def test_fp32_trains_without_autocast(mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[torch.dtype] = []
    loss_fn = engine.classification_loss
    monkeypatch.setattr(engine, "classification_loss", lambda o, t, **kw: seen.append(o.dtype) or loss_fn(o, t, **kw))
    fit(tiny_config(mnist_dir, tmp_path, epochs=1, precision="fp32"), log=lambda _s: None)
    assert seen and set(seen) == {torch.float32}


@pytest.mark.parametrize(("supported", "recorded"), [(True, "bf16"), (False, "fp32")])
def test_auto_is_bf16_exactly_where_the_processor_has_it_and_the_run_records_which(
    mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, supported: bool, recorded: str
) -> None:
    monkeypatch.setattr(precision, "bf16_supported", lambda device: supported)
    result = fit(tiny_config(mnist_dir, tmp_path, epochs=1, precision="auto"), log=lambda _s: None)
    assert yaml.safe_load((result.run_dir / "config.yaml").read_text())["precision"] == recorded


def test_bf16_on_a_processor_without_it_is_a_clear_error(
    mnist_dir: Path, tmp_path: Path, no_bf16_cpu: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match=r"no bfloat16 dot products \(AVX512-BF16 or AMX\).*--precision fp32"):
        fit(tiny_config(mnist_dir, tmp_path / "py", precision="bf16"), log=lambda _s: None)
    argv = ["train", *TINY_FLAGS, "--data", "mnist", "--data-dir", str(mnist_dir), "--no-progress",
            "--out-dir", str(tmp_path / "cli"), "--precision", "bf16"]  # fmt: skip
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "no bfloat16 dot products" in err and "Traceback" not in err
    assert not (tmp_path / "py").exists() and not (tmp_path / "cli").exists()


def test_a_resumed_run_keeps_its_precision_and_refuses_another(mnist_dir: Path, tmp_path: Path, bf16_cpu: None) -> None:
    config = tiny_config(mnist_dir, tmp_path, precision="bf16", schedule="constant", epochs=1, run_name="r")
    run = fit(config, log=lambda _s: None).run_dir
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["train", "--resume", str(run), "--epochs", "2"])
    resumed, _ = open_run(resolve_config(args), given={"resume", "epochs"})  # as `cnnlab train` resumes
    assert resumed.precision == "bf16"  # from the checkpoint, not today's default
    assert fit(resumed, log=lambda _s: None).history[-1].epoch == 2
    with pytest.raises(ConfigError, match=r"precision was 'bf16' in .* \(given: 'fp32'\)"):
        fit(resumed.replace(precision="fp32", epochs=3), log=lambda _s: None)


def test_old_runs_recorded_amp_and_read_back_as_precision() -> None:
    assert recorded_config({"amp": False}).precision == "fp32"
    assert recorded_config({"amp": True}).precision == "bf16"  # what it asked for (and did on a GPU)
    assert recorded_config({}).precision == "fp32"  # a run recorded before either field trained in float32
    with pytest.raises(ConfigError, match="amp must be one of"):
        recorded_config({"amp": "yes"})


def test_experiments_keep_the_float32_they_were_run_with() -> None:
    assert FIRST_RECIPE["precision"] == "fp32"


def test_bf16_support_on_this_cpu_follows_its_instruction_set() -> None:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo to read the instruction set from")
    lines = cpuinfo.read_text().splitlines()
    flags = next((line.split(":")[1].split() for line in lines if line.startswith("flags")), [])
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    assert precision.bf16_supported(torch.device("cpu")) == native
    assert precision.resolve_precision("auto", torch.device("cpu")) == ("bf16" if native else "fp32")


def test_resolve_precision_checks_its_argument() -> None:
    with pytest.raises(ConfigError, match=r"precision must be one of \('auto', 'fp32', 'bf16'\), got 'fp16'"):
        precision.resolve_precision("fp16", torch.device("cpu"))


def test_an_experiment_run_with_precision_auto_is_the_run_it_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new experiment file may say ``precision: auto``; its finished run records what auto resolved to, and is
    recognised as the same recipe on a machine where auto resolves the same way (only there)."""
    from cnnlab.experiments.runner import Run
    from cnnlab.experiments.spec import Variant
    from cnnlab.train.config import save_yaml

    config = tiny_config(tmp_path / "data", tmp_path / "runs", precision="auto", run_name="v-seed0")
    run = Run("variant", Variant("v", config.model), 0, config)
    run.folder.mkdir(parents=True)
    save_yaml(config.replace(precision="bf16"), run.folder / "config.yaml")  # as fit records it on a bf16 CPU
    monkeypatch.setattr(precision, "bf16_supported", lambda device: True)
    run.check_recipe()
    monkeypatch.setattr(precision, "bf16_supported", lambda device: False)
    with pytest.raises(ConfigError, match=r"holds a run of another recipe: precision 'bf16' \(the file says 'fp32'\)"):
        run.check_recipe()
