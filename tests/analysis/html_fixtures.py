"""Results folders in the shape of ../shared/CONTRACT.md, written from numbers (no training), for report tests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

CLASSES = ("COVID", "Normal")
FUSIONS = (  # cnn_cut, resnet_cut, branch_width, params
    ("block1_drop", "none", 16, 40_466), ("block2_drop", "none", 16, 92_498), ("block3_drop", "none", 512, 1_247_682),
    ("block2_drop", "conv2_block3_out", 64, 2_400_000), ("block3_drop", "conv3_block4_2_relu", 2048, 10_437_570),
    ("block4_drop", "conv3_block4_2_relu", 512, 5_100_000),
)
PARENTS = (("cnn", 3_184_322), ("resnet50v2", 27_765_250))


def fusion_label(cnn_cut: str, resnet_cut: str, branch: int, head: int = 2048) -> str:
    parts = [f"cnn:{c}" for c in (cnn_cut,) if c != "none"] + [f"rn:{r}" for r in (resnet_cut,) if r != "none"]
    return "+".join(parts) + f"/b{branch}/h{head}"


def trials_frame(seeds: int = 3, external: tuple[str, ...] = ("site_b",), rng_seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(rng_seed)
    rows = []
    configs = [("fusion", c, r, b, p) for c, r, b, p in FUSIONS] + [(m, "none", None, None, p) for m, p in PARENTS]
    for index, (model, cnn_cut, resnet_cut, branch, params) in enumerate(configs):
        for seed in range(seeds):
            accuracy = float(np.clip(0.55 + 0.05 * np.log10(params) + rng.normal(0, 0.03), 0, 1))
            row = {"trial_id": f"abcde_{index:03d}-s{seed}", "model": model, "cnn_cut": cnn_cut,
                   "resnet_cut": resnet_cut if model == "fusion" else "none",
                   "branch_width": branch, "head_width": 2048, "seed": seed, "image_size": 32,
                   "params": params, "trainable_params": params - 100, "non_trainable_params": 100,
                   "flops": params * 11.0, "latency_ms": params / 3e6, "status": "TERMINATED",
                   "train_status": "completed", "best_epoch": 5, "weights_epoch": 5, "epochs": 7,
                   "collapsed": False, "test_n": 200, "test_accuracy": accuracy,
                   "test_balanced_accuracy": accuracy, "test_auc": min(1.0, accuracy + 0.05),
                   "val_accuracy": accuracy, "test_support_COVID": 80, "test_support_Normal": 120,
                   "recall_COVID": accuracy, "recall_Normal": accuracy}
            for name in external:
                row.update({f"ext_{name}_n": 150, f"ext_{name}_accuracy": accuracy - 0.1 - 0.02 * index,
                            f"ext_{name}_balanced_accuracy": accuracy - 0.12, f"ext_{name}_auc": accuracy - 0.05})
            rows.append(row)
    frame = pd.DataFrame(rows)
    first_fusion_seed0 = frame.index[0]
    frame.loc[first_fusion_seed0, ["collapsed", "test_accuracy", "recall_COVID", "recall_Normal"]] = [True, 0.6, 0.0, 1.0]
    return frame


def analyze_object(size: str, split: str = "test") -> dict:
    sizes = np.geomspace(4e4, 3e7, 12) * (11.0 if size == "flops" else 1.0)
    curve = [{"size": float(s), "estimate": 55 + 5 * np.log10(s), "lo": 52 + 5 * np.log10(s),
              "hi": 58 + 5 * np.log10(s)} for s in sizes]
    return {"size": size, "split": split, "n_configs": 8, "n_trials": 24, "n_collapsed": 1, "forms": {},
            "best_form": "log_linear", "verdict": "nonlinear",
            "verdict_text": f"Accuracy rises with the log of {size}: a nonlinear relation.",
            "per_halving": {"at": 10437570.0, "estimate": -1.5, "lo": -2.5, "hi": -0.5, "level": 0.9},
            "curve": [{k: float(v) for k, v in p.items()} for p in curve]}


def write_results(folder: Path, *, synthetic: bool = True, external: tuple[str, ...] = ("site_b",),
                  seeds: int = 3, with_scaling: bool = True, with_explanations: bool = True) -> Path:
    """A complete results folder; pass with_*=False or delete files to test the sections' fallbacks."""
    folder.mkdir(parents=True, exist_ok=True)
    trials = trials_frame(seeds, external)
    trials.to_csv(folder / "trials.csv", index=False)
    trials.to_parquet(folder / "trials.parquet", index=False)
    source = "synthetic" if synthetic else "radiography"
    manifest = {"name": "fixture", "command": ["fusion-sweep", "run"], "created_utc": "2026-11-27T00:00:00+00:00",
                "sweep_config": {"name": "fixture", "seeds": seeds,
                                 "train": {"data": {"source": source, "image_size": 32, "classes": list(CLASSES)}}}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    if with_scaling:
        scaling = {"test": {s: analyze_object(s) for s in ("params", "flops")}}
        scaling.update({f"ext:{n}": {"params": analyze_object("params", f"ext:{n}")} for n in external})
        (folder / "scaling.json").write_text(json.dumps(scaling))
    if external:
        shift = {"externals": {n: {"n_images": 150, "gap": [
            {"config": fusion_label(*f[:3]), "in_source": 80.0, "external": 70.0, "gap": -10.0, "lo": -14.0,
             "hi": -6.0} for f in FUSIONS], "scaling": analyze_object("params", f"ext:{n}")} for n in external},
            "confound_probe": {"auc": 0.71, "lo": 0.65, "hi": 0.77, "features": ["histogram", "border"]},
            "per_source": [{"source": "a", "class": "COVID", "n": 40, "accuracy": 0.9}]}
        (folder / "shift.json").write_text(json.dumps(shift))
    if with_explanations:
        write_explanations(folder / "explanations", trials, synthetic)
    return folder


def write_explanations(folder: Path, trials: pd.DataFrame, synthetic: bool, images: int = 4) -> None:
    rng = np.random.default_rng(1)
    explained = trials[~trials["collapsed"]].groupby("model").head(2)["trial_id"].tolist()
    image_ids = [f"synthetic-{i:06d}" for i in range(images)]
    summary = []
    for image_index, image_id in enumerate(image_ids):
        if synthetic:
            pixels = rng.integers(0, 255, (32, 32), dtype=np.uint8)
            mask = np.zeros((32, 32), bool)
            mask[10:16, 8:14] = True
            box = np.array([2, 3, 8, 14] if image_index % 2 else [-1] * 4, np.int32)
            (folder / "images").mkdir(parents=True, exist_ok=True)
            np.savez_compressed(folder / "images" / f"{image_id}.npz", image=pixels, lesion_mask=mask, marker_box=box)
        for trial_id in explained:
            (folder / trial_id).mkdir(parents=True, exist_ok=True)
            np.savez_compressed(folder / trial_id / f"{image_id}.npz",
                                values=rng.normal(0, 1, (32, 32)).astype(np.float16), label=image_index % 2,
                                target=image_index % 2, pred=image_index % 2, prob=0.8)
            summary.append({"trial_id": trial_id, "image_id": image_id, "label": CLASSES[image_index % 2],
                            "pred": CLASSES[image_index % 2], "prob": 0.8, "evals": 200, "seconds": 0.1,
                            "border_share": 0.3, "marker_share": 0.1 if image_index % 2 else np.nan,
                            "lesion_share": 0.2, "pointing_hit": 1.0, "nan_map": False})
    pd.DataFrame(summary).to_csv(folder / "summary.csv", index=False)
    models = [{"trial_id": t, "config": "", "seed": 0, "n_images": images, "border_share": 0.3,
               "border_share_lo": 0.25, "border_share_hi": 0.35, "flag": ""} for t in explained]
    pd.DataFrame(models).to_csv(folder / "models.csv", index=False)
