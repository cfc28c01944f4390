"""``cnnlab train``: every TrainConfig field is a flag; a YAML file (``--config``) holds the same keys, and so
does a named recipe (``--recipe NAME``: ``recipes/NAME.yaml``; ``--recipe list`` lists them).

Precedence: the defaults, then the resumed run's config (``--resume``), then ``--recipe``, then ``--config``, then
the flags. A resumed
run continues its recorded recipe: flags that would change what it computes are refused (see RESUME_FREE in
cnnlab.train.config for those that may change). The trainer reads the resumed run's checkpoint
(:mod:`cnnlab.train.resume`); this command passes it the flags and keys that were given.
"""

from __future__ import annotations

import argparse
import sys
import typing
from typing import Any

from cnnlab.cli.common import json_object, known_model
from cnnlab.train.config import FIELDS, OPTIMIZERS, PRECISIONS, SCHEDULES, TrainConfig, config_from_dict, load_yaml
from cnnlab.train.recipes import load_recipe, recipe_names, recipe_summary

_HELP = {
    "model": "a registered model name (`cnnlab models` lists them)",
    "data": "mnist5k, mnist, fashion-mnist, cifar10, cifar100 or imagefolder:PATH; for a segmentation model "
    "mnist5k-seg or segfolder:PATH",
    "freeze": "first N stages, 'all-but-head', or module-name patterns such as 'stem,S1*'",
    "pretrained": "a cnnlab checkpoint or state_dict file, or 'torchvision'/'timm' (online machines)",
    "model_kwargs": "extra model arguments as JSON, e.g. '{\"drop_rate\": 0.2}'",
    "resume": "a run folder (or checkpoint) to continue; it keeps its recipe (only flags such as --workers, "
    "--device, --progress may change); 'auto': continue --run-name if it has a checkpoint, else start it",
    "overwrite": "start --run-name again when its folder holds a run (deletes that run's files)",
    "precision": "fp32, bf16 (bfloat16 autocast; the weights, optimizer state, batch-norm statistics and loss stay "
    "float32) or auto (bf16 where the device has it natively)",
}
_CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "precision": PRECISIONS}


def _type_of(name: str) -> Any:
    hint = typing.get_type_hints(TrainConfig)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args and typing.get_origin(hint) is not typing.Literal else hint
    if typing.get_origin(hint) is typing.Literal:
        return str
    return base if base in (int, float, str) else str


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field; only flags given on the command line reach the namespace."""
    p.add_argument("--config", metavar="YAML", help="a YAML file whose keys are these flags")
    names = ", ".join(recipe_names()) or "none found"
    p.add_argument(
        "--recipe", metavar="NAME", help=f"start from recipes/NAME.yaml ('list' describes them; {names}); "
        "--config and the flags override it",
    )  # fmt: skip
    for name, f in FIELDS.items():
        flag = "--" + name.replace("_", "-")
        default = TrainConfig().to_dict()[name]
        common: dict[str, Any] = {"default": argparse.SUPPRESS, "dest": name}
        if isinstance(f.default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, help=f"(default: {default})", **common)
        elif name == "model_kwargs":
            p.add_argument(flag, type=json_object, metavar="JSON", help=_HELP[name], **common)
        else:
            help_text = f"{_HELP.get(name, '')} (default: {default})".strip()
            p.add_argument(flag, type=_type_of(name), choices=_CHOICES.get(name), help=help_text, **common)


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """The defaults, then ``--recipe``'s keys, then ``--config``'s, then the flags (a resumed run's own recipe comes
    in :func:`fit`)."""
    return config_from_dict(_chosen(args))


def _chosen(args: argparse.Namespace) -> dict[str, Any]:
    """What the command line sets: ``--recipe``'s keys, then ``--config``'s, then the flags (which win)."""
    recipe = load_recipe(args.recipe) if getattr(args, "recipe", None) else {}
    keys = load_yaml(args.config) if getattr(args, "config", None) else {}
    return {**recipe, **keys, **{k: v for k, v in vars(args).items() if k in FIELDS}}


def register(sub: argparse._SubParsersAction) -> None:
    demo = TrainConfig()
    p = sub.add_parser(
        "train",
        help=f"train a model (no arguments: the demo, {demo.model} for {demo.epochs} epochs on {demo.data})",
        description=__doc__,
    )
    add_config_flags(p)
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from cnnlab.pages import report_after_training
    from cnnlab.train.trainer import fit

    if getattr(args, "recipe", None) == "list":
        print(list_recipes())
        return 0
    chosen = _chosen(args)
    config = config_from_dict(chosen)
    known_model(config.model)  # an unknown name points to `cnnlab models` before anything is written
    given = {str(key).replace("-", "_") for key in chosen}  # a resumed run takes the rest from its checkpoint
    try:
        report_after_training(fit(config, given=given).run_dir)  # RUN/report.html; a failure there is a warning
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130
    return 0


def list_recipes() -> str:
    """One line per recipe: its name and its summary (what it reproduces, the source's figure)."""
    names = recipe_names()
    if not names:
        return "no recipes found (they live in the recipes/ folder of a cnnlab checkout)"
    width = max(map(len, names))
    lines = [f"{name:<{width}}  {recipe_summary(name)}" for name in names]
    return "\n".join([*lines, "", "cnnlab train --recipe NAME [flags]: the flags override the recipe's values"])


__all__ = ["add_config_flags", "list_recipes", "register", "resolve_config"]
