"""`fusion-sweep weights` and `--init`: the download against a local server (success, wrong hash, a connection cut
half-way, no server), registering a file, and the one-line errors before any work (empty cache, a file that does
not fit). Nothing here reaches beyond 127.0.0.1."""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import socket
import threading
from pathlib import Path

import pytest

from models import weights_store
from sweep import cli
from tests.keras_made import FILE_NAMES

# the first test of a session may wait for Keras to make the reference (tens of seconds on a loaded machine;
# cached afterwards in pytest's cache)
pytestmark = pytest.mark.timeout(600)

KEY = "resnet50v2:imagenet"
FILE_NAME = weights_store.PUBLISHED[KEY].file_name


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FUSION_SWEEP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "weights"


@pytest.fixture
def payload(keras_files) -> bytes:
    """A Keras-made file (ResNet50V2's first stage, random weights) standing in for the ImageNet file."""
    return (keras_files / FILE_NAMES["legacy-notop"].format("resnet")).read_bytes()


@pytest.fixture
def as_published(monkeypatch, payload):
    """Make the stand-in's MD5 the one 'Keras lists' for resnet50v2:imagenet (the real file is not here)."""
    entry = dataclasses.replace(weights_store.PUBLISHED[KEY], md5=hashlib.md5(payload).hexdigest())
    monkeypatch.setitem(weights_store.PUBLISHED, KEY, entry)


@pytest.fixture
def server(payload):
    """A local HTTP server: /good serves the payload, /other other bytes, /cut promises the payload's length and
    closes half-way."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = {"/good": payload, "/other": b"x" * 1000, "/cut": payload}.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if self.path == "/cut" else body)
            if self.path == "/cut":
                self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def one_line_error(capsys, code: int, argv: list[str]) -> str:
    assert cli.main(argv) == code
    err = capsys.readouterr().err
    lines = [line for line in err.split("\n") if line and "\r" not in line]  # the progress bar redraws with \r
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def test_fetch_from_a_server_lands_under_the_final_name_and_is_listed(cache, as_published, server, payload, capsys):
    assert cli.main(["weights", "fetch", "resnet50v2", "--url", f"{server}/good"]) == 0
    assert (cache / FILE_NAME).read_bytes() == payload
    assert "100.0%" in capsys.readouterr().err  # the progress bar reached its end
    assert cli.main(["weights", "list"]) == 0
    listed = capsys.readouterr().out
    assert FILE_NAME in listed and hashlib.sha256(payload).hexdigest() in listed and f"= {KEY}" in listed


@pytest.mark.parametrize("path, words", [("/other", "not the"), ("/cut", "broke off")])
def test_a_wrong_hash_or_a_cut_connection_leaves_nothing(cache, as_published, server, capsys, path, words):
    err = one_line_error(capsys, 1, ["weights", "fetch", "resnet50v2", "--url", server + path])
    assert words in err
    assert not cache.exists() or not any(cache.iterdir())  # no file under the final name, no partial left


def test_no_server_is_one_line(cache, capsys):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    err = one_line_error(capsys, 1, ["weights", "fetch", "resnet50v2", "--url", f"http://127.0.0.1:{port}/x",
                                     "--timeout", "5"])
    assert "cannot download" in err and "weights add" in err


def test_add_checks_the_hash_and_registers(cache, keras_files, capsys, monkeypatch, payload):
    source = keras_files / FILE_NAMES["legacy-notop"].format("resnet")
    err = one_line_error(capsys, 2, ["weights", "add", str(source), "--as", KEY])
    assert "fac2f116257151a9d068a22e544a4917" in err  # the MD5 keras/src/applications/resnet.py lists
    assert not (cache / FILE_NAME).exists()
    entry = dataclasses.replace(weights_store.PUBLISHED[KEY], md5=hashlib.md5(payload).hexdigest())
    monkeypatch.setitem(weights_store.PUBLISHED, KEY, entry)
    assert cli.main(["weights", "add", str(source), "--as", KEY]) == 0
    assert (cache / FILE_NAME).read_bytes() == payload


@pytest.mark.parametrize("command", [["train", "--model", "resnet50v2"], ["run", "--preset", "quick"],
                                     ["reproduce", "--data-dir", "."]])
def test_imagenet_with_an_empty_cache_is_one_line_before_any_work(cache, capsys, command):
    err = one_line_error(capsys, 2, [*command, "--init", "resnet50v2=imagenet"])
    assert FILE_NAME in err and "fusion-sweep weights fetch resnet50v2" in err and f"weights add PATH --as {KEY}" in err
    assert not (cache.parent / "datasets").exists()  # no dataset prepared


def test_the_paper_preset_starts_resnet50v2_from_imagenet(cache, capsys):
    err = one_line_error(capsys, 2, ["reproduce", "--data-dir", "."])
    assert FILE_NAME in err


def test_a_file_that_does_not_fit_names_the_layer(cache, keras_files, capsys):
    resnet_file = keras_files / FILE_NAMES["weights-h5"].format("resnet")  # stops after conv2
    err = one_line_error(capsys, 2, ["train", "--model", "fusion", "--cnn-cut", "none", "--resnet-cut",
                                     "conv3_block1_out", "--init", f"resnet50v2={resnet_file}"])
    assert "'conv3_block1_preact_bn'" in err
    err = one_line_error(capsys, 2, ["run", "--init", f"cnn={resnet_file}"])  # a ResNet file as the CNN
    assert "'block1_conv'" in err
    for bad, words in (("vgg=x.h5", "unknown backbone 'vgg'"), ("cnn=imagenet", "not published for cnn"),
                       ("resnet50v2", "expects BACKBONE=SOURCE"), ("cnn=nope.h5", "no such file")):
        assert words in one_line_error(capsys, 2, ["train", "--init", bad])


def test_a_run_config_loads_its_sources_into_the_model(keras_files):
    """What every trial does: the model of a TrainConfig with init, its ResNet branch loaded from the file and
    scaling its [0, 1] input to [-1, 1]; the row's init_<backbone> columns."""
    import flax.nnx as nnx
    import h5py
    import numpy as np

    from models.spec import FusionSpec
    from sweep.configs.schema import TrainConfig
    from sweep.engine.outcome import init_columns
    from sweep.engine.model_init import init_model, load_init_weights

    path = keras_files / FILE_NAMES["legacy-notop"].format("resnet")
    config = TrainConfig(model="fusion", fusion=FusionSpec(cnn_cut="block1_drop", resnet_cut="conv2_block1_out",
                                                           branch_width=4, head_width=4), init={"resnet50v2": str(path)})
    model = nnx.eval_shape(lambda: init_model(config, 2, 32))
    load_init_weights(model, config)
    with h5py.File(path) as f:
        kernel = f["conv2_block1_1_conv"]["conv2_block1_1_conv/kernel"][()]
    np.testing.assert_array_equal(np.asarray(model.resnet.conv2_block1_1_conv.kernel.get_value()), kernel)
    assert (model.resnet.input_scaling, model.cnn.input_scaling) == ("symmetric", "unit")
    assert init_columns(config) == {"init_resnet50v2": hashlib.sha256(path.read_bytes()).hexdigest()[:12],
                                    "init_cnn": "scratch"}
    explicit = config.replace(pipeline=config.pipeline.replace(normalization="unit"))  # a global value wins
    assert nnx.eval_shape(lambda: init_model(explicit, 2, 32)).resnet.input_scaling == "unit"


@pytest.mark.slow  # ~60 s on a loaded 2-core machine: data, compile, one epoch
def test_train_starts_from_a_keras_file_and_records_it(cache, keras_files, tmp_path, capsys):
    """End to end: a fusion whose ResNet branch starts from a Keras-made file; metrics.json says which (the sha256
    prefix) and the run's config keeps the source as given."""
    resnet_file = keras_files / FILE_NAMES["keras"].format("resnet")
    out = tmp_path / "run"
    code = cli.main(["train", "--model", "fusion", "--cnn-cut", "none", "--resnet-cut", "conv2_block1_out",
                     "--branch-width", "4", "--head-width", "4", "--data", "synthetic", "--num-images", "64",
                     "--image-size", "32", "--epochs", "1", "--batch-size", "16", "--init",
                     f"resnet50v2={resnet_file}", "--out", str(out), "--no-progress", "--no-compile-cache"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["init_resnet50v2"] == hashlib.sha256(resnet_file.read_bytes()).hexdigest()[:12]
    assert "init_cnn" not in metrics  # the model has no CNN branch
    config = json.loads(next(out.rglob("config.json")).read_text())
    assert config["init"] == {"resnet50v2": str(resnet_file)} and config["pipeline"]["normalization"] == "auto"
    assert os.path.exists(resnet_file)


def test_a_sweep_checks_files_up_to_its_deepest_cut_and_labels_rows():
    from sweep.init_sources import deepest_cuts, row_init_columns, worker_init

    fusion = {"model": "fusion", "cnn_cut": "block2_drop", "resnet_cut": "conv2_block3_out"}
    deeper = {"model": "fusion", "cnn_cut": None, "resnet_cut": "conv3_block4_2_relu"}
    assert deepest_cuts([fusion, deeper]) == {"cnn": "block2_drop", "resnet50v2": "conv3_block4_2_relu"}
    parent = {"model": "resnet50v2", "cnn_cut": None, "resnet_cut": None}
    assert deepest_cuts([fusion, parent, deeper])["resnet50v2"] is None  # the parent needs the whole backbone
    labels = {"init_cnn": "scratch", "init_resnet50v2": "imagenet"}
    assert row_init_columns({**deeper, "resnet_cut": "conv3_block4_2_relu"}, labels) == \
        {"init_cnn": None, "init_resnet50v2": "imagenet"}
    assert row_init_columns({"model": "cnn", "cnn_cut": "none", "resnet_cut": "none"}, labels) == \
        {"init_cnn": "scratch", "init_resnet50v2": None}
    assert worker_init({"resnet50v2": "imagenet", "cnn": "rel/seed.h5"}) == \
        {"resnet50v2": "imagenet", "cnn": str(Path("rel/seed.h5").resolve())}


def test_the_manifest_records_each_backbones_source_and_scaling(keras_files):
    from sweep.init_sources import branch_scaling, init_record

    path = keras_files / FILE_NAMES["legacy-notop"].format("resnet")
    record = init_record({"resnet50v2": str(path)}, "auto")
    assert record["resnet50v2"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record["resnet50v2"]["path"] == str(path.resolve()) and record["resnet50v2"]["input_scaling"] == "symmetric"
    assert record["cnn"] == {"source": "scratch", "label": "scratch", "path": None, "sha256": None,
                             "input_scaling": "unit"}
    # an explicit global value is applied before the model, to every branch, and recorded as such
    assert init_record({"resnet50v2": str(path)}, "unit")["resnet50v2"]["input_scaling"] == "unit"
    assert set(branch_scaling({"resnet50v2": "imagenet"}, "symmetric").values()) == {"unit"}
