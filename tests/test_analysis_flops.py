"""The analyzer's FLOP counter counts what torch.utils.flop_counter.FlopCounterMode counts, operator by operator."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import cnnlab
from cnnlab.analysis import count_macs
from cnnlab.analysis.analyze import meta_copy
from cnnlab.analysis.flops import FlopCounter

MODELS = [
    "resnet50",
    "inception_v3",
    "mobilenet_v2",
    "shufflenet_v2_x1_0",
    "densenet121",
    "deeplabv3_resnet50",
    "deform_resnet50",
    "alexnet",
]


@pytest.mark.parametrize("name", MODELS)
def test_counts_equal_flopcountermodes(name: str) -> None:
    model = meta_copy(cnnlab.create_model(name))
    x = torch.empty(2, *model.default_input_size, device="meta")
    counts = []
    for counter in (FlopCounter(), FlopCounterMode(display=False)):
        with torch.no_grad(), counter:
            model(x)
        counts.append((counter.get_total_flops(), counter.get_flop_counts()["Global"]))
    assert counts[0] == counts[1] and counts[0][0] > 0


def test_counts_add_up_over_entries() -> None:
    a, b = torch.empty(3, 4, device="meta"), torch.empty(4, 5, device="meta")
    counter = FlopCounter()
    for _ in range(2):
        with counter:
            a @ b
    assert counter.get_total_flops() == 2 * (2 * 3 * 4 * 5)


@pytest.mark.parametrize("name", ["mobilenet_v2", "se_resnet50", "googlenet", "shufflenet_v2_x1_0", "inception_v3"])
def test_count_macs_passing_activations_through_counts_what_the_walk_counts(name: str) -> None:
    """count_macs skips the activations and dropouts (no FLOPs, same shape); the walk runs them: one total."""
    with torch.device("meta"):
        model = cnnlab.create_model(name)
    assert count_macs(model) == cnnlab.analyze(model).macs > 0
    assert all("forward" not in m.__dict__ for m in model.modules())  # the model in place, restored
