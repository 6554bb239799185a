"""`fusion-sweep profile`: params, forward FLOPs per image and median latency of one model."""
from __future__ import annotations

import argparse
import json

from models.registry import BUILDABLE_NAMES
from models.spec import FusionSpec
from sweep import UsageError
from sweep.commands.common import usage_errors


def _cut(value: str) -> str | None:
    return None if value.lower() == "none" else value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", choices=BUILDABLE_NAMES, default="fusion",
                        help="which model (default fusion, the seed's when no other option is given)")
    parser.add_argument("--cnn-cut", type=_cut, default=argparse.SUPPRESS,
                        help="fusion: CNN layer to cut after, or 'none' for no CNN branch (default block3_drop)")
    parser.add_argument("--resnet-cut", type=_cut, default=argparse.SUPPRESS,
                        help="fusion: ResNet50V2 layer to cut at, or 'none' (default conv3_block4_2_relu)")
    parser.add_argument("--branch-width", type=int, default=argparse.SUPPRESS, help="fusion: per-pixel Dense width")
    parser.add_argument("--head-width", type=int, default=argparse.SUPPRESS, help="fusion: head Dense width")
    parser.add_argument("--pool", choices=("gap", "flatten"), default=argparse.SUPPRESS, help="fusion: branch pooling")
    parser.add_argument("--resnet-head", choices=("flatten", "gap"), default="flatten",
                        help="resnet50v2 and other backbones: the seed's Flatten head or GAP (default flatten)")
    parser.add_argument("--image-size", type=int, default=256, help="square input size in pixels (default 256)")
    parser.add_argument("--num-classes", type=int, default=2, help="number of classes (default 2)")
    parser.add_argument("--channels", type=int, default=3, help="input channels, 1 or 3 (default 3)")
    parser.add_argument("--repeats", type=int, default=20, help="timed forward passes for the median (default 20)")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency measurement (no weights built)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


FUSION_OPTIONS = {"cnn_cut": "--cnn-cut", "resnet_cut": "--resnet-cut", "branch_width": "--branch-width",
                  "head_width": "--head-width", "pool": "--pool"}


def model_from_args(args: argparse.Namespace):
    """The name or FusionSpec to profile; UsageError for fusion options given to a parent model."""
    given = {field: getattr(args, field) for field in FUSION_OPTIONS if hasattr(args, field)}
    if args.model != "fusion":
        if given:
            flags = ", ".join(FUSION_OPTIONS[f] for f in given)
            raise UsageError(f"{flags} only apply to --model fusion, not --model {args.model}")
        return args.model
    return FusionSpec(num_classes=args.num_classes, image_size=args.image_size, channels=args.channels, **given)


def run(args: argparse.Namespace) -> int:
    model = model_from_args(args)
    if args.repeats < 1:
        raise UsageError(f"--repeats must be >= 1, got {args.repeats}")
    import jax

    from models.profile import profile_model
    from sweep.runtime import enable_compilation_cache

    enable_compilation_cache()
    with usage_errors():  # bad cuts, sizes or classes are found before anything is built
        result = profile_model(model, image_size=args.image_size, num_classes=args.num_classes,
                               channels=args.channels, resnet_head=args.resnet_head, repeats=args.repeats,
                               latency=not args.no_latency)
    if args.json:
        print(json.dumps(result))
        return 0

    name = args.model if isinstance(model, str) else f"fusion {model.label}"
    latency = "skipped" if result["latency_ms"] is None else (
        f"{result['latency_ms']:.2f} ms (median of {args.repeats}, batch 1, {jax.default_backend()})")
    print(f"model            {name} at {args.image_size}x{args.image_size}x{args.channels}, "
          f"{args.num_classes} classes")
    print(f"params           {result['params']:,}")
    print(f"trainable        {result['trainable_params']:,}")
    print(f"non-trainable    {result['non_trainable_params']:,}")
    print(f"forward FLOPs    {result['flops'] / 1e9:.3f} GFLOPs per image")
    print(f"latency          {latency}")
    if "backbone_params" in result:
        print(f"backbone params  {result['backbone_params']:,} (include_top=False, "
              f"{result['backbone_non_trainable_params']:,} non-trainable)")
    print(f"output shape     {result['output_shape']}")
    return 0
