"""Read whatever of the results contract a folder holds, for report.html (every table is optional but trials)."""
from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import pandas as pd

EXT_ACCURACY = re.compile(r"^ext_([a-z0-9_]+)_accuracy$")
CF_ACCURACY = re.compile(r"^cf_([a-z0-9_]+)_accuracy$")
COLLAPSE_SHARE = 0.98  # the contract's threshold: one class takes more than this share of test predictions


@dataclasses.dataclass
class ReportTables:
    """The contract's files of one results folder; None where a file is absent or unreadable."""

    results_dir: Path
    manifest: dict
    trials: pd.DataFrame
    scaling: dict | None
    shift: dict | None
    pareto: pd.DataFrame | None
    explain_summary: pd.DataFrame | None
    explain_models: pd.DataFrame | None
    notes: list[str]

    @property
    def name(self) -> str:
        return str(self.manifest.get("name") or (self.manifest.get("sweep_config") or {}).get("name")
                   or self.results_dir.resolve().name)

    @property
    def data_spec(self) -> dict:
        return (self.manifest.get("sweep_config") or {}).get("train", {}).get("data", {}) or {}

    @property
    def synthetic(self) -> bool:
        """Only synthetic data may show images; anything else (or unknown) is treated as real X-rays."""
        return self.data_spec.get("source") == "synthetic"

    @property
    def classes(self) -> list[str]:
        named = list(self.data_spec.get("classes") or [])
        return named or sorted(c[len("recall_"):] for c in self.trials.columns if c.startswith("recall_"))

    @property
    def external_sets(self) -> list[str]:
        """NAME of every ext_<NAME>_accuracy column (ext_<NAME>_balanced_accuracy is the same set's metric)."""
        names = [m.group(1) for c in self.trials.columns if (m := EXT_ACCURACY.match(c))]
        return [n for n in names if not (n.endswith("_balanced") and n[: -len("_balanced")] in names)]

    @property
    def counterfactual_sets(self) -> list[str]:
        return [m.group(1) for c in self.trials.columns if (m := CF_ACCURACY.match(c))]


def load_tables(results_dir: str | Path) -> ReportTables:
    """Read the folder's tables; raise FileNotFoundError when it has no trials table (nothing to report)."""
    results_dir = Path(results_dir)
    trials = _read_trials(results_dir)
    notes: list[str] = []
    manifest = _read_json(results_dir / "manifest.json", notes) or {}
    trials = _with_collapsed(trials, results_dir, notes)
    return ReportTables(
        results_dir=results_dir, manifest=manifest, trials=trials,
        scaling=_contract_scaling(_read_json(results_dir / "scaling.json", notes), notes),
        shift=_read_json(results_dir / "shift.json", notes),
        pareto=_read_csv(results_dir / "pareto.csv", notes),
        explain_summary=_read_csv(results_dir / "explanations" / "summary.csv", notes),
        explain_models=_read_csv(results_dir / "explanations" / "models.csv", notes),
        notes=notes)


def _read_trials(results_dir: Path) -> pd.DataFrame:
    from sweep.tune.results import stored_trials

    frame = stored_trials(results_dir)
    if frame is not None:
        return frame
    raise FileNotFoundError(f"{results_dir} has no trials.parquet or trials.csv: not a results folder of "
                            f"`fusion-sweep run`")


def _read_json(path: Path, notes: list[str]) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        notes.append(f"{path.name} could not be read ({err}); its section is left out.")
        return None


def _read_csv(path: Path, notes: list[str]) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as err:
        notes.append(f"{path.name} could not be read ({err}); its section is left out.")
        return None


def _contract_scaling(scaling: dict | None, notes: list[str]) -> dict | None:
    """scaling.json in the contract's shape {split: {size axis: analyze object}}, else None (with a note)."""
    if not scaling:
        return None
    shaped = {split: axes for split, axes in scaling.items()
              if isinstance(axes, dict) and any(isinstance(o, dict) and "verdict" in o for o in axes.values())}
    if not shaped:
        notes.append("scaling.json is not in the contract's {split: {size: analyze object}} form (an older "
                     "version wrote it); `fusion-sweep report` remakes it.")
        return None
    return shaped


def _with_collapsed(trials: pd.DataFrame, results_dir: Path, notes: list[str]) -> pd.DataFrame:
    """A boolean `collapsed` column: the table's own, else derived from predictions.parquet, else all False."""
    trials = trials.copy()
    if "collapsed" in trials:
        trials["collapsed"] = trials["collapsed"].map(_truthy)
        return trials
    predictions = results_dir / "predictions.parquet"
    if predictions.is_file():
        preds = pd.read_parquet(predictions, columns=["trial_id", "split", "pred"])
        test = preds[preds["split"] == "test"]
        top_share = test.groupby("trial_id")["pred"].agg(lambda p: p.value_counts(normalize=True).iloc[0])
        trials["collapsed"] = trials["trial_id"].map(top_share).fillna(0.0) > COLLAPSE_SHARE
        return trials
    notes.append("Neither trials.csv nor predictions.parquet says which trials collapsed; none is drawn hollow.")
    trials["collapsed"] = False
    return trials


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value) and not (isinstance(value, float) and math.isnan(value))
