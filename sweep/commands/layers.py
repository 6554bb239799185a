"""`fusion-sweep layers`: list every cut point of a backbone with its output shape and cumulative params."""
from __future__ import annotations

import argparse

from models.registry import BACKBONE_NAMES
from sweep.commands.common import usage_errors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backbone", choices=BACKBONE_NAMES, help="which backbone network")
    parser.add_argument("--image-size", type=int, default=256, help="square input size in pixels (default 256)")
    parser.add_argument("--channels", type=int, default=3, help="input channels, 1 or 3 (default 3)")
    parser.add_argument("--num-classes", type=int, default=2, help="classes of the CNN's head (default 2)")


def run(args: argparse.Namespace) -> int:
    from models.cuts import check_image, check_num_classes

    with usage_errors():  # before models.profile loads JAX
        check_image(args.image_size, args.channels)
        check_num_classes(args.num_classes)
    from models.profile import cut_table

    with usage_errors():
        rows = cut_table(args.backbone, image_size=args.image_size, channels=args.channels,
                         num_classes=args.num_classes)
    print(f"{args.backbone} at {args.image_size}x{args.image_size}x{args.channels}: {len(rows)} cut points "
          "(params of the model cut after that layer)")
    print(f"{'layer':<28} {'type':<22} {'output':>14} {'params':>13} {'non-trainable':>14}")
    for row in rows:
        shape = "x".join(map(str, row["output_shape"]))
        print(f"{row['layer']:<28} {row['type']:<22} {shape:>14} {row['cumulative_params']:>13,} "
              f"{row['cumulative_non_trainable']:>14,}")
    return 0
