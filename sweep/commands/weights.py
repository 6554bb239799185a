"""`fusion-sweep weights fetch|add|list`: the weights cache ($FUSION_SWEEP_CACHE/weights) behind `--init ...=imagenet`."""
from __future__ import annotations

import argparse
import sys

from sweep import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from models.weights_store import PUBLISHED

    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch = actions.add_parser("fetch", help="download a backbone's published weights from the address Keras uses "
                               "(hash-checked, atomic)")
    fetch.add_argument("backbone", choices=sorted({w.backbone for w in PUBLISHED.values()}))
    fetch.add_argument("--source", default="imagenet", help="which published weights (default imagenet)")
    fetch.add_argument("--url", default=None, help="download from this address instead (a mirror); the hash Keras "
                       "lists must still match")
    fetch.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the server (default 30)")
    add = actions.add_parser("add", help="register a file you already have (offline machines); its hash must match")
    add.add_argument("path", help="the file, e.g. ~/.keras/models/resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5")
    add.add_argument("--as", dest="key", required=True, choices=sorted(PUBLISHED), help="what it is")
    actions.add_parser("list", help="the cached files with their sizes and hashes")


def run(args) -> int:
    from models.weights_store import TextProgress, WeightsError, add, fetch, listing
    from sweep.init_sources import weights_cache_dir

    cache = weights_cache_dir()
    bar = TextProgress(sys.stderr)
    try:
        if args.action == "fetch":
            path = fetch(args.backbone, cache, source=args.source, url=args.url, timeout=args.timeout,
                         progress=bar)
            print(f"saved {path}")
        elif args.action == "add":
            print(f"registered {add(args.path, args.key, cache)}")
        else:
            rows = listing(cache)
            if not rows:
                print(f"{cache}: no weights files (`fusion-sweep weights fetch resnet50v2` or `weights add`)")
            for row in rows:
                print(f"{row['file']}  {row['bytes'] / 2**20:.1f} MiB  sha256 {row['sha256']}  md5 {row['md5']}"
                      + (f"  = {row['registered_as']}" if row["registered_as"] else "  (not a published file)"))
    except WeightsError as err:
        bar.end()
        if args.action == "add" or "no published" in str(err):
            raise UsageError(str(err)) from None
        print(f"fusion-sweep weights {args.action}: error: {err}", file=sys.stderr)
        return 1
    return 0
