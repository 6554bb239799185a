"""`fusion-sweep run`: a sweep of fusion models with Ray Tune, then tables, plots, the scaling report and explanations."""
from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

from data.spec import ExternalSpec
from sweep import UsageError
from sweep.commands import train as train_command
from sweep.commands.common import (RUNS_ROOT, Shorthand, add_init_argument, add_set_argument, add_shorthands,
                                   build_config, by_field, check_data, under, usage_errors)
from sweep.configs.io import from_dict
from sweep.configs.presets import PRESETS, get_preset
from sweep.configs.schema import SweepConfig
from sweep.configs.star import QUICK_AROUND, default_reference, parse_label, star_space
from sweep.runtime import git_state

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
    parser.add_argument("--around", nargs="?", const="", default=None, metavar="LABEL",
                        help="train a star design instead of the grid: the configuration LABEL (as the report prints "
                        "it, e.g. cnn:block3_drop+rn:conv3_block4_2_relu/b64/h2048) and its one-factor neighbours "
                        "(each parent's cut one and two steps shallower and deeper, the branch width halved and "
                        "doubled), >= 3 seeds each; without LABEL the seed's fusion (quick: "
                        f"{QUICK_AROUND}); `fusion-sweep analyze --effects` reads it")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted sweep in --out "
                        "(finished trials are not re-run)")
    for title, flags in (("data (override the preset)", DATA_FLAGS), ("training (override the preset)", TRAINING_FLAGS),
                         ("search space (override the preset; comma-separated, 'none' drops a branch)", SPACE_FLAGS),
                         ("Ray Tune", TUNE_FLAGS)):
        add_shorthands(parser.add_argument_group(title), flags, SweepConfig(), show_defaults=False)
    add_init_argument(parser, "train.init")
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
    from sweep.init_sources import parse_init

    base = manifest_sweep(args.from_manifest) if args.from_manifest else get_preset(args.preset or "quick")
    sweep = build_config(base, args, RUN_FLAGS, special={"backbones": backbone_space})
    sweep = sweep.replace(train=sweep.train.replace(init=parse_init(getattr(args, "init", []) or [], sweep.train.init)))
    return with_around(with_externals(sweep, args.external), args)


def with_around(sweep: SweepConfig, args) -> SweepConfig:
    """With --around (or `around` set by --set or a manifest): the sweep as a star design, its space holding the
    cut lists the star steps along (a preset's grid gives way to the canonical lists unless cuts were given on the
    command line or the space comes from a manifest). The label is checked here, before any work."""
    if getattr(args, "around", None) is not None:
        sweep = sweep.replace(around=args.around or default_reference(args.preset or sweep.name))
    if sweep.around is None:
        return sweep
    reference = parse_label(sweep.around)
    given = (getattr(args, "cnn_cuts", None) is not None or getattr(args, "resnet_cuts", None) is not None
             or any(s.startswith(("space.cnn_cuts", "space.resnet_cuts")) for s in getattr(args, "set", []) or [])
             or bool(getattr(args, "from_manifest", None)))
    return sweep.replace(space=star_space(sweep.space, reference, given_cuts=given))


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
    spec = sweep.train.data
    if spec.source == "radiography" and not spec.data_dir:
        raise UsageError(f"preset {sweep.name!r} reads radiography images: give --data-dir (the dataset folder)")
    check_data(spec)
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


def _check_mlflow(uri: str | None, experiment: str | None) -> None:
    """MLflow records after the sweep: a URI it cannot use fails now, not after the training it would waste."""
    if uri is None:
        if experiment is not None:
            raise UsageError(f"--mlflow-experiment {experiment}: give --mlflow URI too (where to record)")
        return
    from sweep.tune.mlflow_log import check_tracking_uri

    if importlib.util.find_spec("mlflow") is None:
        raise UsageError(f"--mlflow {uri}: MLflow is not installed; pip install 'fusion-sweep[track]'")
    with usage_errors():
        check_tracking_uri(uri)


def _check_address(address: str | None) -> None:
    """--address as Ray reads it: auto, ray://HOST:PORT or HOST:PORT (a typo would fail only after data work)."""
    if address is None or address == "auto":
        return
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not host or not port.isdigit():
        raise UsageError(f"--address {address}: expected auto, ray://HOST:PORT or HOST:PORT")


# what a run writes at the top of --out; a fresh run removes a previous run's, so none of them is read as its own
# (the explanations pick the Pareto front before the report rewrites pareto.csv)
RUN_OUTPUTS = ("ray", "trials", "explanations", "plots", "trials.csv", "trials.parquet", "predictions.parquet",
               "pareto.csv", "scaling.json", "shift.json", "effects.json", "report.md", "report.html", "manifest.json")


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


def _say_star(sweep: SweepConfig, trials: list[dict]) -> None:
    from sweep.tune.space import star_of

    design = star_of(sweep)
    print(f"star design around {sweep.around}: the reference and {len(design.neighbours)} one-factor neighbours, "
          f"{len(trials)} configurations x {sweep.seeds} seeds", flush=True)
    for why in design.skipped:
        print(f"  skipped: {why}", flush=True)


def run(args) -> int:
    from sweep.engine.checks import check_config
    from sweep.init_sources import check_init
    from sweep.tune.space import expand
    from sweep.tune.storage import check_resumable, check_storage

    start = time.time()
    _check_mlflow(args.mlflow, args.mlflow_experiment)
    _check_address(args.address)
    check_storage(args.storage)
    sweep = build_sweep(args)
    trials = expand(sweep)  # validates the space before anything expensive
    check_config(sweep.train)  # a trial would find the same bad value only after data and Ray had started
    check_init(sweep.train.init, trials)  # the weights files: present, the right hash, layers that fit
    if sweep.around is not None:
        _say_star(sweep, trials)
    out = default_out(args, sweep)
    if args.resume:
        check_resumable(out, args.storage)
    sweep = _check_data(sweep)
    git = git_state(exclude=out)  # before this run removes or writes a file: a clean checkout stays clean
    _prepare_out(out, args.resume)
    from sweep.tune.driver import run_sweep  # Ray loads here, after every check

    command = ["fusion-sweep", "run", *sys.argv[2:]] if sys.argv[1:2] == ["run"] else None
    return run_sweep(sweep, trials, out=out, address=args.address, storage=args.storage, resume=args.resume,
                     explain=not args.no_explain, start=start, command=command, mlflow=args.mlflow,
                     mlflow_experiment=args.mlflow_experiment, git=git)
