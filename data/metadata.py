"""metadata.csv beside a radiography folder: which source (hospital, archive, repository) each image comes from.

A folder's metadata.csv has a `file` column (the image's path relative to the folder: the image_id every table
uses) and, when the images come from several places, a `source` column (or `source_repo`, as in
../shared/data/cxr-real-dev). No images are read here.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

SOURCE_COLUMNS = ("source", "source_repo")


def read_rows(data_dir: str | os.PathLike) -> tuple[list[str], list[dict[str, str]]]:
    """(column names, rows with stripped values) of <data_dir>/metadata.csv; ([], []) when there is none."""
    path = Path(data_dir).expanduser() / "metadata.csv"
    if not path.is_file():
        return [], []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in reader.fieldnames or []]
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    return fields, rows


def source_column(fields: list[str]) -> str | None:
    """The column naming each image's source: `source`, else `source_repo`, else None."""
    return next((c for c in SOURCE_COLUMNS if c in fields), None)


def image_sources(data_dir: str | os.PathLike | None) -> dict[str, str]:
    """image_id (the `file` column, posix) -> source, for rows that name both; {} without a source column."""
    if not data_dir:
        return {}
    fields, rows = read_rows(data_dir)
    column = source_column(fields)
    if column is None or "file" not in fields:
        return {}
    return {Path(r["file"]).as_posix(): r[column] for r in rows if r.get("file") and r.get(column)}


def image_patients(data_dir: str | os.PathLike | None) -> dict[str, str]:
    """image_id (the `file` column, posix) -> patient_id, for rows that name both; {} without a patient_id column."""
    if not data_dir:
        return {}
    fields, rows = read_rows(data_dir)
    if "file" not in fields or "patient_id" not in fields:
        return {}
    return {Path(r["file"]).as_posix(): r["patient_id"] for r in rows if r.get("file") and r.get("patient_id")}
