"""Shared test fixtures: where ../shared lives, and skipping real-data tests when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
REFERENCE_DIR = SHARED_DIR / "reference"
REAL_DEV_DIR = SHARED_DIR / "data" / "cxr-real-dev"


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Keep prepared datasets and compile caches of the test run out of the user's real cache."""
    if "FUSION_SWEEP_CACHE" not in os.environ:
        os.environ["FUSION_SWEEP_CACHE"] = str(tmp_path_factory.mktemp("fusion-sweep-cache"))
    os.environ.setdefault("FUSION_SWEEP_AUTOTUNE", "off")  # train and run measure no kernels (tests/engine/test_autotune)
    yield


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is absent")
    return SHARED_DIR


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE_DIR.is_dir():
        pytest.skip(f"{REFERENCE_DIR} is absent")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def real_dev_dir() -> Path:
    if not REAL_DEV_DIR.is_dir():
        pytest.skip(f"{REAL_DEV_DIR} is absent")
    return REAL_DEV_DIR
