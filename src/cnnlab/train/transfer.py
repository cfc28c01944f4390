"""Transfer learning: freeze part of a pretrained network and train the rest.

Yosinski et al. 2014 ("How transferable are features in deep neural networks?") find the first layers general
and the last specific: for a small target dataset freeze many early stages, for a larger one fewer.
``freeze`` takes

* ``"N"``: the first N stages of ``model.feature_info`` (stem first),
* ``"all-but-head"``: every parameter outside ``model.head_modules`` (a linear probe),
* module-name patterns, comma-separated, matched with ``fnmatch`` against dotted names (``"stem,S1*"``).

Frozen parameters stop requiring gradients and so get no optimizer state (see :mod:`cnnlab.train.optim`);
BatchNorm layers inside frozen modules are kept in eval mode by :func:`set_train_mode`, so their running
statistics stay those of the pretrained network.
"""

from __future__ import annotations

import fnmatch

from torch import nn

from cnnlab.errors import ConfigError, suggest


def frozen_modules(model: nn.Module, spec: str) -> list[str]:
    """The dotted names of the modules that ``spec`` freezes (outermost only)."""
    spec = spec.strip()
    names = [n for n, _ in model.named_modules() if n]
    if spec.isdigit():
        stages = list(model.stage_names()) if hasattr(model, "stage_names") else []
        n = int(spec)
        if not 0 <= n <= len(stages):
            raise ConfigError(f"--freeze {n}: the model has {len(stages)} stages ({', '.join(stages)})")
        return stages[:n]
    if spec == "all-but-head":
        heads = tuple(getattr(model, "head_modules", ("head",)))
        return [n for n, _ in model.named_children() if n not in heads]
    chosen = []
    for pattern in (p.strip() for p in spec.split(",") if p.strip()):
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise ConfigError(
                f"--freeze {pattern!r} matches no module.{suggest(pattern, names)} "
                f"Use a stage count, 'all-but-head', or patterns such as 'stem,S1*'."
            )
        chosen += hits
    return [n for n in chosen if not any(n.startswith(f"{o}.") for o in chosen)]  # outermost only


def freeze(model: nn.Module, spec: str | None) -> list[str]:
    """Freeze the modules that ``spec`` names (see the module docstring); return their names."""
    if not spec:
        return []
    names = frozen_modules(model, spec)
    for name in names:
        model.get_submodule(name).requires_grad_(False)
    return names


def set_train_mode(model: nn.Module, frozen: list[str]) -> nn.Module:
    """``model.train()``, except that norm layers inside frozen modules stay in eval mode."""
    model.train()
    for name in frozen:
        for m in model.get_submodule(name).modules():
            if isinstance(m, nn.modules.batchnorm._NormBase):
                m.eval()
    return model
