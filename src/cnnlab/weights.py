"""Loading weights into cnnlab models, from cnnlab itself, torchvision or timm.

``load_pretrained(model, source)`` accepts a local file (``.pth``/``.pt`` read with ``weights_only=True``,
or ``.safetensors``), a state_dict, an in-memory torchvision/timm model, or the name of a library
(``"torchvision"``, ``"timm"``, ``"torchvision:IMAGENET1K_V2"``) whose published weights for the model's
registered peer are downloaded on a machine that is online. Nothing is ever unpickled beyond tensors.

Other libraries name the same tensors differently; each model class lists their naming as ``KeyMap``s
(regex renames, applied in order), and the map under which the source's keys become exactly the model's
keys is the one used. Two mismatches are repaired on purpose and reported: a classifier with another
number of classes is left freshly initialised (fine-tuning to a new task), and a first conv with another
number of input channels is adapted (see :func:`adapt_input_conv`). Layers that a model adds to a
pretrained architecture (a deformable conv's offset convs, listed by the module's ``new_on_load``) keep
their own initialisation when the source lacks them, and are reported.

May import: cnnlab.errors, cnnlab.registry (a model's peers).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cnnlab.errors import WeightsError


@dataclass(frozen=True)
class KeyMap:
    """Renames from another library's state_dict keys to cnnlab's: ``(pattern, replacement)`` pairs for
    ``re.sub``, applied in order."""

    rules: tuple[tuple[str, str], ...] = ()

    def apply(self, key: str) -> str:
        for pattern, replacement in self.rules:
            key = re.sub(pattern, replacement, key)
        return key

    def __add__(self, other: KeyMap) -> KeyMap:
        return KeyMap(self.rules + other.rules)


IDENTITY = KeyMap()


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did."""

    source: str
    key_map: str
    loaded: int
    new_head: list[str] = field(default_factory=list)
    adapted_input: list[str] = field(default_factory=list)
    new_layers: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # strict=False: tensors of another shape, left as they were
    converted: dict[str, int] = field(default_factory=dict)  # source dtype -> tensors cast to the model's dtype

    def __str__(self) -> str:
        parts = [f"loaded {self.loaded} tensors from {self.source} ({self.key_map} naming)"]
        if self.new_head:
            parts.append(f"new classifier: {', '.join(self.new_head)}")
        if self.adapted_input:
            parts.append(f"first conv adapted to the input channels: {', '.join(self.adapted_input)}")
        if self.new_layers:
            parts.append(f"newly initialised (absent from the source): {', '.join(self.new_layers)}")
        if self.skipped:
            parts.append(f"skipped, another shape than the model's (left as initialised): {', '.join(self.skipped)}")
        if self.converted:
            cast = ", ".join(f"{n} from {dtype}" for dtype, n in self.converted.items())
            parts.append(f"converted to the model's dtype: {cast}")
        return "; ".join(parts)


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Tensors from a ``.safetensors`` or torch file, never executing code from it.

    A cnnlab training checkpoint (a dict with a ``"model"`` entry) and the common ``{"state_dict": ...}``
    wrapping are unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no weights file at {str(path)!r}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt zip, truncated file, a pickle that is not plain tensors
        kind = "it holds objects other than tensors" if "weights_only" in str(e) else "it is corrupt"
        raise WeightsError(f"cannot read weights from {str(path)!r}: {kind} ({type(e).__name__}: {e})") from e
    return unwrap_state_dict(obj, where=str(path))


def unwrap_state_dict(obj: Any, *, where: str = "the source") -> dict[str, Tensor]:
    """The state_dict inside ``obj`` (a state_dict, or a dict with a ``model``/``state_dict`` entry)."""
    for key in ("model", "state_dict"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise WeightsError(f"{where} is not a state_dict (a mapping of names to tensors)")
    # DataParallel / DDP / torch.compile prefixes
    return {re.sub(r"^(module\.|_orig_mod\.)+", "", k): v for k, v in obj.items()}


def _published_state_dict(model: nn.Module, spec: str) -> tuple[dict[str, Tensor], str]:
    """Download the published weights of the model's peer in ``spec``'s library (online machines only)."""
    from cnnlab.registry import model_entry

    library, _, variant = spec.partition(":")
    name = getattr(model, "model_name", type(model).__name__)
    peers = [p for p in model_entry(name).peers if p.library == library]
    if not peers:
        raise WeightsError(f"{name} has no {library} peer with published weights; pass a local file instead")
    peer = peers[0]
    try:
        if library == "torchvision":
            import torchvision

            enum = torchvision.models.get_model_weights(peer.name)
            weights = enum[variant] if variant else enum.DEFAULT
            return weights.get_state_dict(progress=True), f"torchvision {peer.name} {weights.name}"
        import timm

        tag = f".{variant}" if variant else ""
        return timm.create_model(peer.name + tag, pretrained=True).state_dict(), f"timm {peer.name}{tag}"
    except (OSError, RuntimeError, KeyError, ValueError) as e:
        raise WeightsError(
            f"could not fetch the published {library} weights for {name} ({type(e).__name__}: {e}). "
            f"On a machine without network, save them elsewhere and pass the file: "
            f"load_pretrained(model, 'weights.pth')"
        ) from e


def _resolve_source(model: nn.Module, source: Any) -> tuple[dict[str, Tensor], str]:
    if isinstance(source, nn.Module):
        return unwrap_state_dict(source.state_dict()), f"a {type(source).__name__} instance"
    if isinstance(source, Mapping):
        return unwrap_state_dict(source), "a state_dict"
    if isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        if text.split(":", 1)[0] in ("torchvision", "timm") and not Path(text).exists():
            return _published_state_dict(model, text)
        return read_state_dict(text), repr(text)
    raise WeightsError(f"cannot load weights from a {type(source).__name__}; pass a path, a state_dict or a model")


def _is_head(key: str, model: nn.Module) -> bool:
    return any(key.startswith(f"{h}.") for h in getattr(model, "head_modules", ("head",)))


def _new_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Prefixes of the submodules that pretrained weights of the plain layer lack and that start from their
    own initialisation: those a module names in ``new_on_load`` (a deformable conv's offset and mask convs)."""
    return tuple(
        f"{name}.{sub}." if name else f"{sub}."
        for name, m in model.named_modules()
        for sub in getattr(m, "new_on_load", ())
    )


def _match_keys(model: nn.Module, sd: Mapping[str, Tensor]) -> tuple[str, dict[str, Tensor]]:
    """Rename ``sd`` with the model's key map under which its keys fit the model exactly (heads and
    newly initialised layers aside)."""
    target = model.state_dict().keys()
    new = _new_prefixes(model)
    maps = {"cnnlab": IDENTITY, **getattr(model, "weight_key_maps", {})}
    tried = []
    for name, key_map in maps.items():
        mapped = {key_map.apply(k): v for k, v in sd.items()}
        missing = sorted(k for k in target - mapped.keys() if not _is_head(k, model) and not k.startswith(new))
        unexpected = sorted(k for k in mapped.keys() - target if not _is_head(k, model))
        if not missing and not unexpected:
            return name, mapped
        tried.append((len(missing) + len(unexpected), name, missing, unexpected))
    _, name, missing, unexpected = min(tried)
    model_name = getattr(model, "model_name", type(model).__name__)
    raise WeightsError(
        f"these weights do not fit {model_name} (is it another architecture?). Closest naming: {name}, "
        f"which leaves {len(missing)} of the model's tensors missing (first: {missing[:3]}) and "
        f"{len(unexpected)} unexpected (first: {unexpected[:3]}). Known namings: {', '.join(maps)}."
    )


def nonfinite_tensors(state_dict: Mapping[str, Tensor]) -> list[str]:
    """The names of the floating-point tensors of ``state_dict`` that hold a NaN or an infinity."""
    return [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def check_finite(state_dict: Mapping[str, Tensor], *, where: str) -> None:
    """A WeightsError naming the tensors of ``state_dict`` (read from ``where``) that are not finite: weights with a
    NaN or an infinity make every output NaN (a run that diverged, or a damaged file)."""
    bad = nonfinite_tensors(state_dict)
    if bad:
        floats = sum(1 for v in state_dict.values() if v.is_floating_point())
        raise WeightsError(
            f"{where} holds NaN or infinite values in {len(bad)} of its {floats} floating-point tensors (first: "
            f"{', '.join(bad[:3])}): a model with them outputs NaN. They come from a run that diverged or a damaged "
            "file; use weights saved before (a run's best.pt or an earlier checkpoint)"
        )


def adapt_input_conv(weight: Tensor, in_chans: int) -> Tensor:
    """A first-conv weight trained on ``weight.shape[1]`` channels, reshaped for ``in_chans`` channels.

    Fewer channels (grey images): every channel gets the trained filters' sum divided by ``in_chans``, so an
    image whose channels are equal gives exactly the response of the trained model to that image repeated
    over its channels. More channels (RGB plus depth, say): the trained channels stay as they are and the
    new ones start at zero, so the response to the original channels is unchanged.
    """
    trained = weight.shape[1]
    if in_chans < trained:
        return (weight.sum(dim=1, keepdim=True) / in_chans).repeat(1, in_chans, 1, 1)
    extra = weight.new_zeros(weight.shape[0], in_chans - trained, *weight.shape[2:])
    return torch.cat([weight, extra], dim=1)


def load_pretrained(model: nn.Module, source: Any, *, strict: bool = True, new_head: bool = False) -> LoadReport:
    """Load weights from ``source`` into ``model`` (in place) and report what was done.

    Raises :class:`~cnnlab.errors.WeightsError` when the file is unreadable or the weights belong to
    another architecture, when a floating-point tensor holds a NaN or an infinity (:func:`check_finite`), or when
    integer tensors (quantized weights) would be cast into floating-point weights; tensors of another floating-point
    dtype are cast and the report says so. With ``strict=False`` tensors whose shapes differ are skipped instead,
    and the report names them. With
    ``new_head=True`` the classifier keeps its fresh initialisation even where the shapes match (the source was
    trained on other classes: digits 0-4 for a 5-9 task have the same head shape and the wrong meaning). The head
    is everything under the model's ``head_modules``: an FcHead's fc6 and fc7 (AlexNet, VGG) start anew too.
    """
    raw, where = _resolve_source(model, source)
    key_map, sd = _match_keys(model, raw)
    check_finite(sd, where=where)
    target = model.state_dict()
    report = LoadReport(source=where, key_map=key_map, loaded=0)
    new = _new_prefixes(model)
    to_load: dict[str, Tensor] = {}
    mismatched, integer = [], []
    for key, want in target.items():
        have = sd.get(key)
        if have is not None and new_head and _is_head(key, model):
            have = None  # other classes: a new classifier
        if have is None:  # a classifier the source lacks (num_classes=0 there), or a new layer's tensor
            (report.new_layers if key.startswith(new) and not _is_head(key, model) else report.new_head).append(key)
            continue
        if have.shape != want.shape:
            if _is_head(key, model):
                report.new_head.append(key)
                continue
            if have.ndim == want.ndim == 4 and have.shape[0] == want.shape[0] and have.shape[2:] == want.shape[2:]:
                have = adapt_input_conv(have, want.shape[1])
                report.adapted_input.append(key)
            else:
                mismatched.append((key, f"{key}: {tuple(have.shape)} vs the model's {tuple(want.shape)}"))
                continue
        if want.is_floating_point() and not have.is_floating_point():  # quantized weights without their scales
            integer.append(f"{key} is {str(have.dtype).removeprefix('torch.')}")
            continue
        if want.is_floating_point() and have.dtype != want.dtype:
            dtype = str(have.dtype).removeprefix("torch.")
            report.converted[dtype] = report.converted.get(dtype, 0) + 1
            have = have.to(dtype=want.dtype)
        to_load[key] = have
    if integer:
        raise WeightsError(
            f"{len(integer)} tensors hold integers where the model's weights are floating point "
            f"({'; '.join(integer[:3])}{' ...' if len(integer) > 3 else ''}): quantized weights need their scales "
            "to be turned back into numbers; dequantize them first (or save the float weights)"
        )
    if mismatched and strict:
        raise WeightsError(
            f"{len(mismatched)} tensors have other shapes than the model's (another variant or width?): "
            + "; ".join(text for _, text in mismatched[:3])
        )
    report.skipped = [key for key, _ in mismatched]
    model.load_state_dict(to_load, strict=False)
    report.loaded = len(to_load)
    return report


__all__ = [
    "IDENTITY",
    "KeyMap",
    "LoadReport",
    "adapt_input_conv",
    "check_finite",
    "load_pretrained",
    "nonfinite_tensors",
    "read_state_dict",
]
