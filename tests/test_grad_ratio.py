"""The vanishing-gradient claim's metric (He et al. 2016, Sec. 4.1): the gradient at the stem over that at the last
block before the head, per weight, from the norms a run records (``record_grad_norms``), checked against the
gradients themselves, and judged as one network against a number."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cnnlab.errors import ConfigError
from cnnlab.experiments.collect import RunRecord, judge
from cnnlab.experiments.probes import grad_ratios
from cnnlab.experiments.spec import spec_from_dict
from cnnlab.registry import create_model
from cnnlab.train.engine import block_grad_norms, block_names

TINY = {"layers": [1, 1, 1], "widths": [4, 8, 8], "in_chans": 1}


def rms_grad(module: torch.nn.Module) -> float:
    """The root mean square of every gradient entry of ``module``'s parameters, by hand."""
    grads = torch.cat([p.grad.flatten() for p in module.parameters()])
    return grads.square().mean().sqrt().item()


def test_the_grad_ratio_is_the_stems_rms_gradient_over_the_last_blocks() -> None:
    torch.manual_seed(0)
    model = create_model("cifar_plain20", **TINY)
    F.cross_entropy(model(torch.randn(4, 1, 12, 12)), torch.tensor([0, 1, 2, 3])).backward()
    norms = block_grad_norms(model, block_names(model))  # what GradNormRecorder stores
    hand = rms_grad(model.stem) / rms_grad(model.S3[-1])  # the last block before the head, not the fc
    ratios = grad_ratios({"init": norms}, model)
    assert ratios == {"grad_ratio": pytest.approx(hand, rel=1e-5)}  # no "end": that moment was not recorded
    assert rms_grad(model.stem) != pytest.approx(rms_grad(model.S3[-1]), rel=0.05)  # inverting it would show


def test_the_grad_ratio_divides_each_norm_by_the_root_of_its_blocks_size() -> None:
    model = create_model("cifar_plain20", **TINY)
    stem = sum(p.numel() for p in model.stem.parameters())  # 3x3x1x4 weights and the BN's 8
    last = sum(p.numel() for p in model.S3[-1].parameters())  # two 3x3x8x8 convs and their BNs
    assert (stem, last) == (36 + 8, 2 * (576 + 16))
    names = block_names(model)
    norms = {"init": dict.fromkeys(names, 1.0) | {"stem": 2.0}, "end": dict.fromkeys(names, 1.0) | {"S3.S3U1": 0.0}}
    # equal norms: the stem's 44 entries each carry more than the last block's 1,184; a zero last gradient: left out
    assert grad_ratios(norms, model) == {"grad_ratio": pytest.approx(2.0 * math.sqrt(last / stem))}


def test_a_grad_ratio_needs_the_norms_recorded_and_is_judged_against_a_number() -> None:
    plan = {
        "name": "vg", "data": "mnist5k", "variants": [{"label": "deep", "model": "cifar_plain20"}],
        "expect": [{"better": "deep", "worse": 0.1, "metric": "grad_ratio", "direction": "higher"}],
    }  # fmt: skip
    with pytest.raises(ConfigError, match="record_grad_norms"):
        spec_from_dict(plan)
    spec = spec_from_dict(plan | {"recipe": {"record_grad_norms": True}})
    healthy = [RunRecord("deep", s, "", "ok", {"grad_ratio": v}) for s, v in enumerate((3.0, 5.0, 4.0))]
    vanished = [RunRecord("deep", s, "", "ok", {"grad_ratio": v}) for s, v in enumerate((1e-3, 2e-3, 3e-3))]
    assert judge(spec, healthy, power=False)[1] == "holds"
    assert judge(spec, vanished, power=False)[1] == "contradicted"
