"""`fusion-sweep data prepare|show|stream`: prepare a dataset into the cache and print its counts, draw a sample grid,
or stream the training pipeline with no model to measure its images/s and peak memory."""
from __future__ import annotations

import argparse
from pathlib import Path

from data.spec import SEED_CLASSES, DataSpec
from sweep import UsageError
from sweep.commands.common import usage_errors
from sweep.files import write_bytes_atomic, write_json_atomic


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _classes(text: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated class names, e.g. COVID,Normal")
    return names


def _add_dataset_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", choices=("synthetic", "radiography"), default="synthetic", help="dataset source")
    p.add_argument("--data-dir", help="radiography: the downloaded folder (Kaggle layout, seed layout, or one folder per class)")
    p.add_argument("--classes", type=_classes, default=SEED_CLASSES, help="comma-separated, label order as given")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--data-dir-cache", help="where prepared datasets are cached (default: <user cache>/fusion-sweep/datasets)")
    p.add_argument("--split-fractions", type=_floats, default=(0.7, 0.1, 0.2), help="train,val,test")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--subset", type=int, help="keep at most this many images per class")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images (and list them) instead of failing")
    p.add_argument("--num-images", type=int, default=2000, help="synthetic: images to generate")
    p.add_argument("--difficulty", type=float, default=0.5, help="synthetic: 0 easy .. 1 hard")
    p.add_argument("--marker-rate", type=_floats, help="synthetic: per-class probability of a burnt-in text marker")
    p.add_argument("--intensity-shift", type=_floats, help="synthetic: per-class brightness offset")
    p.add_argument("--synthetic-seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress output")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    prep = sub.add_parser("prepare", help="prepare (or reuse) a dataset and print per-split, per-class counts")
    _add_dataset_arguments(prep)
    show = sub.add_parser("show", help="write a PNG grid of sample images per class")
    _add_dataset_arguments(show)
    show.add_argument("--out", required=True, help="PNG file to write")
    show.add_argument("--split", choices=("train", "val", "test"), default="train")
    show.add_argument("--per-class", type=int, default=8, help="samples per class (one row each)")
    show.add_argument("--scale", type=int, default=0, help="upscale factor for display (default: to ~128 px tiles)")
    stream = sub.add_parser("stream", help="iterate the training pipeline with no model: images/s and peak memory")
    _add_dataset_arguments(stream)
    stream.add_argument("--batch-size", type=int, default=32)
    stream.add_argument("--augment", choices=("none", "mild", "seed"), default="mild")
    stream.add_argument("--epochs", type=int, default=1)
    stream.add_argument("--seed", type=int, default=0, help="shuffle and augmentation seed")
    stream.add_argument("--workers", type=int, help="loader threads (or processes); default: the cores available")
    stream.add_argument("--processes", action="store_true", help="grain worker processes instead of threads")
    stream.add_argument("--json", metavar="PATH", help="also write the figures as JSON (images, images_per_second, "
                                                       "peak_rss_mb, ...)")


def spec_from_args(args) -> DataSpec:
    return DataSpec(
        source=args.data, data_dir=args.data_dir, classes=tuple(args.classes), image_size=args.image_size,
        split_fractions=tuple(args.split_fractions), split_seed=args.split_seed, subset=args.subset,
        skip_bad=args.skip_bad, cache_dir=args.data_dir_cache, num_images=args.num_images,
        difficulty=args.difficulty, marker_rate=args.marker_rate, intensity_shift=args.intensity_shift,
        synthetic_seed=args.synthetic_seed,
    )


def format_counts(dataset) -> str:
    counts = dataset.counts()
    classes = list(dataset.classes)
    width = max(8, *(len(c) for c in classes))
    lines = ["split".ljust(6) + "".join(c.rjust(width + 2) for c in classes) + "total".rjust(9)]
    for split, per_class in counts.items():
        row = [per_class.get(c, 0) for c in classes]
        lines.append(split.ljust(6) + "".join(str(n).rjust(width + 2) for n in row) + str(sum(row)).rjust(9))
    return "\n".join(lines)


def sample_grid(dataset, split: str, per_class: int, scale: int = 0):
    """BGR uint8 grid: one row per class; synthetic lesion masks outlined in red, marker boxes in yellow."""
    import cv2
    import numpy as np

    arrays = dataset.split(split)
    size = dataset.image_size
    scale = scale or max(1, round(128 / size))
    tile = size * scale
    rng = np.random.default_rng(0)
    rows = []
    for label, name in enumerate(dataset.classes):
        members = np.nonzero(arrays.labels == label)[0]
        chosen = np.sort(rng.choice(members, size=min(per_class, len(members)), replace=False)) if len(members) else []
        tiles = []
        for i in chosen:
            img = cv2.resize(arrays.images[i], (tile, tile), interpolation=cv2.INTER_NEAREST)
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
            if arrays.lesion_masks is not None:
                mask = cv2.resize(arrays.lesion_masks[i].astype(np.uint8), (tile, tile), interpolation=cv2.INTER_NEAREST)
                contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                cv2.drawContours(img, contours, -1, (0, 0, 255), 1)
            if arrays.marker_boxes is not None and arrays.marker_boxes[i][0] >= 0:
                y0, x0, y1, x1 = (int(v) * scale for v in arrays.marker_boxes[i])
                cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), (0, 255, 255), 1)
            tiles.append(img)
        tiles += [np.zeros((tile, tile, 3), np.uint8)] * (per_class - len(tiles))
        label_bar = np.zeros((tile, 150, 3), np.uint8)
        cv2.putText(label_bar, f"{name} ({len(members)})", (4, tile // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
        rows.append(np.concatenate([label_bar] + tiles, axis=1))
    return np.concatenate(rows, axis=0)


def _write_png(path: Path, image) -> None:
    import cv2

    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError(f"could not encode PNG for {path}")
    write_bytes_atomic(path, encoded.tobytes())


def _check_stream_args(args) -> None:
    if args.batch_size < 1 or args.epochs < 1 or (args.workers is not None and args.workers < 1):
        raise UsageError(f"--batch-size, --epochs and --workers must be >= 1, got {args.batch_size}, {args.epochs}, "
                         f"{args.workers}")


def stream_command(args, dataset) -> int:
    """Stream the train split and print images/s and peak memory (and write --json)."""
    from data.pipeline import LoaderOptions
    from data.spec import PipelineSpec
    from data.stream import stream

    figures = stream(dataset.split("train"), PipelineSpec(augment=args.augment), batch_size=args.batch_size,
                     num_classes=len(dataset.classes), epochs=args.epochs, seed=args.seed,
                     loader=LoaderOptions(workers=args.workers, processes=args.processes), progress=not args.quiet)
    figures["dataset"] = str(dataset.path)
    print(f"streamed {figures['images']} images ({figures['image_size']} px, augment {figures['augment']}, "
          f"batch {figures['batch_size']}, {figures['workers']} worker {figures['worker_kind']}) in "
          f"{figures['seconds']:.1f} s: {figures['images_per_second']:.0f} images/s "
          f"({figures['images_per_cpu_second']:.0f} per CPU-second); peak RSS {figures['peak_rss_mb']:.0f} MB "
          f"(this process and its workers)")
    if args.json:
        write_json_atomic(args.json, figures)
        print(f"wrote {args.json}")
    return 0


def run(args) -> int:
    from data.builder import prepare

    out = None
    if args.data_command == "show":
        out = Path(args.out)
        if out.suffix.lower() != ".png":
            raise UsageError(f"--out must name a .png file, got {args.out!r}")
    if args.data_command == "stream":
        _check_stream_args(args)
    with usage_errors():
        dataset = prepare(spec_from_args(args), progress=not getattr(args, "quiet", False))
    if args.data_command == "stream":
        return stream_command(args, dataset)
    if args.data_command == "prepare":
        print(f"dataset: {dataset.path}")
        bad = dataset.manifest.get("bad_files") or []
        if bad:
            print(f"skipped {len(bad)} unreadable image(s): {', '.join(bad)}")
        print(format_counts(dataset))
        return 0
    _write_png(out, sample_grid(dataset, args.split, args.per_class, args.scale))
    print(f"wrote {out}")
    return 0
