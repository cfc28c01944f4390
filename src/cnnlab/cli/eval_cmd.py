"""``cnnlab eval``, ``cnnlab predict`` and ``cnnlab export``: using a trained checkpoint.

For a segmentation run, ``eval`` prints the IoU of each class, the mean IoU, the pixel accuracy and the mean IoU
on small and on large objects, and writes them to ``iou_SPLIT.csv`` with ``masks_SPLIT.png`` (the first images of
the split, their true and their predicted masks side by side); ``predict`` writes ``NAME_mask.png`` and
``NAME_overlay.png`` for each image into ``--out`` (default: ``predictions/`` in the run folder).

``eval`` prints its scores first; a file it then cannot write (a read-only run folder, a full disk) is a warning
line that names the file and where it was to go, and the exit code stays 0: the evaluation itself succeeded.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.cli.common import format_table, positive_int
from cnnlab.data import SegmentationDataset
from cnnlab.errors import DataError, TrainingError
from cnnlab.train.predict import CALIBRATION_IMAGES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="accuracy, per-class accuracy and a confusion matrix of a trained model (segmentation: IoU per "
        "class, mean IoU, small/large-object IoU and a PNG of predicted masks)",
    )
    p.add_argument("checkpoint", metavar="RUN_OR_CKPT", help="a run folder (its best.pt) or a checkpoint file")
    p.add_argument("--data", default=None, help="dataset (default: the one it was trained on)")
    p.add_argument(
        "--split", choices=("test", "val", "train"), default="test", help="which split to evaluate (default: test)"
    )
    p.add_argument("--data-dir", default=None, help="(default: the one it was trained with)")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--out", default=None, help="folder for confusion.png (segmentation: iou_SPLIT.csv, masks_SPLIT.png; "
        "default: next to the checkpoint)"
    )  # fmt: skip
    p.add_argument("--show", type=positive_int, default=6, help="segmentation: images in masks_SPLIT.png")
    p.set_defaults(func=run_eval)

    p = sub.add_parser("predict", help="the top-k classes of image files (segmentation: mask and overlay PNGs)")
    p.add_argument(
        "checkpoint", metavar="CKPT", help="a run folder (its best.pt) or a checkpoint file; with --weights, a "
        "registered model name",
    )  # fmt: skip
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--topk", type=positive_int, default=3)
    p.add_argument("--out", default=None, help="segmentation: folder for the PNGs (default: RUN/predictions)")
    p.add_argument(
        "--weights", default=None, help="weights trained elsewhere for the model CKPT names: a file, 'torchvision' "
        "or 'timm' (online); images are read with the preprocessing those weights expect",
    )  # fmt: skip
    p.add_argument(
        "--runtime", choices=("torch", "onnxruntime", "openvino"), default="torch",
        help="eager PyTorch (default), or ONNX Runtime or OpenVINO on the model exported with BatchNorm folded",
    )  # fmt: skip
    p.add_argument(
        "--int8", action="store_true",
        help=f"quantize to int8 first, calibrated on {CALIBRATION_IMAGES} images of the run's training split "
        "(with --runtime onnxruntime or openvino)",
    )  # fmt: skip
    p.set_defaults(func=run_predict)

    p = sub.add_parser("export", help="write a trained model as ONNX or TorchScript (BatchNorm folded)")
    p.add_argument("checkpoint", metavar="CKPT", help="a run folder (its best.pt) or a checkpoint file")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    p.add_argument("--output", default=None, help="the file to write (default: next to the checkpoint)")
    p.add_argument("--no-fold", action="store_true", help="keep BatchNorm layers as they are")
    p.add_argument(
        "--int8", action="store_true",
        help=f"ONNX quantized to int8 (QuantizeLinear/DequantizeLinear around int8 weights), calibrated on "
        f"{CALIBRATION_IMAGES} images of the run's training split",
    )  # fmt: skip
    p.set_defaults(func=run_export)


def run_eval(args: argparse.Namespace) -> int:
    from cnnlab.data import make_loader
    from cnnlab.plotting import plot_confusion
    from cnnlab.train.distributed import resolve_device
    from cnnlab.train.engine import confusion_matrix, predict_batches, topk_accuracy
    from cnnlab.train.predict import input_pipeline, model_from_checkpoint, run_data
    from cnnlab.train.runfolder import check_folder

    model, meta = model_from_checkpoint(args.checkpoint)
    out = Path(args.out) if args.out else Path(meta["path"]).parent  # where confusion.png goes
    check_folder(out, what="--out")
    data = run_data(meta, name=args.data, data_dir=args.data_dir)
    if data.num_classes != meta["num_classes"] or data.in_chans != meta["in_chans"]:
        raise DataError(
            f"{data.name} has {data.num_classes} classes of {data.in_chans}-channel images; the model was trained "
            f"for {meta['num_classes']} classes of {meta['in_chans']}-channel images"
        )
    device = resolve_device(args.device)
    loader = make_loader(data, args.split, input_pipeline(meta), batch_size=args.batch_size)
    if isinstance(data, SegmentationDataset):
        return _eval_segmentation(model.to(device), meta, data, loader, args, out, device)
    logits, y = predict_batches(model.to(device), loader.batches(), device=device)
    pred = logits.argmax(1)
    matrix = confusion_matrix(pred, y, data.num_classes)
    per_class = matrix.diag().double() / matrix.sum(1).clamp(min=1)
    print(f"checkpoint {meta['path']}  ({meta['model']}, {data.name} {args.split} split, {len(y):,} images)")
    print(f"accuracy   {float((pred == y).double().mean()):.4f}")
    if data.num_classes >= 10:
        print(f"top-5      {topk_accuracy(logits, y, 5):.4f}")
    rows = [[c, int(matrix[i].sum()), float(per_class[i])] for i, c in enumerate(data.classes)]
    print(format_table(rows, ["class", "images", "accuracy"]))
    title = f"{meta['model']} on {data.name}"
    path = _written(out / "confusion.png", lambda p: plot_confusion(matrix, data.classes, p, title=title))
    if path is not None:
        print(f"confusion matrix: {path}")
    return 0


def _written(path: Path, write: Callable[[Path], Path]) -> Path | None:
    """``write(path)`` into a folder made when missing, or None and a warning line when the file cannot be written
    there (a read-only folder, a full disk: see the module docstring)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return write(path)
    except (OSError, TrainingError) as e:  # a full disk is a TrainingError (cnnlab.train.atomic)
        why = (e.strerror or str(e)) if isinstance(e, OSError) else str(e)
        print(
            f"cnnlab eval: warning: could not write {path.name} in {path.parent} ({why}); the scores above are "
            "complete; --out FOLDER writes the file elsewhere",
            file=sys.stderr,
        )
        return None


def _eval_segmentation(
    model: torch.nn.Module,
    meta: dict,
    data: SegmentationDataset,
    loader: Any,
    args: argparse.Namespace,
    out: Path,
    device: torch.device,
) -> int:
    """The IoU table, the scores and the mask PNG of a segmentation checkpoint (see the module docstring)."""
    from cnnlab.plotting import plot_masks
    from cnnlab.train.atomic import write_atomic
    from cnnlab.train.predict import input_pipeline, iou_table, sample_masks, score_text

    scores, rows = iou_table(model, data, loader, device=device)
    print(f"checkpoint {meta['path']}  ({meta['model']}, {data.name} {args.split} split, {len(loader.split):,} images)")
    table = format_table(rows, ["class", "pixels", "IoU"])
    print(table)
    named = [("mean IoU", scores["miou"]), ("pixel acc", scores["acc"])]
    named += [(f"{b} IoU", scores[f"{b}_iou"]) for b in data.size_buckets]  # objects of that size bucket
    print("\n".join(f"{name:<10} {score_text(v)}" for name, v in named))

    def cell(v: float | None) -> str:
        return "" if v is None else str(v)

    csv = "class,pixels,iou\n" + "".join(f"{c},{n},{cell(v)}\n" for c, n, v in rows)
    csv += f"mean,{sum(n for _, n, _ in rows)},{cell(scores['miou'])}\n" + "".join(
        f"{b} objects,,{cell(scores[f'{b}_iou'])}\n" for b in data.size_buckets
    )
    table_path = _written(out / f"iou_{args.split}.csv", lambda p: write_atomic(p, csv.encode()))
    images, y, pred = sample_masks(model, data, args.split, input_pipeline(meta), args.show, device=device)
    title = f"{meta['model']} on {data.name} ({args.split}): mean IoU {scores['miou']:.3f}"
    png = _written(out / f"masks_{args.split}.png", lambda p: plot_masks(images, y, pred, data.classes, p, title=title))
    print("".join(f"{what}: {p}\n" for what, p in (("IoU table", table_path), ("masks", png)) if p), end="")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from cnnlab.train.predict import load_for_inference, predict, predict_mask, with_runtime, write_mask_pngs

    model, meta = load_for_inference(args.checkpoint, weights=args.weights)
    dense = getattr(model, "dense_output", False)
    model = with_runtime(model, meta, args.runtime, int8=args.int8)
    if dense:
        out = Path(args.out) if args.out else Path(meta["path"]).resolve().parent / "predictions"
        out.mkdir(parents=True, exist_ok=True)
        for image in args.images:
            picture, mask = predict_mask(model, meta, image)
            mask_png, overlay_png = write_mask_pngs(picture, mask, out / Path(image).stem)
            found = ", ".join(
                f"{meta['classes'][c]} {n / mask.size:.1%}" for c, n in enumerate(np.bincount(mask.ravel())) if n
            )
            print(f"{image}: {found}\n  mask {mask_png}\n  overlay {overlay_png}")
        return 0
    for image, top in zip(args.images, predict(model, meta, args.images, topk=args.topk), strict=True):
        print(f"{image}: " + ", ".join(f"{name} {p:.3f}" for name, p in top))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from cnnlab.train.export import ExportError, check_onnx, compare_onnx, export_model
    from cnnlab.train.predict import calibration_batches, model_from_checkpoint

    if args.int8 and (args.format != "onnx" or args.no_fold):
        raise ExportError("--int8 writes ONNX with BatchNorm folded: use --format onnx without --no-fold")
    model, meta = model_from_checkpoint(args.checkpoint)
    suffix = (".int8.onnx" if args.int8 else ".onnx") if args.format == "onnx" else ".torchscript.pt"
    output = Path(args.output) if args.output else Path(meta["path"]).with_suffix(suffix)
    x = torch.randn(2, meta["in_chans"], meta["image_size"], meta["image_size"])
    keep = {k: meta[k] for k in ("model", "classes", "image_size", "input")}
    calibration = calibration_batches(meta) if args.int8 else None
    path = export_model(
        model, x, output, fmt=args.format, fold=not args.no_fold, metadata=keep, calibration=calibration
    )
    what = ", int8" if args.int8 else ""
    print(f"wrote {path} ({args.format}{'' if args.no_fold else ', BatchNorm folded'}{what})")
    if calibration is not None:  # int8 differs from float32 by design: how much, on the calibration images
        diff, top1 = compare_onnx(path, model, torch.cat(calibration))
        print(
            f"int8 against float32 PyTorch on the {sum(map(len, calibration))} calibration images: the same top-1 "
            f"class for {top1:.1%}, max |difference| {diff:.2e}"
        )
    elif args.format == "onnx":
        try:
            diff = check_onnx(path, model, x)
        except ImportError:
            print("onnxruntime is not installed: the file was not checked")
        else:
            print(f"onnxruntime agrees with PyTorch: max |difference| {diff:.2e}")
    return 0
