"""Pretrained backbones: files Keras wrote (every format) load into our models and compute what Keras computes; files
that do not fit are refused naming the first layer; the per-branch input scaling follows the weights."""
from __future__ import annotations

import shutil

import flax.nnx as nnx
import h5py
import jax.numpy as jnp
import numpy as np
import pytest

from models.pretrained import (BACKBONE_OUTPUT, check_file, expected_scaling, layers_up_to, load_backbone,
                               load_sources, materialise, source_kind)
from models.registry import build_model
from models.resnet_v2 import ResNet50V2
from models.spec import FusionSpec
from tests.keras_made import FILE_NAMES, FORMATS, IMAGE_SIZE, LOADER_FORMAT, RESNET_CUTS, add_legacy_layer

# the first test of a session may wait for Keras to make the reference (tens of seconds on a loaded machine;
# cached afterwards in pytest's cache)
pytestmark = pytest.mark.timeout(600)

TOLERANCE = 1e-4  # of the output's largest magnitude (CONTRACT.md, "Pretrained backbones")


def close_to_keras(got, expected) -> None:
    got = np.asarray(got)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= TOLERANCE * np.abs(expected).max()


@pytest.fixture(scope="module")
def reference(keras_files):
    return dict(np.load(keras_files / "outputs.npz"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_cnn_file_of_every_format_gives_keras_backbone_output(keras_files, reference, fmt):
    backbone = load_backbone("cnn", keras_files / FILE_NAMES[fmt].format("cnn"), IMAGE_SIZE)
    assert backbone.report.format == LOADER_FORMAT[fmt] and len(backbone.report.loaded) == 10  # 5 convs, 5 BNs
    assert backbone.scaling == "unit"
    close_to_keras(backbone(reference["x"]), reference["cnn_backbone"])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("cut", RESNET_CUTS)
def test_resnet_file_of_every_format_gives_keras_output_at_the_cut(keras_files, reference, fmt, cut):
    """Keras's own ResNetV2 code, first stage: stem, pre-activation blocks, conv and max-pool shortcuts."""
    backbone = load_backbone("resnet50v2", keras_files / FILE_NAMES[fmt].format("resnet"), IMAGE_SIZE, cut=cut)
    assert backbone.report.format == LOADER_FORMAT[fmt] and not backbone.report.missing
    assert backbone.scaling == "symmetric"  # a keras.applications ResNetV2 file takes [-1, 1]
    close_to_keras(backbone(reference["x"]), reference[f"resnet_{cut}"])


def test_batchnorm_statistics_come_through(keras_files):
    model = nnx.eval_shape(lambda: ResNet50V2(cut="conv2_block3_out", image_size=IMAGE_SIZE, rngs=nnx.Rngs(0)))
    load_sources(model, {"resnet50v2": keras_files / FILE_NAMES["legacy-notop"].format("resnet")})
    with h5py.File(keras_files / FILE_NAMES["legacy-notop"].format("resnet")) as f:
        group = f["conv2_block2_1_bn"]
        names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
        stored = {name.split("/")[-1].split(":")[0]: group[name][()] for name in names}
    np.testing.assert_array_equal(np.asarray(model.conv2_block2_1_bn.mean.get_value()), stored["moving_mean"])
    np.testing.assert_array_equal(np.asarray(model.conv2_block2_1_bn.var.get_value()), stored["moving_variance"])
    assert not np.allclose(stored["moving_variance"], 1.0)


def test_fusion_branches_take_their_own_files_and_scaling(keras_files, reference):
    """A fusion takes each branch up to its cut from its backbone's file; with 'auto' scaling the ResNet branch
    maps the [0, 1] input to [-1, 1] itself (what keras.applications' preprocess_input does), the CNN does not."""
    spec = FusionSpec(cnn_cut="block2_drop", resnet_cut="conv2_block3_2_relu", branch_width=4, head_width=4,
                      image_size=IMAGE_SIZE)
    model = nnx.eval_shape(lambda: build_model(spec, input_scaling={"resnet50v2": "symmetric"}, rngs=nnx.Rngs(0)))
    reports = load_sources(model, {"cnn": keras_files / FILE_NAMES["keras"].format("cnn"),
                                   "resnet50v2": keras_files / FILE_NAMES["weights-h5"].format("resnet")})
    assert set(reports) == {"cnn", "resnet50v2"}
    assert reports["cnn"].loaded == ("block1_conv", "block1_bn", "block2_conv", "block2_bn")
    materialise(model)
    model.eval()
    unit = (reference["x"] + 1) / 2  # the images the pipeline gives, in [0, 1]
    resnet_out = nnx.jit(lambda m, x: m.resnet(x))(model, jnp.asarray(unit))
    close_to_keras(resnet_out, reference["resnet_conv2_block3_2_relu"])
    assert model.cnn.input_scaling == "unit" and model.resnet.input_scaling == "symmetric"


def test_sources_and_the_scaling_they_expect():
    assert source_kind("resnet50v2", "imagenet") == "published"
    assert source_kind("cnn", "scratch") == "scratch" and source_kind("cnn", "x.h5") == "file"
    with pytest.raises(ValueError, match="not published for cnn"):
        source_kind("cnn", "imagenet")
    with pytest.raises(ValueError, match="unknown backbone 'vgg16'"):
        source_kind("vgg16", "scratch")
    assert [expected_scaling("resnet50v2", s) for s in ("scratch", "imagenet", "a.h5")] == \
        ["unit", "symmetric", "symmetric"]
    assert expected_scaling("cnn", "seed_cnn.h5") == "unit"
    # each keras.applications backbone from a file: what its preprocess_input makes, for [0, 1] images
    assert [expected_scaling(name, "a.h5") for name in ("xception", "densenet121", "mobilenetv2", "efficientnetb0")] \
        == ["symmetric", "torch", "symmetric", "pixels"]
    assert expected_scaling("densenet121", "scratch") == "unit"
    # a sibling's layers are recognised as the backbone's kind: EfficientNetB1's third block-2 layer, DenseNet169's
    # 25th block of stage 4; Keras's automatic names only as they are
    from models.pretrained import _name_pattern

    assert _name_pattern("efficientnetb0").fullmatch("block2c_expand_conv")
    assert _name_pattern("densenet121").fullmatch("conv4_block25_1_conv")
    assert not _name_pattern("xception").fullmatch("conv2d_9") and not _name_pattern("xception").fullmatch("dense")
    assert layers_up_to("resnet50v2", "pool1_pool") == ("conv1_conv",)
    assert len(layers_up_to("resnet50v2", None)) == 102 and BACKBONE_OUTPUT["resnet50v2"] == "post_relu"


# ---------------------------------------------------------------- files that do not fit

def copy_without(source, target, drop: str) -> None:
    """A legacy file without one layer's group (as if the file were of another network)."""
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as f:
        names = [n if isinstance(n, bytes) else n.encode() for n in f.attrs["layer_names"]]
        names = [n for n in names if n.decode() != drop]
        f.attrs["layer_names"] = names
        del f[drop]


def test_a_missing_layer_is_named(keras_files, tmp_path):
    path = tmp_path / "partial.h5"
    copy_without(keras_files / FILE_NAMES["legacy-notop"].format("resnet"), path, "conv2_block2_preact_bn")
    with pytest.raises(ValueError, match=r"layer 'conv2_block2_preact_bn' \(shapes \[\(256,\)"):
        check_file("resnet50v2", path, needed=layers_up_to("resnet50v2", "conv2_block3_out"))
    model = nnx.eval_shape(lambda: ResNet50V2(cut="conv2_block3_out", image_size=IMAGE_SIZE, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="conv2_block2_preact_bn"):
        load_sources(model, {"resnet50v2": path})


def test_a_file_too_shallow_for_the_cut_names_the_first_layer_it_lacks(keras_files):
    with pytest.raises(ValueError, match="layer 'conv3_block1_preact_bn'"):
        check_file("resnet50v2", keras_files / FILE_NAMES["weights-h5"].format("resnet"),
                   needed=layers_up_to("resnet50v2", "conv3_block1_out"))


def test_wrong_shapes_and_extra_backbone_layers_are_named(keras_files, tmp_path):
    path = tmp_path / "other.h5"
    shutil.copyfile(keras_files / FILE_NAMES["legacy-notop"].format("resnet"), path)
    with h5py.File(path, "r+") as f:
        kernel = "conv1_conv/kernel" if "conv1_conv/kernel" in f["conv1_conv"] else "conv1_conv/kernel:0"
        del f["conv1_conv"][kernel]
        f["conv1_conv"][kernel] = np.zeros((7, 7, 1, 64), np.float32)  # a one-channel network's stem
    with pytest.raises(ValueError, match=r"layer 'conv1_conv' has shapes \[\(7, 7, 1, 64\)"):
        check_file("resnet50v2", path, needed=layers_up_to("resnet50v2", "pool1_pool"))
    extra = tmp_path / "deeper.h5"
    shutil.copyfile(keras_files / FILE_NAMES["legacy-notop"].format("resnet"), extra)
    add_legacy_layer(extra, "conv4_block7_1_conv", (1, 1, 1024, 256))  # ResNet101V2's; ResNet50V2 lacks it
    with pytest.raises(ValueError, match="layer 'conv4_block7_1_conv' that resnet50v2 lacks"):
        check_file("resnet50v2", extra, needed=layers_up_to("resnet50v2", "pool1_pool"))


def test_a_truncated_file_is_one_error(keras_files, tmp_path):
    source = keras_files / FILE_NAMES["legacy-notop"].format("resnet")
    path = tmp_path / "truncated.h5"
    path.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.h5"):
        check_file("resnet50v2", path, needed=layers_up_to("resnet50v2", "conv2_block3_out"))


@pytest.mark.slow  # Keras builds all of ResNet50V2 and writes its ~94 MB notop file (tens of seconds)
def test_the_full_notop_file_gives_keras_resnet50v2_output(tmp_path, monkeypatch):
    """keras.applications.ResNet50V2(include_top=False, weights=None) with BatchNorm statistics away from 0/1, its
    weights in the published files' layout, registered as `imagenet` and read back through load_backbone."""
    import dataclasses
    import hashlib

    from models import weights_store
    from tests import keras_made

    keras = keras_made.keras()
    source = keras.applications.ResNet50V2(include_top=False, weights=None, input_shape=(64, 64, 3))
    keras_made.randomise_batchnorm(source)
    x = np.random.default_rng(5).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    expected = keras_made.outputs(source, x)
    path = tmp_path / "notop.h5"
    keras_made.save(source, path, "legacy-notop")
    assert path.stat().st_size > 90 * 2**20
    key = "resnet50v2:imagenet"
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setitem(weights_store.PUBLISHED, key, dataclasses.replace(weights_store.PUBLISHED[key], md5=md5))
    cache = tmp_path / "weights"
    weights_store.add(path, key, cache)
    backbone = load_backbone("resnet50v2", "imagenet", 64, cache_dir=cache)
    assert len(backbone.report.loaded) == 102 and backbone.scaling == "symmetric"
    close_to_keras(backbone(x), expected)
