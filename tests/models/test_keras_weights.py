"""Tests for models/keras_weights.py: Keras legacy .h5, Keras 3 .weights.h5 and .keras files into our models."""
from __future__ import annotations

import json
import zipfile

import flax.nnx as nnx
import h5py
import jax.numpy as jnp
import numpy as np
import pytest

from models.cnn import TorresCNN
from models.keras_weights import find_layers, load_keras_weights
from models.resnet_v2 import ResNet50V2
from tests.keras_made import FILE_NAMES, IMAGE_SIZE, LOADER_FORMAT, RESNET_CUTS

# the first test of a session may wait for Keras to make the reference (tens of seconds on a loaded machine;
# cached afterwards in pytest's cache)
pytestmark = pytest.mark.timeout(600)

KERAS_CLASS = {nnx.Conv: "Conv2D", nnx.BatchNorm: "BatchNormalization", nnx.Linear: "Dense"}
CNN_SIZE = 32  # smallest size the CNN's five pools allow: keeps the test model small


def keras_tensors(model) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Layer name -> [(Keras variable name, array)] of a model, random where nnx initialises constants."""
    rng = np.random.default_rng(0)
    out = {}
    for name, module in model.keras_layers().items():
        if isinstance(module, nnx.BatchNorm):
            slots = [("gamma", module.scale), ("beta", module.bias), ("moving_mean", module.mean),
                     ("moving_variance", module.var)]
        else:
            slots = [("kernel", module.kernel), ("bias", module.bias)]
        out[name] = [(var_name, rng.uniform(0.5, 1.5, var.get_value().shape).astype(np.float32))
                     for var_name, var in slots if var is not None]
    return out


def write_legacy(path, tensors, *, full_model: bool) -> None:
    """A Keras 2 style .h5: `weight_names` like `block1_conv/kernel:0`, nested under model_weights/ if full."""
    with h5py.File(path, "w") as f:
        group = f.create_group("model_weights") if full_model else f
        if full_model:
            f.attrs["model_config"] = json.dumps({"class_name": "Sequential"}).encode()
        group.attrs["layer_names"] = [name.encode() for name in ["input_1", *tensors]]
        group.create_group("input_1").attrs["weight_names"] = np.array([], dtype="S1")
        for name, weights in tensors.items():
            layer = group.create_group(name)
            layer.attrs["weight_names"] = [f"{name}/{var}:0".encode() for var, _ in weights]
            for var, value in weights:
                layer[f"{name}/{var}:0"] = value


def write_keras3(path, tensors, classes, *, named: str | None = None) -> None:
    """A Keras 3 .weights.h5: `layers/<class key>/vars/<i>` (class keys as Keras' saving_lib makes them).
    named="attr": a `name` attr on each `vars` group, as Keras 3.15 writes; named="key": keys are the names."""
    used: dict[str, int] = {}
    with h5py.File(path, "w") as f:
        f.create_group("vars")
        f.create_group("layers/input_layer/vars")
        for name, weights in tensors.items():
            base = classes[name]
            used[base] = used.get(base, -1) + 1
            key = name if named == "key" else (base if used[base] == 0 else f"{base}_{used[base]}")
            group = f.create_group(f"layers/{key}/vars")
            if named == "attr":
                group.attrs["name"] = name
            for i, (_, value) in enumerate(weights):
                group[str(i)] = value
        f.create_group("optimizer/vars")


def snake(class_name: str) -> str:
    return {"Conv2D": "conv2d", "BatchNormalization": "batch_normalization", "Dense": "dense"}[class_name]


def cnn_classes(model) -> dict[str, str]:
    return {name: snake(KERAS_CLASS[type(module)]) for name, module in model.keras_layers().items()}


def assert_loaded(model, tensors) -> None:
    modules = model.keras_layers()
    for name, weights in tensors.items():
        module, expected = modules[name], dict(weights)
        got = {"kernel": getattr(module, "kernel", None), "bias": module.bias,
               "gamma": getattr(module, "scale", None), "moving_mean": getattr(module, "mean", None),
               "moving_variance": getattr(module, "var", None), "beta": module.bias}
        for var_name, value in expected.items():
            np.testing.assert_array_equal(np.asarray(got[var_name].get_value()), value, err_msg=f"{name}/{var_name}")


def cnn(**kwargs) -> TorresCNN:
    return TorresCNN(image_size=CNN_SIZE, rngs=nnx.Rngs(0), **kwargs)


# ---------------------------------------------------------------- a file Keras wrote (tests/keras_made.py)

@pytest.fixture(scope="module")
def fixture_files(keras_files):
    """ResNet50V2's first stage built by Keras's own code at 32 px (BatchNorm statistics away from 0/1), in the
    legacy layout of Keras's published files, and Keras's outputs for an input in [-1, 1]."""
    outputs = dict(np.load(keras_files / "outputs.npz"))
    return keras_files / FILE_NAMES["legacy-notop"].format("resnet"), {
        "input": outputs["x"], **{cut: outputs[f"resnet_{cut}"] for cut in RESNET_CUTS}}


@pytest.mark.parametrize("cut", RESNET_CUTS)
def test_fixture_reproduces_keras_outputs(fixture_files, cut):
    weights, outputs = fixture_files
    model = ResNet50V2(cut=cut, image_size=IMAGE_SIZE, rngs=nnx.Rngs(0))
    report = load_keras_weights(model, weights)
    model.eval()
    got = np.asarray(nnx.jit(lambda m, x: m(x))(model, jnp.asarray(outputs["input"])))  # jit: faster than eager
    assert got.shape == outputs[cut].shape
    assert np.abs(got - outputs[cut]).max() < 1e-4 * np.abs(outputs[cut]).max()
    assert report.format == "legacy-h5" and not report.missing
    assert "conv1_conv" in report.loaded and "conv2_block3_2_bn" in report.loaded
    assert ("conv2_block3_3_conv" in report.unused) == (cut == "conv2_block3_2_relu")


def test_fixture_into_uncut_model_needs_strict_false(fixture_files):
    weights, _ = fixture_files
    model = nnx.eval_shape(lambda: ResNet50V2(head="gap", image_size=IMAGE_SIZE, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="conv3_block1_preact_bn") as err:
        load_keras_weights(model, weights)
    assert "(256,)" in str(err.value)  # the missing layer's model shapes
    report = load_keras_weights(model, weights, strict=False)
    assert len(report.loaded) == 20 and "post_bn" in report.missing and "predictions" in report.missing
    with h5py.File(weights) as f:
        kernel = next(f["conv1_conv"][name][()] for name in _weight_names(f["conv1_conv"]) if "kernel" in name)
    np.testing.assert_array_equal(np.asarray(model.conv1_conv.kernel.get_value()), kernel)


def _weight_names(group) -> list[str]:
    return [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["weight_names"]]


def test_find_layers_lists_names_and_shapes(fixture_files):
    layers = find_layers(fixture_files[0])
    assert layers["conv1_conv"] == ((7, 7, 3, 64), (64,))
    assert layers["conv2_block3_3_conv"] == ((1, 1, 64, 256), (256,))
    assert len(layers) == 20  # layers without weights (pads, relus, adds) are not listed


def fixture_as_keras3(fixture_path, out_path) -> None:
    """Rewrite the fixture in Keras 3 .weights.h5 form, keys by class in the fixture's own Keras layer order."""
    classes = {"kernel": "conv2d", "gamma": "batch_normalization"}
    with h5py.File(fixture_path) as f:
        tensors = {}
        for name in f.attrs["layer_names"]:
            name = name.decode() if isinstance(name, bytes) else str(name)
            weight_names = _weight_names(f[name])
            if weight_names:
                tensors[name] = [(w.split("/")[-1].split(":")[0], f[name][w][()]) for w in weight_names]
    write_keras3(out_path, tensors, {name: classes[w[0][0]] for name, w in tensors.items()})


@pytest.mark.parametrize("cut", ["conv2_block3_2_relu", "conv2_block1_3_conv"])
def test_keras3_class_keys_map_to_names_in_keras_order(fixture_files, tmp_path, cut):
    """conv2_block1_3_conv skips conv2_block1_0_conv (same shape!): keys must follow the full Keras order."""
    weights, outputs = fixture_files
    path = tmp_path / "resnet.weights.h5"
    fixture_as_keras3(weights, path)
    model = ResNet50V2(cut=cut, image_size=IMAGE_SIZE, rngs=nnx.Rngs(0))
    report = load_keras_weights(model, path)
    assert report.format == "keras3-h5" and not report.missing
    with h5py.File(weights) as f:
        kernel = next(f["conv2_block1_3_conv"][n][()] for n in _weight_names(f["conv2_block1_3_conv"]) if "kernel" in n)
    np.testing.assert_array_equal(np.asarray(model.conv2_block1_3_conv.kernel.get_value()), kernel)
    if cut in outputs:
        model.eval()
        got = nnx.jit(lambda m, x: m(x))(model, jnp.asarray(outputs["input"]))
        assert np.abs(np.asarray(got) - outputs[cut]).max() < 1e-4 * np.abs(outputs[cut]).max()


# ---------------------------------------------------------------- files written here, into the CNN

def test_seed_style_legacy_full_model_h5_round_trip(tmp_path):
    source = cnn()
    tensors = keras_tensors(source)
    path = tmp_path / "seed_cnn.h5"
    write_legacy(path, tensors, full_model=True)
    model = cnn()
    report = load_keras_weights(model, path)
    assert len(report.loaded) == 12 and not report.missing and not report.unused
    assert_loaded(model, tensors)


def test_keras3_weights_h5_round_trip_into_cnn(tmp_path):
    model = cnn()
    tensors = keras_tensors(model)  # keras_layers() runs in Keras' order: block1_conv, block1_bn, block2_conv, ...
    path = tmp_path / "cnn.weights.h5"
    write_keras3(path, tensors, cnn_classes(model))
    assert set(find_layers(path)) >= {"conv2d", "conv2d_4", "batch_normalization_4", "dense", "dense_1"}
    report = load_keras_weights(model, path)
    assert report.format == "keras3-h5" and len(report.loaded) == 12
    assert_loaded(model, tensors)
    # a cut CNN takes the layers it has; the rest of the file is not an error
    cut = cnn(cut="block2_bn")
    report = load_keras_weights(cut, path)
    assert report.loaded == ("block1_conv", "block1_bn", "block2_conv", "block2_bn")
    assert "predictions" in report.unused
    assert_loaded(cut, {name: tensors[name] for name in report.loaded})


@pytest.mark.parametrize("named", ["attr", "key"])
def test_keras3_layer_names_in_the_file_win(tmp_path, named):
    model = cnn()
    tensors = dict(reversed(list(keras_tensors(model).items())))  # an order our model would get wrong
    path = tmp_path / "named.weights.h5"
    write_keras3(path, tensors, cnn_classes(model), named=named)
    assert "block1_conv" in find_layers(path)
    load_keras_weights(model, path)
    assert_loaded(model, tensors)


def test_keras_archive_names_layers_from_config(tmp_path):
    """A .keras zip: config.json gives each class key its layer name, whatever the layer order."""
    model = cnn()
    tensors = dict(reversed(list(keras_tensors(model).items())))  # an order our model would get wrong
    classes = cnn_classes(model)
    h5_path = tmp_path / "model.weights.h5"
    write_keras3(h5_path, tensors, classes)
    class_names = {"conv2d": "Conv2D", "batch_normalization": "BatchNormalization", "dense": "Dense"}
    config = {"class_name": "Sequential", "config": {"name": "seed_cnn", "layers": [
        {"class_name": class_names[classes[name]], "config": {"name": name}} for name in tensors]}}
    archive = tmp_path / "seed_cnn.keras"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("metadata.json", "{}")
        zf.write(h5_path, "model.weights.h5")
    report = load_keras_weights(model, archive)
    assert report.format == "keras-archive" and len(report.loaded) == 12
    assert_loaded(model, tensors)


# ---------------------------------------------------------------- errors and options

def test_missing_layer_names_the_layer(tmp_path):
    tensors = keras_tensors(cnn())
    del tensors["block3_bn"]
    path = tmp_path / "partial.h5"
    write_legacy(path, tensors, full_model=False)
    with pytest.raises(ValueError, match=r"block3_bn.*\(128,\)"):
        load_keras_weights(cnn(), path)
    model = cnn()
    report = load_keras_weights(model, path, strict=False)
    assert report.missing == ("block3_bn",)
    np.testing.assert_array_equal(np.asarray(model.block3_bn.scale.get_value()), 1.0)  # left as initialised


def test_shape_mismatch_names_layer_and_both_shapes(tmp_path):
    tensors = keras_tensors(cnn())
    path = tmp_path / "three_classes.h5"
    write_legacy(path, keras_tensors(cnn(num_classes=3)), full_model=True)
    with pytest.raises(ValueError, match=r"'predictions'.*file \(2048, 3\), model \(2048, 2\)"):
        load_keras_weights(cnn(), path)
    # skip the head to reuse the rest of the weights
    model = cnn()
    report = load_keras_weights(model, path, skip=["predictions"])
    assert report.skipped == ("predictions",) and len(report.loaded) == 11
    assert_loaded(model, {name: w for name, w in tensors.items() if name != "predictions"})


def test_file_layer_unknown_to_uncut_model_is_an_error(tmp_path):
    tensors = keras_tensors(cnn())
    tensors["block6_conv"] = [("kernel", np.zeros((3, 3, 512, 512), np.float32))]
    path = tmp_path / "extra.h5"
    write_legacy(path, tensors, full_model=False)
    with pytest.raises(ValueError, match="block6_conv"):
        load_keras_weights(cnn(), path)
    assert load_keras_weights(cnn(), path, strict=False).unused == ("block6_conv",)


def test_bad_files_and_skip_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        load_keras_weights(cnn(), tmp_path / "nope.h5")
    text = tmp_path / "weights.h5"
    text.write_text("not hdf5")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        load_keras_weights(cnn(), text)
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as f:
        f.create_group("something")
    with pytest.raises(ValueError, match="not a Keras weights file"):
        load_keras_weights(cnn(), empty)
    legacy = tmp_path / "ok.h5"
    write_legacy(legacy, keras_tensors(cnn()), full_model=False)
    with pytest.raises(ValueError, match="predictons"):
        load_keras_weights(cnn(), legacy, skip=["predictons"])


# ---------------------------------------------------------------- files Keras itself writes

@pytest.mark.parametrize("fmt", ["weights-h5", "keras", "legacy-full"])
def test_files_written_by_keras_load_into_the_cnn(keras_files, fmt):
    outputs = np.load(keras_files / "outputs.npz")
    model = cnn()
    report = load_keras_weights(model, keras_files / FILE_NAMES[fmt].format("cnn"))
    assert report.format == LOADER_FORMAT[fmt] and len(report.loaded) == 12
    model.eval()
    expected = outputs["cnn_logits"]
    got = np.asarray(nnx.jit(lambda m, x: m(x))(model, jnp.asarray(outputs["x"])))
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max())


def test_keras3_nested_model_layers_are_found(tmp_path):
    """A sub-model's layers sit under layers/<key>/layers/: read whole (names from attrs) or via root=."""
    model = cnn()
    tensors = keras_tensors(model)
    path = tmp_path / "nested.weights.h5"
    with h5py.File(path, "w") as f:
        for name, weights in tensors.items():
            where = "layers" if name in ("dense", "predictions") else "layers/functional/layers"
            group = f.create_group(f"{where}/{name}_key/vars")
            group.attrs["name"] = name
            for i, (_, value) in enumerate(weights):
                group[str(i)] = value
    assert set(find_layers(path)) == set(tensors)
    assert "predictions" not in find_layers(path, root="layers/functional")
    load_keras_weights(model, path)
    assert_loaded(model, tensors)
    with pytest.raises(ValueError, match="root 'layers/nope' is not in"):
        find_layers(path, root="layers/nope")
