"""FusionNet: cut the CNN and ResNet50V2 at named layers, per-pixel Dense branches, pool, concat, Dense head."""
from __future__ import annotations

import math
import numbers
from typing import Mapping

import flax.nnx as nnx
import jax
import jax.numpy as jnp

from models.cnn import TorresCNN
from models.cuts import check_cut, check_image, check_num_classes, infer_shapes, needed_layers
from models.graphs import CNN_LAYERS, RESNET50V2_LAYERS, cnn_graph, resnet50v2_graph
from models.resnet_v2 import ResNet50V2
from models.spec import FusionSpec

ACTIVATIONS = ("linear", "relu", "softmax")
POOLS = ("gap", "flatten")


def check_spec(spec: FusionSpec) -> None:
    """ValueError naming the offending field and value, before anything is built."""
    if spec.cnn_cut is None and spec.resnet_cut is None:
        raise ValueError("a fusion needs at least one branch: cnn_cut and resnet_cut are both None")
    for field in ("branch_width", "head_width"):
        value = getattr(spec, field)
        if not isinstance(value, numbers.Integral) or value <= 0:
            raise ValueError(f"{field} must be a positive int, got {value!r}")
    for field in ("cnn_branch_activation", "resnet_branch_activation"):
        if getattr(spec, field) not in ACTIVATIONS:
            raise ValueError(f"{field} must be one of {', '.join(ACTIVATIONS)}; got {getattr(spec, field)!r}")
    if spec.pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {spec.pool!r}")
    if not 0.0 <= spec.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {spec.dropout!r}")
    check_num_classes(spec.num_classes)
    check_image(spec.image_size, spec.channels)
    branches = (("cnn", spec.cnn_cut, CNN_LAYERS, cnn_graph), ("resnet50v2", spec.resnet_cut, RESNET50V2_LAYERS,
                                                                  resnet50v2_graph))
    for model, cut, names, graph in branches:  # both branches checked before either is built
        if cut is not None:
            check_cut(cut, names, model)
            infer_shapes(needed_layers(graph(), cut), spec.image_size, spec.channels, model)


def _activate(x: jax.Array, activation: str) -> jax.Array:
    if activation == "relu":
        return jax.nn.relu(x)
    if activation == "softmax":
        return jax.nn.softmax(x, axis=-1)  # over channels, per pixel (the seed's ResNet branch)
    return x


class FusionNet(nnx.Module):
    """The seed's fusion generalised. Attributes: `cnn` / `resnet` (cut backbones or None), `cnn_branch` /
    `resnet_branch` (per-pixel Dense), `fusion_dense` (relu), `fusion_dropout`, `fusion_predictions` (logits).
    A backbone cut at a 1-D layer (e.g. the CNN's `dense`) gets its branch Dense without pooling."""

    def __init__(self, spec: FusionSpec = FusionSpec(), *, input_scaling: Mapping[str, str] | None = None, dtype=None,
                 rngs: nnx.Rngs):
        """`input_scaling`: backbone name (cnn, resnet50v2) -> what that branch does to the [0, 1] input where the
        branches split ("unit" or "symmetric", models.cuts.INPUT_SCALINGS; default unit)."""
        check_spec(spec)
        scaling = dict(input_scaling or {})
        self.spec = spec
        size, ch = spec.image_size, spec.channels
        glorot = nnx.initializers.glorot_uniform()
        self.cnn = self.cnn_branch = self.resnet = self.resnet_branch = nnx.data(None)  # filled below if used
        if spec.cnn_cut is not None:
            self.cnn = TorresCNN(cut=spec.cnn_cut, num_classes=spec.num_classes, image_size=size, channels=ch,
                                 input_scaling=scaling.get("cnn", "unit"), dtype=dtype, rngs=rngs)
            self.cnn_branch = nnx.Linear(self.cnn.output_shape[-1], spec.branch_width, kernel_init=glorot,
                                         dtype=dtype, rngs=rngs)
        if spec.resnet_cut is not None:
            self.resnet = ResNet50V2(cut=spec.resnet_cut, num_classes=spec.num_classes, image_size=size, channels=ch,
                                     input_scaling=scaling.get("resnet50v2", "unit"), dtype=dtype, rngs=rngs)
            self.resnet_branch = nnx.Linear(self.resnet.output_shape[-1], spec.branch_width, kernel_init=glorot,
                                            dtype=dtype, rngs=rngs)
        concat_width = sum(self._pooled_width(b.output_shape) for b in (self.cnn, self.resnet) if b is not None)
        self.fusion_dense = nnx.Linear(concat_width, spec.head_width, kernel_init=glorot, dtype=dtype, rngs=rngs)
        self.fusion_dropout = nnx.Dropout(spec.dropout, rngs=rngs)
        self.fusion_predictions = nnx.Linear(spec.head_width, spec.num_classes, kernel_init=glorot, dtype=dtype,
                                             rngs=rngs)

    def _pooled_width(self, map_shape: tuple[int, ...]) -> int:
        if len(map_shape) == 3 and self.spec.pool == "flatten":
            return math.prod(map_shape[:2]) * self.spec.branch_width
        return self.spec.branch_width

    def _pool(self, x: jax.Array) -> jax.Array:
        if x.ndim == 2:
            return x
        if self.spec.pool == "gap":
            return jnp.mean(x, axis=(1, 2))
        return x.reshape(x.shape[0], -1)

    def __call__(self, x: jax.Array, *, resnet_x: jax.Array | None = None) -> jax.Array:
        pooled = []
        if self.cnn is not None:
            h = _activate(self.cnn_branch(self.cnn(x)), self.spec.cnn_branch_activation)
            pooled.append(self._pool(h))
        if self.resnet is not None:
            h = self.resnet(x if resnet_x is None else resnet_x)
            h = _activate(self.resnet_branch(h), self.spec.resnet_branch_activation)
            pooled.append(self._pool(h))
        h = pooled[0] if len(pooled) == 1 else jnp.concatenate(pooled, axis=-1)
        h = self.fusion_dropout(jax.nn.relu(self.fusion_dense(h)))
        return self.fusion_predictions(h).astype(jnp.float32)

    def keras_layers(self) -> dict[str, nnx.Module]:
        """The backbones' Keras names (CNN block*/dense/predictions and ResNet conv*/post_bn never collide),
        plus `cnn_branch`, `resnet_branch`, `fusion_dense`, `fusion_predictions`."""
        layers: dict[str, nnx.Module] = {}
        for backbone in (self.cnn, self.resnet):
            if backbone is not None:
                layers.update(backbone.keras_layers())
        for name in ("cnn_branch", "resnet_branch", "fusion_dense", "fusion_predictions"):
            if getattr(self, name) is not None:
                layers[name] = getattr(self, name)
        return layers
