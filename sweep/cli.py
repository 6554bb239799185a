"""The `fusion-sweep` command: a table of subcommands, each in its own module under sweep/commands."""
from __future__ import annotations

import argparse
import importlib
import sys

from sweep import UsageError
from sweep.runtime import use_cpu_compile_flags

# name -> (module, one-line help). Modules import heavy packages (jax, ray, shap) inside run() only,
# so `fusion-sweep --help` stays fast and each command loads just what it needs. A module that fails to
# import is an error (never a silently missing command).
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("sweep.commands.run", "run a sweep of fusion models with Ray Tune (the main job)"),
    "report": ("sweep.commands.report", "rebuild plots and report.md of a sweep from its tables"),
    "analyze": ("sweep.commands.analyze", "the scaling verdict of a sweep: forms, per-halving change, best configs"),
    "calibrate": ("sweep.commands.calibrate", "remake the scaling verdict's calibration table from simulated sweeps"),
    "explain": ("sweep.commands.explain", "SHAP explanations and shortcut scores for a sweep's models"),
    "train": ("sweep.commands.train", "train and evaluate one model"),
    "reproduce": ("sweep.commands.reproduce", "train the seed paper's three models beside its numbers"),
    "evaluate": ("sweep.commands.evaluate", "evaluate a trained run on another dataset"),
    "data": ("sweep.commands.data", "prepare or show a dataset"),
    "layers": ("sweep.commands.layers", "list the cut points of a backbone"),
    "profile": ("sweep.commands.profile", "params, FLOPs and latency of one model"),
    "weights": ("sweep.commands.weights", "fetch, register or list pretrained backbone weights (the weights cache)"),
    "bench": ("sweep.commands.bench", "measure training/eval speed against peers and the machine's peak"),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag or value is one line on stderr and exit 2, like every other usage error (the usage
    text argparse would print first is what --help shows)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or with only=NAME the full parser of that one command (the others listed by
    name): `fusion-sweep analyze` then never imports what `evaluate` or `bench` need at module level."""
    parser = OneLineParser(
        prog="fusion-sweep",
        description="Cut a CNN and ResNet50V2 at many depths, fuse them, and measure accuracy against size.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if only is not None and name != only:
            continue
        module = importlib.import_module(module_name)
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    use_cpu_compile_flags()  # before any command starts JAX; Ray's local workers inherit it
    try:
        return int(args._run(args) or 0)
    except UsageError as err:  # what the user asked for cannot work: one line, exit 2, before any work
        print(f"fusion-sweep {args.command}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - re-raised unless it is a damaged dataset found mid-run
        damaged = _dataset_damaged(err)
        if damaged is None:
            raise
        print(f"fusion-sweep {args.command}: error: {' '.join(str(damaged).split())}", file=sys.stderr)
        return 1


def _dataset_damaged(err: BaseException) -> BaseException | None:
    """The data.records.DatasetDamaged in `err` or its causes: records that fail their checksums are found only
    when read, deep in a loader's worker, after the work started (so exit 1, not 2). Its message names the folder
    and what to do; a traceback would bury that. data.records is looked up, never imported, for a command that
    never read a dataset."""
    records = sys.modules.get("data.records")
    seen = set()
    while records is not None and err is not None and id(err) not in seen:
        if isinstance(err, records.DatasetDamaged):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


if __name__ == "__main__":
    sys.exit(main())
