"""Expand a SweepConfig's search space into Ray trials (one configuration x its seeds each), validated before Ray starts."""
from __future__ import annotations

import itertools
import random
from typing import Any

from models.backbones import BACKBONES, graph_of
from models.spec import SEED_BACKBONES, FusionSpec
from sweep import UsageError
from sweep.configs.naming import SEED_FUSION, pair_columns
from sweep.configs.schema import SearchSpace, SweepConfig, TrainConfig
from sweep.configs.star import MIN_SEEDS, Star, parse_label, star

MAX_WIDTH = FusionSpec().branch_width  # the seed's Dense width: the widest a sweep tries
SCHEDULERS = ("fifo", "asha", "hyperband")
SEED_MODE_CHOICES = ("auto", "vmap", "sequential")  # how a trial trains its seeds (sweep.engine.seeds)


def _check_cuts(field: str, cuts: tuple, valid: tuple[str, ...], model: str) -> None:
    if not cuts:
        raise UsageError(f"search space field {field} is empty; give at least one {model} cut "
                         f"(e.g. {valid[len(valid) // 2]!r}), or None to drop that branch")
    for cut in cuts:
        if cut is not None and cut not in valid:
            near = [name for name in valid if str(cut).split("_")[0] in name][:8] or list(valid[:8])
            raise UsageError(f"unknown {model} cut {cut!r} in {field}; valid cuts include {near} "
                             f"(all: `fusion-sweep layers {model}`)")


def _check_widths(field: str, widths: tuple) -> None:
    if not widths:
        raise UsageError(f"search space field {field} is empty; give at least one width, e.g. (256, 2048)")
    for width in widths:
        if not isinstance(width, int) or width < 1 or width > MAX_WIDTH or width & (width - 1):
            raise UsageError(f"{field} contains {width!r}; widths are powers of two from 1 to {MAX_WIDTH}")


def _layer_names(backbone: str) -> tuple[str, ...]:
    return tuple(layer.name for layer in graph_of(backbone))


def validate_space(space: SearchSpace) -> None:
    """Raise ValueError naming the bad field and the valid choices. Cheap: no JAX, no Ray."""
    valid = ("cnn", *BACKBONES)
    backbones = tuple(space.backbones)
    if len(backbones) != 2 or any(name not in valid for name in backbones):
        raise UsageError(f"backbones must be two of {', '.join(valid)}; got {','.join(map(str, backbones))!r}")
    _check_cuts("cnn_cuts", tuple(space.cnn_cuts), _layer_names(backbones[0]), backbones[0])
    _check_cuts("resnet_cuts", tuple(space.resnet_cuts), _layer_names(backbones[1]), backbones[1])
    _check_widths("branch_widths", tuple(space.branch_widths))
    _check_widths("head_widths", tuple(space.head_widths))
    if all(c is None for c in space.cnn_cuts) and all(c is None for c in space.resnet_cuts):
        raise UsageError("search space has no branch at all: cnn_cuts and resnet_cuts are both only None")
    if space.merge not in ("branches", "concat"):
        raise UsageError(f"merge must be branches or concat, got {space.merge!r}")
    if space.merge == "concat" and None in (*space.cnn_cuts, *space.resnet_cuts):
        raise UsageError("merge concat joins both backbones: cnn_cuts and resnet_cuts may not hold none")


def validate_sweep(sweep: SweepConfig) -> None:
    """Check the whole sweep config (space, seeds, search, resources) before anything expensive starts."""
    validate_space(sweep.space)
    if sweep.seeds < 1:
        raise UsageError(f"seeds must be >= 1, got {sweep.seeds}")
    if sweep.parent_seeds is not None and not 1 <= sweep.parent_seeds <= sweep.seeds:
        raise UsageError(f"parent_seeds must be between 1 and seeds ({sweep.seeds}) or unset, got {sweep.parent_seeds}")
    if sweep.seed_mode not in SEED_MODE_CHOICES:
        raise UsageError(f"seed_mode must be one of {', '.join(SEED_MODE_CHOICES)}, got {sweep.seed_mode!r}")
    if sweep.search not in ("grid", "random"):
        raise UsageError(f"search must be 'grid' or 'random', got {sweep.search!r}")
    if sweep.search == "random" and sweep.num_samples < 1:
        raise UsageError(f"num_samples must be >= 1 for random search, got {sweep.num_samples}")
    if sweep.scheduler not in SCHEDULERS:
        raise UsageError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {sweep.scheduler!r}")
    if sweep.checkpoint_every < 1:
        raise UsageError(f"checkpoint_every must be >= 1 (epochs between checkpoints), got {sweep.checkpoint_every}")
    if sweep.max_failures < 0:
        raise UsageError(f"max_failures must be >= 0, got {sweep.max_failures}")
    if sweep.cpus_per_trial <= 0:
        raise UsageError(f"cpus_per_trial must be > 0, got {sweep.cpus_per_trial}")
    if sweep.gpus_per_trial < 0:
        raise UsageError(f"gpus_per_trial must be >= 0, got {sweep.gpus_per_trial}")
    if sweep.max_concurrent is not None and sweep.max_concurrent < 1:
        raise UsageError(f"max_concurrent must be >= 1 or unset, got {sweep.max_concurrent}")
    # the explanations run after every trial: a value they refuse would fail only then
    if sweep.explain_images < 0:
        raise UsageError(f"explain_images must be >= 0 (0: no explanations), got {sweep.explain_images}")
    if sweep.explain_images and sweep.explain_max_evals < 3:
        raise UsageError(f"explain_max_evals must be >= 3, got {sweep.explain_max_evals}")
    if sweep.around is not None:
        if sweep.space.merge == "concat":
            raise UsageError("--around steps the seed's branch fusions; a concat sweep (merge concat) lists its cuts "
                             "with --cuts-a / --cuts-b instead")
        parse_label(sweep.around)
        if sweep.seeds < MIN_SEEDS:
            raise UsageError(f"a star design (--around) needs at least {MIN_SEEDS} seeds per configuration to "
                             f"estimate effects, got seeds={sweep.seeds}")


def fusion_configs(space: SearchSpace) -> list[dict[str, Any]]:
    """Every fusion configuration of the grid (branches that are both None are skipped)."""
    configs = []
    pair = tuple(space.backbones)
    for cnn_cut, resnet_cut, branch, head in itertools.product(
            space.cnn_cuts, space.resnet_cuts, space.branch_widths, space.head_widths):
        if cnn_cut is None and resnet_cut is None:
            continue
        config = {"model": "fusion", "cnn_cut": cnn_cut, "resnet_cut": resnet_cut,
                  "branch_width": int(branch), "head_width": int(head)}
        if space.merge == "concat":
            config["merge"] = "concat"
        configs.append(config if pair == SEED_BACKBONES else {**config, **pair_columns(*pair, config)})
    return configs


def parent_configs(space: SearchSpace | None = None) -> list[dict[str, Any]]:
    """The two parents as reference points: each backbone alone (the CNN and ResNet50V2 for the seed's pair),
    with the seed's heads; the same backbone twice is one parent."""
    backbones = tuple(dict.fromkeys(space.backbones if space is not None else SEED_BACKBONES))
    return [{"model": model, "cnn_cut": None, "resnet_cut": None, "branch_width": None,
             "head_width": FusionSpec().head_width} for model in backbones]


def _cost_rank(config: dict[str, Any]) -> tuple:
    """Sort key putting the costliest configurations first (deeper second branch, then deeper first branch, then
    wider): with trials in parallel, the short ones fill the gaps at the end instead of one long trial running alone."""
    a, b = config.get("backbone_a", SEED_BACKBONES[0]), config.get("backbone_b", SEED_BACKBONES[1])
    resnet = _layer_names(b).index(config["resnet_cut"]) + 1 if config["resnet_cut"] is not None else 0
    cnn = _layer_names(a).index(config["cnn_cut"]) + 1 if config["cnn_cut"] is not None else 0
    return (-resnet, -cnn, -int(config["branch_width"]), -int(config["head_width"]))


def configurations(sweep: SweepConfig) -> list[dict[str, Any]]:
    """The configurations (without seeds) a sweep trains: the grid, or a seeded random subset of it,
    always with the seed's own fusion and, if asked, both parents; with `around`, the star around that label."""
    if sweep.around is not None:
        return sorted(star_of(sweep).configurations, key=_cost_rank)
    grid = fusion_configs(sweep.space)
    if sweep.search == "random" and sweep.num_samples < len(grid):
        grid = random.Random(0).sample(grid, sweep.num_samples)
    seed_pair = tuple(sweep.space.backbones) == SEED_BACKBONES
    if sweep.space.include_seed_fusion and seed_pair and SEED_FUSION not in grid:
        grid.append(dict(SEED_FUSION))
    grid.sort(key=_cost_rank)
    if sweep.space.include_parents:  # the ResNet50V2 parent first: the costliest trial of a CPU sweep
        grid = sorted(parent_configs(sweep.space), key=lambda c: c["model"] != "resnet50v2") + grid
    return grid


def star_of(sweep: SweepConfig) -> Star:
    """The star design of a sweep with `around` set, stepping along its space's cut lists."""
    return star(parse_label(sweep.around), sweep.space.cnn_cuts, sweep.space.resnet_cuts)


def expand(sweep: SweepConfig) -> list[dict[str, Any]]:
    """Validate, then list the Ray trials: one per configuration, with its seeds (train seed + 0..K-1; the parents
    get `parent_seeds` of them when set). Each seed becomes its own trials.csv row."""
    validate_sweep(sweep)
    base_seed = sweep.train.seed
    trials = []
    for config in configurations(sweep):
        count = sweep.seeds if config["model"] == "fusion" or sweep.parent_seeds is None else sweep.parent_seeds
        trials.append(dict(config, seeds=[base_seed + k for k in range(count)]))
    return trials


def row_count(trials: list[dict[str, Any]]) -> int:
    """trials.csv rows the Ray trials make: one per (configuration, seed)."""
    return sum(len(trial["seeds"]) for trial in trials)


def train_config_for(trial: dict[str, Any], base: TrainConfig) -> TrainConfig:
    """The TrainConfig of one trial: the sweep's base recipe with this trial's model, cuts and widths, and its
    `seed` (a row) or the first of its `seeds` (a Ray trial; train_seeds sets each seed)."""
    seed = trial["seed"] if "seed" in trial else trial["seeds"][0]
    changes: dict[str, Any] = {"model": trial["model"], "seed": int(seed)}
    if trial["model"] == "fusion":
        changes["fusion"] = base.fusion.replace(cnn_cut=trial["cnn_cut"], resnet_cut=trial["resnet_cut"],
                                                branch_width=int(trial["branch_width"]),
                                                head_width=int(trial["head_width"]))
        if "backbone_a" in trial:  # another pair than the seed's: linear branches (FusionSpec.of)
            changes["fusion"] = changes["fusion"].replace(
                backbone_a=trial["backbone_a"], backbone_b=trial["backbone_b"], cnn_branch_activation="linear",
                resnet_branch_activation="linear")
        if trial.get("merge") == "concat":
            changes["fusion"] = changes["fusion"].replace(merge="concat")
    return base.replace(**changes)
