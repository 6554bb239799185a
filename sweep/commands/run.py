"""`fusion-sweep run`: a sweep of fusion models with Ray Tune, then tables, plots, the scaling report and explanations."""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time
from pathlib import Path

EXIT_BAD_INPUT = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="quick", help="quick (default), cpu-real or paper")
    parser.add_argument("--out", default=None, help="results folder (default: results/<preset name>); "
                        "on a multi-node cluster, a folder every node shares (NFS)")
    parser.add_argument("--address", default=None, help="Ray cluster to join: auto, or ray://HOST:10001 "
                        "(default: start a local Ray on this machine)")
    parser.add_argument("--storage", default=None, help="Ray storage path for experiment state and checkpoints: "
                        "a shared dir, s3://bucket/path or gs://bucket/path (default: OUT/ray)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted sweep in --out "
                        "(finished trials are not re-run)")
    data = parser.add_argument_group("data (override the preset)")
    data.add_argument("--data", choices=("synthetic", "radiography"), default=None)
    data.add_argument("--data-dir", default=None, help="radiography: the dataset folder")
    data.add_argument("--image-size", type=int, default=None)
    data.add_argument("--num-images", type=int, default=None, help="synthetic: images to generate")
    data.add_argument("--difficulty", type=float, default=None, help="synthetic: 0 easy .. 1 hard")
    data.add_argument("--subset", type=int, default=None, help="at most this many images per class")
    train = parser.add_argument_group("training (override the preset)")
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--batch-size", type=int, default=None)
    space = parser.add_argument_group("search space (override the preset; comma-separated, 'none' drops a branch)")
    space.add_argument("--cnn-cuts", default=None)
    space.add_argument("--resnet-cuts", default=None)
    space.add_argument("--branch-widths", default=None)
    space.add_argument("--head-widths", default=None)
    space.add_argument("--no-parents", action="store_true", help="do not train the CNN and ResNet50V2 parents")
    tune = parser.add_argument_group("Ray Tune")
    tune.add_argument("--seeds", type=int, default=None, help="seeds per configuration")
    tune.add_argument("--search", choices=("grid", "random"), default=None)
    tune.add_argument("--num-samples", type=int, default=None, help="random search: configurations to draw")
    tune.add_argument("--scheduler", choices=("asha", "fifo"), default=None)
    tune.add_argument("--cpus-per-trial", type=float, default=None)
    tune.add_argument("--gpus-per-trial", type=float, default=None)
    tune.add_argument("--max-concurrent", type=int, default=None)
    tune.add_argument("--max-failures", type=int, default=None, help="restarts of a trial whose worker dies")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any SweepConfig field by dotted path, e.g. train.optim.learning_rate=1e-3 "
                        "or train.data.num_images=400 (repeatable)")
    explain = parser.add_argument_group("explanations")
    explain.add_argument("--no-explain", action="store_true", help="skip SHAP explanations at the end")
    explain.add_argument("--explain-images", type=int, default=None)
    explain.add_argument("--explain-max-evals", type=int, default=None)


def _split(text: str, kind=str) -> tuple:
    items = [t.strip() for t in text.split(",") if t.strip()]
    return tuple(None if kind is str and t.lower() == "none" else kind(t) for t in items)


def _coerce(current, text: str):
    if isinstance(current, bool):
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"expected true/false, got {text!r}")
        return text.lower() in ("true", "1", "yes")
    if isinstance(current, int):
        return int(text)
    if isinstance(current, float):
        return float(text)
    if isinstance(current, tuple):
        return _split(text, type(current[0]) if current and current[0] is not None else str)
    if current is None:
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return None if text.lower() == "none" else text
    return text


def set_field(obj, dotted: str, text: str):
    """A copy of the frozen dataclass `obj` with the field at `dotted` (a.b.c) set from text."""
    head, _, rest = dotted.partition(".")
    names = [f.name for f in dataclasses.fields(obj)]
    if head not in names:
        raise ValueError(f"--set {dotted}: {type(obj).__name__} has no field {head!r}; fields: {', '.join(names)}")
    current = getattr(obj, head)
    if rest:
        if current is None or not dataclasses.is_dataclass(current):
            raise ValueError(f"--set {dotted}: {head} is not a nested config")
        return dataclasses.replace(obj, **{head: set_field(current, rest, text)})
    return dataclasses.replace(obj, **{head: _coerce(current, text)})


def build_sweep(args):
    """The preset with every command-line override applied (validated later, before Ray starts)."""
    from sweep.configs.presets import get_preset

    sweep = get_preset(args.preset)
    train, data, space = sweep.train, sweep.train.data, sweep.space
    data_changes = {k: v for k, v in {"image_size": args.image_size, "num_images": args.num_images,
                                      "difficulty": args.difficulty, "subset": args.subset,
                                      "data_dir": args.data_dir}.items() if v is not None}
    if args.data:
        data_changes["source"] = args.data
    if args.data_dir and not args.data:
        data_changes["source"] = "radiography"
    train = train.replace(data=data.replace(**data_changes),
                          **{k: v for k, v in {"epochs": args.epochs, "batch_size": args.batch_size}.items()
                             if v is not None})
    space_changes = {}
    for flag, field, kind in (("cnn_cuts", "cnn_cuts", str), ("resnet_cuts", "resnet_cuts", str),
                              ("branch_widths", "branch_widths", int), ("head_widths", "head_widths", int)):
        value = getattr(args, flag)
        if value is not None:
            space_changes[field] = _split(value, kind)
    if args.no_parents:
        space_changes["include_parents"] = False
    sweep = sweep.replace(train=train, space=dataclasses.replace(space, **space_changes))
    overrides = {"seeds": args.seeds, "search": args.search, "num_samples": args.num_samples,
                 "scheduler": args.scheduler, "cpus_per_trial": args.cpus_per_trial,
                 "gpus_per_trial": args.gpus_per_trial, "max_concurrent": args.max_concurrent,
                 "max_failures": args.max_failures, "explain_images": args.explain_images,
                 "explain_max_evals": args.explain_max_evals}
    sweep = sweep.replace(**{k: v for k, v in overrides.items() if v is not None})
    for item in args.set:
        field, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"--set expects FIELD=VALUE, got {item!r}")
        sweep = set_field(sweep, field.strip(), value.strip())
    return sweep


def _check_data(sweep):
    """Radiography needs an existing --data-dir; it is made absolute so every Ray worker finds it."""
    from data.builder import validate

    spec = sweep.train.data
    validate(spec)
    if spec.source == "radiography":
        if not spec.data_dir:
            raise ValueError(f"preset {sweep.name!r} reads radiography images: give --data-dir (the dataset folder)")
        path = Path(spec.data_dir).expanduser()
        if not path.is_dir():
            raise ValueError(f"--data-dir {path} is not a folder")
        spec = spec.replace(data_dir=str(path.resolve()))
    return sweep.replace(train=sweep.train.replace(data=spec))


def _prepare_out(out: Path, resume: bool) -> None:
    """A fresh run replaces a previous fusion-sweep results folder; anything else non-empty is refused."""
    if resume or not out.exists():
        return
    ours = any((out / name).exists() for name in ("manifest.json", "ray", "trials", "trials.csv"))
    if not ours and any(out.iterdir()):
        raise ValueError(f"--out {out} exists and is not a fusion-sweep results folder; choose another --out")
    for name in ("ray", "trials", "explanations", "plots"):
        if (out / name).exists():
            shutil.rmtree(out / name)


def run(args) -> int:
    from sweep.tune.space import expand

    start = time.time()
    try:
        sweep = build_sweep(args)
        trials = expand(sweep)  # validates the space before anything expensive
        sweep = _check_data(sweep)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = Path(args.out or Path("results") / sweep.name)
    try:
        _prepare_out(out, args.resume)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from sweep.tune.driver import run_sweep

    return run_sweep(sweep, trials, out=out, address=args.address, storage=args.storage,
                               resume=args.resume, explain=not args.no_explain, start=start,
                               command=["fusion-sweep", "run", *sys.argv[2:]] if sys.argv[1:2] == ["run"] else None)
