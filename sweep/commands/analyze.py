"""`fusion-sweep analyze RESULTS`: the scaling verdict of a results folder, from trials.csv (+ predictions.parquet)."""
from __future__ import annotations

import argparse
from pathlib import Path


def _size_value(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--at takes a size such as 10437570 or 1e7, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--at must be a positive size, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="a results folder holding trials.csv (and predictions.parquet, if written)")
    parser.add_argument("--size", choices=("params", "flops", "latency_ms"), default="params",
                        help="the size axis (default params)")
    parser.add_argument("--split", default="test", help="test (default) or ext:NAME, an external set of the sweep")
    parser.add_argument("--at", type=_size_value, default=None,
                        help="reference size for the per-halving change (default: the seed's fusion when the "
                             "sweep has it, else the median configuration)")
    parser.add_argument("--json", metavar="PATH", help="also write the analyze object (results contract) here")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the bootstraps (default 0)")
    parser.add_argument("--effects", action="store_true",
                        help="partial effects instead of the size curve: every configuration that differs from a "
                             "reference in one factor (a parent's cut, a width) against it, paired on the same "
                             "patients; --json writes effects.json (results contract)")
    parser.add_argument("--reference", metavar="LABEL", default=None,
                        help="with --effects: the reference configuration as the report labels it, e.g. "
                             "cnn:block3_drop+rn:conv3_block4_2_relu/b64/h2048 (default: the `run --around` "
                             "reference, else the configuration with the most one-factor neighbours)")


def run(args: argparse.Namespace) -> int:
    from sweep.analysis.answer import analyze
    from sweep.analysis.inputs import read_tables

    if args.reference is not None and not args.effects:
        from sweep import UsageError

        raise UsageError("--reference is for --effects (the configuration the partial effects are measured from)")
    trials, predictions = read_tables(args.results)    # bad input raises InputError: one line, exit 2
    if args.effects:
        return run_effects(args, trials, predictions)
    result = analyze(trials, predictions, size=args.size, split=args.split, at=args.at, seed=args.seed)
    print(result["verdict_text"])
    print()
    print(forms_table(result))
    print()
    print(best_table(result))
    if args.json:
        from sweep.files import write_json_atomic

        path = write_json_atomic(Path(args.json), result)
        print(f"\nwrote {path}")
    return 0


def run_effects(args, trials, predictions) -> int:
    """`analyze --effects`: the sentences and a table of the partial effects; --json writes the effects object."""
    from sweep.analysis.effects import effects
    from sweep.analysis.effects_report import FACTOR_WORDS, sentences
    from sweep.tune.results import read_manifest

    result = effects(trials, predictions, reference=args.reference, around=read_manifest(args.results).get("around"),
                     seed=args.seed)
    result["sentences"] = sentences(result)
    print(f"around {result['reference']} ({result['reference_accuracy']:.1f}% over {result['reference_n_seeds']} "
          f"seeds; {result['n_images']} test images of {result['n_patients']} patients; "
          f"{result['n_collapsed']} collapsed trial(s) left out"
          + (f"; every seed collapsed for {', '.join(result['unestimated'])}" if result["unestimated"] else "") + ")")
    for sentence in result["sentences"]:
        print(f"- {sentence}")
    print()
    print(f"{'factor':<15} {'to':<22} {'steps':>5} {'seeds':>5} {'change':>7} {'90% interval':>16} {'Holm p':>7}")
    for r in result["effects"]:
        print(f"{FACTOR_WORDS[r['factor']]:<15} {str(r['to'])[:22]:<22} {r['steps']:>+5d} {r['n_seeds']:>5} "
              f"{r['delta']:>+7.1f} {r['lo']:>+7.1f} to {r['hi']:<+6.1f} {r['p_holm']:>7.3f}")
    if args.json:
        from sweep.files import write_json_atomic

        print(f"\nwrote {write_json_atomic(Path(args.json), result)}")
    return 0


def forms_table(result: dict) -> str:
    """The fitted forms as plain text: AICc, leave-one-out error, bound flag, averaging weight."""
    if not result["forms"]:
        return "no fits (fewer than 3 distinct sizes)"
    lines = [f"{'form':<11} {'dAICc':>7} {'LOO pts':>8} {'tau pts':>8}  bound  weight"]
    weights = result.get("averaging_weights") or {}
    for form, fit in result["forms"].items():
        delta = "-" if fit["delta_aicc"] is None else f"{fit['delta_aicc']:.1f}"
        loo = "-" if fit["loo"] is None else f"{fit['loo']:.2f}"
        weight = f"{weights[form]:.2f}" if form in weights else "-"
        lines.append(f"{form:<11} {delta:>7} {loo:>8} {fit['between_config_sd']:>8.2f}  "
                     f"{'yes' if fit['at_bound'] else 'no':<5}  {weight}")
    return "\n".join(lines)


def best_table(result: dict) -> str:
    """Configurations not distinguishable from the best (paired on test images, Holm-corrected)."""
    rows = [r for r in result["against_best"] if not r["distinguishable"]]
    lines = ["not distinguishable from the best (one-sided, Holm, 5%):",
             f"{'configuration':<52} {'accuracy':>9} {'90% interval':>15} {'gap':>6} {'seeds':>5}"]
    for r in rows:
        lines.append(f"{r['config'][:52]:<52} {r['accuracy']:>9.1f} {r['lo']:>7.1f}-{r['hi']:<7.1f} "
                     f"{r['gap']:>6.1f} {r['seeds']:>5}")
    return "\n".join(lines)
