"""The sweep driver: Ray (local or a cluster), the Tuner over the trials, restore, and the results it writes."""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Callable

import ray
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler

from data.builder import cache_root, prepare, user_cache_dir
from sweep import UsageError
from sweep.configs.io import config_to_dict
from sweep.configs.schema import SweepConfig
from sweep.init_sources import init_record, worker_init
from sweep.analysis.shift_report import keep_measurements
from sweep.runtime import REPO_ROOT, git_state
from sweep.tune.board import BOARD_ENV, BoardClient, board_name
from sweep.tune.finish import finish_sweep
from sweep.tune.progress import Progress
from sweep.tune.eval_sets import describe, measure_confound, prepare_counterfactual_sets, prepare_external_sets
from sweep.tune.results import trials_frame, write_trials
from sweep.tune.rows import rows_of_ended
from sweep.tune.space import row_count
from sweep.tune.storage import EXPERIMENT, experiment_path, storage_for
from sweep.tune.trial import run_trial

REDUCTION_FACTOR = 3  # asha and hyperband keep about a third of the trials at each rung
# a worker process runs one trial after another (sweep.tune.trial resets it in between): JAX, the imports and the
# open dataset stay warm. `fusion-sweep bench` (section ray) measures the per-trial overhead with and without.
REUSE_ACTORS = True


# ---------------------------------------------------------------- Ray and the Tuner


def init_ray(address: str | None, *, num_cpus: int | None = None, env: dict[str, str] | None = None,
             on_dashboard: Callable[[str], None] | None = None) -> bool:
    """Connect to `address` (auto, ray://...) or start a quiet local Ray. Returns True if this call started it.
    on_dashboard(url) hears the Ray dashboard's address where one runs (a cluster's head; not a local Ray)."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "0")
    # Ray would add its own TensorBoard logger beside each trial's event files (sweep.tune.tensorboard_log);
    # make_run_config adds back the JSON and CSV loggers that Ray's experiment analysis reads
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    if ray.is_initialized():
        return False
    runtime_env = {"env_vars": dict(env or {})}
    if address:
        context = ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING,
                           log_to_driver=False, configure_logging=True)
        url = getattr(context, "dashboard_url", None)
        if url and on_dashboard:
            on_dashboard(url if "://" in url else f"http://{url}")
        return False
    # Ray nices workers (15) to favour its own daemons; on a shared workstation that starves the trials, which
    # are the work. A local run keeps them at normal priority.
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(num_cpus=num_cpus, include_dashboard=False, runtime_env=runtime_env, logging_level=logging.WARNING,
             log_to_driver=False, configure_logging=True)
    return True


def make_tuner(sweep: SweepConfig, trials: list[dict], *, results_dir: str, storage: str | None,
               compile_cache: str | None, callbacks: list, base_dict: dict, prepared_path: str | None = None,
               eval_sets: dict[str, str] | None = None, trainable=run_trial):
    """A Tuner over the listed trials (a grid over the trial list: each appears exactly once); `trainable` is the
    trial function (the bench wraps it to measure it).

    Worker processes are reused from one trial to the next (reuse_actors; sweep.tune.trial starts each trial from
    a clean slate): JAX, the imports and the open dataset stay warm, which is most of what a trial used to pay for
    its own process. Trials open the driver's prepared dataset at `prepared_path` when their node sees it (a shared
    cache), else prepare their own; likewise the evaluation sets `eval_sets` ({'ext:NAME' | 'cf:NAME': file})."""
    param_space = {
        "trial": tune.grid_search(trials),
        "base": base_dict,
        "results_dir": str(Path(results_dir).resolve()),
        "cpus": sweep.cpus_per_trial,
        "gpus": sweep.gpus_per_trial,
        "compile_cache": compile_cache,
        "prepared_path": prepared_path,
        "seed_mode": sweep.seed_mode,
        "checkpoint_every": sweep.checkpoint_every,
        "checkpoint_epochs": scheduler_epochs(sweep),
        "eval_sets": dict(eval_sets or {}),
        "externals": {name: config_to_dict(spec) for name, spec in sweep.externals.items()},
    }
    return tune.Tuner(
        trainable_with_resources(sweep, trainable),
        param_space=param_space,
        tune_config=tune.TuneConfig(scheduler=make_scheduler(sweep), num_samples=1,
                                    max_concurrent_trials=sweep.max_concurrent, reuse_actors=REUSE_ACTORS),
        run_config=make_run_config(sweep, results_dir=results_dir, storage=storage, callbacks=callbacks),
    )


def trainable_with_resources(sweep: SweepConfig, trainable=run_trial):
    return tune.with_resources(trainable, {"cpu": sweep.cpus_per_trial, "gpu": sweep.gpus_per_trial})


def make_scheduler(sweep: SweepConfig):
    """fifo runs every trial to its end; asha and hyperband stop the weaker ones at rungs of val_accuracy."""
    if sweep.scheduler == "fifo":
        return FIFOScheduler()
    epochs = max(1, sweep.train.epochs)
    if sweep.scheduler == "hyperband":
        return HyperBandScheduler(metric="val_accuracy", mode="max", time_attr="epoch", max_t=epochs,
                                  reduction_factor=REDUCTION_FACTOR)
    return ASHAScheduler(metric="val_accuracy", mode="max", time_attr="epoch", max_t=epochs,
                         grace_period=asha_grace_period(epochs), reduction_factor=REDUCTION_FACTOR)


def scheduler_epochs(sweep: SweepConfig) -> list[int]:
    """Epochs at which a trial checkpoints besides every `checkpoint_every`: where its scheduler may stop it (so a
    stopped trial's checkpoint holds the weights its row reports, for --score-stopped) or pause it (HyperBand
    resumes a paused trial from Ray's checkpoint). ASHA's rungs: grace_period * eta**k; HyperBand's: in every
    bracket, max_t / eta**s epochs growing by eta up to max_t (Ray's formulas; a test checks them against Ray's)."""
    max_t, eta = max(1, sweep.train.epochs), REDUCTION_FACTOR
    epochs: set[int] = set()
    if sweep.scheduler == "asha":
        rung = asha_grace_period(max_t)
        while rung < max_t:
            epochs.add(rung)
            rung *= eta
    elif sweep.scheduler == "hyperband":
        for s in range(int(round(math.log(max_t) / math.log(eta))) + 1):
            rung = int(max_t * eta ** (-s))
            while 0 < rung < max_t:
                epochs.add(rung)
                rung = min(rung * eta, max_t)
    return sorted(epochs)


def asha_grace_period(epochs: int) -> int:
    """ASHA's first rung after about a third of the epochs: early epochs of a from-scratch CNN say little."""
    return max(1, min(epochs, math.ceil(epochs / 3)))


def make_run_config(sweep: SweepConfig, *, results_dir: str, storage: str | None, callbacks: list):
    return tune.RunConfig(
        name=EXPERIMENT,
        storage_path=storage_for(results_dir, storage),
        failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        callbacks=[*callbacks, JsonLoggerCallback(), CSVLoggerCallback()],
        verbose=0,
        log_to_file=True,
    )


def restore_tuner(sweep: SweepConfig, *, results_dir: str, storage: str | None, callbacks: list):
    """Continue an interrupted experiment: finished trials keep their results, unfinished and errored ones go on."""
    path = experiment_path(results_dir, storage)
    if not tune.Tuner.can_restore(path):
        raise FileNotFoundError(f"--resume: no Ray experiment to continue at {path}; run without --resume first")
    tuner = tune.Tuner.restore(path, trainable_with_resources(sweep), resume_unfinished=True, resume_errored=True)
    local = getattr(tuner, "_local_tuner", None)
    if local is not None:  # the restored RunConfig holds pickled copies of the old callbacks: use this run's
        local.get_run_config().callbacks = callbacks
    return tuner


def run_sweep(sweep: SweepConfig, trials: list[dict], *, out: Path, address: str | None = None,
              storage: str | None = None, resume: bool = False, explain: bool = True,
              start: float | None = None, command: list[str] | None = None, mlflow: str | None = None,
              mlflow_experiment: str | None = None, git: dict | None = None) -> int:
    """Prepare data once, run the trials on Ray (local or a cluster), then write the results contract into `out`.
    0 when everything asked for was done; 1 when a trial ended in error or a step after the trials failed.
    `git`: runtime.git_state of the checkout before anything was written (taken here when not given)."""
    start = start or time.time()
    out = Path(out)
    git = git_state(exclude=out) if git is None else git
    out.mkdir(parents=True, exist_ok=True)

    def say(text: str) -> None:
        elapsed = int(time.time() - start)
        print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {text}", flush=True)

    workers_sweep, prepared, eval_sets = _prepare_data(sweep, say)
    workers_sweep = workers_sweep.replace(train=workers_sweep.train.replace(init=worker_init(sweep.train.init)))
    init = init_record(sweep.train.init, sweep.train.pipeline.normalization, parts=tuple(sweep.space.backbones))
    for backbone, record in init.items():
        where = f" ({record['path']})" if record["path"] and record["path"] != record["source"] else ""
        digest = f", sha256 {record['sha256'][:12]}" if record["sha256"] else ""
        say(f"{backbone} starts from {record['source']}{where}{digest}; input scaling {record['input_scaling']}")
    fingerprint, counts = f"{prepared.fingerprint}/{prepared.path.name}", prepared.counts()
    _measure_confound(out, prepared, workers_sweep, say)
    _tune_kernels(workers_sweep, trials, len(prepared.classes), say)
    if explain and sweep.explain_images > 0:
        _warm_up_explanations(sweep.train.data.image_size)
    started, resources, board = _start_ray(address, say, trials, sweep)
    try:
        grid = _fit(workers_sweep, trials, out, storage, resume, Progress(len(trials), board=board, start=start),
                    str(Path(prepared.path).resolve()), eval_sets)
    finally:
        if started:
            ray.shutdown()
    facts = {"data_fingerprint": fingerprint, "command": command, "cluster_resources": resources, "git": git,
             "extra": {"name": sweep.name, "trials_total": row_count(trials), "ray_trials": len(trials),
                       "ray_experiment": recorded_experiment(storage), "resumed": resume, "data_counts": counts,
                       "eval_sets": describe(eval_sets, sweep.externals, sweep.train.data.classes),
                       "init": init, **star_facts(sweep)}}
    mlflow_step = (lambda frame: record_mlflow(out, frame, mlflow, mlflow_experiment or sweep.name, say)) \
        if mlflow else None
    return finish_sweep(grid, sweep, out, facts=facts, explain=explain, start=start, say=say, mlflow=mlflow_step,
                        score_stopped=sweep.score_stopped,
                        prune=None if "://" in storage_for(str(out), storage) else experiment_path(str(out), storage))


def star_facts(sweep: SweepConfig) -> dict:
    """What manifest.json records of a star design: its reference (`around`) and the neighbours a list cut off."""
    if sweep.around is None:
        return {}
    from sweep.tune.space import star_of

    return {"around": sweep.around, "around_skipped": list(star_of(sweep).skipped)}


def _warm_up_explanations(image_size: int) -> threading.Thread:
    """SHAP's one-off numba compilation in a background thread, overlapping Ray's start and the first trials'
    set-up instead of delaying the explanations at the end. Best effort: a failure here shows up, if it is real,
    when the explanations run."""
    def warm() -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)  # this thread only: idle cores first
            from sweep.explain.shap_maps import warm_up

            warm_up(image_size)
        except Exception:  # noqa: BLE001 - the explanations themselves report real errors
            pass

    thread = threading.Thread(target=warm, name="shap-warm-up", daemon=True)
    thread.start()
    return thread


def recorded_experiment(storage: str | None) -> str:
    """Where Ray's experiment state is, as the user gave it: under --storage, else ray/sweep in the results folder."""
    return f"{storage.rstrip('/')}/{EXPERIMENT}" if storage else f"ray/{EXPERIMENT}"


def _prepare_data(sweep: SweepConfig, say):
    """(the sweep as the workers see it, the dataset prepared once by the driver, {split: file} of its evaluation
    sets). The workers' sweep has the data and external folders absolute (any working directory) and the cache
    folder pinned to the driver's; trials open the prepared files where their node sees them, else prepare the same
    spec into the same path. The external sets come first: a folder that cannot be read stops the run (UsageError)
    before the dataset is prepared and before any trial starts."""
    spec = sweep.train.data
    spec = spec.replace(cache_dir=str(cache_root(spec).resolve()),
                        data_dir=str(Path(spec.data_dir).expanduser().resolve()) if spec.data_dir else spec.data_dir)
    externals = {name: ext.replace(data_dir=str(Path(ext.data_dir).expanduser().resolve())) if ext.data_dir else ext
                 for name, ext in sweep.externals.items()}
    try:
        eval_sets = prepare_external_sets(externals, spec)
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from err
    for split, record in describe(eval_sets, externals, spec.classes).items():
        say(f"external set {split}: {record['n_images']} images " + str(record["classes"]))
    say(f"preparing data: {spec.source} at {spec.image_size}px" + (f" from {spec.data_dir}" if spec.data_dir else ""))
    prepared = prepare(spec)
    counts = prepared.counts()
    say("data ready: " + ", ".join(f"{s} {sum(c.values())}" for s, c in counts.items()) + f" images ({prepared.path})")
    eval_sets.update(prepare_counterfactual_sets(spec, prepared))
    return sweep.replace(train=sweep.train.replace(data=spec), externals=externals), prepared, eval_sets


def _tune_kernels(sweep: SweepConfig, trials: list[dict], num_classes: int, say) -> None:
    """This machine's conv forms measured once, before any trial, for every configuration the trials train (in a
    process pinned to a trial's core count; trials then read the stored table). A failure costs only speed."""
    if sweep.gpus_per_trial:
        return
    from sweep.engine.autotune import tune_in_subprocess
    from sweep.tune.space import train_config_for

    cores = min(max(1, math.ceil(sweep.cpus_per_trial)), len(os.sched_getaffinity(0)))
    try:
        code = tune_in_subprocess([train_config_for(t, sweep.train) for t in trials], num_classes, cores, log=say)
    except Exception as err:  # noqa: BLE001 - the trials fall back to the built-in rules
        code = f"{type(err).__name__}: {err}"
    if code:
        say(f"autotune failed ({code}); trials use the built-in conv forms")


def _measure_confound(out: Path, prepared, sweep: SweepConfig, say) -> None:
    """The confound probe (and how class and source are entangled) on every image, kept in shift.json; a
    failure is reported, the sweep goes on without it."""
    try:
        measured = measure_confound(prepared, sweep.train.data)
    except Exception as err:  # the probe is a measurement beside the sweep, not part of it
        say(f"confound probe failed: {type(err).__name__}: {err}")
        return
    keep_measurements(out, **measured)
    probe = measured["confound_probe"]
    say(f"confound probe (image statistics, no anatomy): AUC {probe['auc']:.2f} "
        f"[{probe['lo']:.2f}, {probe['hi']:.2f}] over {probe['n_images']} images")


def _start_ray(address: str | None, say, trials: list[dict],
               sweep: SweepConfig) -> tuple[bool, dict, BoardClient | None]:
    """Ray, and the progress board that trials post their status to (None if it cannot start)."""
    env = {"FUSION_SWEEP_CACHE": str(user_cache_dir().resolve()), "PYTHONPATH": str(REPO_ROOT),
           BOARD_ENV: board_name()}
    started = init_ray(address, num_cpus=None if address else len(os.sched_getaffinity(0)), env=env,
                       on_dashboard=lambda url: say(f"Ray dashboard: {url}"))
    resources = ray.cluster_resources()
    say(f"Ray {'started locally' if started else 'connected at ' + str(address)}: {resources.get('CPU', 0):.0f} CPUs, "
        f"{resources.get('GPU', 0):.0f} GPUs; {len(trials)} trials ({row_count(trials)} configuration x seed rows) x "
        f"{sweep.cpus_per_trial:g} CPU"
        + (f" + {sweep.gpus_per_trial:g} GPU" if sweep.gpus_per_trial else "") + " each")
    return started, resources, open_board(env[BOARD_ENV], say)


def _fit(sweep: SweepConfig, trials: list[dict], out: Path, storage: str | None, resume: bool, progress: Progress,
         prepared_path: str | None = None, eval_sets: dict[str, str] | None = None):
    """Run (or continue) the experiment with the live view; trials.csv is rewritten as each trial ends. Trials
    open the dataset at `prepared_path` where their node sees it."""
    say = progress.say  # lines go above the live status block
    rows: dict[str, dict] = {}

    def record(trial, status: str) -> None:
        for row in rows_of_ended(trial, status):
            rows[row["trial_id"]] = row
        try:
            write_trials(trials_frame(list(rows.values())), out)
        except Exception as err:  # a table write must never stop the sweep
            say(f"warning: could not update trials.csv: {err}")

    progress.on_complete = record
    callbacks = [progress.callback()]
    if resume:
        tuner = restore_tuner(sweep, results_dir=str(out), storage=storage, callbacks=callbacks)
        say(f"resuming {experiment_path(str(out), storage)}")
    else:
        compile_cache = str((user_cache_dir() / "jax-compile").resolve())
        tuner = make_tuner(sweep, trials, results_dir=str(out), storage=storage, compile_cache=compile_cache,
                           callbacks=callbacks, base_dict=config_to_dict(sweep.train), prepared_path=prepared_path,
                           eval_sets=eval_sets)
    return tuner.fit()


def open_board(name: str, say) -> BoardClient | None:
    """The progress board trials post to; None (per-epoch lines only) if the actor cannot start."""
    try:
        return BoardClient(name)
    except Exception as err:  # live progress is a view: the sweep runs without it
        say(f"live progress shows epochs only: the progress board did not start ({type(err).__name__}: {err})")
        return None


def record_mlflow(out: Path, frame, uri: str, experiment: str, say) -> None:
    """One MLflow run per row (a failure raises: the run then exits 1, the tables staying as written)."""
    from sweep.configs.naming import config_label
    from sweep.tune.mlflow_log import log_sweep

    rows = [{**row, "label": config_label(row)} for row in frame.to_dict("records")]
    log_sweep(out, uri, experiment=experiment, rows=rows, say=say)
