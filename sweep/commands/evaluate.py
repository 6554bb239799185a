"""`fusion-sweep evaluate`: a trained run's weights on another dataset (external validation), same preprocessing."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sweep import UsageError
from sweep.commands.common import add_runtime_arguments, setup_runtime, usage_errors

SPLIT_CHOICES = ("test", "val", "train", "all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by `fusion-sweep train` or `reproduce`")
    parser.add_argument("--data", choices=("synthetic", "radiography"), default="radiography")
    parser.add_argument("--data-dir", default=None, help="radiography: the dataset folder to evaluate on")
    parser.add_argument("--classes", default=None,
                        help="comma-separated classes to read from the data (default: the run's classes)")
    parser.add_argument("--split", choices=SPLIT_CHOICES, default="test",
                        help="which split of that dataset ('all': every image, for an external dataset)")
    parser.add_argument("--subset", type=int, default=None, help="at most this many images per class")
    parser.add_argument("--name", default=None, help="results go to RUN_DIR/eval/NAME (default: <data dir>-<split>)")
    parser.add_argument("--batch-size", type=int, default=64)
    add_runtime_arguments(parser)


def check_classes(data_classes, model_classes) -> list[int]:
    """Model output index of each data class, matched by name; unknown names are an error listing both sets."""
    unknown = [c for c in data_classes if c not in model_classes]
    if unknown:
        raise UsageError(f"class(es) {', '.join(map(repr, unknown))} unknown to the model; the model knows "
                         f"{', '.join(model_classes)}; the data has {', '.join(data_classes)}")
    return [list(model_classes).index(c) for c in data_classes]


def predict_split(loaded, split, batch_size: int):
    """Probabilities (N,K) for every image of `split`, in row order, streamed from disk one batch at a time."""
    from data.pipeline import eval_batches

    predict = loaded.predict_fn(batch_size)
    parts = [predict(b["image"][b["valid"]]) for b in eval_batches(split, loaded.config.pipeline, batch_size=batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, len(loaded.classes)), np.float32)


def evaluate_run(loaded, prepared, split: str, batch_size: int) -> tuple[dict, str]:
    """(metrics, classification report) of `loaded` on `prepared`'s split ('all': train + val + test)."""
    from sweep.engine.metrics import classification_metrics, classification_report_text  # scikit-learn: slow

    mapping = np.asarray(check_classes(prepared.classes, loaded.classes))
    parts = ("train", "val", "test") if split == "all" else (split,)
    labels = mapping[np.concatenate([prepared.split(p).labels for p in parts]).astype(np.int64)]
    if len(labels) == 0:
        raise UsageError(f"split {split!r} of {prepared.path} holds no images")
    probs = np.concatenate([predict_split(loaded, prepared.split(p), batch_size) for p in parts])
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))))
    metrics = {"status": "evaluated", "split": split, "images": int(len(labels)), "test_loss": loss,
               "weights_epoch": loaded.weights_epoch, "run_dir": str(loaded.run_dir),
               "data_classes": list(prepared.classes), "data_fingerprint": prepared.fingerprint}
    metrics.update(classification_metrics(labels, probs, loaded.classes, prefix="test_"))
    return metrics, classification_report_text(labels, probs, loaded.classes)


def run(args) -> int:
    if not Path(args.run_dir).is_dir():
        raise UsageError(f"RUN_DIR {args.run_dir} is not a folder (give one written by `fusion-sweep train`)")
    if args.data == "radiography" and not args.data_dir:
        raise UsageError("--data radiography needs --data-dir (the folder of the dataset to evaluate on)")
    if args.data_dir and not Path(args.data_dir).expanduser().is_dir():
        raise UsageError(f"--data-dir {args.data_dir} is not a folder")
    from data.builder import prepare
    from data.spec import DataSpec
    from sweep.engine.load import load_run
    from sweep.engine.run_outputs import write_run_outputs

    setup_runtime(args)
    loaded = load_run(args.run_dir)
    classes = tuple(c.strip() for c in args.classes.split(",")) if args.classes else loaded.classes
    check_classes(classes, loaded.classes)
    with usage_errors():
        prepared = prepare(DataSpec(source=args.data, data_dir=args.data_dir, classes=classes,
                                    image_size=loaded.image_size, subset=args.subset), progress=True)
    metrics, report = evaluate_run(loaded, prepared, args.split, args.batch_size)
    name = args.name or f"{Path(args.data_dir).name if args.data_dir else args.data}-{args.split}"
    out = Path(args.run_dir) / "eval" / name
    write_run_outputs(out, metrics, report, [], title=f"{loaded.config.model} on {name}")
    print(report)
    print(f"{metrics['images']} images; accuracy {metrics['test_accuracy']:.4f}, balanced "
          f"{metrics['test_balanced_accuracy']:.4f}, AUC {metrics['test_auc']:.4f}")
    print(f"outputs in {out}")
    return 0
