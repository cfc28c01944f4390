"""Weights from torchvision and timm load into cnnlab models and give the same outputs; bad files fail
clearly and never run code."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

import cnnlab
from cnnlab.weights import adapt_input_conv, read_state_dict
from tests.helpers import peer_prediction, randomize_norm_stats, slow_if_largest

PEERS = [(name, peer) for name, entry in cnnlab.model_entries().items() for peer in entry.peers]


def test_every_shared_architecture_has_a_peer() -> None:
    names = {n for n, _ in PEERS}
    assert {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"} <= names
    assert {"resnext50_32x4d", "wide_resnet50_2", "se_resnet50"} <= names


@pytest.mark.parametrize(("name", "peer"), [slow_if_largest(n, p, id=f"{n}-{p.library}") for n, p in PEERS])
def test_peer_weights_give_identical_outputs(name: str, peer: cnnlab.Peer) -> None:
    reference = randomize_norm_stats(peer.build()).eval()
    model = cnnlab.create_model(name).eval()
    report = cnnlab.load_pretrained(model, reference)
    assert report.loaded == len(model.state_dict()) and not report.new_head and not report.adapted_input
    size = max(64, model.min_input_size)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(model(x), peer_prediction(reference(x)))


def test_files_load_with_torch_and_safetensors(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    peer = randomize_norm_stats(cnnlab.Peer("torchvision", "resnet18").build()).eval()
    torch.save(peer.state_dict(), tmp_path / "r18.pth")
    save_file(peer.state_dict(), str(tmp_path / "r18.safetensors"))
    torch.save({"model": peer.state_dict(), "epoch": 3}, tmp_path / "checkpoint.pt")  # a training checkpoint
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = peer(x)
        for file in ("r18.pth", "r18.safetensors", "checkpoint.pt"):
            model = cnnlab.create_model("resnet18").eval()
            cnnlab.load_pretrained(model, tmp_path / file)
            torch.testing.assert_close(model(x), expected)


def test_new_head_for_another_number_of_classes() -> None:
    peer = cnnlab.Peer("torchvision", "resnet18").build()
    model = cnnlab.create_model("resnet18", num_classes=10)
    report = cnnlab.load_pretrained(model, peer)
    assert report.new_head == ["head.fc.weight", "head.fc.bias"]
    torch.testing.assert_close(model.layer4[1].conv2.conv.weight, peer.layer4[1].conv2.weight)


def test_new_head_for_other_classes_of_the_same_count() -> None:
    """Digits 0-4 and 5-9 give heads of one shape: ``new_head=True`` keeps the fresh classifier, loads the rest."""
    source = cnnlab.create_model("cifar_resnet20", num_classes=5)
    model = cnnlab.create_model("cifar_resnet20", num_classes=5)
    fresh = model.head.fc.weight.detach().clone()
    report = cnnlab.load_pretrained(model, source.state_dict(), new_head=True)
    assert report.new_head == ["head.fc.weight", "head.fc.bias"]
    assert torch.equal(model.head.fc.weight, fresh) and not torch.equal(fresh, source.head.fc.weight)
    torch.testing.assert_close(model.S3[2].conv2.conv.weight, source.S3[2].conv2.conv.weight)
    cnnlab.load_pretrained(model, source.state_dict())  # the default: same shape, same classes, same head
    assert torch.equal(model.head.fc.weight, source.head.fc.weight)


def test_grey_input_adapts_the_first_conv() -> None:
    """A 1-channel model with summed RGB filters sees a grey image as the RGB model sees it replicated."""
    peer = randomize_norm_stats(cnnlab.Peer("torchvision", "resnet18").build()).eval()
    model = cnnlab.create_model("resnet18", in_chans=1).eval()
    report = cnnlab.load_pretrained(model, peer)
    assert report.adapted_input == ["stem.conv.weight"]
    grey = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(grey), peer(grey.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)


def test_adapted_conv_for_two_and_five_channels() -> None:
    w = torch.randn(8, 3, 3, 3)
    two = adapt_input_conv(w, 2)  # an image with equal channels sees the trained filters' sum
    torch.testing.assert_close(two.sum(dim=1), w.sum(dim=1))
    five = adapt_input_conv(w, 5)  # RGB keeps its filters, the new channels start silent
    assert torch.equal(five[:, :3], w) and torch.count_nonzero(five[:, 3:]) == 0


def test_weights_of_another_architecture_are_refused() -> None:
    with pytest.raises(cnnlab.WeightsError, match="do not fit resnet50"):
        cnnlab.load_pretrained(cnnlab.create_model("resnet50"), cnnlab.create_model("resnet18"))
    with pytest.raises(cnnlab.WeightsError, match="other shapes"):
        cnnlab.load_pretrained(cnnlab.create_model("resnet50"), cnnlab.create_model("wide_resnet50_2"))


def test_corrupt_and_missing_files(tmp_path: Path) -> None:
    good = tmp_path / "good.pth"
    torch.save(cnnlab.create_model("cifar_resnet20").state_dict(), good)
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(good.read_bytes()[:1000])
    model = cnnlab.create_model("cifar_resnet20")
    with pytest.raises(cnnlab.WeightsError, match=r"cannot read weights.*corrupt"):
        cnnlab.load_pretrained(model, bad)
    with pytest.raises(cnnlab.WeightsError, match="no weights file"):
        cnnlab.load_pretrained(model, tmp_path / "absent.pth")
    with pytest.raises(cnnlab.WeightsError, match="not a state_dict"):
        cnnlab.load_pretrained(model, {"weights": [1, 2, 3]})


class _Exploit:
    """A pickle payload that would create a file if it were ever unpickled."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (self.target.write_text, ("owned",))


def test_loading_never_executes_code(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    evil = tmp_path / "evil.pth"
    sd = dict(cnnlab.create_model("cifar_resnet20").state_dict())
    with evil.open("wb") as f:
        torch.save({"model": sd, "payload": _Exploit(marker)}, f)
    with pytest.raises(cnnlab.WeightsError, match="objects other than tensors"):
        read_state_dict(evil)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):  # the payload is live: a plain unpickler would run it
        torch.load(evil, weights_only=True)
    torch.load(evil, weights_only=False)
    assert marker.read_text() == "owned"


def test_published_weights_need_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline, asking for torchvision's published weights fails with a message that says what to do."""
    import torchvision

    def offline(self: object, *args: object, **kwargs: object) -> None:
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(cnnlab.WeightsError, match=r"could not fetch the published torchvision weights.*pass the file"):
        cnnlab.load_pretrained(cnnlab.create_model("resnet18"), "torchvision")
    with pytest.raises(cnnlab.WeightsError, match="no torchvision peer"):
        cnnlab.load_pretrained(cnnlab.create_model("cifar_resnet20"), "torchvision")
