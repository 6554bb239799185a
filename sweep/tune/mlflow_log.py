"""`fusion-sweep run --mlflow URI`: one MLflow run per trials.csv row (configuration x seed) with its config as
params, per-epoch and final metrics, and the row's small files as artifacts. Rows already recorded are skipped."""
from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Callable

ROW_TAG = "fusion_sweep.row_id"
ARTIFACT_MAX_BYTES = 2 * 2**20  # a row's small files: metrics, history, reports, figures; never checkpoints
IDENTITY = ("model", "cnn_cut", "resnet_cut", "branch_width", "head_width", "seed", "image_size")
PARAM_BATCH, METRIC_BATCH = 100, 1000  # MLflow's per-request limits


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """{'optim': {'lr': 1e-4}} -> {'optim.lr': '0.0001'}; lists become JSON text."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return out


def row_params(row: dict, row_dir: Path | None) -> dict[str, str]:
    """The row's full training config (its folder's config.json) over its identity columns."""
    params = {k: str(row[k]) for k in IDENTITY if k in row and not _missing(row[k])}
    config_file = row_dir / "config.json" if row_dir else None
    if config_file and config_file.is_file():
        params.update(flatten(json.loads(config_file.read_text())))
    return params


def epoch_metrics(row_dir: Path | None) -> list[tuple[str, float, int]]:
    """(key, value, epoch) from the row's history.csv, one per numeric column and epoch."""
    history = row_dir / "history.csv" if row_dir else None
    if not history or not history.is_file():
        return []
    out = []
    with history.open() as handle:
        for record in csv.DictReader(handle):
            epoch = int(float(record.get("epoch") or 0))
            for key, text in record.items():
                value = _number(text)
                if key != "epoch" and value is not None:
                    out.append((f"epoch_{key}", value, epoch))
    return out


def final_metrics(row: dict) -> dict[str, float]:
    """Every numeric, finite column of the row (sizes, test/ext/cf metrics, epochs) but the identity ones."""
    return {k: v for k, v in ((k, _number(v)) for k, v in row.items() if k not in IDENTITY) if v is not None}


def small_files(row_dir: Path | None) -> list[Path]:
    if not row_dir or not row_dir.is_dir():
        return []
    return sorted(p for p in row_dir.iterdir() if p.is_file() and p.stat().st_size <= ARTIFACT_MAX_BYTES)


def artifact_location(uri: str) -> str | None:
    """Artifacts of a sqlite store go beside its database file (MLflow would put them in the current folder);
    a server decides for itself (None)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts").as_uri()
    return None


def log_sweep(results_dir: str | Path, uri: str, *, experiment: str, rows: list[dict],
              say: Callable[[str], None] = print) -> int:
    """Record each row not yet in `experiment` at `uri` (a resumed sweep adds only its new rows); returns how many."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(
        experiment, artifact_location=artifact_location(uri))
    done = {run.data.tags.get(ROW_TAG) for run in client.search_runs([experiment_id], max_results=50000)}
    logged = 0
    for row in rows:
        row_id = str(row["trial_id"])
        if row_id in done:
            continue
        row_dir = Path(results_dir) / "trials" / row_id
        run = client.create_run(experiment_id, run_name=f"{row.get('label', row_id)} seed {row.get('seed')}",
                                tags={ROW_TAG: row_id, "fusion_sweep.results": str(results_dir)})
        run_id, now = run.info.run_id, int(time.time() * 1000)
        params = [Param(k, v[:6000]) for k, v in row_params(row, row_dir).items()]
        metrics = [Metric(k, v, now, step) for k, v, step in epoch_metrics(row_dir)]
        last = int(_number(row.get("epochs")) or 0)
        metrics += [Metric(k, v, now, last) for k, v in final_metrics(row).items()]
        for start in range(0, len(params), PARAM_BATCH):
            client.log_batch(run_id, params=params[start:start + PARAM_BATCH])
        for start in range(0, len(metrics), METRIC_BATCH):
            client.log_batch(run_id, metrics=metrics[start:start + METRIC_BATCH])
        client.log_batch(run_id, tags=[RunTag("status", str(row.get("train_status", "")))])
        for path in small_files(row_dir):
            client.log_artifact(run_id, str(path))
        failed = str(row.get("status", "")).upper() == "ERROR" or row.get("train_status") == "error"
        client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")
        logged += 1
    say(f"MLflow: {logged} run(s) recorded in experiment {experiment!r} at {uri}"
        + (f" ({len(rows) - logged} already there)" if len(rows) - logged else ""))
    return logged


def _number(value) -> float | None:
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


# tracking URI schemes MLflow stores runs at; a plain path (no scheme) is a local folder like file:
TRACKING_SCHEMES = ("file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "databricks-uc")


def check_tracking_uri(uri: str, timeout_s: float = 5.0) -> None:
    """ValueError, naming the URI and what would work, when MLflow could not record at `uri`: an unknown scheme, a
    SQLite file in a folder that does not exist, or an http(s) server that does not answer within `timeout_s`.
    Called before a sweep starts, so a typo does not cost the whole sweep."""
    import urllib.error
    import urllib.parse
    import urllib.request

    parsed = urllib.parse.urlparse(uri)
    scheme = parsed.scheme.split("+")[0].lower()  # postgresql+psycopg2 is postgresql with a driver
    if len(scheme) <= 1:  # no scheme (or a Windows drive letter): a local folder
        return
    if scheme not in TRACKING_SCHEMES:
        raise ValueError(f"--mlflow {uri}: unknown scheme {parsed.scheme!r}; use a folder, sqlite:///FILE.db, "
                         f"http(s)://HOST:PORT or another of {', '.join(s + ':' for s in TRACKING_SCHEMES)}")
    if scheme == "sqlite":
        folder = Path(uri.split(":///", 1)[-1]).expanduser().parent if ":///" in uri else None
        if folder is not None and not folder.is_dir():
            raise ValueError(f"--mlflow {uri}: folder {folder} of the SQLite file does not exist")
    if scheme in ("http", "https"):
        try:
            urllib.request.urlopen(uri, timeout=timeout_s).close()
        except urllib.error.HTTPError:
            pass  # the server answered (any status): it is there
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise ValueError(f"--mlflow {uri}: no MLflow server answered within {timeout_s:g} s ({reason})") from None
