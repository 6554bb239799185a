"""Simulated sweeps from a known truth, written in the results contract, to prove the analysis is calibrated.

A truth is a population accuracy curve A(N) over new test images and new training seeds. One simulated
sweep has configurations at sizes spread like real sweeps (the seed's fusion among them), several seeds
each, and one shared set of test images: trial (c, s) gets image i right with probability
sigmoid(g_c + config_c + seed_cs + difficulty_i), where the logit offset g_c is solved so that the average
over difficulty, seed and configuration effects is exactly A(N_c). Some trials collapse to one class.
"""
from __future__ import annotations

import dataclasses
import itertools
import shlex
import sys
from pathlib import Path

import numpy as np

SEED_FUSION_PARAMS = 10_437_570   # the seed's fusion at 256 px (see models/spec.py and DESIGN.md)
SIZE_RANGE = (1e5, 1e8)
WORLD_SPAN = (1e6, 1e8)   # two decades of size, the seed's fusion near the middle
KINDS = ("constant", "linear", "log_linear", "power_law", "knee")
CLASSES = ("COVID", "Normal")
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(80)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


@dataclasses.dataclass(frozen=True)
class Truth:
    """Population accuracy against size N (fractions).

    constant: `low` everywhere. linear: `low` at span[0] to `high` at span[1], linear in N.
    log_linear: the same ends, linear in ln N. power_law (saturating, error = floor + a*N^-b):
    accuracy = high - (high - low) * (N / span[0])^-exponent. knee: a logistic step in ln N from `low` to
    `high`, centred at the span's geometric middle, `width` (ln units) its scale: none of the fitted forms.
    """

    kind: str
    low: float = 0.80
    high: float = 0.80
    exponent: float = 0.5
    span: tuple[float, float] = SIZE_RANGE
    width: float = 0.5

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown truth kind {self.kind!r}; choose from {', '.join(KINDS)}")

    def accuracy(self, size) -> np.ndarray:
        n = np.asarray(size, float)
        lo, hi = self.span
        if self.kind == "constant":
            return np.full_like(n, self.low)
        if self.kind == "linear":
            return self.low + (self.high - self.low) * (n - lo) / (hi - lo)
        if self.kind == "log_linear":
            return self.low + (self.high - self.low) * np.log(n / lo) / np.log(hi / lo)
        if self.kind == "knee":
            middle = (np.log(lo) + np.log(hi)) / 2
            return self.low + (self.high - self.low) / (1 + np.exp(-(np.log(n) - middle) / self.width))
        return self.high - (self.high - self.low) * np.power(n / lo, -self.exponent)

    def per_halving(self, at: float) -> float:
        """The true population change when size halves: accuracy at at/2 minus accuracy at at, in points."""
        return float(100 * (self.accuracy(at / 2) - self.accuracy(at)))

    @property
    def verdict(self) -> str:
        """The verdict that names this truth's class (any nonlinear truth is 'nonlinear')."""
        return {"constant": "no_relation", "linear": "linear"}.get(self.kind, "nonlinear")


@dataclasses.dataclass(frozen=True)
class Design:
    """How one simulated sweep is made: sizes, replicates, and the noise sources on the logit scale."""

    n_configs: int = 10
    seeds: int = 3
    n_images: int = 300
    image_sd: float = 1.5        # test-image difficulty, shared by every trial
    seed_sd: float = 0.25        # one training seed's effect on a trial
    config_sd: float = 0.0       # a configuration's deviation from the smooth curve
    collapsed: tuple[int, int] = (1, 2)   # min and max number of collapsed trials per sweep
    prevalence: float = 0.4      # share of the first class among the test images


def mean_sigmoid(offset, sd: float) -> np.ndarray:
    """E[sigmoid(offset + sd * Z)] for a standard normal Z (Gauss-Hermite quadrature)."""
    offset = np.asarray(offset, float)[..., None]
    return np.sum(_WEIGHTS / (1 + np.exp(-(offset + sd * _NODES))), axis=-1)


def logit_offsets(accuracy, sd: float) -> np.ndarray:
    """The offsets g with E[sigmoid(g + sd * Z)] = accuracy (vectorised bisection)."""
    lo = np.full(np.shape(accuracy), -30.0)
    hi = np.full(np.shape(accuracy), 30.0)
    for _ in range(60):
        mid = (lo + hi) / 2
        below = mean_sigmoid(mid, sd) < accuracy
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return (lo + hi) / 2


def config_sizes(n_configs: int, rng: np.random.Generator) -> np.ndarray:
    """The seed's fusion plus n_configs - 1 sizes, one drawn log-uniformly in each stratum of SIZE_RANGE."""
    edges = np.linspace(*np.log(SIZE_RANGE), n_configs)
    others = np.exp(rng.uniform(edges[:-1], edges[1:]))
    return np.sort(np.append(others.round(), SEED_FUSION_PARAMS))


def config_keys(n_configs: int, sizes: np.ndarray) -> list[dict]:
    """Distinct configuration columns; the row at SEED_FUSION_PARAMS is the seed's fusion."""
    grid = itertools.product(("block1_drop", "block2_drop", "block3_drop", "block4_drop"),
                             ("conv2_block3_out", "conv3_block2_out", "conv4_block1_out"), (16, 64, 256, 1024))
    keys = []
    for size, (cnn, resnet, width) in zip(sizes, grid):
        if size == SEED_FUSION_PARAMS:
            cnn, resnet, width = "block3_drop", "conv3_block4_2_relu", 2048
        keys.append({"model": "fusion", "cnn_cut": cnn, "resnet_cut": resnet, "branch_width": width,
                     "head_width": 2048 if size == SEED_FUSION_PARAMS else 512})
    return keys


def simulate_sweep(truth: Truth, design: Design, rng: np.random.Generator):
    """(trials, predictions) DataFrames of one simulated sweep, in the results contract."""
    import pandas as pd

    sizes = config_sizes(design.n_configs, rng)
    total_sd = float(np.sqrt(design.image_sd ** 2 + design.seed_sd ** 2 + design.config_sd ** 2))
    offsets = logit_offsets(truth.accuracy(sizes), total_sd)
    difficulty = rng.normal(0, design.image_sd, design.n_images)
    labels = np.where(rng.random(design.n_images) < design.prevalence, CLASSES[0], CLASSES[1])
    image_ids = np.array([f"sim/{i:04d}.png" for i in range(design.n_images)])
    n_trials = len(sizes) * design.seeds
    n_collapsed = min(int(rng.integers(design.collapsed[0], design.collapsed[1] + 1)), n_trials)
    collapsed = set(rng.choice(n_trials, size=n_collapsed, replace=False).tolist())
    trials, preds = [], []
    for c, (size, keys) in enumerate(zip(sizes, config_keys(len(sizes), sizes))):
        deviation, size_columns = rng.normal(0, design.config_sd), _size_columns(size, rng)
        for s in range(design.seeds):
            logit = offsets[c] + deviation + rng.normal(0, design.seed_sd) + difficulty
            correct = rng.random(design.n_images) < 1 / (1 + np.exp(-logit))
            pred = np.where(correct, labels, np.where(labels == CLASSES[0], CLASSES[1], CLASSES[0]))
            if c * design.seeds + s in collapsed:
                majority = CLASSES[0] if design.prevalence > 0.5 else CLASSES[1]
                pred = np.where(rng.random(design.n_images) < 0.995, majority, pred)
            preds.append(pred)
            trials.append({"trial_id": f"sim{c:02d}-s{s}", "status": "TERMINATED", "train_status": "completed",
                           **keys, "seed": s, "image_size": 64, **size_columns,
                           "test_n": design.n_images, "test_accuracy": float(np.mean(pred == labels))})
    trials = pd.DataFrame(trials)
    return trials, _prediction_frame(trials["trial_id"].to_numpy(), image_ids, labels, np.stack(preds), rng)


@dataclasses.dataclass(frozen=True)
class World:
    """Sweeps shaped like real ones (issue 22): patients with 1-4 films, configurations off the curve, one unstable
    configuration, 6, 8 or 12 configurations over two decades of size. Effects are logit-scale sds."""

    n_configs: tuple[int, ...] = (6, 8, 12)   # one drawn per sweep
    seeds: int = 3
    n_patients: int = 170
    films: tuple[int, int] = (1, 4)
    film_sd: float = 0.5
    patient_sd: float = 0.7
    seed_sd: float = 0.12
    unstable: float = 5.0                      # one configuration per sweep has seed sd seed_sd * unstable
    config_sd: float = 0.13                    # scatter of configurations around the curve
    span: tuple[float, float] = WORLD_SPAN
    collapsed: tuple[int, int] = (1, 2)


def simulate_world_sweep(truth: Truth, world: World, rng: np.random.Generator, n_configs: int | None = None):
    """(trials, predictions) of one sweep in `world` (predictions with patient_id), in the results contract.

    Sizes: one log-uniform draw per equal stratum of world.span. The logit offset of each size is solved so that
    the mean over patients, films, seeds and configuration scatter is exactly truth.accuracy(size)."""
    import pandas as pd

    from sweep.analysis.world import clustered_correctness, draw_patients

    n_configs = int(n_configs or rng.choice(world.n_configs))
    edges = np.linspace(*np.log(world.span), n_configs + 1)
    sizes = np.sort(np.exp(rng.uniform(edges[:-1], edges[1:])).round())
    seed_sds = np.full(n_configs, world.seed_sd)
    seed_sds[rng.integers(n_configs)] *= world.unstable
    total_sd = float(np.sqrt(world.film_sd ** 2 + world.patient_sd ** 2 + world.seed_sd ** 2 + world.config_sd ** 2))
    offsets = logit_offsets(truth.accuracy(sizes), total_sd)
    config_logit = offsets + rng.normal(0, world.config_sd, n_configs)
    trial_logits = (config_logit[:, None] + rng.normal(0, 1, (n_configs, world.seeds)) * seed_sds[:, None]).ravel()
    codes = draw_patients(rng, world.n_patients, world.films)
    correct = clustered_correctness(rng, trial_logits, codes, film_sd=world.film_sd, patient_sd=world.patient_sd)
    patient_class = rng.permutation(np.arange(world.n_patients) % 2)   # classes balanced by patient
    labels = np.array(CLASSES)[patient_class[codes]]
    other = np.array(CLASSES)[1 - patient_class[codes]]
    preds = np.where(correct.astype(bool), labels, other)
    n_trials = preds.shape[0]
    n_collapsed = min(int(rng.integers(world.collapsed[0], world.collapsed[1] + 1)), n_trials)
    for t in rng.choice(n_trials, size=n_collapsed, replace=False):
        preds[t] = np.where(rng.random(codes.size) < 0.995, CLASSES[int(rng.integers(2))], preds[t])
    film = np.arange(codes.size) - np.searchsorted(codes, codes)   # index of each film within its patient
    image_ids = np.array([f"sim/p{p:03d}-{k}.png" for p, k in zip(codes, film)])
    trials = []
    for c, (size, keys) in enumerate(zip(sizes, config_keys(n_configs, sizes))):
        size_columns = _size_columns(size, rng)
        for s in range(world.seeds):
            t = c * world.seeds + s
            trials.append({"trial_id": f"sim{c:02d}-s{s}", "status": "TERMINATED", "train_status": "completed",
                           **keys, "seed": s, "image_size": 64, **size_columns, "test_n": int(codes.size),
                           "test_accuracy": float(np.mean(preds[t] == labels))})
    trials = pd.DataFrame(trials)
    frame = _prediction_frame(trials["trial_id"].to_numpy(), image_ids, labels, preds, rng)
    frame["patient_id"] = np.tile(np.array([f"p{p:03d}" for p in codes]), n_trials)
    return trials, frame


def _size_columns(params: float, rng: np.random.Generator) -> dict:
    flops = params ** 0.8 * 40 * rng.lognormal(0, 0.2)
    return {"params": int(params), "flops": float(flops), "latency_ms": float(flops / 5e7 * rng.lognormal(0, 0.1))}


def _prediction_frame(trial_ids, image_ids, labels, preds, rng):
    """predictions.parquet rows for trials x images; preds (trials, images) holds class names."""
    import pandas as pd

    n_trials, n_images = preds.shape
    pred = preds.ravel()
    confidence = rng.uniform(0.5, 1.0, pred.size)
    first = np.where(pred == CLASSES[0], confidence, 1 - confidence)
    return pd.DataFrame({"trial_id": np.repeat(trial_ids, n_images), "split": "test",
                         "image_id": np.tile(image_ids, n_trials), "label": np.tile(labels, n_trials),
                         "pred": pred, f"prob_{CLASSES[0]}": first, f"prob_{CLASSES[1]}": 1 - first})


def write_sweep(out_dir: str | Path, trials, predictions=None) -> Path:
    """A results folder holding trials.csv (and predictions.parquet when given), as a sweep writes them."""
    from sweep.files import write_bytes_atomic, write_text_atomic

    out_dir = Path(out_dir)
    write_text_atomic(out_dir / "trials.csv", trials.to_csv(index=False))
    if predictions is not None:
        import io

        buffer = io.BytesIO()
        predictions.to_parquet(buffer, index=False)
        write_bytes_atomic(out_dir / "predictions.parquet", buffer.getvalue())
    return out_dir


# ---------------------------------------------------------------- calibration

TRUTHS = {
    "constant": Truth("constant", low=0.80),
    "linear": Truth("linear", low=0.70, high=0.90),
    "saturating": Truth("power_law", low=0.65, high=0.92, exponent=0.5),
}


# the truths of issue 22's world: curves between ~0.62 and ~0.90 over two decades of size
WORLD_TRUTHS = {
    "constant": Truth("constant", low=0.78, span=WORLD_SPAN),
    "linear": Truth("linear", low=0.66, high=0.88, span=WORLD_SPAN),
    "log_linear": Truth("log_linear", low=0.66, high=0.88, span=WORLD_SPAN),
    "saturating": Truth("power_law", low=0.62, high=0.91, exponent=0.5, span=WORLD_SPAN),
    "knee": Truth("knee", low=0.64, high=0.88, width=0.5, span=WORLD_SPAN),
}


def one_sweep(truth: Truth, design, rng: np.random.Generator):
    """(trials, predictions) of one simulated sweep of a Design or a World."""
    if isinstance(design, World):
        return simulate_world_sweep(truth, design, rng)
    return simulate_sweep(truth, design, rng)


def calibration(truth: Truth, design, sweeps: int, *, seed: int = 0, n_boot: int = 1000,
                per_image: bool = True, stability: bool = False) -> dict:
    """Run `sweeps` simulated sweeps (a Design or a World) through the analysis: verdict counts, interval coverage
    and width (points), and per sweep what was found (`runs`). per_image=False analyses trials.csv alone, as for a
    sweep that wrote no predictions."""
    from sweep.analysis.answer import analyze

    rng = np.random.default_rng(seed)
    runs = []
    for i in range(sweeps):
        trials, predictions = one_sweep(truth, design, rng)
        if not per_image:
            trials = trials.assign(collapsed=_collapsed_column(predictions, trials))
        result = analyze(trials, predictions if per_image else None, seed=seed * 100_003 + i, n_boot=n_boot,
                         leave_one_out=False, stability=stability)
        halving = result["per_halving"]
        true = truth.per_halving(halving["at"])
        runs.append({"n_configs": int(trials[["params"]].drop_duplicates().shape[0]), "verdict": result["verdict"],
                     "covered": bool(halving["lo"] <= true <= halving["hi"]), "width": halving["hi"] - halving["lo"],
                     "error": halving["estimate"] - true, "stability": result.get("stability")})
    return summarize_runs(runs, truth.verdict)


def summarize_runs(runs: list[dict], right_verdict: str) -> dict:
    """Rates over simulated sweeps: verdict counts, right/wrong shares, coverage, median width, mean error."""
    verdicts = [r["verdict"] for r in runs]
    sweeps = len(runs)
    counts = {v: verdicts.count(v) for v in ("no_relation", "linear", "nonlinear", "insufficient_data")}
    wrong = sum(n for v, n in counts.items() if v not in (right_verdict, "insufficient_data"))
    related = counts["linear"] + counts["nonlinear"]
    return {"sweeps": sweeps, "counts": counts, "right": counts[right_verdict] / sweeps, "wrong": wrong / sweeps,
            "related": related / sweeps, "coverage": float(np.mean([r["covered"] for r in runs])),
            "median_width": float(np.median([r["width"] for r in runs])),
            "mean_error": float(np.mean([r["error"] for r in runs])), "runs": runs}


def _collapsed_column(predictions, trials):
    top = predictions.groupby("trial_id")["pred"].agg(lambda p: p.value_counts(normalize=True).iloc[0])
    return trials["trial_id"].map(top).gt(0.98).to_numpy()


def main(argv: list[str] | None = None) -> int:
    """python -m sweep.analysis.simulate [--truth NAME ...] [--sweeps N] [--design JSON]: calibration rates."""
    import argparse
    import json
    import time

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--truth", nargs="+", choices=sorted(TRUTHS), default=sorted(TRUTHS))
    parser.add_argument("--sweeps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--design", default="{}", help='Design fields as JSON, e.g. \'{"n_images": 150}\'')
    parser.add_argument("--custom", help='a Truth as JSON instead of --truth, e.g. \'{"kind": "power_law", '
                                          '"low": 0.7, "high": 0.9, "exponent": 1.0}\'')
    parser.add_argument("--no-predictions", action="store_true", help="analyse trials.csv alone")
    args = parser.parse_args(argv)
    design = Design(**json.loads(args.design))
    truths = {"custom": Truth(**json.loads(args.custom))} if args.custom else {t: TRUTHS[t] for t in args.truth}
    rows = []
    for name, truth in truths.items():
        start = time.time()
        rates = calibration(truth, design, args.sweeps, seed=args.seed, per_image=not args.no_predictions)
        rates.pop("runs")
        rows.append({"truth": name, "design": args.design, "per_image": not args.no_predictions, **rates,
                     "seconds": round(time.time() - start)})
        print(json.dumps(rows[-1]), flush=True)
    args_text = shlex.join(argv if argv is not None else sys.argv[1:])
    print(markdown_table(rows, f"python -m sweep.analysis.simulate {args_text}"))
    return 0


def markdown_table(rows: list[dict], command: str) -> str:
    """The calibration rates as the Markdown table README quotes: one row per truth, then the command and load."""
    import os

    lines = ["| truth | verdict right | wrong class | insufficient_data | 90% interval coverage "
             "| median width (points) | mean error (points) | sweeps | wall time |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        insufficient = row["counts"]["insufficient_data"] / row["sweeps"]
        lines.append(f"| {row['truth']} | {row['right']:.1%} | {row['wrong']:.1%} | {insufficient:.1%} "
                     f"| {row['coverage']:.1%} | {row['median_width']:.2f} | {row['mean_error']:+.2f} "
                     f"| {row['sweeps']} | {row['seconds']} s |")
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return "\n".join(lines) + f"\n\n`{command}` (load average at the end: {load})"


if __name__ == "__main__":
    raise SystemExit(main())
