"""Compile time of a train step cold, then the same compile from the persistent cache in a second process."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from sweep.bench.steps import build_bench_model
from sweep.engine.steps import step_kit
from sweep.runtime import enable_compilation_cache


def compile_once(model: str, image_size: int, batch_size: int, cache_dir: str) -> dict:
    """In THIS process: enable the persistent cache at `cache_dir`, build, lower and compile one train step."""
    enable_compilation_cache(cache_dir)  # before anything compiles in this process
    kit = step_kit(build_bench_model(model, image_size), batch_size=batch_size, image_size=image_size)
    start = time.perf_counter()
    lowered = kit.train_step.lower(kit.state, kit.batch)
    traced = time.perf_counter()
    lowered.compile()
    return {"trace_s": traced - start, "compile_s": time.perf_counter() - traced}


def _run_child(model: str, image_size: int, batch_size: int, cache_dir: str, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "sweep.bench.compile", "--model", model, "--image-size", str(image_size),
           "--batch-size", str(batch_size), "--cache-dir", cache_dir]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ))
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"compile probe failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = wall
    return result


def compile_cache_check(model: str, image_size: int, batch_size: int, timeout: float = 300.0) -> dict:
    """Two fresh processes sharing a new, empty cache dir: the first compiles cold, the second reads the cache."""
    with tempfile.TemporaryDirectory(prefix="fusion-sweep-bench-cache-") as cache_dir:
        cold = _run_child(model, image_size, batch_size, cache_dir, timeout)
        warm = _run_child(model, image_size, batch_size, cache_dir, timeout)
    return {"model": model, "image_size": image_size, "batch_size": batch_size, "cold": cold, "cached": warm,
            "speedup": cold["compile_s"] / max(warm["compile_s"], 1e-9)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="compile one train step with the persistent cache at --cache-dir")
    parser.add_argument("--model", required=True)
    parser.add_argument("--image-size", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--cache-dir", required=True)
    args = parser.parse_args(argv)
    print(json.dumps(compile_once(args.model, args.image_size, args.batch_size, args.cache_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
