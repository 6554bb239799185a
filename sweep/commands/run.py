"""`fusion-sweep run`: a sweep of fusion models with Ray Tune, then tables, plots, the scaling report and explanations."""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from data.spec import ExternalSpec
from sweep import UsageError
from sweep.commands import train as train_command
from sweep.commands.common import (RUNS_ROOT, Shorthand, add_set_argument, add_shorthands, build_config, by_field,
                                   under, usage_errors)
from sweep.configs.io import from_dict
from sweep.configs.presets import PRESETS, get_preset
from sweep.configs.schema import SweepConfig

DATA_FLAGS = under("train.", train_command.DATA_FLAGS, "--data-dir", "--data", "--image-size", "--num-images",
                   "--difficulty", "--subset")
TRAINING_FLAGS = under("train.", train_command.TRAINING_FLAGS, "--epochs", "--batch-size")
SPACE_FLAGS = (Shorthand("--backbones", "space.backbones", "the two backbones A,B (default cnn,resnet50v2); another "
                         "pair gets linear branches and, unless --cuts-a/--cuts-b, its default cuts"),
               *by_field("space.cnn_cuts", "space.resnet_cuts"),
               Shorthand("--cuts-a", "space.cnn_cuts", "the first backbone's cuts (--cnn-cuts for the seed pair)"),
               Shorthand("--cuts-b", "space.resnet_cuts", "the second backbone's cuts (--resnet-cuts for the seed pair)"),
               *by_field("space.branch_widths", "space.head_widths"),
               Shorthand("--no-parents", "space.include_parents", "do not train the CNN and ResNet50V2 parents", "false"))
TUNE_FLAGS = by_field("seeds", "parent_seeds", "seed_mode", "search", "num_samples", "scheduler", "cpus_per_trial",
                      "gpus_per_trial", "max_concurrent", "max_failures", "checkpoint_every")
TUNE_FLAGS += (Shorthand("--score-stopped", "score_stopped", "give the rows of trials a scheduler (asha, hyperband) "
                          "stopped test metrics too, from the weights their row reports", "true"),)
EXPLAIN_FLAGS = by_field("explain_images", "explain_max_evals")
RUN_FLAGS = DATA_FLAGS + TRAINING_FLAGS + SPACE_FLAGS + TUNE_FLAGS + EXPLAIN_FLAGS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    base = parser.add_mutually_exclusive_group()
    base.add_argument("--preset", default=None, choices=tuple(PRESETS), help="quick (default), cpu-real or paper")
    base.add_argument("--from-manifest", default=None, metavar="PATH",
                      help="rebuild the sweep a manifest.json (or the results folder holding one) describes")
    parser.add_argument("--out", default=None, help=f"results folder (default: {RUNS_ROOT}/<preset>); on a multi-node "
                        "cluster, a folder every node shares (NFS)")
    parser.add_argument("--address", default=None, help="Ray cluster to join: auto, or ray://HOST:10001 "
                        "(default: start a local Ray on this machine)")
    parser.add_argument("--storage", default=None, help="Ray storage path for experiment state and checkpoints: "
                        "a shared dir, s3://bucket/path or gs://bucket/path (default: OUT/ray)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted sweep in --out "
                        "(finished trials are not re-run)")
    for title, flags in (("data (override the preset)", DATA_FLAGS), ("training (override the preset)", TRAINING_FLAGS),
                         ("search space (override the preset; comma-separated, 'none' drops a branch)", SPACE_FLAGS),
                         ("Ray Tune", TUNE_FLAGS)):
        add_shorthands(parser.add_argument_group(title), flags, SweepConfig(), show_defaults=False)
    add_set_argument(parser, "SweepConfig (e.g. train.optim.learning_rate=1e-3 or train.data.num_images=400)")
    parser.add_argument("--external", action="append", default=[], metavar="NAME=DIR",
                        help="also score every trial on the images in DIR (one folder per class, e.g. another "
                        "hospital's films), as trials.csv's ext_NAME_* columns; NAME in [a-z0-9_]+ (repeatable)")
    explain = parser.add_argument_group("explanations")
    explain.add_argument("--no-explain", action="store_true", help="skip SHAP explanations at the end")
    add_shorthands(explain, EXPLAIN_FLAGS, SweepConfig(), show_defaults=False)
    track = parser.add_argument_group("tracking (TensorBoard event files are always written per trial)")
    track.add_argument("--mlflow", default=None, metavar="URI",
                       help="also record one MLflow run per row (configuration x seed) at this tracking URI, e.g. "
                            "sqlite:///mlflow.db or http://HOST:5000 (needs `pip install 'fusion-sweep[track]'`)")
    track.add_argument("--mlflow-experiment", default=None, metavar="NAME",
                       help="MLflow experiment (default: the sweep's name)")


def manifest_sweep(path: str | Path) -> SweepConfig:
    """The SweepConfig recorded in a manifest.json (or in RESULTS/manifest.json). Its dataset cache folder is
    dropped: it named a folder of the machine that ran it; this machine's cache is used."""
    path = Path(path)
    path = path / "manifest.json" if path.is_dir() else path
    try:
        recorded = json.loads(path.read_text())["sweep_config"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(f"--from-manifest {path}: not a fusion-sweep manifest.json ({type(err).__name__}: {err})")
    sweep = from_dict(SweepConfig, recorded)
    return sweep.replace(train=sweep.train.replace(data=sweep.train.data.replace(cache_dir=None)))


def build_sweep(args) -> SweepConfig:
    """The preset (or the manifest's sweep) with every command-line override applied (validated before Ray)."""
    base = manifest_sweep(args.from_manifest) if args.from_manifest else get_preset(args.preset or "quick")
    return with_externals(build_config(base, args, RUN_FLAGS, special={"backbones": backbone_space}), args.external)


def backbone_space(text: str) -> list[str]:
    """--backbones A,B: the pair, and for a pair other than the seed's each backbone's default cuts (its stage
    outputs nearest 1/4, 1/2, 3/4 depth; --cuts-a / --cuts-b, applied after, override them)."""
    from models.backbones import default_cuts
    from models.spec import SEED_BACKBONES
    from sweep.commands.train import backbone_settings

    names = tuple(setting.partition("=")[2] for setting in backbone_settings(text)[:2])  # checked there
    settings = [f"space.backbones={','.join(names)}"]
    if names != SEED_BACKBONES:
        settings += [f"space.cnn_cuts={','.join(default_cuts(names[0]))}",
                     f"space.resnet_cuts={','.join(default_cuts(names[1]))}"]
    return settings


def with_externals(sweep: SweepConfig, items: list[str]) -> SweepConfig:
    """The sweep with each --external NAME=DIR added (a folder of images scored by every trial)."""
    from data.external import check_name

    externals = dict(sweep.externals)
    for item in items:
        name, eq, folder = item.partition("=")
        if not eq or not folder.strip():
            raise UsageError(f"--external expects NAME=DIR, got {item!r}")
        with usage_errors():
            check_name(name.strip())
        if name.strip() in externals:
            raise UsageError(f"--external {name.strip()!r} is given twice (or is already a set of the preset: "
                             f"{', '.join(sweep.externals) or 'none'})")
        externals[name.strip()] = ExternalSpec(source="radiography", data_dir=folder.strip())
    return sweep.replace(externals=externals)


def _check_data(sweep: SweepConfig) -> SweepConfig:
    """Radiography needs an existing --data-dir, and every external set must be readable. The sweep is returned as
    the user gave it (the manifest records its folders so); the driver hands the workers their absolute form."""
    from data.builder import validate

    spec = sweep.train.data
    with usage_errors():
        validate(spec)
    if spec.source == "radiography":
        if not spec.data_dir:
            raise UsageError(f"preset {sweep.name!r} reads radiography images: give --data-dir (the dataset folder)")
        path = Path(spec.data_dir).expanduser()
        if not path.is_dir():
            raise UsageError(f"--data-dir {path} is not a folder")
    _check_externals(sweep)
    return sweep


def _check_externals(sweep: SweepConfig) -> None:
    """Every external set checked (names, folders, classes by name) before any work. Folders stay as the user gave
    them (the manifest records them so); the driver hands the workers their absolute form."""
    from data.external import plan

    for name, spec in sweep.externals.items():
        if spec.source == "radiography" and spec.data_dir:
            spec = spec.replace(data_dir=str(Path(spec.data_dir).expanduser().resolve()))
        with usage_errors():
            plan(name, spec, sweep.train.data)


def _check_mlflow(uri: str | None) -> None:
    if uri is None:
        return
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise UsageError(f"--mlflow {uri}: MLflow is not installed; pip install 'fusion-sweep[track]'") from None


# what a run writes at the top of --out; a fresh run removes a previous run's, so none of them is read as its own
# (the explanations pick the Pareto front before the report rewrites pareto.csv)
RUN_OUTPUTS = ("ray", "trials", "explanations", "plots", "trials.csv", "trials.parquet", "predictions.parquet",
               "pareto.csv", "scaling.json", "shift.json", "report.md", "report.html", "manifest.json")


def _prepare_out(out: Path, resume: bool) -> None:
    """A fresh run replaces a previous fusion-sweep results folder; anything else non-empty is refused."""
    if resume or not out.exists():
        return
    ours = any((out / name).exists() for name in ("manifest.json", "ray", "trials", "trials.csv"))
    if not ours and any(out.iterdir()):
        raise UsageError(f"--out {out} exists and is not a fusion-sweep results folder; choose another --out")
    for name in RUN_OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def default_out(args, sweep: SweepConfig) -> Path:
    """runs/<preset> (git-ignored); the committed references under results/ are written only when --out names them."""
    return Path(args.out) if args.out else RUNS_ROOT / (args.preset or sweep.name)


def run(args) -> int:
    from sweep.tune.driver import run_sweep
    from sweep.tune.space import expand

    start = time.time()
    sweep = build_sweep(args)
    trials = expand(sweep)  # validates the space before anything expensive
    sweep = _check_data(sweep)
    _check_mlflow(args.mlflow)
    out = default_out(args, sweep)
    _prepare_out(out, args.resume)
    command = ["fusion-sweep", "run", *sys.argv[2:]] if sys.argv[1:2] == ["run"] else None
    return run_sweep(sweep, trials, out=out, address=args.address, storage=args.storage, resume=args.resume,
                     explain=not args.no_explain, start=start, command=command, mlflow=args.mlflow,
                     mlflow_experiment=args.mlflow_experiment)
