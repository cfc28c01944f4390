"""The lesion claim's two other halves (Veit et al. 2016): the error grows smoothly with the blocks removed
(``lesion_step``), except that a downsampling block costs more (``lesion_downsampling_excess``), judged as one
network against a number (a one-sample test: an expectation whose ``worse`` is a number)."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from cnnlab.errors import ConfigError
from cnnlab.experiments.collect import RunRecord, judge
from cnnlab.experiments.probes import downsampling_excess, lesion_errors, lesion_step
from cnnlab.experiments.spec import spec_from_dict
from cnnlab.registry import create_model

TINY = {"layers": [1, 1, 1], "widths": [4, 8, 8]}


def curve(intact: float, means: dict[int, float], blocks: dict[str, float] | None = None, **extra: object) -> dict:
    return {"intact": intact, "blocks": blocks or {}, "random": {str(k): {"mean": m} for k, m in means.items()}} | extra


def test_the_lesion_step_is_the_steepest_rise_per_block_removed() -> None:
    # 0.05 -> 0.15 over one block (0.10 per block), -> 0.25 over one (0.10), -> 0.65 over two (0.20), -> 0.85 over 4
    assert lesion_step(curve(0.05, {1: 0.15, 2: 0.25, 4: 0.65, 8: 0.85})) == pytest.approx(0.20)
    # a plain net: at chance after the first block, flat after it
    assert lesion_step(curve(0.05, {8: 0.9, 1: 0.9, 2: 0.9})) == pytest.approx(0.85)
    assert lesion_step(curve(0.05, {})) is None  # no random lesions measured


def test_the_downsampling_excess_compares_each_downsampling_block_with_its_own_stage() -> None:
    blocks = {"S1.U1": 0.30, "S1.U2": 0.20, "S2.U1": 0.14, "S2.U2": 0.09, "S2.U3": 0.07, "S3.U1": 0.08, "S3.U2": 0.06}
    lesion = curve(0.04, {}, blocks, downsampling=["S2.U1", "S3.U1"])
    # S2: 0.14 - (0.09 + 0.07) / 2 = 0.06; S3: 0.08 - 0.06 = 0.02; stage 1's costlier blocks do not count
    assert downsampling_excess(lesion) == pytest.approx(0.04)
    assert downsampling_excess(curve(0.04, {}, blocks, downsampling=[])) is None  # a plain net cannot lose one
    assert downsampling_excess(curve(0.04, {}, blocks)) is None  # lesions recorded before the field existed


def test_the_probe_names_the_downsampling_blocks_of_a_resnet() -> None:
    torch.manual_seed(0)
    model = create_model("cifar_resnet20", **TINY).eval()
    out = lesion_errors(model, lambda _net: 0.5, random_k=[1, 2], samples=2)
    assert list(out["blocks"]) == ["S1.S1U1", "S2.S2U1", "S3.S3U1"]
    assert out["downsampling"] == ["S2.S2U1", "S3.S3U1"]  # stride 2 and twice the width
    plain = lesion_errors(create_model("cifar_plain20", **TINY).eval(), lambda _net: 0.5)
    assert plain["downsampling"] == []  # only the blocks that keep the shape can be removed from a plain net


def spec(**expect: object) -> object:
    return spec_from_dict({
        "name": "t", "data": "mnist5k", "recipe": {"epochs": 1},
        "variants": [{"label": "res", "model": "cifar_resnet20", "model_kwargs": TINY},
                     {"label": "plain", "model": "cifar_plain20", "model_kwargs": TINY}],
        "probe": {"lesion": {"random_k": [1]}},
        "expect": [{"better": "res", "metric": "lesion_downsampling_excess"} | expect],
    })  # fmt: skip


def record(label: str, seed: int, value: float) -> RunRecord:
    return RunRecord(label, seed, f"runs/{label}-{seed}", "ok", metrics={"lesion_downsampling_excess": value})


def test_a_number_as_worse_is_a_one_sample_test_against_it() -> None:
    s = spec(worse=0)
    (e,) = s.expect
    assert (e.worse, e.reference, e.direction) == ("0", 0.0, "higher") and e.text() == (
        "res > 0 in lesion_downsampling_excess"
    )
    values = [0.019, 0.086, 0.015, 0.05]
    (c,), verdict = judge(s, [record("res", i, v) for i, v in enumerate(values)] + [record("plain", 0, 0.0)])
    assert c.p_expected == pytest.approx(stats.ttest_1samp(values, 0.0, alternative="greater").pvalue)
    assert c.better_mean == pytest.approx(sum(values) / 4) and c.worse_mean == 0.0
    assert verdict == "holds"
    (c,), verdict = judge(s, [record("res", i, -v) for i, v in enumerate(values)])
    assert verdict == "contradicted"
    (c,), _ = judge(spec(worse=0.1), [record("res", i, v) for i, v in enumerate(values)])  # another number
    assert c.p_expected == pytest.approx(stats.ttest_1samp(values, 0.1, alternative="greater").pvalue)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"worse": 0, "metric": "dead"}, "needs a measured metric"),
        ({"worse": "O"}, "worse 'O' is not a variant"),
        ({"worse": True}, "worse True is not a variant"),
    ],
)
def test_a_number_as_worse_is_refused_where_it_cannot_be_judged(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        spec(**change)


def test_the_lesion_metrics_need_the_lesion_probe() -> None:
    with pytest.raises(ConfigError, match="the metric lesion_step needs 'probe"):
        spec_from_dict({
            "name": "t", "data": "mnist5k", "recipe": {"epochs": 1},
            "variants": [{"label": "res", "model": "cifar_resnet20"}, {"label": "plain", "model": "cifar_plain20"}],
            "expect": [{"better": "res", "worse": "plain", "metric": "lesion_step"}],
        })  # fmt: skip
