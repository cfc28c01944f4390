"""Crafted checkpoints: truncated, with flipped bytes, of another architecture, pickles that would run code, files
that are no cnnlab checkpoint. Each is refused with a message that says what is wrong, and none runs code."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from cnnlab.cli import main
from cnnlab.errors import TrainingError
from cnnlab.registry import create_model
from cnnlab.train import fit
from cnnlab.train.checkpoint import SEAL_SIZE, load_checkpoint, load_model_state, save_checkpoint, seal
from tests.train_fixtures import TINY, tiny_config, write_mnist


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder of the tiny ResNet trained for one epoch."""
    root = tmp_path_factory.mktemp("safety")
    write_mnist(root / "data")
    return fit(tiny_config(root / "data", root / "runs", epochs=1, run_name="r"), log=lambda _s: None).run_dir


class CreatesFile:
    """Unpickling this calls ``open(path, "w")``: a stand-in for any code a pickle can run."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple:
        return (open, (self.path, "w"))


def flipped(offset: int) -> Callable[[bytes, Path], bytes]:
    """The file with the byte at ``offset`` (from the end when negative) inverted."""

    def craft(data: bytes, _tmp: Path) -> bytes:
        out = bytearray(data)
        out[offset] ^= 0xFF
        return bytes(out)

    return craft


def saved(obj: object) -> bytes:
    """What ``torch.save`` writes for ``obj``."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def sealed(obj: object) -> bytes:
    """The same with cnnlab's checksum: what a forger who knows the format would write."""
    return saved(obj) + seal(saved(obj))


DAMAGED = "is damaged: its bytes do not match its checksum"
UNSEALED = "carries no cnnlab checksum"
CASES = {  # name: (make the file from a good checkpoint's bytes and a folder, what the error says)
    "truncated to half": (lambda d, _t: d[: len(d) // 2], f"{UNSEALED}: it is not a cnnlab checkpoint, or its end"),
    "truncated by one byte": (lambda d, _t: d[:-1], UNSEALED),
    "flipped: zip signature": (flipped(0), DAMAGED),
    "flipped: first file name": (flipped(40), DAMAGED),
    "flipped: in the tensors": (lambda d, t: flipped(len(d) // 2)(d, t), DAMAGED),
    "flipped: zip directory": (flipped(-SEAL_SIZE - 30), DAMAGED),
    "flipped: the seal's mark": (flipped(-SEAL_SIZE + 3), UNSEALED),
    "flipped: the checksum": (flipped(-1), DAMAGED),
    "empty": (lambda _d, _t: b"", f"{UNSEALED}: it is not a cnnlab checkpoint, or its end is damaged or cut off (0"),
    "not a torch file": (lambda _d, _t: b"hello" * 100, UNSEALED),
    "a plain state_dict": (
        lambda _d, _t: saved(create_model("cifar_resnet20").state_dict()),
        f"{UNSEALED}: it is not a cnnlab checkpoint",
    ),
    "sealed, not a training checkpoint": (
        lambda _d, _t: sealed({"model": create_model("cifar_resnet20").state_dict()}),
        "is not a cnnlab training checkpoint (no config, meta)",
    ),
    "sealed pickle that would run code": (
        lambda _d, t: sealed({"model": {}, "config": {}, "meta": {}, "x": CreatesFile(t / "pwned")}),
        "holds objects other than tensors and plain values",
    ),
    "unsealed pickle that would run code": (
        lambda _d, t: saved({"model": {}, "x": CreatesFile(t / "pwned")}),
        UNSEALED,
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_crafted_checkpoint_is_refused_by_eval_predict_export_and_resume(
    case: str, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    craft, message = CASES[case]
    bad = tmp_path / "bad.pt"
    bad.write_bytes(craft((run / "last.pt").read_bytes(), tmp_path))
    for argv in (["eval", str(bad)], ["export", str(bad)], ["train", "--resume", str(bad)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("cnnlab: error: ") and message in err and str(bad) in err, (argv, err)
        assert "Traceback" not in err
    assert not (tmp_path / "pwned").exists()  # no code ran
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt"]  # nothing was written next to it


def test_a_sealed_checkpoint_still_loads_with_plain_torch_load(run: Path) -> None:
    state = load_checkpoint(run)
    plain = torch.load(run / "last.pt", weights_only=True)  # the seal is ignored by torch's zip reader
    assert plain["epoch"] == state["epoch"] == 2 and plain["model"].keys() == state["model"].keys()


def test_pretrained_weights_from_a_damaged_checkpoint_are_refused(run: Path, tmp_path: Path) -> None:
    good = (run / "best.pt").read_bytes()
    (tmp_path / "bad.pt").write_bytes(flipped(len(good) // 2)(good, tmp_path))
    cfg = tiny_config(run.parent.parent / "data", tmp_path / "runs", epochs=1, freeze="all-but-head")
    with pytest.raises(TrainingError, match=DAMAGED):
        fit(cfg.replace(pretrained=str(tmp_path / "bad.pt")), log=lambda _s: None)
    assert not (tmp_path / "runs").exists()
    lines: list[str] = []
    fit(cfg.replace(pretrained=str(run / "best.pt")), log=lines.append)
    assert any(line.startswith(f"pretrained {run / 'best.pt'}: loaded") for line in lines)


def test_weights_of_another_architecture_are_refused(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    other = torch.nn.Linear(2, 2)
    other.model_name = "resnet18"
    with pytest.raises(TrainingError, match="holds a cifar_resnet20, not a resnet18; pass --model cifar_resnet20"):
        load_model_state(other, load_checkpoint(run))
    state = load_checkpoint(run)  # the name and arguments of the tiny ResNet, the weights of a full one
    state["model"] = create_model("cifar_resnet20", num_classes=10, in_chans=1).state_dict()
    save_checkpoint({k: v for k, v in state.items() if k != "path"}, tmp_path / "other.pt")
    assert main(["eval", str(tmp_path / "other.pt")]) == 2
    err = capsys.readouterr().err
    assert "does not fit cifar_resnet20 with model_kwargs {'layers': [1, 1, 1], 'widths': [4, 8, 8]}" in err
    assert "stem.conv.weight is (16, 1, 3, 3), the model's (4, 1, 3, 3)" in err and "Traceback" not in err
    assert TINY["model_kwargs"] == state["meta"]["model_kwargs"]
