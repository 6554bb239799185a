"""`fusion-sweep bench`: train/eval images/s, FLOP/s vs measured peak, compile cache, pipeline, SHAP, Ray, Keras peer."""
from __future__ import annotations

import argparse
import sys

from sweep import UsageError
from sweep.commands.common import RUNS_ROOT, usage_errors


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 64,128, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers like 64,128, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="under 15 minutes on 2 CPU cores: 64 and 128 px, batch 32, few windows")
    parser.add_argument("--autotune", action="store_true",
                        help="only (re)build this machine's autotune table for the bench's models, sizes and batch "
                        "sizes (docs/autotune.md), print it and exit")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                        help="gpu: bfloat16, 256 px, no ray/shap/tensorflow_datasets imports")
    parser.add_argument("--out", default=None, help="JSON path (default runs/bench/<device>[-quick].json; the "
                        "committed figures are results/bench/<device>[-quick].json)")
    parser.add_argument("--peer", choices=("keras",), default=None,
                        help="also time the same models in Keras 3 (JAX and TensorFlow backends, subprocesses)")
    parser.add_argument("--peer-python", default=None,
                        help="interpreter for the TensorFlow peer (default .venv-peer-tf/bin/python when present)")
    parser.add_argument("--peer-models", default=None,
                        help="models the Keras peer builds (default: all three; --quick: resnet50v2); another "
                        "backbone (xception, mobilenetv2, ...) is also measured here, its ratios reported")
    parser.add_argument("--sizes", type=_ints, default=None, help="image sizes, e.g. 64,128")
    parser.add_argument("--batch-sizes", type=_ints, default=None, help="batch sizes, e.g. 32,16")
    parser.add_argument("--models", default=None, help="comma-separated subset of cnn,resnet50v2,fusion, or other "
                        "backbones (xception, densenet121, mobilenetv2, efficientnetb0: the seed's Flatten head)")
    parser.add_argument("--windows", type=int, default=None, help="timed windows per measurement (median)")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: steps (the per-model "
                        "train/eval timings),conv_layers,compile,pipeline,shap,ray,seeds,checkpoints,flops,"
                        "autotune (measure nothing, use a stored table if any)")
    parser.add_argument("--fast-flags", action="store_true",
                        help="apply sweep.bench.fast_cpu_flags() to XLA_FLAGS before JAX starts")


def run(args: argparse.Namespace) -> int:
    import os

    from models.registry import BUILDABLE_NAMES, MODEL_NAMES
    from sweep.bench import SECTIONS
    from sweep.bench.flags import fast_cpu_flags

    skip = tuple(s for s in args.skip.split(",") if s)
    models = tuple(m for m in args.models.split(",") if m) if args.models else None
    peer_models = tuple(m for m in args.peer_models.split(",") if m) if args.peer_models else None
    for flag, names, valid in (("--skip", skip, SECTIONS), ("--models", models, BUILDABLE_NAMES),
                               ("--peer-models", peer_models, BUILDABLE_NAMES)):
        unknown = [n for n in names or () if n not in valid]
        if unknown:
            raise UsageError(f"{flag}: unknown {', '.join(unknown)}; choose from {','.join(valid)}")
    extra = tuple(n for n in peer_models or () if n not in MODEL_NAMES and n not in (models or MODEL_NAMES))
    if extra:  # a backbone the peer is asked for is measured here too: its ratios need our figures
        models = (models or MODEL_NAMES) + extra
    from sweep.bench.runner import BenchOptions, run_bench  # JAX loads here, after the names are checked

    with usage_errors():
        options = BenchOptions.for_device(args.device, args.quick, sizes=args.sizes, batch_sizes=args.batch_sizes,
                                          models=models, windows=args.windows, peer=args.peer,
                                          peer_python=args.peer_python, peer_models=peer_models,
                                          skip=skip or None)
    if args.fast_flags:
        os.environ["XLA_FLAGS"] = fast_cpu_flags()
    if args.autotune:
        return rebuild_autotune(options)
    from sweep.bench.report import stdout_table, write_json

    # The persistent compile cache stays OFF here so compile_s is a real compile; the compile-cache section
    # measures the cached compile in fresh processes with their own empty cache dir.
    out = args.out or RUNS_ROOT / "bench" / f"{args.device}{'-quick' if args.quick else ''}.json"
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731 - progress on stderr
    result = run_bench(options, log=log, checkpoint=lambda partial: write_json(out, partial))
    path = write_json(out, result)
    stdout_table(result)
    print(f"wrote {path}")
    if result.get("peer_errors"):
        print(f"error: {len(result['peer_errors'])} peer figure(s) refused (another model): "
              + "; ".join(result["peer_errors"]), file=sys.stderr)
        return 1
    return 0


def rebuild_autotune(options) -> int:
    """`bench --autotune`: measure the bench's programs again (whatever is stored), print the table."""
    import jax

    from sweep.bench.runner import bench_programs
    from sweep.engine import autotune

    if jax.default_backend() != "cpu":
        raise UsageError(f"--autotune tunes CPU kernels; JAX computes on {jax.default_backend()!r} here")
    budget = options.autotune_budget_s or autotune.env_budget() or autotune.BUDGET_S
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    table = autotune.ensure_table(bench_programs(options), budget_s=budget, rebuild=True, log=log)
    print(autotune.describe(table))
    return 0
