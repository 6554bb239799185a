"""Shared test fixtures: where ../shared lives, and skipping real-data tests when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything imports Keras: the test venv has no TensorFlow

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
REFERENCE_DIR = SHARED_DIR / "reference"
REAL_DEV_DIR = SHARED_DIR / "data" / "cxr-real-dev"
SLOW_TIMEOUT_S = 1800  # a slow or cluster test's bound (pyproject's `timeout` bounds every other test)


def pytest_collection_modifyitems(config, items):
    """Slow and cluster tests train real sweeps: they get a longer bound than the default, never none."""
    for item in items:
        if item.get_closest_marker("timeout") is None and any(item.get_closest_marker(m) for m in ("slow", "cluster")):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Keep prepared datasets and compile caches of the test run out of the user's real cache."""
    if "FUSION_SWEEP_CACHE" not in os.environ:
        os.environ["FUSION_SWEEP_CACHE"] = str(tmp_path_factory.mktemp("fusion-sweep-cache"))
    os.environ.setdefault("FUSION_SWEEP_AUTOTUNE", "off")  # train and run measure no kernels (tests/engine/test_autotune)
    yield


def keras_cache_dir(request, tmp_path_factory, kind: str) -> Path:
    """A folder for what Keras makes, kept between test sessions in pytest's cache (per Keras version and `kind`),
    else a temporary one."""
    from importlib.metadata import version

    name = f"keras-made-{version('keras')}-{kind}"
    cache = getattr(request.config, "cache", None)
    return Path(cache.mkdir(name)) if cache is not None else tmp_path_factory.mktemp(kind)


@pytest.fixture(scope="session")
def keras_files(request, tmp_path_factory) -> Path:
    """Weight files Keras wrote (every format) of the seed's CNN and ResNet50V2's first stage, with outputs.npz:
    the input and Keras's outputs (tests/keras_made.py)."""
    folder = keras_cache_dir(request, tmp_path_factory, "fast-v1")
    if not (folder / "outputs.npz").is_file():
        from tests.keras_made import build_fast_files

        build_fast_files(folder)
    return folder


@pytest.fixture(scope="session")
def keras_tables(request, tmp_path_factory) -> Path:
    """The seed's layer tables and model sizes as Keras counts them (tests/keras_made.py build_tables), made once
    per Keras version; the first build takes Keras tens of seconds (ResNet50V2 at 256 px)."""
    folder = keras_cache_dir(request, tmp_path_factory, "tables-v1")
    if not (folder / "seed_models.json").is_file():
        from tests.keras_made import build_tables

        build_tables(folder)
    return folder


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is absent")
    return SHARED_DIR


@pytest.fixture(scope="session")
def real_dev_dir() -> Path:
    if not REAL_DEV_DIR.is_dir():
        pytest.skip(f"{REAL_DEV_DIR} is absent")
    return REAL_DEV_DIR
