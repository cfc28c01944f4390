"""``cnnlab models``' counts (cnnlab.analysis.catalog) and the meta-device builds they rest on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlab.analysis import catalog, count_macs
from cnnlab.analysis.catalog import ModelCounts, model_counts
from cnnlab.errors import AnalysisError
from cnnlab.registry import build_model, meta_model, on_meta

NAMES = ["cifar_resnet20", "lenet5"]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(catalog.CACHE_ENV, str(folder))
    return folder


def test_on_meta_swaps_nothing_and_leaves_nothing_behind() -> None:
    """The initialisers are skipped by a function mode on the building thread, not swapped in ``torch.nn.init``
    (which every thread shares); after the block, even one left by an error, layers are real again."""
    kaiming = nn.init.kaiming_uniform_
    calls: list[str] = []
    with on_meta():
        assert nn.init.kaiming_uniform_ is kaiming
        conv = nn.Conv2d(3, 8, 3)
        calls.append(str(conv.weight.device))
    assert calls == ["meta"]
    with pytest.raises(RuntimeError), on_meta():
        raise RuntimeError("inside")
    assert nn.init.kaiming_uniform_ is kaiming
    assert not torch.nn.Conv2d(1, 1, 1).weight.is_meta


@pytest.mark.parametrize("name", ["cifar_resnet20", "googlenet", "deform_resnet50", "shufflenet_v1_g3_x1_0"])
def test_a_meta_model_has_the_structure_of_the_real_one(name: str) -> None:
    meta, real = meta_model(name), build_model(name)
    assert all(p.is_meta for p in meta.parameters())
    assert [(k, v.shape) for k, v in meta.state_dict().items()] == [(k, v.shape) for k, v in real.state_dict().items()]


def test_counts_are_the_models_own_and_come_back_from_the_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counts = model_counts(NAMES)
    for name in NAMES:
        model = build_model(name)
        assert counts[name] == ModelCounts(sum(p.numel() for p in model.parameters()), count_macs(model))
    # ResNet-20 on 3 x 32 x 32 (He et al. 2016: 0.27M params): the stem, 6 convs per stage at 32, 16 and 8 px (the
    # first of stages 2 and 3 at stride 2 from the narrower width), and the fc
    convs = 16 * 3 * 9 * 32**2 + 6 * 16 * 16 * 9 * 32**2
    convs += (32 * 16 + 5 * 32 * 32) * 9 * 16**2 + (64 * 32 + 5 * 64 * 64) * 9 * 8**2
    assert counts["cifar_resnet20"] == ModelCounts(269_722, convs + 64 * 10)
    assert len(list(cache.glob("model-counts-*.json"))) == 1

    def no_counting(name: str) -> ModelCounts:
        raise AssertionError(f"{name} was counted again")

    monkeypatch.setattr(catalog, "count_model", no_counting)
    assert model_counts(NAMES) == counts  # from the file alone
    assert list(model_counts(["lenet5"])) == ["lenet5"]


def test_a_new_source_key_a_corrupt_file_or_an_unwritable_folder_mean_counting_again(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = model_counts(["lenet5"])
    [old] = cache.glob("model-counts-*.json")
    counted: list[str] = []
    real = catalog.count_model
    monkeypatch.setattr(catalog, "count_model", lambda name: counted.append(name) or real(name))
    monkeypatch.setattr(catalog, "source_key", lambda: "edited")  # cnnlab's source changed
    assert model_counts(["lenet5"]) == first and counted == ["lenet5"]
    assert not old.exists() and [p.name for p in cache.glob("model-counts-*.json")] == ["model-counts-edited.json"]
    (cache / "model-counts-edited.json").write_text('{"lenet5": {"params": "half a file')
    assert model_counts(["lenet5"]) == first and counted == ["lenet5"] * 2
    blocker = cache.parent / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(catalog.CACHE_ENV, str(blocker / "cache"))  # a folder that cannot be made
    assert model_counts(["lenet5"]) == first and counted == ["lenet5"] * 3
    monkeypatch.setenv(catalog.CACHE_ENV, "")  # no cache at all
    assert catalog.cache_dir() is None
    assert model_counts(["lenet5"]) == first and counted == ["lenet5"] * 4


def test_a_model_that_cannot_be_counted_keeps_its_params_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fails(model: nn.Module) -> int:
        raise AnalysisError("no default input size")

    monkeypatch.setattr(catalog, "count_macs", fails)
    assert catalog.count_model("lenet5") == ModelCounts(60_806, None, "no default input size")


def test_the_source_key_follows_the_source_and_torch() -> None:
    key = catalog.source_key()
    assert len(key) == 20 and key == catalog.source_key()
