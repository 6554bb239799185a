"""Tests for the Keras-application backbones (models/backbones, models/backbone_net.py): counts, cuts, and outputs
equal to keras.applications' for the same weights file and input."""
from __future__ import annotations

import shutil

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.backbone_net import BackboneNet
from models.backbones import BACKBONES, KERAS_BACKBONES, backbone, backbone_param_count, pretrained_scaling
from models.build import scale_input
from models.cuts import KERAS_TYPES
from models.keras_weights import load_keras_weights
from models.profile import count_params, cut_table, profile_model
from models.pretrained import load_backbone
from models.registry import build_model
from tests.keras_made import add_legacy_layer, save

# Keras 3.15's model.summary() at 224x224x3, include_top=False: total, trainable, non-trainable
KERAS_COUNTS = {
    "xception": (20_861_480, 20_806_952, 54_528),
    "densenet121": (7_037_504, 6_953_856, 83_648),
    "mobilenetv2": (2_257_984, 2_223_872, 34_112),
    "efficientnetb0": (4_049_571, 4_007_548, 42_023),
}


@pytest.mark.parametrize("name", KERAS_BACKBONES)
def test_backbone_params_from_the_graph_equal_keras_counts(name):
    total, non_trainable = backbone_param_count(name, image_size=224)
    assert (total, total - non_trainable, non_trainable) == KERAS_COUNTS[name]


@pytest.mark.parametrize("name", KERAS_BACKBONES)
def test_built_backbone_holds_the_params_its_graph_counts(name):
    """The nnx modules (traced only) hold exactly what the graph counts, so profile's two numbers agree."""
    model = nnx.eval_shape(lambda: BackboneNet(name, head=None, image_size=96, rngs=nnx.Rngs(0)))
    assert tuple(count_params(model)) == KERAS_COUNTS[name]


def test_profile_reports_backbone_params_beside_the_model_with_the_seeds_head():
    result = profile_model("mobilenetv2", image_size=224, flops=False, latency=False)
    assert (result["backbone_params"], result["backbone_trainable_params"],
            result["backbone_non_trainable_params"]) == KERAS_COUNTS["mobilenetv2"]
    # the seed's head: Flatten(7x7x1280) -> Dense 2048 -> Dense 2
    head = 7 * 7 * 1280 * 2048 + 2048 + 2048 * 2 + 2
    assert result["params"] == KERAS_COUNTS["mobilenetv2"][0] + head
    assert result["output_shape"] == [1, 2]


@pytest.mark.parametrize("name", KERAS_BACKBONES)
def test_every_layer_is_a_cut_point_and_stages_are_layers(name):
    info = backbone(name)
    rows = cut_table(name, image_size=224)
    names = [row["layer"] for row in rows]
    assert names == [layer.name for layer in info.graph()] and len(set(names)) == len(names)
    assert names[-1] == info.output and rows[-1]["cumulative_params"] == KERAS_COUNTS[name][0]
    assert set(info.stages) <= set(names)
    depth = {n: i for i, n in enumerate(names)}
    assert [depth[s] for s in info.stages] == sorted(depth[s] for s in info.stages)


def test_a_cut_backbone_returns_that_layers_output():
    model = BackboneNet("efficientnetb0", cut="block1a_se_excite", image_size=32, rngs=nnx.Rngs(0))
    model.eval()
    x = jax.random.uniform(jax.random.key(0), (1, 32, 32, 3)) * 255
    features = model.features(x)
    assert model.output_shape == (16, 16, 32) and list(features)[-1] == "block1a_se_excite"
    np.testing.assert_allclose(model(x), features["block1a_se_excite"], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown xception cut 'block2_sepconv9'; closest: block2_sepconv2, block2_sepconv1"):
        BackboneNet("xception", cut="block2_sepconv9", image_size=96, rngs=nnx.Rngs(0))


def test_build_model_gives_a_backbone_the_seeds_head():
    model = nnx.eval_shape(lambda: build_model("densenet121", image_size=64, resnet_head="gap", rngs=nnx.Rngs(0)))
    assert isinstance(model, BackboneNet) and model.output_shape == (2,)
    assert {"dense", "predictions", "conv1_conv", "bn"} <= set(model.keras_layers())


def test_cli_layers_lists_a_new_backbones_cut_points(capsys):
    from sweep.cli import main

    assert main(["layers", "xception", "--image-size", "96"]) == 0
    out = capsys.readouterr().out
    assert "xception at 96x96x3: 132 cut points" in out
    assert "block2_sepconv1" in out and "SeparableConv2D" in out


# ---------------------------------------------------------------- against Keras itself

KERAS_CASES = [  # (backbone, image size): the smallest sizes keras.applications accepts, Xception >= 71
    pytest.param("mobilenetv2", 32, id="mobilenetv2-32"),
    pytest.param("efficientnetb0", 33, id="efficientnetb0-33", marks=pytest.mark.slow),  # odd: other correct_pad
    pytest.param("densenet121", 32, id="densenet121-32", marks=pytest.mark.slow),
    pytest.param("xception", 96, id="xception-96", marks=pytest.mark.slow),
]


@pytest.fixture(scope="module")
def keras(request):
    mp = pytest.MonkeyPatch()
    mp.setenv("KERAS_BACKEND", "jax")  # read at first import only; keras may lack TensorFlow
    request.addfinalizer(mp.undo)
    return pytest.importorskip("keras")


def _randomise_statistics(keras, model, rng) -> None:
    """BatchNorm / Normalization weights away from their 0/1 initial values, so a mix-up shows."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape),
                               rng.normal(0, 0.5, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
        elif isinstance(layer, keras.layers.Normalization):
            mean, var, count = layer.get_weights()
            layer.set_weights([rng.normal(0, 0.5, mean.shape), rng.uniform(0.5, 1.5, var.shape), count])
            layer.finalize_state()


class KerasMade:
    """One keras.applications backbone Keras built (include_top=False, statistics randomised) and saved in three
    layouts, with pixels in [0, 255] and Keras's output on its own preprocess_input of them."""

    def __init__(self, keras, folder, name: str, size: int):
        info = backbone(name)
        keras.backend.clear_session()  # Keras' automatic names (conv2d, add_3, ...) as in a fresh session
        self.source = getattr(keras.applications, info.keras_app)(include_top=False, weights=None,
                                                                  input_shape=(size, size, 3))
        _randomise_statistics(keras, self.source, np.random.default_rng(0))
        self.pixels = np.random.default_rng(1).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
        self.preprocess = getattr(keras.applications, info.keras_module).preprocess_input
        self.expected = np.asarray(self.source(self.preprocess(self.pixels.copy()), training=False))
        self.path, self.legacy, self.notop = (folder / f"{name}{suffix}" for suffix in (".weights.h5", ".h5",
                                                                                          "_notop.h5"))
        self.source.save_weights(self.path)
        self.source.save(self.legacy)  # legacy HDF5 full model
        save(self.source, self.notop, "legacy-notop")  # the layout of keras.applications' imagenet files

    def at(self, layer: str) -> np.ndarray:
        """Keras's output at `layer` for the same pixels."""
        import keras

        cut = keras.Model(self.source.inputs, self.source.get_layer(layer).output)
        return np.asarray(cut(self.preprocess(self.pixels.copy()), training=False))


@pytest.fixture(scope="module")
def keras_made(keras, tmp_path_factory):
    """KerasMade(name, size), made once per module."""
    made = {}

    def make(name: str, size: int) -> KerasMade:
        if (name, size) not in made:
            made[name, size] = KerasMade(keras, tmp_path_factory.mktemp(name), name, size)
        return made[name, size]

    return make


def close_to(got, expected) -> None:
    """CONTRACT.md "Pretrained backbones": to 1e-4 of the output's largest magnitude."""
    got = np.asarray(got)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("name,size", KERAS_CASES)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras' own, under numpy 2
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_outputs_equal_keras_applications_for_the_same_weights(keras_made, name, size):
    """Keras builds the application (include_top=False), saves .weights.h5; ours loads it and, on the same
    pixels scaled as our InputScaling data says, gives Keras' output on keras' own preprocess_input."""
    info = backbone(name)
    made = keras_made(name, size)
    assert [layer.name for layer in made.source.layers] == [layer.name for layer in info.graph()]
    assert [type(layer).__name__ for layer in made.source.layers] == \
        [KERAS_TYPES[layer.kind] for layer in info.graph()]

    model = BackboneNet(name, head=None, image_size=size, rngs=nnx.Rngs(0))
    report = load_keras_weights(model, made.path)
    assert len(report.loaded) == len(model.keras_layers())
    model.eval()
    scaling = info.input_scaling
    x = made.pixels * np.float32(scaling.scale) + np.float32(scaling.offset)
    graphdef, state = nnx.split(model)
    forward = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))
    close_to(forward(state, jnp.asarray(x)), made.expected)

    # load_backbone (CONTRACT.md "Pretrained backbones") on every layout
    for file, fmt in ((made.path, "keras3-h5"), (made.legacy, "legacy-h5"), (made.notop, "legacy-h5")):
        loaded = load_backbone(name, file, size)
        assert loaded.report.format == fmt and loaded.scaling == pretrained_scaling(name)
        close_to(loaded(x), made.expected)
    # `auto` from a Keras file: the branch's own scaling of [0, 1] images is Keras's preprocess_input of the pixels
    unit = made.pixels / np.float32(255)
    np.testing.assert_allclose(np.asarray(scale_input(jnp.asarray(unit), pretrained_scaling(name))),
                               made.preprocess(made.pixels.copy()), rtol=1e-5, atol=1e-5)
    inside = BackboneNet(name, head=None, image_size=size, input_scaling=pretrained_scaling(name), rngs=nnx.Rngs(1))
    load_keras_weights(inside, made.notop)
    inside.eval()
    close_to(nnx.jit(lambda m, x: m(x))(inside, jnp.asarray(unit)), made.expected)


@pytest.mark.slow  # Keras builds EfficientNetB0 twice (tens of seconds)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_efficientnet_from_imagenet_is_the_graph_keras_builds_with_imagenet_weights(keras_made, monkeypatch):
    """weights="imagenet" makes Keras add `rescaling_1`; `load_backbone(..., "imagenet")` and `--init
    efficientnetb0=imagenet` build that graph. Keras's download is replaced by a file Keras wrote (no network),
    and so is the cache lookup (its MD5 is not the published one)."""
    import keras
    from keras.src.applications import efficientnet

    import models.pretrained as pretrained

    made = keras_made("efficientnetb0", 33)
    monkeypatch.setattr(efficientnet.file_utils, "get_file", lambda *args, **kwargs: str(made.notop))
    keras.backend.clear_session()
    source = keras.applications.EfficientNetB0(include_top=False, weights="imagenet", input_shape=(33, 33, 3))
    assert "rescaling_1" in [layer.name for layer in source.layers]
    expected = np.asarray(source(made.pixels, training=False))  # preprocess_input does nothing for EfficientNet
    assert np.abs(expected - made.expected).max() > 1e-3 * np.abs(expected).max()  # the extra layer matters

    monkeypatch.setattr(pretrained, "resolve", lambda backbone, source, cache_dir: made.notop)
    loaded = load_backbone("efficientnetb0", "imagenet", 33, cache_dir="unused")
    assert loaded.scaling == "pixels"
    close_to(loaded(made.pixels), expected)

    from sweep.init_sources import published_backbones

    assert published_backbones({"efficientnetb0": "imagenet", "mobilenetv2": "x.h5"}) == ("efficientnetb0",)
    model = build_model("efficientnetb0", image_size=33, input_scaling={"efficientnetb0": "pixels"},
                        imagenet=("efficientnetb0",), rngs=nnx.Rngs(0))
    assert "rescaling_1" in [layer.name for layer in model.graph]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_init_takes_a_keras_file_for_any_backbone_into_both_branches(keras_made):
    """`--init mobilenetv2=FILE` on a fusion of MobileNetV2 twice: checked up to the deepest cut, loaded into both
    branches, each scaling [0, 1] images as preprocess_input does ('auto'), giving Keras's output at its cut."""
    from models.fusion import FusionNet
    from models.pretrained import load_sources, materialise
    from models.spec import FusionSpec
    from sweep import UsageError
    from sweep.init_sources import branch_scaling, check_init, init_labels, parse_init, row_init_columns

    made = keras_made("mobilenetv2", 32)
    init = parse_init([f"mobilenetv2={made.notop}"], {})
    trial = {"model": "fusion", "cnn_cut": "block_2_add", "resnet_cut": "block_5_add", "backbone_a": "mobilenetv2",
             "backbone_b": "mobilenetv2"}
    check_init(init, [trial])
    with pytest.raises(UsageError, match=r"--init xception=.*does not fit xception: layer 'block1_conv1'"):
        check_init({"xception": str(made.notop)}, None)
    deeper = made.notop.with_name("deeper_notop.h5")  # a layer MobileNetV2 lacks (blocks 0..16): another network's
    shutil.copyfile(made.notop, deeper)
    add_legacy_layer(deeper, "block_17_project", (1, 1, 960, 320))
    with pytest.raises(UsageError, match="the file has a layer 'block_17_project' that mobilenetv2 lacks"):
        check_init({"mobilenetv2": str(deeper)}, [trial])
    labels = init_labels(init)
    assert row_init_columns(trial, labels)["init_mobilenetv2"] == labels["init_mobilenetv2"] != "scratch"
    assert row_init_columns(trial, labels)["init_cnn"] is None
    scaling = branch_scaling(init, "auto")
    assert scaling["mobilenetv2"] == "symmetric" and scaling["xception"] == "unit"  # scratch: [0, 1]

    spec = FusionSpec.of("mobilenetv2", "mobilenetv2", "block_2_add", "block_5_add", image_size=32,
                         branch_width=4, head_width=4)
    model = nnx.eval_shape(lambda: FusionNet(spec, input_scaling=scaling, rngs=nnx.Rngs(0)))
    reports = load_sources(model, {"mobilenetv2": made.notop})
    assert set(reports) == {"a/mobilenetv2", "b/mobilenetv2"}
    materialise(model)
    model.eval()
    got = nnx.jit(lambda m, x: m.b(x))(model, jnp.asarray(made.pixels / 255))
    close_to(got, made.at("block_5_add"))


def test_every_backbone_but_resnet50v2_has_a_keras_case():
    assert {case.values[0] for case in KERAS_CASES} == set(KERAS_BACKBONES) and "resnet50v2" in BACKBONES


# ---------------------------------------------------------------- fusing any two backbones

def test_any_two_backbones_fuse_with_the_params_their_graphs_count():
    from models.fusion import FusionNet
    from models.param_count import param_count
    from models.profile import output_shape
    from models.spec import FusionSpec

    spec = FusionSpec.of("xception", "mobilenetv2", "add_1", "block_5_add", image_size=96, branch_width=8,
                         head_width=16)
    assert spec.label == "xception:add_1+mobilenetv2:block_5_add/b8/h16"
    assert (spec.cnn_branch_activation, spec.resnet_branch_activation) == ("linear", "linear")
    model = nnx.eval_shape(lambda: FusionNet(spec, rngs=nnx.Rngs(0)))
    assert tuple(count_params(model))[::2] == param_count(spec)
    assert output_shape(model, (2, 96, 96, 3)) == (2, 2)
    assert FusionSpec().label == "cnn:block3_drop+rn:conv3_block4_2_relu/b2048/h2048"  # the seed pair's form


def test_the_same_backbone_twice_is_named_a_and_b():
    from models.fusion import FusionNet
    from models.spec import FusionSpec

    spec = FusionSpec.of("mobilenetv2", "mobilenetv2", "block_2_add", "block_5_add", image_size=32,
                         branch_width=4, head_width=4)
    model = nnx.eval_shape(lambda: FusionNet(spec, rngs=nnx.Rngs(0)))
    layers = model.keras_layers()
    assert {"a/Conv1", "b/Conv1", "b/block_5_project", "a_branch", "b_branch"} <= set(layers)
    assert "a/block_5_project" not in layers
    with pytest.raises(ValueError, match="backbone_b must be one of cnn, resnet50v2, xception"):
        FusionNet(FusionSpec.of("cnn", "xcepton", "block1_drop", "add"), rngs=nnx.Rngs(0))


@pytest.mark.parametrize("name", ["cnn", *BACKBONES])
def test_default_cuts_are_stage_outputs_spread_over_the_depth(name):
    from models.backbones import default_cuts, graph_of

    names = [layer.name for layer in graph_of(name)]
    cuts = default_cuts(name)
    assert len(cuts) == 3 and len(set(cuts)) == 3
    depths = [names.index(cut) / (len(names) - 1) for cut in cuts]
    assert depths == sorted(depths) and depths[0] < 0.5 < depths[-1]
