"""Where a backbone's starting weights come from (`scratch`, `imagenet`, a Keras file), checked before any work, and
load_backbone: a backbone with a Keras file's weights, computing what the Keras application computes.

A source file holds the backbone: a notop file (keras.applications' layout), a full model whose head is ignored, or
a cut one that still reaches the layers asked for. Every backbone layer a model uses must come from the file with
Keras's shapes, so a layer never silently stays random; file layers named like backbone layers that the backbone
lacks (another depth's file) are an error too. Importing this module loads no JAX; loading weights does.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

from models.backbones import BACKBONES as KERAS_APPLICATIONS
from models.backbones import pretrained_scaling
from models.cuts import WEIGHTED_KINDS, Layer, infer_shapes, needed_layers
from models.graphs import cnn_graph, head_graph
from models.weights_store import PUBLISHED, published, resolve

BACKBONES = ("cnn", *KERAS_APPLICATIONS)  # the seed's CNN, ResNet50V2 and the other keras.applications backbones
SCRATCH = "scratch"
# the last layer of each backbone without its head (what Keras's include_top=False returns)
BACKBONE_OUTPUT = {"cnn": "block5_drop", **{name: app.output for name, app in KERAS_APPLICATIONS.items()}}
# names of layers that belong to a backbone (a file layer named so but absent from the backbone is a mismatch)
_BACKBONE_NAME = {"cnn": re.compile(r"block\d+_(conv|bn)"),
                  "resnet50v2": re.compile(r"conv\d+_(conv|bn)|conv\d+_block\d+_\w+|post_bn")}
# the input range each kind of file was trained on: keras.applications' files take what the application's
# preprocess_input makes (ResNetV2's [-1, 1], ...); the seed's CNN notebook rescaled pixels by 1/255 ([0, 1])
_FILE_SCALING = {"cnn": "unit", **{name: pretrained_scaling(name) for name in KERAS_APPLICATIONS}}


def check_backbone(name: str) -> None:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")


def source_kind(backbone: str, source: str) -> str:
    """'scratch', 'published' (e.g. imagenet) or 'file'. ValueError for a published name the backbone lacks."""
    check_backbone(backbone)
    if source == SCRATCH:
        return "scratch"
    if f"{backbone}:{source}" in PUBLISHED:
        return "published"
    if any(source == w.source for w in PUBLISHED.values()) or not source.strip():
        offers = [w.source for w in PUBLISHED.values() if w.backbone == backbone]
        raise ValueError(f"{backbone}={source!r}: choose scratch, a Keras file"
                         + (f" or {', '.join(offers)}" if offers else f" ({source!r} is not published for {backbone})"))
    return "file"


def expected_scaling(backbone: str, source: str) -> str:
    """The input scaling (models.cuts.INPUT_SCALINGS) the weights of `source` expect: from scratch [0, 1]."""
    kind = source_kind(backbone, source)
    if kind == "scratch":
        return "unit"
    if kind == "published":
        return published(backbone, source).scaling
    return _FILE_SCALING[backbone]


def source_path(backbone: str, source: str, cache_dir: str | os.PathLike | None) -> Path | None:
    """The file of a source (None for scratch): a published one from `cache_dir`, hash-checked (WeightsError when
    absent or damaged), else the path itself (ValueError when there is no such file)."""
    kind = source_kind(backbone, source)
    if kind == "scratch":
        return None
    if kind == "published":
        if cache_dir is None:
            raise ValueError(f"{backbone}={source} is read from a weights cache folder: pass cache_dir")
        return resolve(backbone, source, cache_dir)
    path = Path(source).expanduser()
    if not path.is_file():
        raise ValueError(f"{backbone}={source}: no such file (expected a Keras .h5, .weights.h5 or .keras file, "
                         f"scratch or imagenet)")
    return path


# ---------------------------------------------------------------- what a file must hold

def _graph(backbone: str) -> tuple[Layer, ...]:
    return cnn_graph() if backbone == "cnn" else KERAS_APPLICATIONS[backbone].graph()


def keras_weight_shapes(layer: Layer, channels: int) -> tuple[tuple[int, ...], ...]:
    """The shapes of a weighted layer's Keras variables, in Keras order, given its input channels."""
    k, bias = layer.kernel, ((layer.features,),) if layer.use_bias else ()
    if layer.kind in ("conv", "dense"):
        return ((k, k, channels, layer.features) if layer.kind == "conv" else (channels, layer.features),) + bias
    if layer.kind == "bn":
        return ((channels,),) * 4
    if layer.kind == "dwconv":
        return ((k, k, channels, 1),) + (((channels,),) if layer.use_bias else ())
    if layer.kind == "sepconv":
        return ((k, k, channels, 1), (1, 1, channels, layer.features)) + bias
    return ((channels,), (channels,), ())  # norm: mean, variance, count


def backbone_layers(backbone: str) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Weighted layer name -> Keras weight shapes, for the whole backbone without its head, in Keras order."""
    check_backbone(backbone)
    graph = needed_layers(_graph(backbone), BACKBONE_OUTPUT[backbone])
    shapes = infer_shapes(graph, 256, 3, backbone)
    return {layer.name: keras_weight_shapes(layer, shapes[layer.inputs[0]][-1] if layer.inputs else 3)
            for layer in graph if layer.kind in WEIGHTED_KINDS}


def layers_up_to(backbone: str, cut: str | None) -> tuple[str, ...]:
    """The backbone's weighted layers a model cut at `cut` uses (None: the whole backbone)."""
    own = backbone_layers(backbone)
    if cut is None:
        return tuple(own)
    return tuple(layer.name for layer in needed_layers(_graph(backbone), cut) if layer.name in own)


def _saved_order(backbone: str) -> dict[str, str]:
    """The weighted layers of the full Keras model in Keras order, name -> kind (names Keras 3's class-based keys
    by position); keras.applications' other backbones as include_top=False saves them."""
    graph = _graph(backbone) + (head_graph("flatten", 2) if backbone == "resnet50v2" else ())
    return {layer.name: layer.kind for layer in graph if layer.kind in WEIGHTED_KINDS}


def _name_pattern(backbone: str) -> re.Pattern:
    """Names like the backbone's own weighted layers, any block number (a deeper or wider sibling's layers)."""
    if backbone in _BACKBONE_NAME:
        return _BACKBONE_NAME[backbone]
    automatic = re.compile(r"(conv2d|batch_normalization)(_\d+)?")  # Keras's own names: kept as they are
    generalised = {name if automatic.fullmatch(name) else
                   re.sub(r"\d+([a-z](?=_))?", lambda m: r"\d+[a-z]?" if m.group(1) else r"\d+", name)
                   for name in backbone_layers(backbone)}
    return re.compile("|".join(sorted(generalised)))


def check_file(backbone: str, path: str | os.PathLike, needed: tuple[str, ...] | None = None) -> None:
    """ValueError naming the first layer where the file does not fit the backbone: a backbone layer (of `needed`,
    default all) it lacks or holds with other shapes, or a backbone-named layer the backbone does not have."""
    from models.keras_weights import find_layers  # h5py and JAX load here, not at import

    expected = backbone_layers(backbone)
    pattern = _name_pattern(backbone)
    try:
        order = _saved_order(backbone)
        layers = find_layers(path, order=list(order), kinds=order)
    except (OSError, KeyError, RuntimeError) as err:  # a truncated HDF5 file fails while read
        raise ValueError(f"{path}: cannot read it as a Keras weights file ({type(err).__name__}: {err})") from None
    for name in needed if needed is not None else expected:
        if name not in layers:
            raise ValueError(f"{path} does not fit {backbone}: layer {name!r} (shapes {list(expected[name])}) is "
                             f"not in the file ({len(layers)} layers with weights there)")
        if sorted(layers[name]) != sorted(expected[name]):
            raise ValueError(f"{path} does not fit {backbone}: layer {name!r} has shapes {list(layers[name])} in "
                             f"the file, {list(expected[name])} in {backbone}")
    for name in layers:
        if name not in expected and pattern.fullmatch(name):
            raise ValueError(f"{path} does not fit {backbone}: the file has a layer {name!r} that {backbone} lacks "
                             "(a file of another network or depth?)")


# ---------------------------------------------------------------- loading into built models

def backbone_modules(model) -> list[tuple[str, str, object]]:
    """(key, backbone name, module) for each module of `model` that is a backbone (cut or whole, maybe with its
    head); key is the backbone name, or `a/<name>`, `b/<name>` for a fusion of the same backbone twice."""
    from models.backbone_net import BackboneNet
    from models.cnn import TorresCNN
    from models.fusion import FusionNet
    from models.resnet_v2 import ResNet50V2

    if isinstance(model, FusionNet):
        names = (model.spec.backbone_a, model.spec.backbone_b)
        same = names[0] == names[1]
        return [(f"{slot}/{name}" if same else name, name, getattr(model, slot))
                for slot, name in zip(model.slots, names) if getattr(model, slot) is not None]
    if isinstance(model, TorresCNN):
        return [("cnn", "cnn", model)]
    if isinstance(model, ResNet50V2):
        return [("resnet50v2", "resnet50v2", model)]
    if isinstance(model, BackboneNet):
        return [(model.name, model.name, model)]
    raise TypeError(f"cannot tell the backbones of a {type(model).__name__}")


def load_sources(model, paths: Mapping[str, str | os.PathLike | None]) -> dict[str, object]:
    """Copy each backbone's weights from its file (`paths`: backbone -> file, None for scratch) into `model`, up
    to the backbone's cut; its head and every layer past the cut stay as built. Backbones the model lacks are
    skipped; the same backbone twice loads the file into both branches. Returns backbone_modules' key ->
    keras_weights.LoadReport. ValueError naming the first layer that does not fit."""
    from models.keras_weights import load_keras_weights

    reports = {}
    for key, backbone, module in backbone_modules(model):
        path = paths.get(backbone)
        if path is None:
            continue
        own = backbone_layers(backbone)
        used = tuple(name for name in module.keras_layers() if name in own)
        check_file(backbone, path, needed=used)
        head = [name for name in module.keras_layers() if name not in own]
        reports[key] = load_keras_weights(module, path, strict=False, skip=head)
        if reports[key].missing:  # check_file saw them; a loader that disagrees must not go on
            raise ValueError(f"{path}: layer {reports[key].missing[0]!r} of {backbone} was not loaded")
    return reports


def materialise(module) -> None:
    """Give every variable of an nnx.eval_shape'd module that loading left abstract (RNG state, layers no file
    filled) a concrete value: zeros, a fixed key for RNG keys."""
    import flax.nnx as nnx
    import jax
    import jax.numpy as jnp

    def concrete(value):
        if not isinstance(value, jax.ShapeDtypeStruct):
            return value
        if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
            return jax.random.split(jax.random.key(0), value.shape) if value.shape else jax.random.key(0)
        return jnp.zeros(value.shape, value.dtype)

    nnx.update(module, jax.tree.map(concrete, nnx.state(module)))


class Backbone:
    """A backbone with a file's weights in inference mode: `f(x)` -> its include_top=False output, for x float32
    (N, H, W, 3) already scaled as the weights expect (`scaling`)."""

    _forward = None  # one jitted function for all: backbones of the same structure share its compiled program

    def __init__(self, module, path: Path, scaling: str, report):
        self.module, self.path, self.scaling, self.report = module, path, scaling, report

    def __call__(self, x):
        import flax.nnx as nnx
        import jax.numpy as jnp

        if Backbone._forward is None:
            Backbone._forward = nnx.jit(lambda module, x: module(x))
        return Backbone._forward(self.module, jnp.asarray(x, jnp.float32))


def load_backbone(name: str, weights: str | os.PathLike, image_size: int, *,
                  cache_dir: str | os.PathLike | None = None, channels: int = 3, cut: str | None = None) -> Backbone:
    """A callable backbone `name` (any of BACKBONES) with the weights of a Keras file (legacy .h5, .weights.h5 or
    .keras; a full model's head is ignored) or a published source (`imagenet`, read from `cache_dir`, the folder
    `fusion-sweep weights` fills). Its output equals the Keras application's `include_top=False` output for the
    same file and the same already-scaled input. `cut`: stop at that layer (the file then needs only the layers
    up to it)."""
    import flax.nnx as nnx

    from models.backbone_net import BackboneNet
    from models.cnn import TorresCNN
    from models.resnet_v2 import ResNet50V2

    source = os.fspath(weights)
    path = source_path(name, source, cache_dir)
    if path is None:
        raise ValueError(f"load_backbone({name!r}, 'scratch'): name a Keras file or a published source")
    last = cut or BACKBONE_OUTPUT[name]
    if name == "cnn":
        build = lambda: TorresCNN(cut=last, image_size=image_size, channels=channels, rngs=nnx.Rngs(0))  # noqa: E731
    elif name == "resnet50v2":
        build = lambda: ResNet50V2(cut=last, image_size=image_size, channels=channels, rngs=nnx.Rngs(0))  # noqa: E731
    else:
        imagenet = source_kind(name, source) == "published"  # Keras's imagenet graph (EfficientNet's rescaling_1)
        build = lambda: BackboneNet(name, cut=last, image_size=image_size, channels=channels,  # noqa: E731
                                    imagenet=imagenet, rngs=nnx.Rngs(0))
    module = nnx.eval_shape(build)  # shapes only: every weight comes from the file
    report = load_sources(module, {name: path})[name]
    unset = [n for n, m in module.keras_layers().items() if n not in report.loaded]
    if unset:
        raise ValueError(f"{path}: layer {unset[0]!r} of {name} was not loaded")
    materialise(module)
    module.eval()
    return Backbone(module, path, expected_scaling(name, source), report)
