"""Load Keras weights (legacy .h5, Keras 3 .weights.h5 and .keras) into our NNX models by Keras layer name.

Supported files (checked against files written by Keras 3.15 itself):
- legacy HDF5 (`model.save_weights("x.h5")` in Keras 2 / `keras.applications` weight files such as
  `resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5`): root attr `layer_names`, one group per layer
  with attr `weight_names` (`conv1_conv/kernel:0` in Keras 2, `conv1_conv/kernel` in Keras 3); a nested
  model's group holds all its layers' weights, each weight name naming its own layer;
- a legacy full-model .h5 (`model.save("x.h5")`): the same under `model_weights/`;
- Keras 3 `.weights.h5` (`saving_lib.H5IOStore`): `layers/<key>/vars/0, 1, ...`, nested models under
  `layers/<key>/layers/...`. Keras makes <key> from the layer's CLASS (`conv2d`, `conv2d_1`,
  `batch_normalization`, `dense_1`, ...); recent Keras (3.15) also puts the layer's name in a `name` attr
  on `vars`;
- a Keras 3 `.keras` archive (zip of config.json + model.weights.h5): its config names every key.

A Keras 3 key is matched to a layer name, in this order: a `name` attr on `vars`; the `.keras` config; the
key itself when the keys are layer names; else the n-th key of a class is the n-th layer of that class in
the saved model's layer order: `order=` if given, by default the full Keras graph of our ResNet50V2 /
TorresCNN (right for files of the full Keras models), else the model's own `keras_layers()` order.
`root='layers/<key>'` reads one sub-model of a Keras 3 file.
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import io
import json
import os
import re
import zipfile
from typing import Iterable, Mapping, Sequence

import h5py
import numpy as np

from models.graphs import cnn_graph, head_graph, resnet50v2_graph

# Keras 3 H5IOStore key base for each nnx module type / cuts.Layer kind (keras.src.utils.naming.to_snake_case).
# Reading a file (find_layers) loads no JAX: flax and jax load when weights are copied into a model.
_CLASS_KEY_NAMES = {"Conv": "conv2d", "BatchNorm": "batch_normalization", "Linear": "dense",
                    "DepthwiseConv": "depthwise_conv2d", "SeparableConv": "separable_conv2d",
                    "Normalization": "normalization"}
_KIND_KEY = {"conv": "conv2d", "bn": "batch_normalization", "dense": "dense", "dwconv": "depthwise_conv2d",
             "sepconv": "separable_conv2d", "norm": "normalization"}
_KERAS3_WEIGHTS_IN_ARCHIVE = "model.weights.h5"


@dataclasses.dataclass(frozen=True)
class FileLayer:
    """One layer's weights in a file: (variable name or None when only the position is known, dataset).
    `key`: where Keras 3 stored it (`conv2d_3`); name == key while no better name is known."""

    name: str
    weights: tuple[tuple[str | None, h5py.Dataset], ...]
    key: str = ""

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(ds.shape) for _, ds in self.weights)


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What load_keras_weights did: layers loaded, skipped on request, absent from the file, unused in the file."""

    path: str
    format: str  # "legacy-h5" | "keras3-h5" | "keras-archive"
    loaded: tuple[str, ...]
    skipped: tuple[str, ...]
    missing: tuple[str, ...]  # model layers the file lacks (only when strict=False)
    unused: tuple[str, ...]  # file layers the model lacks (beyond a cut, or strict=False)

    def __str__(self) -> str:
        def some(names):
            return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        lines = [f"{self.path} ({self.format}): loaded {len(self.loaded)} layers"]
        for label, names in (("skipped", self.skipped), ("missing from file", self.missing),
                             ("unused in file", self.unused)):
            if names:
                lines.append(f"  {label} {len(names)}: {some(names)}")
        return "\n".join(lines)


def find_layers(path: str | os.PathLike, *, root: str | None = None, order: Sequence[str] | None = None,
                kinds: Mapping[str, str] | None = None) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Layer name (or class-based key when no name is known) -> weight shapes, for every layer with weights.
    `kinds`: layer name -> models.cuts kind for names of `order` whose Keras class their suffix does not tell."""
    with _open(path) as (f, config):
        fmt, layers = _read_layers(f, config, path, root)
        if fmt != "legacy-h5" and order is not None:
            classes = {name: _KIND_KEY[kind] for name, kind in (kinds or {}).items()}
            layers = _rename_by_order(layers, _order_with_classes(order, classes))
        return {layer.name: layer.shapes for layer in layers.values()}


def load_keras_weights(model: nnx.Module, path: str | os.PathLike, *, strict: bool = True,
                       skip: Iterable[str] = (), root: str | None = None,
                       order: Sequence[str] | None = None) -> LoadReport:
    """Copy Keras weights from `path` into `model.keras_layers()`, matched by Keras layer name.

    strict=True: every model layer not in `skip` must be in the file, and every file layer in the model
    unless the model is cut (`model.cut` set: file layers beyond the cut are expected). strict=False: those
    become `missing` / `unused` in the report. A shape mismatch is always an error. `skip` names model layers
    to leave as initialised. `order`: the saved Keras model's weighted layer names in Keras order, only for
    Keras 3 files whose keys are class-based (see the module docstring). All checks run before any copy.
    """
    targets = model.keras_layers()
    skip = tuple(skip)
    with _open(path) as (f, config):
        fmt, layers = _read_layers(f, config, path, root)
        if fmt == "keras3-h5" and _class_based(layers, targets):
            layers = _rename_by_order(layers, _saved_order(model, targets, order))
        known = set(targets) | set(layers)
        bad_skip = [name for name in skip if name not in known]
        if bad_skip:
            raise ValueError(f"skip names {bad_skip} are neither model nor file layers; "
                             f"model layers: {_sample(list(targets))}")
        missing = tuple(name for name in targets if name not in layers and name not in skip)
        cut = getattr(model, "cut", None) is not None
        unused = tuple(name for name in layers if name not in targets)
        if strict and missing:
            first = missing[0]
            shapes = tuple(tuple(var.get_value().shape) for _, var in _module_slots(targets[first]))
            raise ValueError(
                f"{len(missing)} model layers are not in {os.fspath(path)}: {_sample(missing)}; "
                f"{first!r} has model shapes {shapes}{_closest_hint(first, layers)}; the file has "
                f"{_sample(_describe(layers), 3)} (pass strict=False or skip=... to leave them as initialised)")
        if strict and unused and not cut:
            raise ValueError(
                f"{len(unused)} layers of {os.fspath(path)} are not in the model: {_sample(unused)}"
                f"{_closest_hint(unused[0], targets)} (pass strict=False to ignore them)")
        plan = [(name, _pair(name, targets[name], layers[name]))
                for name in targets if name in layers and name not in skip]
        # Read every tensor once (h5py -> numpy), then one device_put for all, onto each variable's sharding.
        variables = [var for _, pairs in plan for var, _ in pairs]
        host = [np.asarray(ds[()], dtype=var.get_value().dtype) for _, pairs in plan for var, ds in pairs]
    import jax

    device = jax.device_put(host, [var.get_value().sharding for var in variables])
    for var, value in zip(variables, device):
        var.set_value(value)
    return LoadReport(
        path=os.fspath(path), format=fmt, loaded=tuple(name for name, _ in plan),
        skipped=tuple(name for name in skip if name in targets), missing=missing, unused=unused,
    )


# ---------------------------------------------------------------- matching file weights to nnx variables

def _module_slots(module: nnx.Module) -> list[tuple[str, nnx.Variable]]:
    """The module's variables in Keras order, with their Keras names."""
    if hasattr(module, "keras_slots"):  # models.keras_layers: DepthwiseConv, SeparableConv, Normalization
        return module.keras_slots()
    import flax.nnx as nnx

    if isinstance(module, nnx.BatchNorm):
        slots = [("gamma", module.scale), ("beta", module.bias), ("moving_mean", module.mean),
                 ("moving_variance", module.var)]
    elif isinstance(module, (nnx.Conv, nnx.Linear)):
        slots = [("kernel", module.kernel), ("bias", module.bias)]
    else:
        raise TypeError(f"keras_layers() holds a {type(module).__name__}; only nnx.Conv, nnx.BatchNorm, "
                        "nnx.Linear and models.keras_layers' modules can take Keras weights")
    return [(name, var) for name, var in slots if var is not None]


def _pair(name: str, module: nnx.Module, layer: FileLayer) -> list[tuple[nnx.Variable, h5py.Dataset]]:
    """Match a file layer's tensors to the module's variables by Keras variable name (else position); check shapes."""
    slots = _module_slots(module)
    model_shapes = tuple(tuple(var.get_value().shape) for _, var in slots)
    what = f"layer {name!r} ({type(module).__name__}): file has shapes {layer.shapes}, model has {model_shapes}"
    file_names = [var for var, _ in layer.weights]
    slot_names = [slot for slot, _ in slots]
    if all(n is not None for n in file_names) and sorted(file_names) == sorted(slot_names):
        by_name = dict(layer.weights)
        pairs = [(var, by_name[slot]) for slot, var in slots]
    elif len(layer.weights) == len(slots):
        pairs = [(var, ds) for (_, var), (_, ds) in zip(slots, layer.weights)]
    else:
        raise ValueError(f"{what}: file variables {file_names} do not match the model's {slot_names}")
    for (slot, var), (_, ds) in zip(slots, pairs):
        if tuple(ds.shape) != tuple(var.get_value().shape):
            raise ValueError(f"shape mismatch in {what} ({slot}: file {tuple(ds.shape)}, "
                             f"model {tuple(var.get_value().shape)})")
    return pairs


# ---------------------------------------------------------------- reading files

@contextlib.contextmanager
def _open(path):
    """(h5py.File, Keras config dict or None) for a .h5 / .weights.h5 / .keras path."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no Keras weights file at {path}")
    config, source = None, path
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if _KERAS3_WEIGHTS_IN_ARCHIVE not in names:
                raise ValueError(f"{path} is a zip without {_KERAS3_WEIGHTS_IN_ARCHIVE} (has {names[:5]}); "
                                 "expected a Keras 3 .keras archive")
            if "config.json" in names:
                config = json.loads(zf.read("config.json"))
            source = io.BytesIO(zf.read(_KERAS3_WEIGHTS_IN_ARCHIVE))
    try:
        f = h5py.File(source, "r")
    except OSError as err:
        raise ValueError(f"{path} is not an HDF5 file ({err}); expected Keras .h5, .weights.h5 or .keras") from err
    with f:
        yield f, config


def _read_layers(f: h5py.File, config, path, root: str | None) -> tuple[str, dict[str, FileLayer]]:
    base = f
    if root:
        if root not in f:
            raise ValueError(f"root {root!r} is not in {os.fspath(path)}; top-level groups: {sorted(f.keys())}")
        base = f[root]
    if _has_attr(base, "layer_names"):
        return "legacy-h5", _read_legacy(base)
    if "model_weights" in base and _has_attr(base["model_weights"], "layer_names"):
        return "legacy-h5", _read_legacy(base["model_weights"])
    if "layers" in base:
        layers = _read_keras3(base["layers"])
        if config is not None:
            model_config = _config_at(config, root)
            names = _names_from_config(model_config) if model_config else {}
            layers = _rename(layers, names)
        return ("keras-archive" if config is not None else "keras3-h5"), layers
    raise ValueError(
        f"{os.fspath(path)} is not a Keras weights file: expected a root attr 'layer_names' (legacy .h5), "
        f"a 'model_weights' group (legacy full model) or a 'layers' group (Keras 3); found groups "
        f"{sorted(base.keys())[:10]}")


def _has_attr(group, name: str) -> bool:
    return name in group.attrs or f"{name}0" in group.attrs


def _str_list_attr(group, name: str) -> list[str]:
    """A list-of-strings attr, joined across Keras' chunks (`name0`, `name1`, ...) for big ones."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, i = [], 0
        while f"{name}{i}" in group.attrs:
            values += list(group.attrs[f"{name}{i}"])
            i += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _read_legacy(group) -> dict[str, FileLayer]:
    """Legacy layout. A weight name `[outer/]layer/var[:0]` names its owner, so a nested model's weights
    (saved as one group holding all its layers' weights) come out per inner layer."""
    weights: dict[str, list[tuple[str | None, h5py.Dataset]]] = {}
    for layer_name in _str_list_attr(group, "layer_names"):
        layer_group = group[layer_name]
        for weight_name in _str_list_attr(layer_group, "weight_names"):
            parts = weight_name.split("/")
            owner = parts[-2] if len(parts) >= 2 else layer_name
            var = parts[-1].split(":")[0] if len(parts) >= 2 else None
            weights.setdefault(owner, []).append((var, layer_group[weight_name]))
    return {name: FileLayer(name, tuple(ws)) for name, ws in weights.items()}


def _read_keras3(layers_group, prefix: str = "") -> dict[str, FileLayer]:
    """Keras 3 layout: `<key>/vars/<i>`, nested models under `<key>/layers/`. A `name` attr on `vars` (Keras
    3.15 writes one) names the layer; else the key path (`conv2d_3`, `functional/layers/conv2d`) stands in."""
    layers: dict[str, FileLayer] = {}
    for key, group in layers_group.items():
        if not isinstance(group, h5py.Group):
            continue
        path = prefix + key
        if "layers" in group:
            for name, layer in _read_keras3(group["layers"], f"{path}/layers/").items():
                _add_unique(layers, name, layer)
        vars_group = group.get("vars")
        if vars_group is None or len(vars_group) == 0:
            continue  # stateless layers (and a nested model's own, empty, vars)
        items = sorted(vars_group.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else kv[0])
        name = vars_group.attrs.get("name", path)
        name = name.decode("utf8") if isinstance(name, bytes) else str(name)
        _add_unique(layers, name, FileLayer(name, tuple((None, ds) for _, ds in items), key=path))
    return layers


def _add_unique(layers: dict[str, FileLayer], name: str, layer: FileLayer) -> None:
    if name in layers:
        raise ValueError(f"two layers named {name!r} in the file (in different sub-models); pass "
                         "root='layers/<key>' to read one sub-model (see find_layers)")
    layers[name] = layer


def _config_at(config: dict, root: str | None) -> dict | None:
    """The config of the (nested) model whose weights live at `root` (`layers/<key>/...`)."""
    if not root:
        return config
    parts = [p for p in root.split("/") if p]
    for kind, key in zip(parts[::2], parts[1::2]):
        if kind != "layers":
            return None
        layers = config.get("config", {}).get("layers", [])
        by_key = {k: layer for k, layer in zip(_class_keys(l["class_name"] for l in layers), layers)}
        if key not in by_key:
            return None
        config = by_key[key]
    return config


def _names_from_config(config: dict, prefix: str = "") -> dict[str, str]:
    """Class-based key path -> layer name, from a Functional/Sequential config, nested models included."""
    layers = config.get("config", {}).get("layers", [])
    names = {}
    for key, layer in zip(_class_keys(layer["class_name"] for layer in layers), layers):
        names[prefix + key] = layer.get("config", {}).get("name", layer.get("name", key))
        if layer.get("config", {}).get("layers"):
            names.update(_names_from_config(layer, f"{prefix}{key}/layers/"))
    return names


def _snake(class_name: str) -> str:
    """keras.src.utils.naming.to_snake_case."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def _class_keys(class_names: Iterable[str], snake=True) -> list[str]:
    """The keys Keras' _save_container_state gives a list of layers: class, class_1, class_2, ..."""
    used: dict[str, int] = {}
    keys = []
    for class_name in class_names:
        base = _snake(class_name) if snake else class_name
        if base in used:
            used[base] += 1
            keys.append(f"{base}_{used[base]}")
        else:
            used[base] = 0
            keys.append(base)
    return keys


# ---------------------------------------------------------------- class-based keys without a config

def _full_graph_kinds(model: nnx.Module) -> dict[str, str] | None:
    """Keras layer name -> class key base for the FULL Keras model behind one of our models (None: unknown)."""
    from models.backbone_net import BackboneNet
    from models.backbones import backbone
    from models.cnn import TorresCNN
    from models.resnet_v2 import ResNet50V2

    if isinstance(model, ResNet50V2):
        graph = resnet50v2_graph() + head_graph("flatten", 2)
    elif isinstance(model, TorresCNN):
        graph = cnn_graph()
    elif isinstance(model, BackboneNet):  # keras.applications files come without the top
        graph = backbone(model.name).graph()
    else:
        return None
    return {layer.name: _KIND_KEY[layer.kind] for layer in graph if layer.kind in _KIND_KEY}


def _class_key(module) -> str | None:
    """The Keras 3 key base of an nnx.Conv / BatchNorm / Linear or a models.keras_layers module (else None)."""
    import flax.nnx as nnx

    from models.keras_layers import DepthwiseConv, Normalization, SeparableConv

    kind = type(module)
    known = (nnx.Conv, nnx.BatchNorm, nnx.Linear, DepthwiseConv, SeparableConv, Normalization)
    return _CLASS_KEY_NAMES[kind.__name__] if kind in known else None


def _saved_order(model, targets: Mapping[str, nnx.Module], order: Sequence[str] | None) -> list[tuple[str, str]]:
    """(layer name, class key base) of the saved model's weighted layers, in Keras order."""
    module_kinds = {name: _class_key(module) for name, module in targets.items() if _class_key(module)}
    full = _full_graph_kinds(model)
    if order is None:
        return list(full.items()) if full is not None else list(module_kinds.items())
    return _order_with_classes(order, {**(full or {}), **module_kinds})


def _order_with_classes(order: Sequence[str], kinds: Mapping[str, str] | None) -> list[tuple[str, str]]:
    """Attach a class key base to each name of `order`, from `kinds` or the name's Keras-like suffix."""
    suffix = {"conv": "conv2d", "bn": "batch_normalization", "dense": "dense", "predictions": "dense"}
    pairs = []
    for name in order:
        kind = (kinds or {}).get(name) or suffix.get(name.rsplit("_", 1)[-1])
        if kind is None:
            raise ValueError(f"cannot tell the Keras class of {name!r} in order=...; "
                             "name the saved model's Conv2D / BatchNormalization / Dense layers only")
        pairs.append((name, kind))
    return pairs


def _class_based(layers: Mapping[str, FileLayer], targets: Mapping[str, nnx.Module]) -> bool:
    """True when the keys look like Keras 3's class keys (`conv2d_3`), not layer names (a key such as `dense`
    can be both; then the keys that are not model names decide)."""
    pattern = re.compile(rf"({'|'.join(sorted(set(_CLASS_KEY_NAMES.values())))})(_[0-9]+)?")
    unnamed = [layer.key for layer in layers.values() if layer.name == layer.key]
    return bool(unnamed) and not set(layers) <= set(targets) and all(pattern.fullmatch(key) for key in unnamed)


def _rename_by_order(layers: dict[str, FileLayer], order: list[tuple[str, str]]) -> dict[str, FileLayer]:
    """Class-based keys -> layer names: the n-th `conv2d` key is the n-th Conv2D of `order`."""
    return _rename(layers, dict(zip(_class_keys((kind for _, kind in order), snake=False),
                                    (name for name, _ in order))))


def _rename(layers: dict[str, FileLayer], key_to_name: Mapping[str, str]) -> dict[str, FileLayer]:
    """Name the layers still known only by their Keras 3 key."""
    renamed: dict[str, FileLayer] = {}
    for layer in layers.values():
        if layer.name == layer.key and layer.key in key_to_name:
            layer = dataclasses.replace(layer, name=key_to_name[layer.key])
        _add_unique(renamed, layer.name, layer)
    return renamed


# ---------------------------------------------------------------- messages

def _describe(layers: Mapping[str, FileLayer]) -> list[str]:
    return [f"{name} {list(layer.shapes)}" for name, layer in layers.items()]


def _sample(names: Sequence[str], n: int = 6) -> str:
    names = list(names)
    return ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "")


def _closest_hint(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    return f" (closest to {name!r}: {', '.join(close)})" if close else ""
