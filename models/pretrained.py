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

from models.cuts import infer_shapes, needed_layers
from models.graphs import cnn_graph, head_graph, resnet50v2_graph
from models.weights_store import PUBLISHED, published, resolve

BACKBONES = ("cnn", "resnet50v2")
SCRATCH = "scratch"
# the last layer of each backbone without its head (what Keras's include_top=False returns)
BACKBONE_OUTPUT = {"cnn": "block5_drop", "resnet50v2": "post_relu"}
# names of layers that belong to a backbone (a file layer named so but absent from the backbone is a mismatch)
_BACKBONE_NAME = {"cnn": re.compile(r"block\d+_(conv|bn)"),
                  "resnet50v2": re.compile(r"conv\d+_(conv|bn)|conv\d+_block\d+_\w+|post_bn")}
# the input range each kind of file was trained on: keras.applications' ResNetV2 files take [-1, 1]; the seed's CNN
# notebook rescaled pixels by 1/255 ([0, 1])
_FILE_SCALING = {"cnn": "unit", "resnet50v2": "symmetric"}


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

def backbone_layers(backbone: str) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Weighted layer name -> Keras weight shapes, for the whole backbone without its head, in Keras order."""
    check_backbone(backbone)
    graph = cnn_graph() if backbone == "cnn" else resnet50v2_graph()
    graph = needed_layers(graph, BACKBONE_OUTPUT[backbone])
    shapes = infer_shapes(graph, 256, 3, backbone)
    out = {}
    for layer in graph:
        channels = shapes[layer.inputs[0]][-1] if layer.inputs else 3
        if layer.kind == "conv":
            kernel = (layer.kernel, layer.kernel, channels, layer.features)
            out[layer.name] = (kernel, (layer.features,)) if layer.use_bias else (kernel,)
        elif layer.kind == "bn":
            out[layer.name] = ((channels,),) * 4
    return out


def layers_up_to(backbone: str, cut: str | None) -> tuple[str, ...]:
    """The backbone's weighted layers a model cut at `cut` uses (None: the whole backbone)."""
    own = backbone_layers(backbone)
    if cut is None:
        return tuple(own)
    graph = cnn_graph() if backbone == "cnn" else resnet50v2_graph()
    return tuple(layer.name for layer in needed_layers(graph, cut) if layer.name in own)


def _saved_order(backbone: str) -> list[str]:
    """The weighted layers of the full Keras model in Keras order (names Keras 3's class-based keys by position)."""
    graph = cnn_graph() if backbone == "cnn" else resnet50v2_graph() + head_graph("flatten", 2)
    return [layer.name for layer in graph if layer.kind in ("conv", "bn", "dense")]


def check_file(backbone: str, path: str | os.PathLike, needed: tuple[str, ...] | None = None) -> None:
    """ValueError naming the first layer where the file does not fit the backbone: a backbone layer (of `needed`,
    default all) it lacks or holds with other shapes, or a backbone-named layer the backbone does not have."""
    from models.keras_weights import find_layers  # h5py and JAX load here, not at import

    expected = backbone_layers(backbone)
    try:
        layers = find_layers(path, order=_saved_order(backbone))
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
        if name not in expected and _BACKBONE_NAME[backbone].fullmatch(name):
            raise ValueError(f"{path} does not fit {backbone}: the file has a layer {name!r} that {backbone} lacks "
                             "(a file of another network or depth?)")


# ---------------------------------------------------------------- loading into built models

def backbone_modules(model) -> dict[str, object]:
    """Backbone name -> the module of `model` that is that backbone (cut or whole, maybe with its head)."""
    from models.cnn import TorresCNN
    from models.fusion import FusionNet
    from models.resnet_v2 import ResNet50V2

    if isinstance(model, FusionNet):
        return {name: module for name, module in (("cnn", model.cnn), ("resnet50v2", model.resnet))
                if module is not None}
    if isinstance(model, TorresCNN):
        return {"cnn": model}
    if isinstance(model, ResNet50V2):
        return {"resnet50v2": model}
    raise TypeError(f"cannot tell the backbones of a {type(model).__name__}")


def load_sources(model, paths: Mapping[str, str | os.PathLike | None]) -> dict[str, object]:
    """Copy each backbone's weights from its file (`paths`: backbone -> file, None for scratch) into `model`, up
    to the backbone's cut; its head and every layer past the cut stay as built. Backbones the model lacks are
    skipped. Returns backbone -> keras_weights.LoadReport. ValueError naming the first layer that does not fit."""
    from models.keras_weights import load_keras_weights

    reports = {}
    for backbone, module in backbone_modules(model).items():
        path = paths.get(backbone)
        if path is None:
            continue
        own = backbone_layers(backbone)
        used = tuple(name for name in module.keras_layers() if name in own)
        check_file(backbone, path, needed=used)
        head = [name for name in module.keras_layers() if name not in own]
        reports[backbone] = load_keras_weights(module, path, strict=False, skip=head)
        if reports[backbone].missing:  # check_file saw them; a loader that disagrees must not go on
            raise ValueError(f"{path}: layer {reports[backbone].missing[0]!r} of {backbone} was not loaded")
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
    """A callable backbone `name` (resnet50v2, cnn) with the weights of a Keras file (legacy .h5, .weights.h5 or
    .keras; a full model's head is ignored) or a published source (`imagenet`, read from `cache_dir`, the folder
    `fusion-sweep weights` fills). Its output equals the Keras application's `include_top=False` output for the
    same file and the same already-scaled input. `cut`: stop at that layer (the file then needs only the layers
    up to it)."""
    import flax.nnx as nnx

    from models.cnn import TorresCNN
    from models.resnet_v2 import ResNet50V2

    source = os.fspath(weights)
    path = source_path(name, source, cache_dir)
    if path is None:
        raise ValueError(f"load_backbone({name!r}, 'scratch'): name a Keras file or a published source")
    last = cut or BACKBONE_OUTPUT[name]
    if name == "cnn":
        build = lambda: TorresCNN(cut=last, image_size=image_size, channels=channels, rngs=nnx.Rngs(0))  # noqa: E731
    else:
        build = lambda: ResNet50V2(cut=last, image_size=image_size, channels=channels, rngs=nnx.Rngs(0))  # noqa: E731
    module = nnx.eval_shape(build)  # shapes only: every weight comes from the file
    report = load_sources(module, {name: path})[name]
    unset = [n for n, m in module.keras_layers().items() if n not in report.loaded]
    if unset:
        raise ValueError(f"{path}: layer {unset[0]!r} of {name} was not loaded")
    materialise(module)
    module.eval()
    return Backbone(module, path, expected_scaling(name, source), report)
