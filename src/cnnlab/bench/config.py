"""What ``cnnlab bench`` measures: :class:`BenchConfig`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cnnlab.errors import ConfigError, check_count
from cnnlab.optimize import BACKENDS, Backend
from cnnlab.registry import model_entry

DEFAULT_MODELS = (
    "resnet18",
    "resnet50",
    "googlenet",
    "inception_v3",
    "densenet121",
    "vgg16",
    "mobilenet_v2",
    "shufflenet_v2_x1_0",
)


@dataclass(frozen=True)
class BenchConfig:
    """What to measure. The defaults (eight models, three parity runs, both main jobs, float32 against bfloat16 and
    int8) take about 20 minutes on 2 cores.

    Every field is checked on construction: an unknown model name is an UnknownModelError that suggests the
    nearest names (before anything is measured), a count below 1 a ConfigError."""

    models: tuple[str, ...] = DEFAULT_MODELS
    size: int = 112  # image height and width; 224 (the papers') takes about 4x longer than this
    batch: int = 32  # batch of the throughput and training-step measurements
    repeats: int = 5  # timed repetitions per implementation; medians are reported
    parity_runs: int = 3  # full interleaved runs of the per-model table; each run's ratios and their median
    min_sample_s: float = 0.1  # batch-1 latency: repeat calls within one sample until it lasts this long
    latency_repeats: int = 21  # batch-1 samples are short and noisy on a shared VM: more of them, still seconds
    optimize_model: str = "resnet50"  # the model of the optimize_for_inference comparison
    optimize_backend: Backend = "compile"
    optimize_size: int = 224  # the paper's resolution: float32 rounding differences shrink with larger maps
    peak_matmul_n: int = 2048  # n of the n x n float32 matmul that measures the machine's peak
    trainer_model: str = "cifar_resnet20"  # model and data of the training-loop baseline
    trainer_images: int = 3600  # training images of mnist5k used, one epoch (its whole training split: 3,600)
    trainer_batch: int = 64
    trainer_repeats: int = 3  # interleaved runs of the hand-written loop and the trainer
    main_job: bool = True  # the main job and the previous one, their accuracy and wall times (about 2 minutes)
    low_precision: bool = True  # OpenVINO, bfloat16 and int8 paths in the optimize_model table (about 2 minutes)
    precision_training: bool = True  # training img/s in float32 and bfloat16 of four models (about 3 minutes)
    precision_repeats: int = 5  # interleaved repetitions of each training step
    compile_training: tuple[str, ...] = ("cifar_resnet20",)  # also timed under torch.compile (a minute or more each)
    precision_seeds: tuple[int, ...] = (0, 1, 2)  # the main job in each precision for these seeds (6 x ~1 minute)
    int8: bool = True  # test accuracy and speed in float32 and int8 of the main job and a ResNet on mnist5k-rts
    analysis: bool = True  # time cnnlab.analyze on ResNet-152 and `cnnlab models` (about 15 s)

    def __post_init__(self) -> None:
        if not self.models or isinstance(self.models, str):
            raise ConfigError(f"models must be a non-empty tuple of model names, got {self.models!r}")
        for name in (*self.models, self.optimize_model, self.trainer_model, *self.compile_training):
            model_entry(name)  # an unknown name is an UnknownModelError that suggests the nearest ones
        counts = ("size", "batch", "repeats", "parity_runs", "latency_repeats", "optimize_size", "peak_matmul_n")
        for name in (*counts, "trainer_images", "trainer_batch", "trainer_repeats", "precision_repeats"):
            check_count(name, getattr(self, name), minimum=1, error=ConfigError)
        if not isinstance(self.min_sample_s, int | float) or self.min_sample_s < 0:
            raise ConfigError(f"min_sample_s must be a number of seconds >= 0, got {self.min_sample_s!r}")
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in self.precision_seeds):
            raise ConfigError(f"precision_seeds must be seeds (integers >= 0), got {self.precision_seeds!r}")
        if self.optimize_backend not in BACKENDS:
            raise ConfigError(f"optimize_backend must be one of {BACKENDS}, got {self.optimize_backend!r}")

    @classmethod
    def quick(cls, models: Sequence[str] = ("resnet18",), **overrides: Any) -> BenchConfig:
        """Tiny sizes for tests: every code path, no meaningful timing."""
        settings: dict[str, Any] = dict(
            models=tuple(models),
            size=32,
            batch=4,
            repeats=1,
            parity_runs=1,
            min_sample_s=0.0,
            latency_repeats=1,
            optimize_model=models[0],
            optimize_backend="eager",
            optimize_size=32,
            peak_matmul_n=256,
            trainer_images=128,
            trainer_batch=32,
            trainer_repeats=1,
            main_job=False,
            analysis=False,
            low_precision=False,
            precision_training=False,
            precision_seeds=(),
            int8=False,
        )
        return cls(**(settings | overrides))
