"""The model registry: ``register_model``, ``create_model``, ``build_model`` and ``list_models``.

A builder is a small function that names a variant as data and returns the model, for example::

    @register_model(peers=(Peer("torchvision", "resnet50"),))
    def resnet50(**kwargs: Any) -> ResNet:
        return ResNet(**(dict(block=Bottleneck, layers=(3, 4, 6, 3)) | kwargs))

Its return annotation names the model class, so the registry knows which keyword arguments the model
accepts and rejects the others before anything is built; a value that does not fit the argument's annotation
(``drop_rate="abc"``, ``layers=3``, ``shortcut="D"``) is rejected too, with what the annotation takes. Ranges
(``drop_rate`` in [0, 1), widths >= 1) are checked by the layers that use the values. User keyword arguments
override the variant's.

Each entry also carries the model's preprocessing as data (:class:`~cnnlab.data.preprocess.Preprocess`: input
size, crop fraction, interpolation, mean and std of the weights its peer publishes), given as
``register_model(preprocess=...)`` where it departs from the convention of the model's input size
(:func:`~cnnlab.data.preprocess.default_preprocess`); a built model carries it as ``model.preprocess``.

May import: cnnlab.data (preprocessing), cnnlab.errors, cnnlab.layers (named layers).
"""

from __future__ import annotations

import collections.abc
import contextlib
import fnmatch
import functools
import inspect
import reprlib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import torch
from torch import nn
from torch.utils._device import DeviceContext  # what torch.device(...) pushes as a context manager

from cnnlab.data.preprocess import Preprocess, default_preprocess
from cnnlab.errors import ModelArgumentError, RegistryError, UnknownModelError, suggest
from cnnlab.layers.named import resolve_model_kwargs

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
    """One registered model: its builder, the class it returns, where its weights have a peer, and how an image
    becomes its input (``preprocess``)."""

    name: str
    builder: Callable[..., nn.Module]
    model_cls: type[nn.Module]
    family: str
    peers: tuple[Peer, ...]
    preprocess: Preprocess

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

    @functools.cached_property
    def annotations(self) -> dict[str, Any]:
        """The type annotation of each keyword argument, the builder's over the model class's; an argument
        whose annotations cannot be resolved is left out (and so accepted as it is)."""
        hints: dict[str, Any] = {}
        for fn in (self.model_cls.__init__, self.builder):
            try:
                hints |= typing.get_type_hints(fn)
            except (NameError, TypeError):
                continue
        accepted = self.accepted_kwargs()
        return {k: v for k, v in hints.items() if k in accepted}


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
            raise unknown_model(name)
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def view(self) -> Mapping[str, ModelEntry]:
        return MappingProxyType(self._entries)


_REGISTRY = _Registry()


def unknown_model(name: object, *, listed_by: str = "`cnnlab.list_models()`") -> UnknownModelError:
    """The error for a name the registry does not hold: the nearest names, and what lists them all (``listed_by``:
    the Python call; the command line says ``cnnlab models``)."""
    names = _REGISTRY.names()
    return UnknownModelError(
        f"unknown model {name!r}.{suggest(str(name), names)} {listed_by} lists all {len(names)} models."
    )


def _model_class(fn: Callable[..., nn.Module]) -> type[nn.Module]:
    try:
        cls = typing.get_type_hints(fn).get("return")
    except NameError as e:
        raise RegistryError(f"builder {fn.__qualname__}: cannot resolve its return annotation ({e})") from e
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        raise RegistryError(f"builder {fn.__qualname__} must annotate its return type with the model class it builds")
    return cls


_SCALARS: dict[Any, tuple[Callable[[Any], bool], str, str]] = {
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer", "integers"),
    float: (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number", "numbers"),
    bool: (lambda v: isinstance(v, bool), "True or False", "bools"),
    str: (lambda v: isinstance(v, str), "a string", "strings"),
    type(None): (lambda v: v is None, "None", "None"),
}
"""The plain annotations that :func:`fits` checks: (test, the annotation in words, in the plural)."""
_SEQUENCES = (tuple, list, collections.abc.Sequence)


def _is_sequence(value: Any) -> bool:
    return isinstance(value, collections.abc.Sequence) and not isinstance(value, str | bytes)


def fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits the annotation ``hint``: int, float (an int too), bool, str, None, ``Literal``,
    unions, callables, ``type[X]``, and tuples/lists of these. Any other annotation accepts every value."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in _SCALARS:
        return _SCALARS[hint][0](value)
    if origin is Literal:  # the same type too: True is not Literal[1], an array is compared with no one
        return any(type(value) is type(a) and value == a for a in args)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, a) for a in args)
    if origin is collections.abc.Callable:
        return callable(value)
    if origin is type:
        return not inspect.isclass(args[0]) or (inspect.isclass(value) and issubclass(value, args[0]))
    if origin in _SEQUENCES:
        if not _is_sequence(value):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:  # tuple[int, int, int]: one hint per item
            return len(value) == len(args) and all(fits(v, a) for v, a in zip(value, args, strict=True))
        return not args or all(fits(v, args[0]) for v in value)
    return True


def describe(hint: Any, *, plural: bool = False) -> str:
    """The annotation ``hint`` in words, as :func:`fits` checks it: ``Sequence[int] | None`` is
    "a tuple or list of integers or None"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in _SCALARS:
        return _SCALARS[hint][2 if plural else 1]
    if origin is Literal:
        return ("values among " if plural else "one of ") + ", ".join(map(repr, args))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a, plural=plural) for a in args)
    if origin is collections.abc.Callable:
        return "callables" if plural else "a callable (a layer class or a functools.partial)"
    if origin is type and inspect.isclass(args[0]):
        return f"{'subclasses' if plural else 'a subclass'} of {args[0].__name__}"
    if origin in _SEQUENCES:
        if origin is tuple and args and args[-1] is not Ellipsis:
            items = describe(args[0], plural=True) if len(set(args)) == 1 else f"({', '.join(map(describe, args))})"
            return f"{'tuples' if plural else 'a tuple'} of {len(args)} {items}"
        items = f" of {describe(args[0], plural=True)}" if args else ""
        return ("tuples or lists" if plural else "a tuple or list") + items
    return getattr(hint, "__name__", str(hint))


def check_model_kwargs(entry: ModelEntry, kwargs: Mapping[str, Any]) -> None:
    """Raise ModelArgumentError if ``kwargs`` holds an argument the model does not accept (naming those it
    accepts) or a value that does not fit the argument's annotation (saying what it takes)."""
    accepted = entry.accepted_kwargs()
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        hints = "".join(suggest(k, accepted, n=3) for k in unknown)
        raise ModelArgumentError(
            f"{entry.name} does not accept {', '.join(map(repr, unknown))}.{hints} It accepts: {', '.join(accepted)}."
        )
    for name, value in kwargs.items():
        hint = entry.annotations.get(name, Any)
        if not fits(value, hint):
            raise ModelArgumentError(
                f"{entry.name}: {name} must be {describe(hint)}, got {reprlib.repr(value)} ({type(value).__name__})"
            )


def register_model(
    fn: Callable[..., nn.Module] | None = None,
    *,
    peers: tuple[Peer, ...] = (),
    preprocess: Preprocess | None = None,
) -> Any:
    """Register a builder under its function name. Use as ``@register_model`` or ``@register_model(peers=...)``.

    ``preprocess``: the evaluation preprocessing of the first peer's published weights, where it is not the
    convention of the model's input size (:func:`~cnnlab.data.preprocess.default_preprocess`). The returned builder
    checks its keyword arguments against the model class and stamps the model with ``model_name`` and
    ``preprocess``.
    """

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        model_cls = _model_class(builder)
        entry = ModelEntry(
            name=builder.__name__,
            builder=builder,
            model_cls=model_cls,
            family=builder.__module__.rsplit(".", 1)[-1],
            peers=tuple(peers),
            preprocess=preprocess or default_preprocess(getattr(model_cls, "default_image_size", 224)),
        )

        @functools.wraps(builder)
        def build(**kwargs: Any) -> nn.Module:
            check_model_kwargs(entry, kwargs)
            return _stamp(builder(**kwargs), entry)

        _REGISTRY.add(entry)
        return build

    return decorate(fn) if fn is not None else decorate


def _stamp(model: nn.Module, entry: ModelEntry) -> nn.Module:
    """The built model, named and given its preprocessing."""
    model.model_name = entry.name
    model.preprocess = entry.preprocess
    return model


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
    model = _stamp(entry.builder(**kwargs), entry)
    if features_only:
        if not hasattr(model, "as_features"):
            raise ModelArgumentError(f"{name} is not a cnnlab model with stages: it has no features_only form")
        return model.as_features(out_indices)
    return model


def build_model(
    name: str,
    kwargs: Mapping[str, Any] | None = None,
    *,
    num_classes: int | None = None,
    in_chans: int | None = None,
) -> nn.Module:
    """Build a registered model from plain data: its name and keyword arguments as a YAML file, a
    ``--model-kwargs`` flag or a checkpoint holds them.

    This is the one place where layers given by name (``"se"``, ``{"name": "se", "reduction": 4}``, ``None``;
    see :mod:`cnnlab.layers.named`) become classes; the rest is :func:`create_model`. The trainer, evaluation,
    the experiments, the benchmark and the analyzer's commands all build their models here, so a model trained
    from a config is rebuilt from its checkpoint the same way. ``num_classes`` and ``in_chans`` may come in
    ``kwargs`` or as arguments, not as both with different values.
    """
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise ModelArgumentError(
            f"the model arguments of {name} must be a mapping of argument names to values, such as "
            f"{{'drop_rate': 0.2}}; got {reprlib.repr(kwargs)} ({type(kwargs).__name__})"
        )
    plain = dict(kwargs)
    sizes = {"num_classes": num_classes, "in_chans": in_chans}
    for key, given in sizes.items():
        inside = plain.pop(key, None)
        if given is not None and inside is not None and given != inside:
            raise ModelArgumentError(
                f"{name}: {key} is given twice, {inside!r} in the model arguments and {given!r} as {key}=; give it once"
            )
        sizes[key] = given if given is not None else inside
    return create_model(name, **sizes, **resolve_model_kwargs(plain))


_SKIPPED_ON_META = frozenset(
    [getattr(nn.init, name) for name in dir(nn.init) if name.endswith("_") and not name.startswith("_")]
    + [torch.Tensor.uniform_, torch.Tensor.normal_, torch.Tensor.zero_, torch.Tensor.fill_]
)
"""What a layer's ``reset_parameters`` calls to set values: ``torch.nn.init``'s initialisers (those that dispatch
to a torch function mode, ``kaiming_uniform_``, ``uniform_``, ...) and the in-place fills the others end in
(``kaiming_normal_`` in ``Tensor.normal_``, ``zeros_`` in ``Tensor.zero_``)."""


class _MetaBuild(DeviceContext):
    """``torch.device("meta")`` (the same function mode: factory functions make meta tensors) that also returns
    a meta tensor untouched from the calls of :data:`_SKIPPED_ON_META`. A function mode is pushed on the calling
    thread's mode stack only, so other threads build and initialise as usual; a real tensor made inside (with an
    explicit ``device=``) is still initialised."""

    def __init__(self) -> None:
        super().__init__("meta")

    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        if func in _SKIPPED_ON_META:
            tensor = args[0] if args else (kwargs or {}).get("tensor")
            if isinstance(tensor, torch.Tensor) and tensor.is_meta:
                return tensor  # a meta tensor has no values to set
        return super().__torch_function__(func, types, args, kwargs)


@contextlib.contextmanager
def on_meta() -> collections.abc.Iterator[None]:
    """Build models on the meta device, for their structure and counts: every tensor made inside is shapes only,
    and initialising a meta tensor is skipped (it has no values to set). Initialising is a third of the time of
    building a model on the meta device, and ``cnnlab models`` builds every model. Only the calling thread is
    affected (:class:`_MetaBuild` is a torch function mode, and the mode stack is per thread)."""
    with _MetaBuild():
        yield


def meta_model(name: str, kwargs: Mapping[str, Any] | None = None, **sizes: int | None) -> nn.Module:
    """:func:`build_model` :func:`on_meta`: the model's structure and counts without allocating or initialising
    its weights. ``sizes``: ``num_classes`` and ``in_chans``."""
    with on_meta():
        return build_model(name, kwargs, **sizes)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern`` (``"resnet*"``), sorted."""
    return [n for n in _REGISTRY.names() if fnmatch.fnmatchcase(n, pattern)]


def model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name`` (builder, class, family, peers, preprocessing)."""
    return _REGISTRY.get(name)


def model_entries() -> Mapping[str, ModelEntry]:
    """A read-only view of every registry entry, by name."""
    return _REGISTRY.view()
