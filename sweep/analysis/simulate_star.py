"""Simulated star designs with known partial effects, in the realistic world, to prove effects.json is calibrated.

One design: a reference fusion and its ten one-factor neighbours (the star `run --around` trains around the seed's
fusion), 3 seeds each, all scored on one test set of ~170 patients with 1-4 films (sweep.analysis.world). Each
configuration's logit offset is solved so that its population accuracy (new patients, films and seeds) is the
reference's plus its true effect; a non-zero effect also scatters by `scatter_sd` on the logit scale (the truth
is then recomputed, so it stays exact). Seeds shift a trial's logit by N(0, seed_sd); some trials collapse to one
class. The designs go through `effects()` exactly as a results folder does, and the rates say how often the 90%
intervals cover the truth, how often a zero effect is flagged (Holm p < 0.05) and how often a large one is.
"""
from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import time

import numpy as np

from sweep.analysis.simulate import CLASSES, logit_offsets, mean_sigmoid
from sweep.analysis.world import clustered_correctness, draw_patients
from sweep.configs.naming import SEED_FUSION, config_label
from sweep.configs.star import star

EFFECT_MENU = (-12.0, -8.0, -4.0, -2.0, 2.0, 4.0, 8.0, 12.0)  # true non-zero effects, accuracy points
LARGE = 8.0


@dataclasses.dataclass(frozen=True)
class StarWorld:
    """How one simulated star design is made (logit-scale standard deviations; effects in accuracy points)."""

    n_patients: int = 170
    films: tuple[int, int] = (1, 4)
    film_sd: float = 0.5
    patient_sd: float = 0.7
    seeds: int = 3
    seed_sd: float = 0.12
    noisy_seed_factor: float = 1.0   # one neighbour per design gets this many times seed_sd (5: the world)
    scatter_sd: float = 0.13
    # configuration x patient interaction: a configuration suits some patients better than another does, the case
    # in which films of one patient move a paired difference together (0: the effects are the same for everyone)
    interaction_sd: float = 0.0
    reference_accuracy: tuple[float, float] = (0.68, 0.85)
    zero_share: float = 0.4          # share of neighbours whose true effect is exactly zero
    collapsed: tuple[int, int] = (0, 1)


def neighbours_of_seed_fusion() -> list[dict]:
    """The reference (the seed's fusion) and its neighbours, as `run --around` builds them."""
    return star(dict(SEED_FUSION)).configurations


def simulate_star(world: StarWorld, rng: np.random.Generator):
    """(trials, predictions, truth): one design in the results contract; truth maps a neighbour's label to its true
    effect in points (neighbour minus reference, population accuracies)."""
    import pandas as pd

    configs = neighbours_of_seed_fusion()
    total_sd = float(np.sqrt(world.film_sd ** 2 + world.patient_sd ** 2 + world.seed_sd ** 2
                             + world.interaction_sd ** 2))
    base = rng.uniform(*world.reference_accuracy)
    wanted = np.array([0.0] + [0.0 if rng.random() < world.zero_share else rng.choice(EFFECT_MENU)
                               for _ in configs[1:]])
    offsets = logit_offsets(np.clip(base + wanted / 100, 0.02, 0.98), total_sd)
    offsets = offsets + np.where(wanted != 0, rng.normal(0, world.scatter_sd, len(wanted)), 0.0)
    population = mean_sigmoid(offsets, total_sd)
    truth = {config_label(c): 100 * float(population[k] - population[0]) for k, c in enumerate(configs) if k}
    noisy = int(rng.integers(1, len(configs)))
    seed_sd = np.where(np.arange(len(configs)) == noisy, world.seed_sd * world.noisy_seed_factor, world.seed_sd)
    logits = np.repeat(offsets, world.seeds) + rng.normal(0, 1, len(configs) * world.seeds) * np.repeat(seed_sd,
                                                                                                     world.seeds)
    codes = draw_patients(rng, world.n_patients, world.films)
    interaction = rng.normal(0, world.interaction_sd, (len(configs), world.n_patients))[:, codes]
    logits = logits[:, None] + np.repeat(interaction, world.seeds, axis=0)
    correct = clustered_correctness(rng, logits, codes, film_sd=world.film_sd, patient_sd=world.patient_sd)
    patient_class = rng.random(world.n_patients) < 0.5
    labels = np.where(patient_class[codes], CLASSES[0], CLASSES[1])
    other = np.where(labels == CLASSES[0], CLASSES[1], CLASSES[0])
    preds = np.where(correct.astype(bool), labels, other)
    n_collapsed = int(rng.integers(world.collapsed[0], world.collapsed[1] + 1))
    for t in rng.choice(len(preds), size=n_collapsed, replace=False):
        preds[t] = np.where(rng.random(len(codes)) < 0.995, CLASSES[0], preds[t])
    trials = []
    for t in range(len(preds)):
        c, s = divmod(t, world.seeds)
        trials.append({"trial_id": f"star{c:02d}-s{s}", "status": "TERMINATED", "train_status": "completed",
                       **configs[c], "seed": s, "image_size": 64, "params": 1000 + c, "test_n": len(codes),
                       "test_accuracy": float(np.mean(preds[t] == labels))})
    trials = pd.DataFrame(trials)
    trials.attrs["noisy_config"] = config_label(configs[noisy])  # the neighbour whose seeds vary noisy_seed_factor x
    image_ids = np.array([f"sim/{i:04d}.png" for i in range(len(codes))])
    n = len(codes)
    predictions = pd.DataFrame({"trial_id": np.repeat(trials["trial_id"].to_numpy(), n), "split": "test",
                                "image_id": np.tile(image_ids, len(preds)), "label": np.tile(labels, len(preds)),
                                "pred": preds.ravel(),
                                "patient_id": np.tile(np.array([f"p{c:03d}" for c in codes]), len(preds))})
    return trials, predictions, truth


def calibration(world: StarWorld, designs: int, *, seed: int = 0, n_boot: int = 1000,
                patients: bool = True) -> dict:
    """Run `designs` simulated star designs through effects(): coverage of the 90% intervals, share of zero
    effects flagged (Holm p < 0.05), share of effects of at least LARGE points flagged, median width (points).
    patients=False drops patient_id (each film its own patient: the naive analysis, for comparison)."""
    from sweep.analysis.effects import effects

    rng = np.random.default_rng(seed)
    covered, zero_flags, large_flags, widths, noisy_covered = [], [], [], [], []
    for i in range(designs):
        trials, predictions, truth = simulate_star(world, rng)
        if not patients:
            predictions = predictions.drop(columns="patient_id")
        result = effects(trials, predictions, reference=config_label(SEED_FUSION), seed=seed * 100_003 + i,
                         n_boot=n_boot)
        for row in result["effects"]:
            true = truth[row["config"]]
            covered.append(row["lo"] <= true <= row["hi"])
            if row["config"] == trials.attrs["noisy_config"]:
                noisy_covered.append(covered[-1])
            widths.append(row["hi"] - row["lo"])
            flagged = row["p_holm"] < 0.05
            if true == 0:
                zero_flags.append(flagged)
            elif abs(true) >= LARGE:
                large_flags.append(flagged and np.sign(row["delta"]) == np.sign(true))
    return {"designs": designs, "effects": len(covered), "coverage": float(np.mean(covered)),
            "zero_flagged": float(np.mean(zero_flags)), "n_zero": len(zero_flags),
            "large_flagged": float(np.mean(large_flags)), "n_large": len(large_flags),
            "median_width": float(np.median(widths)), "noisy_config_coverage": float(np.mean(noisy_covered))}


def main(argv: list[str] | None = None) -> int:
    """python -m sweep.analysis.simulate_star [--designs N] [--world JSON] [--no-patients]: calibration rates."""
    import argparse
    import os

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--designs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--world", default="{}", help='StarWorld fields as JSON, e.g. \'{"noisy_seed_factor": 5}\'')
    parser.add_argument("--no-patients", action="store_true", help="analyse films as if each were its own patient")
    args = parser.parse_args(argv)
    start = time.time()
    rates = calibration(StarWorld(**json.loads(args.world)), args.designs, seed=args.seed,
                        patients=not args.no_patients)
    rates["seconds"] = round(time.time() - start)
    print(json.dumps(rates))
    command = "python -m sweep.analysis.simulate_star " + shlex.join(argv if argv is not None else sys.argv[1:])
    print(f"| {args.world} | {'films' if args.no_patients else 'patients'} | {rates['coverage']:.1%} "
          f"| {rates['zero_flagged']:.1%} ({rates['n_zero']}) | {rates['large_flagged']:.1%} ({rates['n_large']}) "
          f"| {rates['median_width']:.1f} | {args.designs} |\n\n`{command}` (load average at the end: "
          + " ".join(f"{x:.1f}" for x in os.getloadavg()) + ")")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
