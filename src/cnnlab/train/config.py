"""The training configuration: one frozen dataclass whose field names are the command-line flags.

``TrainConfig()`` is the default run of ``cnnlab train`` (and ``make demo``): ``cifar_vgg`` (three stages of two 3x3
convs of 16, 32 and 64 channels and global average pooling; 72,666 params with its one-channel stem) on the embedded
MNIST-5k digits, shifted, rotated and scaled, 30 epochs of SGD with Nesterov momentum under a one-cycle schedule,
trained on 3,600 digits, chosen on 400 validation digits, tested once on 1,000. Until 2026-12-01 it was a CIFAR
ResNet-20 for 10 epochs (:func:`first_recipe`).

A YAML file holds the same keys as the flags (``batch_size`` or ``batch-size``); a misspelt key is a
:class:`~cnnlab.errors.ConfigError` that suggests the nearest key.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from cnnlab.data.splits import DEFAULT_VAL_FRACTION
from cnnlab.errors import ConfigError, suggest
from cnnlab.layers.named import plain_model_kwargs
from cnnlab.train.precision import PRECISIONS, Precision

Optimizer = Literal["sgd", "adamw"]
Schedule = Literal["step", "cosine", "onecycle", "constant"]
OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")
SCHEDULES: tuple[str, ...] = ("step", "cosine", "onecycle", "constant")
MAX_EPOCHS = 10_000  # the papers' recipes run 30-300 epochs (He et al. 2016: 164 on CIFAR); more is a typo
MAX_IMAGE_SIZE = 4096  # pixels a side: 16.8 M pixels, 335 x ImageNet's 224 px crops; whether it fits in memory is
# checked against the model and the machine (cnnlab.train.memory)
MAX_WORKERS = 256  # DataLoader processes; each is a Python process of its own
FLOAT32_MAX = 3.4028234663852886e38  # torch.finfo(torch.float32).max: an optimizer multiplies float32 tensors by
# the learning rate and the weight decay, which must be float32 numbers


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run. Every default is the demo's and says why."""

    # what to train
    model: str = "cifar_vgg"  # 72,666 params, 7.3 M MACs at 1x28x28: 30 epochs cost less than 10 of ResNet-20
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)  # extra model arguments, e.g. {"drop_rate": 0.2}
    data: str = "mnist5k"  # embedded, no download (others: cnnlab.data.DATASETS)
    data_dir: str = "data"  # where torchvision datasets live (or are downloaded to with --download)
    download: bool = False  # never touch the network unless asked
    val_fraction: float = DEFAULT_VAL_FRACTION  # of each class's training images, held out to choose (0: none)
    classes: tuple[int, ...] | None = None  # only these classes, relabelled 0, 1, ... (None: all; "5,6,7,8,9")
    train_per_class: int | None = None  # only the first N training images of each class (None: all of them)
    test_copies: int = 1  # each test digit rendered this many times (mnist5k-rts, -cluttered, -seg; see cnnlab.data)
    image_size: int | None = None  # input size (None: the data's own, padded up to the model's minimum;
    # the model's default_image_size for image folders)
    augment: bool = True  # the dataset's standard augmentation (see cnnlab.data.AUGMENT)
    rotate: float | None = None  # random rotation by up to this many degrees either way (None: the data set's
    # standard, 15 for mnist5k; 0: none; in-memory classification data only)
    scale: float | None = None  # random scaling by a factor in [1 - scale, 1 + scale] (None: the data set's, 0.15
    # for mnist5k; 0: none)
    # optimisation
    epochs: int = 30  # 30 x 57 steps, in less time than ResNet-20's 10 epochs (benchmarks/main-job-sweep.md)
    batch_size: int = 64  # small batches: more updates per epoch on 3,600 images
    lr: float = 0.1  # peak learning rate (He et al. 2016 train CIFAR ResNets at 0.1)
    optimizer: Optimizer = "sgd"  # SGD with Nesterov momentum; adamw for transformers-style recipes
    momentum: float = 0.9  # SGD momentum (He et al. 2016)
    nesterov: bool = True  # Nesterov's momentum; False: plain momentum, as He et al. 2016 and MATLAB's sgdm
    weight_decay: float = 5e-4  # L2 on conv/linear weights only (norms and biases are not decayed)
    schedule: Schedule = "onecycle"  # Smith & Topin 2019: warm up, then anneal linearly to zero
    milestones: tuple[float, ...] | None = None  # epochs at which the step schedule divides the lr by 10 (None:
    # at 1/2 and 3/4 of the run, He et al.'s 32k and 48k of 64k iterations)
    warmup_epochs: float = 2.0  # linear warm-up from lr/25 (the first 2 of the 30 epochs)
    warmup_lr: float | None = None  # a constant lr during the warm-up instead (He et al.'s 0.01 for ResNet-110)
    offset_lr_mult: float = 1.0  # the learning rate of deformable convs' offset (and mask) convs, times lr (Dai et
    # al. 2017, Sec. 2.3, set it per layer type; 1: as every other layer); any layer names its own (offset_modules)
    label_smoothing: float = 0.1  # Szegedy et al. 2016 (Inception-v3, Sec. 7)
    grad_clip: float | None = None  # clip the global gradient norm to this (None: no clipping)
    # reproducibility and speed
    seed: int = 0  # same seed, same machine, same metrics
    channels_last: bool = True  # NHWC memory format: faster convolutions on CPU (oneDNN) and tensor cores
    compile: bool = False  # torch.compile the model (minutes of compile time; pays off on long runs)
    precision: Precision = "auto"  # bf16 where the device has it natively, else fp32 (cnnlab.train.precision): the
    # main job's validation accuracy is the same in both (benchmarks/main-job-precision.md); bf16 is bfloat16
    # autocast (weights, optimizer state, BN statistics and loss stay float32); a run records the resolved one
    device: str = "auto"  # auto: cuda when available, else cpu
    workers: int = 0  # DataLoader workers for imagefolder (in-memory datasets need none)
    # transfer learning
    pretrained: str | None = None  # a cnnlab checkpoint, a state_dict file, or "torchvision"/"timm" (online)
    freeze: str | None = None  # "N" (first N stages), "all-but-head", or module-name patterns "stem,S1*"
    # where results go
    out_dir: str = "runs"  # each run gets out_dir/run_name/
    run_name: str | None = None  # None: MODEL-DATA-YYYYmmdd-HHMMSS
    resume: str | None = None  # a run folder or checkpoint to continue (see RESUME_FREE); "auto": if it can
    overwrite: bool = False  # start run_name again if it holds a run (never by accident: that deletes its files)
    progress: bool = True  # a progress bar on stderr
    eval_every: int = 1  # evaluate on the validation split every N epochs (and always after the last)
    early_stop: int | None = None  # stop after this many validations without a better one (None: never)
    record_grad_norms: bool = False  # each stage's and block's gradient norm at the first and last step
    val_every_steps: int | None = None  # also validate every this many steps, recording the accuracy and the zeros
    # entering the head (RUN/watch.json; cnnlab.train.watch); None: at epoch ends only, nothing recorded

    def __post_init__(self) -> None:
        for ok, message in self._checks():
            if not ok:
                raise ConfigError(message)

    def _checks(self) -> list[tuple[bool, str]]:
        """(holds, what is accepted) for every field whose range is narrower than its type."""
        c = self
        return [
            (
                _is_int(c.epochs, 1) and c.epochs <= MAX_EPOCHS,
                f"epochs must be an integer in [1, {MAX_EPOCHS}], got {c.epochs!r}",
            ),
            (_is_int(c.batch_size, 1), f"batch_size must be an integer >= 1, got {c.batch_size!r}"),
            (_is_real(c.lr) and c.lr > 0, f"lr must be a finite number > 0, got {c.lr!r}"),
            (
                not _is_real(c.lr) or c.lr <= FLOAT32_MAX,
                f"lr must be at most {FLOAT32_MAX:.4g} (a float32 number), got {c.lr!r}",
            ),
            (_is_real(c.momentum) and 0 <= c.momentum < 1, f"momentum must be in [0, 1), got {c.momentum!r}"),
            (_is_real(c.weight_decay) and c.weight_decay >= 0, f"weight_decay must be >= 0, got {c.weight_decay!r}"),
            (
                not _is_real(c.weight_decay) or c.weight_decay <= FLOAT32_MAX,
                f"weight_decay must be at most {FLOAT32_MAX:.4g} (a float32 number), got {c.weight_decay!r}",
            ),
            (
                _is_real(c.warmup_epochs) and c.warmup_epochs >= 0,
                f"warmup_epochs must be a finite number >= 0, got {c.warmup_epochs!r}",
            ),
            (
                _is_real(c.offset_lr_mult) and 0 <= c.offset_lr_mult <= FLOAT32_MAX,
                f"offset_lr_mult must be a finite number >= 0 (0: the offsets stay as they start), "
                f"got {c.offset_lr_mult!r}",
            ),
            (
                _is_real(c.label_smoothing) and 0 <= c.label_smoothing < 1,
                f"label_smoothing must be in [0, 1), got {c.label_smoothing!r}",
            ),
            (
                c.grad_clip is None or (_is_real(c.grad_clip) and c.grad_clip > 0),
                f"grad_clip must be a finite number > 0 (or None: no clipping), got {c.grad_clip!r}",
            ),
            (
                _is_real(c.val_fraction) and 0 <= c.val_fraction < 1,
                f"val_fraction must be in [0, 1), got {c.val_fraction!r}",
            ),
            (
                c.image_size is None or (_is_int(c.image_size, 1) and c.image_size <= MAX_IMAGE_SIZE),
                f"image_size must be an integer in [1, {MAX_IMAGE_SIZE}] (or None: the data's own), "
                f"got {c.image_size!r}",
            ),
            (
                c.train_per_class is None or _is_int(c.train_per_class, 1),
                f"train_per_class must be an integer >= 1 (or None: all), got {c.train_per_class!r}",
            ),
            (
                c.classes is None
                or (
                    bool(c.classes) and all(_is_int(k, 0) for k in c.classes) and len(set(c.classes)) == len(c.classes)
                ),
                f"classes must be distinct class indices >= 0 such as 5,6,7,8,9 (or None: all), got {c.classes!r}",
            ),
            (
                c.rotate is None or (_is_real(c.rotate) and 0 <= c.rotate <= 180),
                f"rotate must be degrees in [0, 180] (or None: the data set's standard), got {c.rotate!r}",
            ),
            (
                c.scale is None or (_is_real(c.scale) and 0 <= c.scale < 1),
                f"scale must be in [0, 1) (or None: the data set's standard), got {c.scale!r}",
            ),
            (_is_int(c.seed, 0) and c.seed < 2**63, f"seed must be an integer in [0, 2**63), got {c.seed!r}"),
            (
                _is_int(c.workers, 0) and c.workers <= MAX_WORKERS,
                f"workers must be an integer in [0, {MAX_WORKERS}], got {c.workers!r}",
            ),
            (_is_int(c.eval_every, 1), f"eval_every must be an integer >= 1, got {c.eval_every!r}"),
            (_is_int(c.test_copies, 1), f"test_copies must be an integer >= 1, got {c.test_copies!r}"),
            (
                c.val_every_steps is None or _is_int(c.val_every_steps, 1),
                f"val_every_steps must be an integer >= 1 (or None: at epoch ends only), got {c.val_every_steps!r}",
            ),
            (
                c.val_every_steps is None or c.val_fraction > 0,
                "val_every_steps measures the validation split: set val_fraction > 0",
            ),
            (
                c.early_stop is None or _is_int(c.early_stop, 1),
                f"early_stop must be an integer >= 1 (or None: never), got {c.early_stop!r}",
            ),
            (
                c.early_stop is None or c.val_fraction > 0,
                "early_stop needs a validation split: set val_fraction > 0",
            ),
            (c.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {c.optimizer!r}"),
            (c.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {c.schedule!r}"),
            (c.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {c.precision!r}"),
            (isinstance(c.model_kwargs, Mapping), f"model_kwargs must be a mapping, got {c.model_kwargs!r}"),
            (
                c.run_name is None or (c.run_name not in ("", ".", "..") and "/" not in c.run_name),
                f"run_name must be a folder name (no '/', not '.' or '..'), got {c.run_name!r}",
            ),
            *[
                (not (isinstance(v, str) and "\x00" in v), f"{k} holds a NUL character, which no file name can: {v!r}")
                for k, v in vars(c).items()
            ],
            (
                not (c.resume and c.overwrite),
                "resume continues a run and overwrite starts it again from scratch: give one of them",
            ),
            (
                c.milestones is None
                or (
                    bool(c.milestones)
                    and all(_is_real(m) and 0 < m < c.epochs for m in c.milestones)
                    and list(c.milestones) == sorted(set(c.milestones))
                ),
                f"milestones must be increasing epochs in (0, epochs={c.epochs}) such as 91,136.5 (or None: 1/2 and "
                f"3/4 of the run), got {c.milestones!r}",
            ),
            (
                c.milestones is None or c.schedule == "step",
                f"milestones are the step schedule's; give schedule step (got schedule {c.schedule!r})",
            ),
            (
                c.warmup_lr is None or (_is_real(c.warmup_lr) and c.warmup_lr > 0 and c.warmup_epochs > 0),
                f"warmup_lr must be a finite number > 0 with warmup_epochs > 0 (or None: a linear warm-up), got "
                f"{c.warmup_lr!r} with warmup_epochs {c.warmup_epochs!r}",
            ),
        ]

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (keys checked like a YAML file's)."""
        return config_from_dict(changes, base=self)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (YAML- and ``weights_only``-safe)."""
        d = dataclasses.asdict(self)
        d["model_kwargs"] = plain_model_kwargs(self.model_kwargs)  # layers by name
        d["classes"] = None if self.classes is None else list(self.classes)
        d["milestones"] = None if self.milestones is None else list(self.milestones)
        return d


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_real(value: Any) -> bool:
    """A finite int or float (NaN and infinities are refused)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _coerce(name: str, value: Any) -> Any:
    """YAML gives ints for floats and strings for everything on the command line; check the rest."""
    default = FIELDS[name].default
    if value is None or (default is dataclasses.MISSING and name != "model_kwargs"):
        return value
    if name == "model_kwargs":
        if not isinstance(value, Mapping):
            raise ConfigError(f"model_kwargs must be a mapping, got {value!r}")
        return dict(value)
    if name == "freeze":
        return str(value)
    if name == "classes":  # a list in YAML, "5,6,7" on the command line
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(f"classes must be a list of class indices such as [5, 6, 7], got {value!r}")
        try:
            return tuple(int(str(k).strip()) for k in items)
        except ValueError:
            raise ConfigError(f"classes must be class indices such as 5,6,7,8,9, got {value!r}") from None
    if name == "milestones":  # a list in YAML, "91,136.5" on the command line
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(f"milestones must be a list of epochs such as [91, 136.5], got {value!r}")
        try:
            return tuple(float(str(m).strip()) for m in items)
        except ValueError:
            raise ConfigError(f"milestones must be epochs such as 91,136.5, got {value!r}") from None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, int | float) and (isinstance(value, bool) or not isinstance(value, type(default))):
        raise ConfigError(f"{name} must be a {type(default).__name__}, got {value!r}")
    if isinstance(default, str) and not isinstance(value, str):  # argparse turns `--device=--` into []
        raise ConfigError(f"{name} must be a string, got {value!r}")
    return value


def config_from_dict(values: Mapping[str, Any], *, base: TrainConfig | None = None) -> TrainConfig:
    """``base`` (default: the defaults) with ``values`` applied; keys may use dashes or underscores."""
    changes = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in FIELDS:
            raise ConfigError(f"unknown config key {key!r}.{suggest(name, FIELDS)} Keys: {', '.join(FIELDS)}.")
        changes[name] = _coerce(name, value)
    return dataclasses.replace(base or TrainConfig(), **changes)


FIRST_RECIPE: Mapping[str, Any] = MappingProxyType(
    dict(
        model="cifar_resnet20", epochs=10, batch_size=64, lr=0.1, optimizer="sgd", momentum=0.9, weight_decay=5e-4,
        schedule="onecycle", warmup_epochs=2.0, label_smoothing=0.1, augment=True, rotate=0.0, scale=0.0,
        precision="fp32",
    )
)  # fmt: skip
"""The main job's recipe until 2026-12-01 (the defaults of ``TrainConfig`` then). The experiments start from it, not
from today's defaults, so that a new main job leaves their numbers as they were committed; the benchmark times
today's main job against it. Every field it does not name has the same default as then."""


ADDED_FIELDS: Mapping[str, Any] = MappingProxyType({"rotate": 0.0, "scale": 0.0, "precision": "fp32"})
"""Fields added after runs had been recorded (2026-12-01), each with the value that does what a run recorded without
it did: such a run had no rotation or scaling, whatever the data set's standard augmentation is now, and trained in
float32."""


RENAMED_FIELDS: Mapping[str, tuple[str, Mapping[Any, Any]]] = MappingProxyType(
    {"amp": ("precision", {False: "fp32", True: "bf16"})}
)
"""Fields that were replaced, each by (its successor, the successor's value for each old value): ``amp`` (bfloat16
autocast on CUDA, a notice and float32 on a CPU) became ``precision`` in 2026-12; ``amp: true`` maps to bf16, what it
asked for and what it did on a GPU."""


def recorded_config(values: Mapping[str, Any]) -> TrainConfig:
    """The config a run recorded (its checkpoint's or its ``config.yaml``): :func:`config_from_dict`, with the
    fields it lacks from :data:`ADDED_FIELDS` and its replaced fields renamed (:data:`RENAMED_FIELDS`), so that
    resuming or checking an older run keeps its recipe."""
    values = dict(values)
    for old, (new, mapping) in RENAMED_FIELDS.items():
        if old in values:
            value = values.pop(old)
            if value not in mapping:
                raise ConfigError(f"{old} must be one of {list(mapping)} in a recorded config, got {value!r}")
            values.setdefault(new, mapping[value])
    return config_from_dict(dict(ADDED_FIELDS) | values)


def first_recipe(**changes: Any) -> TrainConfig:
    """:data:`FIRST_RECIPE` with ``changes``."""
    return config_from_dict(dict(FIRST_RECIPE) | changes)


# The fields a resumed run may give other values than its checkpoint's, and why they leave what the run computes
# as it was. Any other field that differs is refused (cnnlab.train.resume): a resumed run continues its recorded
# recipe. epochs may also change under the constant schedule (its steps do not depend on the run's length); under
# every other schedule the learning rate of each step depends on the total.
RESUME_FREE: dict[str, str] = {
    "resume": "names the run to continue",
    "overwrite": "says how a new run takes its folder",
    "progress": "a progress bar",
    "workers": "the batches do not depend on the number of loader processes",
    "device": "where the recipe runs",
    "compile": "speed: torch.compile computes the same function",
    "channels_last": "speed: a memory format",
    "data_dir": "where the same data set is read from",
    "download": "whether missing files may be fetched",
    "eval_every": "when the validation split is measured, not what is trained",
    "early_stop": "when to stop, not what a step computes",
    "record_grad_norms": "what is recorded, not what is computed",
}


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file, or a ConfigError that says what is wrong with it."""
    import yaml

    path = Path(path)
    try:
        obj = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the config file {str(path)!r}: {e}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{str(path)!r} is not valid YAML: {e}") from e
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise ConfigError(f"{str(path)!r} must hold a mapping of flags to values, got a {type(obj).__name__}")
    return obj


def save_yaml(config: TrainConfig, path: Path) -> None:
    import yaml

    from cnnlab.train.atomic import write_atomic

    write_atomic(path, yaml.safe_dump(config.to_dict(), sort_keys=False).encode())
