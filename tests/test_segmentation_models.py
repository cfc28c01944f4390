"""The segmentation family: exact counts and outputs against torchvision's FCN and DeepLabV3 (built with random
weights), the dilated backbone's layout, the training-mode auxiliary output, the small digit nets and the
analyzer on all of them. The generic contract tests (tests/test_models_generic.py) cover them too."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torchvision
from torch import nn

import cnnlab
from cnnlab.layers import DeepLabHead, DUCHead, FCNHead, hdc_check, upsample
from cnnlab.models.resnet import CifarResNet, ResNet
from cnnlab.models.segmentation import SegmentationNet, dilated_resnet, torchvision_dilations
from tests.helpers import count_params, randomize_norm_stats, slow_if_largest

TORCHVISION = {  # name: (params with the auxiliary head, without), ../shared/REFERENCE.md "Segmentation"
    "fcn_resnet50": (35_322_218, 32_957_013),
    "fcn_resnet101": (54_314_346, 51_949_141),
    "deeplabv3_resnet50": (42_004_074, 39_638_869),
    "deeplabv3_resnet101": (60_996_202, 58_630_997),
}
DIGIT_NETS = {"fcn_cifar_resnet20": 278_219, "deeplabv3_cifar_resnet20": 409_531, "duc_cifar_resnet20": 674_992}


def meta(name: str, **kwargs: object) -> SegmentationNet:
    with torch.device("meta"):
        return cnnlab.create_model(name, **kwargs)


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_counts(name: str) -> None:
    with_aux, without = TORCHVISION[name]
    assert count_params(meta(name)) == with_aux == torchvision.models.get_model_weights(name).DEFAULT.meta["num_params"]
    assert count_params(meta(name, aux_layer=None)) == without


@pytest.mark.parametrize("name", [slow_if_largest(n) for n in TORCHVISION])
def test_torchvision_weights_give_the_same_out_and_aux(name: str) -> None:
    """After load_pretrained, in eval mode with randomised norm statistics, at 64x64: the same ``out`` (forward)
    and the same ``aux`` (forward_with_aux), to the last bit."""
    peer = cnnlab.model_entry(name).peers[0]
    reference = randomize_norm_stats(peer.build()).eval()
    model = cnnlab.create_model(name).eval()
    report = cnnlab.load_pretrained(model, reference)
    assert report.loaded == len(model.state_dict()) and not report.new_head and not report.adapted_input
    assert report.key_map == f"torchvision_{name.split('_')[0]}"
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, out, both = reference(x), model(x), model.forward_with_aux(x)
    assert out.shape == (2, 21, 64, 64)
    torch.testing.assert_close(out, expected["out"], rtol=0, atol=0)
    torch.testing.assert_close(both.logits, expected["out"], rtol=0, atol=0)
    torch.testing.assert_close(both.aux[0], expected["aux"], rtol=0, atol=0)


def test_backbone_dilates_as_torchvision_does() -> None:
    """replace_stride_with_dilation=[False, True, True]: layer3 and layer4 keep 1/8, and a stage that gives up
    its stride keeps the previous rate in its first block."""
    model = meta("deeplabv3_resnet101")
    tv = torchvision.models.resnet101(replace_stride_with_dilation=[False, True, True])
    for stage in ("layer3", "layer4"):
        ours = [b.conv2.conv.dilation for b in model.get_submodule(stage)]
        assert ours == [b.conv2.dilation for b in tv.get_submodule(stage)]
    assert torchvision_dilations((3, 4, 23, 3))[2:] == [[1] + [2] * 22, [2, 4, 4]]
    assert [f.reduction for f in model.feature_info] == [2, 4, 8, 8, 8]
    assert model.num_features == 2048 and model.feature_info[-2].num_chs == 1024


def test_heads_and_their_hidden_widths() -> None:
    fcn, deeplab = meta("fcn_resnet50"), meta("deeplabv3_resnet50")
    assert isinstance(fcn.head, FCNHead) and fcn.head_hidden_size == 512  # 2048 // 4
    assert isinstance(deeplab.head, DeepLabHead) and deeplab.head_hidden_size == 256
    assert deeplab.head.aspp.rates == (12, 24, 36)
    assert isinstance(fcn.aux_head, FCNHead) and fcn.aux_head.hidden_size == 256 and fcn.aux_stage == "layer3"
    assert fcn.head_modules == ("head", "aux_head") and meta("fcn_resnet50", aux_layer=None).head_modules == ("head",)


def test_training_returns_out_and_aux_at_the_input_size() -> None:
    model = cnnlab.create_model("fcn_cifar_resnet20", aux_layer=FCNHead, num_classes=5)
    x = torch.randn(2, 1, 40, 56)
    out = model.train()(x)
    assert isinstance(out, cnnlab.LogitsWithAux) and out.logits.shape == out.aux[0].shape == (2, 5, 40, 56)
    assert model.aux_stage == "S2" and model.aux_head.in_chs == 32 and model.aux_loss_weight == 0.5
    model.eval()
    with torch.no_grad():
        pred = model(x)
        torch.testing.assert_close(pred, model.forward_with_aux(x).logits)
        torch.testing.assert_close(pred, upsample(model.forward_head(model.forward_features(x)), (40, 56)))
    assert cnnlab.create_model("fcn_cifar_resnet20").eval().forward_with_aux(x).aux == ()


def test_a_new_number_of_classes_gets_new_heads() -> None:
    peer = cnnlab.model_entry("fcn_resnet50").peers[0].build()
    model = cnnlab.create_model("fcn_resnet50", num_classes=11)
    report = cnnlab.load_pretrained(model, peer)
    assert report.new_head == ["head.fc.weight", "head.fc.bias", "aux_head.fc.weight", "aux_head.fc.bias"]
    torch.testing.assert_close(model.head.conv.conv.weight, peer.classifier[0].weight)


@pytest.mark.parametrize("backbone", [dilated_resnet((1, 1, 1, 1)), partial(CifarResNet, stem_stride=2)])
def test_the_adopted_stages_run_as_the_backbone_does(backbone: partial) -> None:
    """The stages are taken in the order the backbone registered them (torchvision's IntermediateLayerGetter
    assumption): with the same weights, the model's features are the backbone's."""
    torch.manual_seed(0)
    net = backbone(num_classes=0).eval()
    model = SegmentationNet(backbone=backbone, num_classes=3).eval()
    model.load_state_dict(net.state_dict(), strict=False)
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), net.forward_features(x), rtol=0, atol=0)
    assert model.body == tuple(n for n, _ in net.named_children() if n != "head")


def test_bad_arguments() -> None:
    with pytest.raises(cnnlab.ModelArgumentError, match=r"aux_stage must be one of the stages \['stem', 'S1'"):
        cnnlab.create_model("fcn_cifar_resnet20", aux_layer=FCNHead, aux_stage="layer3")
    with pytest.raises(cnnlab.ModelArgumentError, match="output_stride 4 or 8, got 2"):
        cnnlab.create_model("fcn_cifar_resnet20", output_stride=2)
    with pytest.raises(cnnlab.ModelArgumentError, match="S3's three blocks' rates"):
        cnnlab.create_model("fcn_cifar_resnet20", dilations=(1, 2))


# ---------------------------------------------------------------------------------------------- digit nets


@pytest.mark.parametrize("name", DIGIT_NETS)
def test_digit_nets(name: str) -> None:
    model = cnnlab.create_model(name)
    assert count_params(model) == DIGIT_NETS[name]
    assert (model.in_chans, model.num_classes, model.default_image_size) == (1, 11, 64)
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 1, 64, 64)).shape == (2, 11, 64, 64)


@pytest.mark.parametrize(("output_stride", "size"), [(8, 8), (4, 16)])
def test_digit_nets_output_stride_and_dilations(output_stride: int, size: int) -> None:
    """Output stride 8 keeps S3's stride (8x8 at 64 px); 4 removes it and dilates S3's 3x3s, by the constant 2
    (which keeps the receptive field) or by the rates given, e.g. the HDC group (1, 2, 3)."""
    model = cnnlab.create_model("fcn_cifar_resnet20", output_stride=output_stride)
    assert model.forward_features(torch.randn(1, 1, 64, 64)).shape == (1, 64, size, size)
    assert [f.reduction for f in model.feature_info] == [2, 2, 4, output_stride]
    rates = [b.conv1.conv.dilation[0] for b in model.S3]
    assert rates == [8 // output_stride] * 3
    hdc = cnnlab.create_model("fcn_cifar_resnet20", output_stride=4, dilations=(1, 2, 3))
    convs = [c.conv.dilation[0] for b in hdc.S3 for c in (b.conv1, b.conv2)]
    assert convs == [1, 1, 2, 2, 3, 3] and hdc_check(convs).exact.ok and not hdc_check([2] * 6).exact.ok


def test_duc_net_needs_no_interpolation() -> None:
    """The DUC head's output is already at the input's size when it divides by the output stride."""
    model = cnnlab.create_model("duc_cifar_resnet20").eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert model.forward_head(model.forward_features(x)).shape == (1, 11, 64, 64)
    assert isinstance(model.head, DUCHead) and model.head.scale == 8
    assert cnnlab.create_model("duc_cifar_resnet20", output_stride=4).head.scale == 4


def test_heads_by_name_from_plain_data() -> None:
    model = cnnlab.build_model("fcn_cifar_resnet20", {"head_layer": {"name": "duc", "scale": 8}, "aux_layer": "fcn"})
    assert isinstance(model.head, DUCHead) and isinstance(model.aux_head, FCNHead)
    deeplab = cnnlab.build_model("deeplabv3_cifar_resnet20", {"rates": [1, 3, 5], "output_stride": 8})
    assert deeplab.head.aspp.rates == (1, 3, 5) and isinstance(deeplab.head.conv, nn.Identity)  # refine=False


# ---------------------------------------------------------------------------------------------- the analyzer

ANALYZED = {  # at 64x64: the receptive field of the output pixels
    "fcn_resnet50": 451,  # ResNet-50's 427 (torchvision's dilation keeps it), the head's 3x3 at jump 8, the upsampling
    "fcn_cifar_resnet20": 183,
    "duc_cifar_resnet20": 175,
}


@pytest.mark.parametrize("name", [n for n in cnnlab.list_models() if cnnlab.model_entry(n).family == "segmentation"])
def test_the_analyzer_on_every_segmentation_model(name: str) -> None:
    model = meta(name)
    report = cnnlab.analyze(model, (model.in_chans, 64, 64))
    assert report.params == count_params(model) and report.macs > 0 and not report.unsupported
    assert report.jump == (1, 1) and report.layers[-1].output_shape == (1, model.num_classes, 64, 64)
    assert [a.path for a in report.auxiliary] == (["aux_head"] if model.aux_head is not None else [])
    assert report.dense_output and "(output pixels)" in "\n".join(report.totals_lines())
    if name in ANALYZED:
        assert report.receptive_field == (ANALYZED[name],) * 2


@pytest.mark.parametrize("name", TORCHVISION)
def test_macs_at_520_are_torchvisions(name: str) -> None:
    """torchvision's ``_ops`` (GMACs at 520x520) count the auxiliary head too: the eval graph's MACs plus the
    auxiliary row's."""
    report = cnnlab.analyze(meta(name), (3, 520, 520))
    total = report.macs + sum(a.macs for a in report.auxiliary)
    assert round(total / 1e9, 3) == torchvision.models.get_model_weights(name).DEFAULT.meta["_ops"]
    assert report.input_size == (3, 520, 520) == cnnlab.analyze(meta(name)).input_size  # the default size


def test_resnet_backbone_of_the_segmentation_models_loads_imagenet_weights() -> None:
    """The backbone is cnnlab's ResNet: torchvision's ImageNet ResNet-50 loads into it (new head aside)."""
    backbone = dilated_resnet((3, 4, 6, 3))()
    assert isinstance(backbone, ResNet)
    report = cnnlab.load_pretrained(backbone, torchvision.models.resnet50())
    assert report.loaded == len(backbone.state_dict())


def test_effective_receptive_field_of_the_output_pixels() -> None:
    """The ERF of a dense-output model is measured on its output's centre pixel, whose theoretical field the
    analyzer gives (183 for the FCN digit net at 64x64): the gradient stays inside it."""
    from cnnlab.analysis.erf import effective_receptive_field

    erf = effective_receptive_field(cnnlab.create_model("fcn_cifar_resnet20"), (1, 64, 64), samples=2)
    assert erf.theoretical == (183, 183) and erf.grad.shape == (64, 64) and erf.grad[32, 32] > 0
