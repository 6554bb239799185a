"""Star designs: a reference fusion and its one-factor neighbours, the seed's "a little more or less of either parent".

A configuration label (sweep.configs.naming) parses back into a configuration; each factor has an ordered list of
levels (cuts by depth, widths by size), and the star steps one and two places along each parent's cut list and
halves and doubles the branch width. Everything here is pure Python (no JAX): the sweep builds its trials from it
and the analysis reads the same depth order to count steps.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

from models.graphs import CNN_LAYERS, RESNET50V2_LAYERS
from models.spec import FusionSpec
from sweep import UsageError
from sweep.configs.naming import SEED_FUSION, config_label

FACTORS = ("cnn_cut", "resnet_cut", "branch_width", "head_width")
CUT_FACTORS = {"cnn_cut": ("cnn", CNN_LAYERS), "resnet_cut": ("resnet50v2", RESNET50V2_LAYERS)}
MAX_WIDTH = FusionSpec().branch_width  # the seed's Dense width, the widest a sweep tries
CUT_STEPS = (-2, -1, 1, 2)
WIDTH_STEPS = (-1, 1)  # halved, doubled
MIN_SEEDS = 3
CANONICAL_CUTS = {
    "cnn_cut": tuple(f"block{i}_drop" for i in range(1, 6)),
    "resnet_cut": tuple(name for name in RESNET50V2_LAYERS if re.fullmatch(r"conv\d_block\d+_out", name)),
}
# `--around` without a label: the seed's fusion, except on the quick preset's 32 px CPU budget, where a star around
# a small fusion (both branches, narrow) keeps the whole run within minutes
QUICK_AROUND = "cnn:block2_drop+rn:conv2_block1_out/b16/h2048"
PARENT_WORDS = {"cnn_cut": "CNN", "resnet_cut": "ResNet50V2"}


def depth(factor: str, cut: str | None) -> int:
    """Position of a cut in its backbone's layer order (-1: no branch, shallower than any cut)."""
    return -1 if cut is None else CUT_FACTORS[factor][1].index(cut)


def parse_label(text: str) -> dict[str, Any]:
    """The fusion configuration a label names ('cnn:block3_drop+rn:conv3_block4_2_relu/b64/h2048'); UsageError in
    one line naming what is wrong and the valid choices."""
    match = re.fullmatch(r"(?P<branches>[^/]+)/b(?P<branch>\d+)/h(?P<head>\d+)", text.strip())
    if not match:
        raise UsageError(f"configuration label {text!r} is not CUTS/bWIDTH/hWIDTH, e.g. {config_label(SEED_FUSION)!r} "
                         "or 'cnn:block2_drop/b64/h2048' (one branch)")
    cuts: dict[str, str | None] = {"cnn_cut": None, "resnet_cut": None}
    for part in match["branches"].split("+"):
        prefix, colon, cut = part.partition(":")
        factor = {"cnn": "cnn_cut", "rn": "resnet_cut"}.get(prefix)
        if not colon or factor is None or cuts[factor] is not None:
            raise UsageError(f"configuration label {text!r}: branch {part!r} is not cnn:CUT or rn:CUT (each at most "
                             "once)")
        model, layers = CUT_FACTORS[factor]
        if cut not in layers:
            raise UsageError(f"configuration label {text!r}: unknown {model} cut {cut!r}; valid cuts include "
                             f"{', '.join(CANONICAL_CUTS[factor])} (all: `fusion-sweep layers {model}`)")
        cuts[factor] = cut
    widths = {"branch_width": int(match["branch"]), "head_width": int(match["head"])}
    for name, width in widths.items():
        if width < 1 or width > MAX_WIDTH or width & (width - 1):
            raise UsageError(f"configuration label {text!r}: {name} {width} is not a power of two from 1 to "
                             f"{MAX_WIDTH}")
    return {"model": "fusion", **cuts, **widths}


def default_reference(preset: str | None) -> str:
    """The label `--around` stands for without a value: a small fusion for quick, else the seed's fusion."""
    return QUICK_AROUND if preset == "quick" else config_label(SEED_FUSION)


def cut_list(factor: str, space_cuts, reference_cut: str | None) -> tuple[str, ...]:
    """The levels a star steps along for one parent's cut: the space's own cuts when it declares at least three,
    else the canonical list (CNN block outputs, ResNet50V2 block outputs), with the reference's cut inserted in
    depth order. Empty when the reference has no such branch."""
    if reference_cut is None:
        return ()
    declared = {cut for cut in space_cuts if cut is not None}
    levels = declared if len(declared) >= 3 else set(CANONICAL_CUTS[factor])
    return tuple(sorted(levels | {reference_cut}, key=lambda cut: depth(factor, cut)))


@dataclasses.dataclass(frozen=True)
class Star:
    """A reference, its neighbours (configuration, factor, steps) and the neighbours a list's end cut off."""

    reference: dict[str, Any]
    neighbours: tuple[tuple[dict[str, Any], str, int], ...]
    skipped: tuple[str, ...]

    @property
    def configurations(self) -> list[dict[str, Any]]:
        return [dict(self.reference)] + [dict(config) for config, _, _ in self.neighbours]


def star(reference: dict[str, Any], cnn_cuts=(), resnet_cuts=()) -> Star:
    """The star around `reference`: each parent's cut one and two steps shallower and deeper along its list
    (cut_list of the space's cnn_cuts / resnet_cuts), the branch width halved and doubled."""
    neighbours, skipped = [], []
    for factor, space_cuts in (("cnn_cut", cnn_cuts), ("resnet_cut", resnet_cuts)):
        levels = cut_list(factor, space_cuts, reference[factor])
        if not levels:
            skipped.append(f"the reference has no {PARENT_WORDS[factor]} branch: no {PARENT_WORDS[factor]} cut varied")
            continue
        at = levels.index(reference[factor])
        for step in CUT_STEPS:
            if 0 <= at + step < len(levels):
                neighbours.append((dict(reference, **{factor: levels[at + step]}), factor, step))
            else:
                skipped.append(f"{step_words(factor, step)} than {reference[factor]} (off the end of the "
                               f"{PARENT_WORDS[factor]} cut list)")
    for step in WIDTH_STEPS:
        width = reference["branch_width"] * 2 ** step
        if 1 <= width <= MAX_WIDTH:
            neighbours.append((dict(reference, branch_width=int(width)), "branch_width", step))
        else:
            skipped.append(f"branch width {width:g} (widths run from 1 to {MAX_WIDTH})")
    return Star(dict(reference), tuple(neighbours), tuple(skipped))


def step_words(factor: str, steps: int) -> str:
    """'one CNN block deeper', 'two ResNet50V2 cuts shallower', 'branch width doubled', ..."""
    count = {1: "one", 2: "two", 3: "three"}.get(abs(steps), str(abs(steps)))
    if factor in PARENT_WORDS:
        unit = "block" if factor == "cnn_cut" else "cut"
        return f"{count} {PARENT_WORDS[factor]} {unit}{'s' if abs(steps) > 1 else ''} " \
               f"{'deeper' if steps > 0 else 'shallower'}"
    name = "branch width" if factor == "branch_width" else "head width"
    if abs(steps) == 1:
        return f"{name} {'doubled' if steps > 0 else 'halved'}"
    return f"{name} {count} sizes {'wider' if steps > 0 else 'narrower'}"


def star_space(space, reference: dict[str, Any], *, given_cuts: bool):
    """The SearchSpace a star sweep records: the cut lists it steps along (the preset's grid is replaced by the
    canonical lists unless the user gave cuts), the reference's widths with the branch width halved and doubled,
    no parents and no extra seed fusion."""
    cnn = space.cnn_cuts if given_cuts else CANONICAL_CUTS["cnn_cut"]
    resnet = space.resnet_cuts if given_cuts else CANONICAL_CUTS["resnet_cut"]
    cnn = cut_list("cnn_cut", cnn, reference["cnn_cut"]) or (None,)
    resnet = cut_list("resnet_cut", resnet, reference["resnet_cut"]) or (None,)
    widths = tuple(w for w in (reference["branch_width"] // 2, reference["branch_width"], reference["branch_width"] * 2)
                   if 1 <= w <= MAX_WIDTH)
    return dataclasses.replace(space, cnn_cuts=cnn, resnet_cuts=resnet, branch_widths=widths,
                               head_widths=(reference["head_width"],), include_parents=False,
                               include_seed_fusion=False)
