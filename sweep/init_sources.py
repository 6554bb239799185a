"""`--init BACKBONE=SOURCE`: the starting weights of each backbone, checked before any work, and how a run records them.

A source is `scratch`, a published name (`imagenet`, from $FUSION_SWEEP_CACHE/weights, which `fusion-sweep weights`
fills) or a Keras file. Records: trials.csv's `init_<BACKBONE>` (scratch, imagenet, or the first 12 hex digits of the
file's sha256) and manifest.json's `init` (each source's path and full sha256, and the input scaling each backbone
got).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping

from models.pretrained import (BACKBONES, SCRATCH, check_file, expected_scaling, layers_up_to, source_kind,
                               source_path)
from models.weights_store import file_digests
from sweep import UsageError

SEED_PARTS = ("cnn", "resnet50v2")


def weights_cache_dir() -> Path:
    """$FUSION_SWEEP_CACHE/weights (or the default cache's)."""
    from data.builder import user_cache_dir

    return user_cache_dir() / "weights"


def parse_init(items: list[str], current: Mapping[str, str]) -> dict[str, str]:
    """`current` with each `--init BACKBONE=SOURCE` applied (later ones win); UsageError on a bad item."""
    init = dict(current)
    for item in items:
        backbone, eq, source = item.partition("=")
        backbone, source = backbone.strip(), source.strip()
        if not eq or not source:
            raise UsageError(f"--init expects BACKBONE=SOURCE (e.g. resnet50v2=imagenet), got {item!r}")
        if backbone not in BACKBONES:
            raise UsageError(f"--init {item}: unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
        init[backbone] = source
    return init


@dataclasses.dataclass(frozen=True)
class Source:
    """One backbone's starting weights as resolved on this machine."""

    backbone: str
    source: str  # as the user gave it
    path: str | None  # the file, absolute (None: scratch)
    sha256: str | None

    @property
    def label(self) -> str:
        """trials.csv's init_<backbone>: scratch, a published name, or the file's sha256 prefix."""
        kind = source_kind(self.backbone, self.source)
        return self.source if kind in ("scratch", "published") else self.sha256[:12]


def parts_in_play(init: Mapping[str, str], backbones: tuple[str, ...] = SEED_PARTS) -> tuple[str, ...]:
    """The backbones a sweep records starting weights for: those it fuses (and trains as parents) and those `init`
    names, in BACKBONES order (the seed's sweep: cnn, resnet50v2)."""
    wanted = {*backbones, *init}
    return tuple(name for name in BACKBONES if name in wanted)


def resolve_init(init: Mapping[str, str], *, check: bool = True, cuts: Mapping[str, str | None] | None = None,
                 parts: tuple[str, ...] = BACKBONES) -> dict[str, Source]:
    """The Source of each backbone of `parts` (scratch where `init` names none). check: each file's layers are
    compared with the backbone's up to `cuts[backbone]` (the deepest cut used; absent or None: the whole
    backbone): UsageError, one line naming the file or the first layer that does not fit."""
    sources = {}
    cuts = cuts or {}
    for backbone in parts_in_play(init, parts):
        source = init.get(backbone, SCRATCH)
        try:
            path = source_path(backbone, source, weights_cache_dir())
            if path is not None and check:
                check_file(backbone, path, needed=layers_up_to(backbone, cuts.get(backbone)))
        except ValueError as err:
            raise UsageError(f"--init {backbone}={source}: {err}") from None
        digest = file_digests(path)["sha256"] if path is not None else None
        sources[backbone] = Source(backbone, source, str(path.resolve()) if path is not None else None, digest)
    return sources


def check_init(init: Mapping[str, str], models: list[Mapping] | None = None) -> None:
    """UsageError before any work when a backbone or source in `init` cannot be used by `models` (dicts with model,
    cnn_cut, resnet_cut and, for another pair than the seed's, backbone_a, backbone_b: a sweep's trials; None:
    whole backbones)."""
    unknown = [name for name in init if name not in BACKBONES]
    if unknown:
        raise UsageError(f"init names unknown backbone(s) {unknown}; choose from {', '.join(BACKBONES)}")
    resolve_init(init, cuts=None if models is None else deepest_cuts(models), parts=tuple(init))


def deepest_cuts(models: list[Mapping]) -> dict[str, str | None]:
    """Backbone -> the deepest cut any of `models` uses (None: one uses the whole backbone, a parent)."""
    deepest: dict[str, str | None] = {}
    for model in models:
        for backbone, cut in branches_of(model):
            if backbone in deepest and deepest[backbone] is None:
                continue
            if cut is None or backbone not in deepest or \
                    len(layers_up_to(backbone, cut)) > len(layers_up_to(backbone, deepest[backbone])):
                deepest[backbone] = cut
    return deepest


def branch_scaling(init: Mapping[str, str], normalization: str) -> dict[str, str]:
    """Backbone -> the scaling the model applies to its [0, 1] input: with normalization `auto` what each source's
    weights expect; with a global value (applied before the model) none ("unit") in the model."""
    if normalization != "auto":
        return {backbone: "unit" for backbone in BACKBONES}
    # one rule for every backbone: from scratch [0, 1]; from a file or imagenet what its preprocess_input makes
    return {backbone: expected_scaling(backbone, init.get(backbone, SCRATCH)) for backbone in BACKBONES}


def published_backbones(init: Mapping[str, str]) -> tuple[str, ...]:
    """The backbones `init` starts from a published file (imagenet): built as keras.applications builds them then."""
    return tuple(name for name, source in init.items()
                 if name in BACKBONES and source_kind(name, source) == "published")


def worker_init(init: Mapping[str, str]) -> dict[str, str]:
    """`init` as workers see it: file paths absolute (any working directory); published names stay names."""
    out = {}
    for backbone, source in init.items():
        kind = source_kind(backbone, source) if backbone in BACKBONES else "scratch"
        out[backbone] = str(Path(source).expanduser().resolve()) if kind == "file" else source
    return out


def init_labels(init: Mapping[str, str], parts: tuple[str, ...] = BACKBONES) -> dict[str, str]:
    """{'init_<backbone>': label} for each backbone of `parts` and of `init` (files hashed here)."""
    return {f"init_{name}": source.label for name, source in resolve_init(init, check=False, parts=parts).items()}


def init_record(init: Mapping[str, str], normalization: str, parts: tuple[str, ...] = SEED_PARTS) -> dict[str, dict]:
    """manifest.json's `init`: per backbone in play (parts_in_play) its source, file path, full sha256 and the input
    scaling it got."""
    scaling = branch_scaling(init, normalization)
    return {name: {"source": s.source, "label": s.label, "path": s.path, "sha256": s.sha256,
                   "input_scaling": normalization if normalization != "auto" else scaling[name]}
            for name, s in resolve_init(init, check=False, parts=parts).items()}


def _present(value) -> bool:
    return isinstance(value, str) and value not in ("none", "nan", "")


def branches_of(row: Mapping) -> list[tuple[str, str | None]]:
    """(backbone, cut) of each backbone a trials.csv row's model (or a trial's config) holds; cut None: whole."""
    if row.get("model") != "fusion":
        return [(row.get("model"), None)] if row.get("model") in BACKBONES else []
    names = [row.get(f"backbone_{slot}") for slot in ("a", "b")]
    names = names if all(_present(n) for n in names) else list(SEED_PARTS)  # the seed's pair (NaN when read back)
    return [(name, str(cut)) for name, cut in zip(names, (row.get("cnn_cut"), row.get("resnet_cut"))) if _present(cut)]


def parts_of(row: Mapping) -> tuple[str, ...]:
    """The backbones a trials.csv row's model holds."""
    return tuple(dict.fromkeys(name for name, _ in branches_of(row)))


def row_init_columns(row: Mapping, labels: Mapping[str, str]) -> dict[str, str | None]:
    """The row's init_<backbone> columns: the label for backbones its model holds, empty for the others."""
    parts = parts_of(row)
    return {column: (label if column[len("init_"):] in parts else None) for column, label in labels.items()}
