"""The model registry: ``register_model``, ``create_model`` and ``list_models``.

A builder is a small function that names a variant as data and returns the model, for example::

    @register_model(peers=(Peer("torchvision", "resnet50"),))
    def resnet50(**kwargs: Any) -> ResNet:
        return ResNet(**(dict(block=Bottleneck, layers=(3, 4, 6, 3)) | kwargs))

Its return annotation names the model class, so the registry knows which keyword arguments the model
accepts and rejects the others before anything is built. User keyword arguments override the variant's.
"""

from __future__ import annotations

import fnmatch
import functools
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from torch import nn

from cnnlab.errors import ModelArgumentError, RegistryError, UnknownModelError, suggest

PeerLibrary = Literal["torchvision", "timm"]


@dataclass(frozen=True)
class Peer:
    """The same architecture in another library, whose weights load into the cnnlab model.

    ``kwargs`` are the peer's constructor arguments that make it the same network (for example
    ``aux_logits=False``).
    """

    library: PeerLibrary
    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def build(self, **kwargs: Any) -> nn.Module:
        """The peer's model with random weights (nothing is downloaded); ``kwargs`` add constructor arguments."""
        if self.library == "torchvision":
            import torchvision

            return torchvision.models.get_model(self.name, weights=None, **self.kwargs, **kwargs)
        import timm

        return timm.create_model(self.name, pretrained=False, **self.kwargs, **kwargs)


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: its builder, the class it returns and where its weights have a peer."""

    name: str
    builder: Callable[..., nn.Module]
    model_cls: type[nn.Module]
    family: str
    peers: tuple[Peer, ...]

    @property
    def doc(self) -> str:
        """The first line of the builder's docstring."""
        return (inspect.getdoc(self.builder) or "").split("\n", 1)[0]

    def accepted_kwargs(self) -> list[str]:
        """The keyword arguments that the builder and the model class accept."""
        kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        names: dict[str, None] = {}
        for fn in (self.builder, self.model_cls.__init__):
            names |= {p.name: None for p in inspect.signature(fn).parameters.values() if p.kind in kinds}
        names.pop("self", None)
        return list(names)


class _Registry:
    """Name -> ModelEntry. Strict: a duplicate name and an unknown name are errors."""

    def __init__(self) -> None:
        self._entries: dict[str, ModelEntry] = {}

    def add(self, entry: ModelEntry) -> None:
        if entry.name in self._entries:
            old = self._entries[entry.name]
            raise RegistryError(
                f"model {entry.name!r} is registered twice: by {old.builder.__module__} and by "
                f"{entry.builder.__module__}; give one of them another name"
            )
        self._entries[entry.name] = entry

    def get(self, name: str) -> ModelEntry:
        if not isinstance(name, str) or name not in self._entries:
            raise UnknownModelError(
                f"unknown model {name!r}.{suggest(str(name), self._entries)} "
                f"`cnnlab.list_models()` lists all {len(self._entries)} models."
            )
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def view(self) -> Mapping[str, ModelEntry]:
        return MappingProxyType(self._entries)


_REGISTRY = _Registry()


def _model_class(fn: Callable[..., nn.Module]) -> type[nn.Module]:
    try:
        cls = typing.get_type_hints(fn).get("return")
    except NameError as e:
        raise RegistryError(f"builder {fn.__qualname__}: cannot resolve its return annotation ({e})") from e
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        raise RegistryError(f"builder {fn.__qualname__} must annotate its return type with the model class it builds")
    return cls


def check_model_kwargs(entry: ModelEntry, kwargs: Mapping[str, Any]) -> None:
    """Raise ModelArgumentError naming the accepted arguments if ``kwargs`` holds any other."""
    accepted = entry.accepted_kwargs()
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        hints = "".join(suggest(k, accepted, n=3) for k in unknown)
        raise ModelArgumentError(
            f"{entry.name} does not accept {', '.join(map(repr, unknown))}.{hints} It accepts: {', '.join(accepted)}."
        )


def register_model(fn: Callable[..., nn.Module] | None = None, *, peers: tuple[Peer, ...] = ()) -> Any:
    """Register a builder under its function name. Use as ``@register_model`` or ``@register_model(peers=...)``.

    The returned builder checks its keyword arguments against the model class and stamps the model
    with ``model_name``.
    """

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        entry = ModelEntry(
            name=builder.__name__,
            builder=builder,
            model_cls=_model_class(builder),
            family=builder.__module__.rsplit(".", 1)[-1],
            peers=tuple(peers),
        )

        @functools.wraps(builder)
        def build(**kwargs: Any) -> nn.Module:
            check_model_kwargs(entry, kwargs)
            model = builder(**kwargs)
            model.model_name = entry.name
            return model

        _REGISTRY.add(entry)
        return build

    return decorate(fn) if fn is not None else decorate


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    in_chans: int | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model by name.

    ``num_classes`` and ``in_chans`` default to the variant's own (1000 and 3 for ImageNet models,
    10 and 3 for CIFAR ones); ``num_classes=0`` gives a model whose forward returns pooled features.
    Other keyword arguments go to the model class and override the variant's settings.

    ``features_only=True`` returns the model's stages instead, a
    :class:`~cnnlab.models.features.FeatureListNet` whose forward returns the list of the feature maps of the
    stages that ``out_indices`` selects (indices into the model's ``feature_info``, negative ones from the end;
    default all), without the head (the model is built with ``num_classes=0`` unless it is given).
    """
    entry = _REGISTRY.get(name)
    if out_indices is not None and not features_only:
        raise ModelArgumentError(f"out_indices selects feature maps and needs features_only=True ({name})")
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    elif features_only:
        kwargs["num_classes"] = 0  # no classifier to build: the features model drops the head
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    check_model_kwargs(entry, kwargs)
    model = entry.builder(**kwargs)
    model.model_name = name
    if features_only:
        from cnnlab.models.features import FeatureListNet  # models import the registry: import here

        return FeatureListNet(model, out_indices)
    return model


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern`` (``"resnet*"``), sorted."""
    return [n for n in _REGISTRY.names() if fnmatch.fnmatchcase(n, pattern)]


def model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name`` (builder, class, family, peers)."""
    return _REGISTRY.get(name)


def model_entries() -> Mapping[str, ModelEntry]:
    """A read-only view of every registry entry, by name."""
    return _REGISTRY.view()
