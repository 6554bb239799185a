"""The GPU measurement, prepared to run in one call on a machine that has only jax, flax, optax and orbax:

    PYTHONPATH=. python -m sweep.bench.gpu --kind h100-x1

Times the seed's three models at 256 px in bfloat16 (params float32; --precision float32 for comparison): the train step at batch 32 and 128 and the
eval step at 128, three compilations per model; the bfloat16 matmul peak; writes results/bench/gpu-<kind>.json
after every model (a run cut short keeps what it measured). Imports no ray, shap, tensorflow_datasets, grain or
cv2 (tests/bench/test_gpu_script.py runs it on CPU at a tiny size and checks). Issue 16's GPU target: ResNet50V2
with the seed's head trains at >= 1,500 images/s at batch 128 on one H100.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys

TRAIN_IMAGES_PER_S_TARGET = 1500.0  # resnet50v2, batch 128, one H100


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sweep.bench.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", required=True, help="names the output: results/bench/gpu-<kind>.json")
    parser.add_argument("--out", default=None, help="JSON path (default results/bench/gpu-<kind>.json)")
    parser.add_argument("--models", default="cnn,resnet50v2,fusion")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-sizes", type=_ints, default=(32, 128), help="train batches; eval at the largest")
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--window-s", type=float, default=2.0)
    parser.add_argument("--peak-n", type=int, default=8192)
    parser.add_argument("--precision", choices=("bfloat16", "float32"), default="bfloat16")
    parser.add_argument("--allow-cpu", action="store_true", help="run on CPU (to test this script at a tiny size)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import jax

    from sweep import runtime
    from sweep.bench.peak import matmul_peak
    from sweep.bench.runner import run_section
    from sweep.bench.steps import measure_model
    from sweep.files import write_json_atomic

    if jax.default_backend() != "gpu" and not args.allow_cpu:
        print(f"sweep.bench.gpu: jax's backend is {jax.default_backend()!r}, not gpu (pass --allow-cpu to test "
              "this script on CPU)", file=sys.stderr)
        return 2
    out = args.out or f"results/bench/gpu-{args.kind}.json"
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    precision = args.precision
    result: dict = {"started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "complete": False, "kind": args.kind, "options": {k: v for k, v in vars(args).items()},
                    "hardware": runtime.hardware() | runtime.jax_devices(), "versions": runtime.versions(),
                    "xla_flags": os.environ.get("XLA_FLAGS", ""), "precision": precision, "models": []}
    result["peak"] = run_section(f"peak {precision} matmul", lambda: matmul_peak(precision, n=args.peak_n), log)
    write_json_atomic(out, result)
    largest = max(args.batch_sizes)
    for name in (m for m in args.models.split(",") if m):
        for batch in sorted(args.batch_sizes):
            phases = ("train", "eval") if batch == largest else ("train",)
            row = run_section(f"{name} {args.image_size}px batch {batch}", lambda: measure_model(
                name, image_size=args.image_size, batch_size=batch, window_s=args.window_s, windows=args.windows,
                precision=precision, peak_flops_per_s=result["peak"].get("best_flops_per_s"), phases=phases), log)
            result["models"].append({"model": name, "image_size": args.image_size, "batch_size": batch} | row)
            result["targets"] = targets(result)
            write_json_atomic(out, result)
    result["complete"] = True
    result["finished_utc"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    write_json_atomic(out, result)
    log(f"wrote {out}")
    return 0


def targets(result: dict) -> dict:
    """Issue 16's GPU target with the measured value (None: not measured)."""
    row = next((r for r in result["models"] if r["model"] == "resnet50v2" and r["batch_size"] == 128
                and "train" in r), None)
    value = row["train"]["images_per_s"] if row else None
    met = None if value is None else value >= TRAIN_IMAGES_PER_S_TARGET
    return {f"resnet50v2_train_images_per_s_b128 >= {TRAIN_IMAGES_PER_S_TARGET:.0f}": {"value": value, "met": met}}


if __name__ == "__main__":
    sys.exit(main())
