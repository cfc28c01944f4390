"""``cnnlab eval``, ``cnnlab predict`` and ``cnnlab export``: using a trained checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from cnnlab.cli.common import format_table, positive_int
from cnnlab.errors import DataError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="accuracy, per-class accuracy and a confusion matrix of a trained model")
    p.add_argument("checkpoint", metavar="RUN_OR_CKPT", help="a run folder (its best.pt) or a checkpoint file")
    p.add_argument("--data", default=None, help="dataset (default: the one it was trained on)")
    p.add_argument(
        "--split", choices=("test", "val", "train"), default="test", help="which split to evaluate (default: test)"
    )
    p.add_argument("--data-dir", default=None, help="(default: the one it was trained with)")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="folder for confusion.png (default: next to the checkpoint)")
    p.set_defaults(func=run_eval)

    p = sub.add_parser("predict", help="the top-k classes of image files")
    p.add_argument("checkpoint", metavar="CKPT", help="a run folder (its best.pt) or a checkpoint file")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--topk", type=positive_int, default=3)
    p.set_defaults(func=run_predict)

    p = sub.add_parser("export", help="write a trained model as ONNX or TorchScript (BatchNorm folded)")
    p.add_argument("checkpoint", metavar="CKPT", help="a run folder (its best.pt) or a checkpoint file")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    p.add_argument("--output", default=None, help="the file to write (default: next to the checkpoint)")
    p.add_argument("--no-fold", action="store_true", help="keep BatchNorm layers as they are")
    p.set_defaults(func=run_export)


def run_eval(args: argparse.Namespace) -> int:
    from cnnlab.data import load_dataset, make_loader
    from cnnlab.train.distributed import resolve_device
    from cnnlab.train.engine import confusion_matrix, predict_batches, topk_accuracy
    from cnnlab.train.plots import plot_confusion
    from cnnlab.train.predict import input_pipeline, model_from_checkpoint
    from cnnlab.train.runfolder import check_folder

    model, meta = model_from_checkpoint(args.checkpoint)
    out = Path(args.out) if args.out else Path(meta["path"]).parent  # where confusion.png goes
    check_folder(out, what="--out")
    data_dir = args.data_dir or meta.get("data_dir", "data")
    subset = meta.get("subset", {}) if args.data is None else {}  # the classes it was trained on
    data = load_dataset(args.data or meta["data"], data_dir=data_dir, val_fraction=meta["val_fraction"], **subset)
    if data.num_classes != meta["num_classes"] or data.in_chans != meta["in_chans"]:
        raise DataError(
            f"{data.name} has {data.num_classes} classes of {data.in_chans}-channel images; the model was trained "
            f"for {meta['num_classes']} classes of {meta['in_chans']}-channel images"
        )
    device = resolve_device(args.device)
    loader = make_loader(data, args.split, input_pipeline(meta), batch_size=args.batch_size)
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
    out.mkdir(parents=True, exist_ok=True)
    path = plot_confusion(matrix, data.classes, out / "confusion.png", title=f"{meta['model']} on {data.name}")
    print(f"confusion matrix: {path}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from cnnlab.train.predict import model_from_checkpoint, predict

    model, meta = model_from_checkpoint(args.checkpoint)
    for image, top in zip(args.images, predict(model, meta, args.images, topk=args.topk), strict=True):
        print(f"{image}: " + ", ".join(f"{name} {p:.3f}" for name, p in top))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from cnnlab.train.export import check_onnx, export_model
    from cnnlab.train.predict import model_from_checkpoint

    model, meta = model_from_checkpoint(args.checkpoint)
    suffix = ".onnx" if args.format == "onnx" else ".torchscript.pt"
    output = Path(args.output) if args.output else Path(meta["path"]).with_suffix(suffix)
    x = torch.randn(2, meta["in_chans"], meta["image_size"], meta["image_size"])
    keep = {k: meta[k] for k in ("model", "classes", "image_size", "input")}
    path = export_model(model, x, output, fmt=args.format, fold=not args.no_fold, metadata=keep)
    print(f"wrote {path} ({args.format}{'' if args.no_fold else ', BatchNorm folded'})")
    if args.format == "onnx":
        try:
            diff = check_onnx(path, model, x)
        except ImportError:
            print("onnxruntime is not installed: the file was not checked")
        else:
            print(f"onnxruntime agrees with PyTorch: max |difference| {diff:.2e}")
    return 0
