"""``cnnlab explain``: why a classifier decided as it did, as pictures.

Grad-CAM (Selvaraju et al. 2017) of one image: the input and, beside it, the regions that raise the explained
class's score, for a run's checkpoint (the image read as its test images were) or a registered model with weights
trained elsewhere (``--weights``: the preprocessing those weights expect). For a network with deformable convs,
also the sampling points of one unit followed back through them (Dai et al. 2017, Fig. 5 and 7).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="Grad-CAM of an image (and, for deformable nets, where one unit samples it) as PNG",
        description=__doc__,
    )
    p.add_argument("checkpoint", metavar="RUN", help="a run folder (its best.pt) or a checkpoint; with --weights, "
                   "a registered model name")  # fmt: skip
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--class", dest="target", default=None, help="the class to explain, by name or index "
                   "(default: the predicted one)")  # fmt: skip
    p.add_argument("--layer", default=None, help="the module whose maps are weighed (default: the last stage)")
    p.add_argument("--out", default=None, help="the PNG to write (default: IMAGE's name + _gradcam.png, here)")
    p.add_argument("--weights", default=None, help="weights trained elsewhere: a file, 'torchvision' or 'timm'")
    p.add_argument("--cell", default=None, metavar="I,J", help="deformable nets: the unit of the last deformable "
                   "layer whose sampling points are drawn (default: the strongest)")  # fmt: skip
    p.set_defaults(func=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    from cnnlab.analysis.cam import draw_gradcam, gradcam
    from cnnlab.analysis.sampling import deformable_layers, draw_sampling, sampling_points
    from cnnlab.train.predict import load_for_inference, read_inputs, shown

    model, meta = load_for_inference(args.checkpoint, weights=args.weights)
    classes = meta["classes"]
    target = None if args.target is None else class_index(args.target, classes)
    x = read_inputs(meta, [args.image])
    cam = gradcam(model, x, target, layer=args.layer)
    out = Path(args.out) if args.out else Path(f"{Path(args.image).stem}_gradcam.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    image = shown(meta, x)[0]
    explained = classes[int(cam.target[0])]
    title = f"{meta['model']}: Grad-CAM of {explained!r} (p = {float(cam.probs[0]):.3f}) at {cam.layer}"
    draw_gradcam(image, cam.upsampled(tuple(x.shape[-2:]))[0].numpy(), out, title=title)
    predicted = classes[int(model(x).argmax(1)[0])]
    print(f"{args.image}: predicted {predicted!r}; explained {explained!r} at layer {cam.layer}\n  Grad-CAM {out}")
    if deformable_layers(model):
        cell = None if args.cell is None else parse_cell(args.cell)
        sampling = sampling_points(model, x, cell=cell)
        path = out.with_name(f"{out.stem.removesuffix('_gradcam')}_sampling.png")
        draw_sampling(image, sampling, path, title=f"{meta['model']}: {len(sampling.levels[-1])} sampling points "
                      f"of unit {sampling.cell} through {len(sampling.layers)} deformable layers")  # fmt: skip
        print(f"  sampling points {path}")
    return 0


def class_index(target: str, classes: list[str]) -> int:
    """A class given by name or by index, checked against ``classes``."""
    if target in classes:
        return classes.index(target)
    if target.lstrip("-").isdigit() and 0 <= int(target) < len(classes):
        return int(target)
    shown = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
    raise ConfigError(f"--class must be a class name or an index in 0..{len(classes) - 1}, got {target!r} ({shown})")


def parse_cell(text: str) -> tuple[int, int]:
    try:
        i, j = (int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--cell must be two integers I,J (a unit's row and column), got {text!r}") from None
    return i, j
