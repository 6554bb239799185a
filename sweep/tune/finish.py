"""After the trials: trials.csv/.parquet, predictions.parquet, manifest.json, (with --score-stopped) test metrics of
the trials a scheduler stopped, explanations, the report (built once), the summary.

A step that fails ends the run with exit 1 and one line naming it; what was written before it stays. The manifest
records the sweep as the user gave it (the data folder as typed, relative stays relative; no cache folders).
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable

from sweep.configs.naming import config_label
from sweep.configs.schema import SweepConfig
from sweep.files import write_json_atomic
from sweep.init_sources import row_init_columns
from sweep.tune.collect import collect_predictions
from sweep.tune.score import score_stopped_rows
from sweep.tune.results import manifest, trials_frame, write_trials
from sweep.tune.rows import rows_of_ended


def finished_trials(grid) -> list:
    """The Trial objects behind a ResultGrid (Ray keeps them on its ExperimentAnalysis; ResultGrid's own
    num_errors/num_terminated read the same list), in the grid's order."""
    return list(grid._experiment_analysis.trials)


def finish_sweep(grid, sweep: SweepConfig, out: Path, *, facts: dict, explain: bool, start: float,
                 say: Callable[[str], None], prune: str | None, mlflow: Callable | None = None,
                 score_stopped: bool = False) -> int:
    """Write the results contract of a finished (or interrupted) Tuner run into `out`; the run's exit code.
    `mlflow(frame)`, when given, records the rows elsewhere (one more step that may fail); `score_stopped` adds
    test metrics to the rows of trials a scheduler stopped, from the weights their row reports."""
    trials = finished_trials(grid)
    ended = [trial for trial in trials if trial.status in ("TERMINATED", "ERROR")]
    rows = [row for trial in ended for row in rows_of_ended(trial)]
    failed: list[str] = []
    _step("per-image predictions", lambda: collect_predictions(grid, out, say), failed, say)
    if score_stopped:
        _step("scoring stopped trials", lambda: score_stopped_rows(ended, rows, out, say), failed, say)
    labels = {f"init_{name}": record["label"] for name, record in facts["extra"].get("init", {}).items()}
    rows = [{**row_init_columns(row, labels), **row} for row in rows]  # rows of errors too; a seed's own wins
    frame = trials_frame(rows)
    write_trials(frame, out)
    errors = [row for row in rows if row["status"] == "ERROR"]
    unfinished = len(trials) - len(ended)
    for row in errors:
        say(f"trial {row['trial_id']} {config_label(row)} failed after {row['failures']} restart(s): {row['message']}")
    if prune and not errors and not unfinished:
        freed = prune_ray_checkpoints(prune)
        if freed:
            say(f"every trial ended: removed {freed / 2**20:.0f} MiB of Ray's copies of trial checkpoints "
                f"(each trial's run folder under {out / 'trials'} keeps its own)")
    facts["extra"].update(trials_failed=len(errors), trials_unfinished=unfinished)
    record = lambda wall=None: write_json_atomic(  # noqa: E731
        out / "manifest.json", manifest(as_given(sweep), wall_seconds=wall, **dict(facts, extra={
            **facts["extra"], "failed_steps": failed})))
    record()
    stopped = sum(row.get("train_status") == "stopped_by_scheduler" for row in rows)
    say(f"rows: {len(rows) - len(errors) - stopped} trained to their end, {stopped} stopped by the scheduler, "
        f"{len(errors)} failed" + (f"; {unfinished} trial(s) unfinished" if unfinished else "") + "; tables written")
    if explain and sweep.explain_images > 0:
        if frame["test_accuracy"].notna().any():
            _step("explanations", lambda: _explain(out, sweep, say), failed, say)
        else:
            say("explanations skipped: no trial has test metrics")
    _step("report", lambda: _report(out), failed, say)
    if mlflow is not None:
        _step("MLflow recording", lambda: mlflow(frame), failed, say)
    wall = time.time() - start
    record(wall)
    if "report" not in failed:
        _step("summary", lambda: _print_summary(out, wall), failed, say)
    if unfinished:
        say(f"{unfinished} trial(s) did not end (the sweep was interrupted): continue with the same command and --resume")
    return 1 if errors or failed or unfinished else 0


def as_given(sweep: SweepConfig) -> SweepConfig:
    """The sweep to record: the user's config without this machine's cache folder."""
    return sweep.replace(train=sweep.train.replace(data=sweep.train.data.replace(cache_dir=None)))


def _step(name: str, run: Callable[[], object], failed: list[str], say: Callable[[str], None]) -> None:
    """Run one step after the trials; a failure is one line (no traceback) and makes the run exit 1."""
    try:
        run()
    except Exception as err:  # noqa: BLE001 - reported in one line; the run's exit code says it failed
        failed.append(name)
        text = " ".join(str(err).split())[:400]
        say(f"error: {name} failed: {type(err).__name__}: {text}")


def _report(out: Path) -> None:
    from sweep.analysis.report import build_report

    build_report(out)


def _explain(out: Path, sweep: SweepConfig, say: Callable[[str], None]) -> None:
    """SHAP explanations of the Pareto front and the parents."""
    from sweep.explain.runner import explain_results  # loads JAX and SHAP: only in a sweep that explains
    from sweep.runtime import enable_compilation_cache

    say(f"explaining the Pareto front and parents: {sweep.explain_images} images x {sweep.explain_max_evals} evals")
    enable_compilation_cache()
    explain_results(out, trials="pareto+parents", images=sweep.explain_images, max_evals=sweep.explain_max_evals,
                    log=say)


def _print_summary(out: Path, wall: float) -> None:
    from sweep.analysis.report import scaling_headline, summary_table

    print()
    print(summary_table(out))
    print()
    print(scaling_headline(out))
    print(f"\nresults in {out}/: {', '.join(written_outputs(out))}  ({wall:.0f} s)")


SUMMARY_OUTPUTS = ("report.html", "report.md", "trials.csv", "trials.parquet", "predictions.parquet", "scaling.json",
                   "effects.json", "shift.json", "pareto.csv", "plots", "explanations", "manifest.json")


def written_outputs(out: Path) -> list[str]:
    """The run's outputs that exist in `out`, report first (folders with a trailing /): what the last line names."""
    return [name + ("/" if (out / name).is_dir() else "") for name in SUMMARY_OUTPUTS if (out / name).exists()]


def prune_ray_checkpoints(experiment: str) -> int:
    """Delete Ray's per-trial checkpoint copies of a finished experiment (no trial will be resumed); bytes freed."""
    freed = 0
    for path in Path(experiment).glob("*/checkpoint_*"):
        if path.is_dir():
            freed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path, ignore_errors=True)
    return freed
