"""Preprocessing as data: every registered model's input size, crop, interpolation, mean and std are those of its
first peer's published weights, checked against the peers' own metadata (torchvision's ``Weights.transforms()``,
timm's ``pretrained_cfg``; nothing is downloaded), and ``transforms_for`` turns an image into the same tensor as
the peer's own evaluation transform."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from timm.data import create_transform, resolve_data_config
from timm.models import get_pretrained_cfg

import cnnlab
from cnnlab.data import Preprocess, transforms_for
from cnnlab.data.stats import CIFAR10, IMAGENET
from cnnlab.errors import DataError
from cnnlab.registry import meta_model

ENTRIES = cnnlab.model_entries()
FIRST_PEER = {n: e.peers[0] for n, e in ENTRIES.items() if e.peers}
TORCHVISION = sorted(n for n, p in FIRST_PEER.items() if p.library == "torchvision")
TIMM = sorted(n for n, p in FIRST_PEER.items() if p.library == "timm")
TRANSFORM_INPUT = {"googlenet", "inception_v3"}
"""torchvision builds these with ``transform_input=True`` when it loads their weights: ImageNet-normalised input is
re-normalised inside the model; cnnlab's models leave it off, so their preprocessing is the re-normalised one."""


def tv_transform(name: str) -> object:
    return torchvision.models.get_model_weights(FIRST_PEER[name].name).DEFAULT.transforms()


def picture(w: int = 301, h: int = 257) -> Image.Image:
    """A smooth RGB picture of an odd size (resizing and cropping both act), from a fixed seed."""
    gen = np.random.default_rng(0)
    coarse = gen.integers(0, 256, size=(9, 11, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((w, h), Image.BICUBIC)


def test_every_model_has_a_preprocess_for_its_input() -> None:
    """At the paper's input size (which is also the peers' evaluation size), with one mean per input channel."""
    for name, entry in ENTRIES.items():
        pre, cls = entry.preprocess, entry.model_cls
        assert isinstance(pre, Preprocess) and pre.size == cls.default_image_size >= cls.min_input_size, name
    for name in ("lenet5", "fcn_cifar_resnet20", "cifar_vgg", "resnet18", "inception_v3"):  # 1 and 3 channels
        assert ENTRIES[name].preprocess.in_chans == meta_model(name).in_chans, name
    assert len(TORCHVISION) + len(TIMM) == sum(1 for e in ENTRIES.values() if e.peers)


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_models_have_their_weights_values(name: str) -> None:
    pre, tf = ENTRIES[name].preprocess, tv_transform(name)
    assert tf.interpolation.value == pre.interpolation
    if ENTRIES[name].model_cls.dense_output:  # segmentation: the shorter side resized, not cropped
        assert getattr(tf, "crop_size", None) is None and tf.resize_size == [pre.size] and pre.crop_pct == 1
    else:
        assert (tf.crop_size, tf.resize_size) == ([pre.size], [pre.resize_size])
    if name not in TRANSFORM_INPUT:
        assert (tuple(tf.mean), tuple(tf.std)) == (pre.mean, pre.std)


@pytest.mark.parametrize("name", sorted(TRANSFORM_INPUT))
def test_transform_input_models_see_what_torchvision_feeds_its_layers(name: str) -> None:
    """torchvision's transform (ImageNet statistics) followed by its model's own ``_transform_input`` gives the
    tensor that cnnlab's preprocessing gives directly."""
    image = picture()
    peer = FIRST_PEER[name].build(transform_input=True)
    theirs = peer._transform_input(tv_transform(name)(image)[None])
    ours = transforms_for(cnnlab.model_entry(name).preprocess)(image)[None]
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", TIMM)
def test_timm_models_have_their_pretrained_cfg(name: str) -> None:
    pre, cfg = ENTRIES[name].preprocess, get_pretrained_cfg(FIRST_PEER[name].name)
    assert cfg.input_size == (3, pre.size, pre.size) and cfg.crop_mode == "center"
    assert (cfg.crop_pct, cfg.interpolation) == (pytest.approx(pre.crop_pct), pre.interpolation)
    assert (tuple(cfg.mean), tuple(cfg.std)) == (pre.mean, pre.std)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2", "inception_v4", "xception"])
def test_transforms_for_gives_the_peers_tensor(name: str) -> None:
    """The whole pipeline on a 301x257 picture: cnnlab's transform and the peer's own give the same tensor."""
    image, model = picture(), meta_model(name)
    peer = FIRST_PEER[name]
    if peer.library == "torchvision":
        theirs = tv_transform(name)(image)
    else:
        theirs = create_transform(**resolve_data_config({}, pretrained_cfg=get_pretrained_cfg(peer.name).to_dict()))(
            image
        )
    ours = transforms_for(model)(image)
    assert ours.shape == (3, model.preprocess.size, model.preprocess.size)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)


def test_a_dense_model_keeps_the_whole_image() -> None:
    """deeplabv3_resnet50: torchvision's SemanticSegmentation transform resizes the shorter side to 520, no crop."""
    image = picture(600, 400)
    ours = transforms_for(meta_model("deeplabv3_resnet50"))(image)
    torch.testing.assert_close(ours, tv_transform("deeplabv3_resnet50")(image), atol=1e-6, rtol=1e-6)
    assert ours.shape == (3, 520, 780)


def test_models_without_weights_take_the_convention_of_their_size() -> None:
    """ImageNet-size models without a peer: ImageNet statistics at torchvision's 256 -> 224 (227 for the paper's
    AlexNet, from its 256 x 256 images); the CIFAR nets: CIFAR-10's statistics at 32 px, uncropped."""
    assert cnnlab.model_entry("shufflenet_v1_g3_x1_0").preprocess == Preprocess(size=224, crop_pct=224 / 256)
    paper = cnnlab.model_entry("alexnet_paper").preprocess
    assert (paper.size, paper.resize_size, paper.mean) == (227, 256, IMAGENET.mean)
    cifar = cnnlab.model_entry("cifar_resnet20").preprocess
    assert (cifar.size, cifar.resize_size, cifar.mean, cifar.std) == (32, 32, CIFAR10.mean, CIFAR10.std)
    assert cnnlab.model_entry("lenet5").preprocess.in_chans == 1


def test_a_model_carries_its_preprocess_and_a_mismatch_is_explained() -> None:
    model = cnnlab.create_model("cifar_resnet20")
    assert model.preprocess is cnnlab.model_entry("cifar_resnet20").preprocess
    x = transforms_for(model)(picture(40, 36))
    assert x.shape == (3, 32, 32)
    grey = cnnlab.create_model("cifar_resnet20", in_chans=1)
    with pytest.raises(DataError, match=r"takes 1-channel input.*in_chans=3"):
        transforms_for(grey)
    with pytest.raises(DataError, match="carries no preprocess"):
        transforms_for(torch.nn.Conv2d(3, 3, 1))
    with pytest.raises(DataError, match="crop_pct"):
        Preprocess(crop_pct=1.5)
