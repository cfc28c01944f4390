"""Properties of the command line and of the files it reads, over random inputs (hypothesis): random flag values,
random bytes or mutations as checkpoints, images, YAML configs, run files and masks, each command run in-process.

Whatever the input, ``cnnlab`` ends with exit code 0, or 2 and one ``error:`` line (argparse's usage text may come
before it) and no traceback; and nothing that was already written changes (every file of the data and of the
finished run hashes the same before and after). Examples are few and the runs tiny (one step of a ~1.5k-parameter
ResNet), so the file stays within the suite's time budget; the report written after training is skipped (the
report command has its own property).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import cnnlab.pages
from cnnlab.cli import main
from cnnlab.train import fit
from cnnlab.train.config import MAX_EPOCHS, MAX_IMAGE_SIZE, MAX_WORKERS
from tests.train_fixtures import TINY_FLAGS, tiny_config, write_mnist, write_squares

SETTINGS = dict(deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))


@dataclass(frozen=True)
class World:
    data: Path  # write_mnist's digits
    run: Path  # a finished 1-epoch run of the tiny ResNet on them
    image: Path  # a 28x28 grey PNG
    seg: Path  # write_squares' segmentation folder of 8 images with a classes.txt of 3 classes


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("properties")
    data = write_mnist(root / "data")
    run = fit(tiny_config(data, root / "runs", epochs=1, run_name="r"), log=lambda _s: None).run_dir
    Image.fromarray(np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)).save(root / "digit.png")
    seg = write_squares(root / "seg", 8)
    (seg / "classes.txt").write_text("background\nwarm\ncool\n")
    return World(data, run, root / "digit.png", seg)


@pytest.fixture(autouse=True)
def _no_report_after_training(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cnnlab.pages, "report_after_training", lambda _run: None)


def snapshot(*roots: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for r in roots for p in sorted(r.rglob("*")) if p.is_file()}


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh folder for one example (hypothesis runs many examples in one test call)."""
    with tempfile.TemporaryDirectory(prefix="cnnlab-prop-") as d:
        yield Path(d)


def holds(argv: list[str], capsys: pytest.CaptureFixture[str], world: World) -> int:
    """Run ``cnnlab argv`` and check the property (see the module docstring); its exit code."""
    before = snapshot(world.data, world.run, world.seg, world.image.parent / "digit.png")
    try:
        code = main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    err = capsys.readouterr().err
    assert code in (0, 2) and "Traceback" not in err, (argv, code, err)
    if code == 2:
        lines = err.splitlines()
        assert [i for i, line in enumerate(lines) if "error: " in line] == [len(lines) - 1], (argv, err)
    after = snapshot(world.data, world.run, world.seg, world.image.parent / "digit.png")
    assert {p: after.get(p) for p in before} == before, argv  # nothing already written changed
    return code


def cheap_train(world: World, out: Path) -> list[str]:
    """One step: ten training digits in one batch, one epoch (a random flag after these overrides them)."""
    return ["train", *TINY_FLAGS, "--data", "mnist", "--data-dir", str(world.data), "--epochs", "1",
            "--train-per-class", "1", "--batch-size", "16", "--image-size", "28", "--no-progress", "--no-compile",
            "--device", "cpu", "--out-dir", str(out)]  # fmt: skip


# ---------------------------------------------------------------------------------------------- flag values

TEXT = st.text(max_size=8)  # never a path: --out-dir, --data-dir, --config, --resume and --pretrained stay fixed
FLOAT = st.floats(allow_nan=True, allow_infinity=True).map(repr) | st.sampled_from(["1e309", "-0", "0x10", " 1"])
CHEAP = {  # large valid values of these would make a long run; only the refused ones are drawn
    "--epochs": st.integers(-3, 1) | st.integers(MAX_EPOCHS + 1, 10**30),
    "--batch-size": st.integers(-3, 64) | st.integers(10**12, 10**30),
    "--image-size": st.integers(-3, 40) | st.integers(MAX_IMAGE_SIZE + 1, 10**30),
    "--workers": st.integers(-3, 1) | st.integers(MAX_WORKERS + 1, 10**30),
}
INTS = ["--seed", "--eval-every", "--early-stop", "--train-per-class"]
FLOATS = ["--lr", "--momentum", "--weight-decay", "--warmup-epochs", "--label-smoothing", "--grad-clip",
          "--val-fraction", "--rotate", "--scale"]  # fmt: skip
WORDS = ["--model", "--data", "--classes", "--freeze", "--optimizer", "--schedule", "--device", "--run-name",
         "--model-kwargs"]  # fmt: skip


@st.composite
def flag_values(draw: st.DrawFn) -> tuple[str, str]:
    flag = draw(st.sampled_from([*CHEAP, *INTS, *FLOATS, *WORDS]))
    if flag in CHEAP:
        value = draw(CHEAP[flag].map(str) | TEXT)
    elif flag in INTS:
        value = draw(st.integers(-(10**30), 10**30).map(str) | TEXT)
    elif flag in FLOATS:
        value = draw(FLOAT | TEXT)
    else:
        odd = ["1,2", "5,5", "all-but-head", "S1*", "cpu:0", "meta", "mps", "cuda:99", "a\x00b", '{"drop_rate": 2}']
        value = draw(TEXT | st.sampled_from(odd))
    return flag, value


@settings(max_examples=24, **SETTINGS)
@given(flag_values())
def test_train_with_a_random_flag_value(
    world: World, capsys: pytest.CaptureFixture[str], flag_value: tuple[str, str]
) -> None:
    flag, value = flag_value
    with scratch() as out:
        holds([*cheap_train(world, out), f"{flag}={value}"], capsys, world)


# ---------------------------------------------------------------------------------------------- files


def mutated(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` cut short, with a byte flipped, or random bytes of about its start."""
    cut = st.integers(0, len(data) - 1).map(lambda n: data[:n])
    flip = st.integers(0, len(data) - 1).map(lambda i: data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :])
    return cut | flip | st.binary(max_size=256) | st.binary(max_size=64).map(lambda b: data[:64] + b)


@settings(max_examples=16, **SETTINGS)
@given(st.data())
def test_eval_predict_export_and_resume_of_random_checkpoint_bytes(
    world: World, capsys: pytest.CaptureFixture[str], data: st.DataObject
) -> None:
    content = data.draw(mutated((world.run / "best.pt").read_bytes()))
    command = data.draw(st.sampled_from(["eval", "predict", "export", "resume"]))
    with scratch() as tmp:
        (tmp / "ckpt.pt").write_bytes(content)
        argv = {
            "eval": ["eval", str(tmp / "ckpt.pt"), "--out", str(tmp)],
            "predict": ["predict", str(tmp / "ckpt.pt"), str(world.image)],
            "export": ["export", str(tmp / "ckpt.pt"), "--output", str(tmp / "model.onnx")],
            "resume": ["train", "--resume", str(tmp / "ckpt.pt"), "--no-progress"],
        }[command]
        assert holds(argv, capsys, world) == 2  # no change of a sealed file passes its checksum


def image_bytes() -> st.SearchStrategy[bytes]:
    """A PNG of random pixels, size and mode; or random bytes."""

    def encode(args: tuple[str, int, int, int]) -> bytes:
        mode, h, w, seed = args
        rng = np.random.default_rng(seed)
        channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
        pixels = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode=mode).save(buf, format="PNG")
        return buf.getvalue()

    sizes = st.integers(1, 70)
    pngs = st.tuples(st.sampled_from(["L", "RGB", "RGBA"]), sizes, sizes, st.integers(0, 2**16)).map(encode)
    return pngs | st.binary(max_size=200) | pngs.map(lambda b: b[: len(b) // 2])


@settings(max_examples=12, **SETTINGS)
@given(image_bytes())
def test_predict_of_random_image_bytes(world: World, capsys: pytest.CaptureFixture[str], content: bytes) -> None:
    with scratch() as tmp:
        (tmp / "x.png").write_bytes(content)
        holds(["predict", str(world.run), str(tmp / "x.png")], capsys, world)


YAML_VALUES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6) | st.lists(st.integers())


def yaml_text() -> st.SearchStrategy[bytes]:
    """A mapping of known and unknown keys to random values, random text, or random bytes."""
    import yaml

    from cnnlab.train.config import FIELDS

    keys = st.sampled_from([*FIELDS, "epohcs", "lr-", ""])
    mapping = st.dictionaries(keys, YAML_VALUES, max_size=3).map(lambda d: yaml.safe_dump(d).encode())
    return mapping | st.text(max_size=40).map(str.encode) | st.binary(max_size=40)


@settings(max_examples=16, **SETTINGS)
@given(yaml_text())
def test_train_with_a_random_yaml_config(world: World, capsys: pytest.CaptureFixture[str], content: bytes) -> None:
    with scratch() as tmp:
        (tmp / "c.yaml").write_bytes(content)
        # the flags keep the run tiny whatever the file says (flags win over --config)
        holds(["train", "--config", str(tmp / "c.yaml"), *cheap_train(world, tmp / "out")[1:]], capsys, world)


@settings(max_examples=4, **SETTINGS)
@given(st.sampled_from(["config.yaml", "metrics.csv", "results.json", "best.pt"]), st.binary(max_size=64))
def test_report_of_a_run_with_a_random_file(
    world: World, capsys: pytest.CaptureFixture[str], name: str, content: bytes
) -> None:
    with scratch() as tmp:
        run = Path(shutil.copytree(world.run, tmp / "r"))
        (run / name).write_bytes(content)
        assert holds(["report", str(run), "--out", str(tmp / "page.html")], capsys, world) == 0


def mask_bytes() -> st.SearchStrategy[bytes]:
    """A mask PNG of random values (mode L, or I;16 with values above 255), of the image's size or another; or
    random bytes."""

    def encode(args: tuple[bool, int, int, bool]) -> bytes:
        wide, seed, side, few = args
        rng = np.random.default_rng(seed)
        top = 300 if wide else 256
        values = rng.choice([0, 1, 2, 255], (side, side)) if few else rng.integers(0, top, (side, side))
        buf = io.BytesIO()
        Image.fromarray(values.astype(np.uint16 if wide else np.uint8)).save(buf, format="PNG")
        return buf.getvalue()

    masks = st.tuples(st.booleans(), st.integers(0, 2**16), st.sampled_from([16, 16, 5]), st.booleans()).map(encode)
    return masks | st.binary(max_size=100)


@settings(max_examples=8, **SETTINGS)
@given(mask_bytes())
def test_train_on_a_segmentation_folder_with_a_random_mask(
    world: World, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    with scratch() as tmp:
        seg = Path(shutil.copytree(world.seg, tmp / "seg"))
        (seg / "masks" / "3.png").write_bytes(content)
        argv = ["train", "--model", "fcn_cifar_resnet20", "--data", f"segfolder:{seg}", "--image-size", "16",
                "--epochs", "1", "--batch-size", "8", "--no-progress", "--device", "cpu",
                "--out-dir", str(tmp / "out")]  # fmt: skip
        holds(argv, capsys, world)
