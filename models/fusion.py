"""FusionNet: cut two backbones (the seed's CNN and ResNet50V2, or any two) at named layers, per-pixel Dense
branches, pool, concat, Dense head."""
from __future__ import annotations

import math
from typing import Mapping

import flax.nnx as nnx
import jax
import jax.numpy as jnp

from models.backbone_net import BackboneNet
from models.cnn import TorresCNN
from models.resnet_v2 import ResNet50V2
from models.fusion_checks import check_spec
from models.spec import FusionSpec

def _activate(x: jax.Array, activation: str) -> jax.Array:
    if activation == "relu":
        return jax.nn.relu(x)
    if activation == "softmax":
        return jax.nn.softmax(x, axis=-1)  # over channels, per pixel (the seed's ResNet branch)
    return x


def cut_backbone(name: str, cut: str, *, num_classes: int, image_size: int, channels: int, input_scaling: str = "unit",
                 imagenet: bool = False, dtype, rngs) -> nnx.Module:
    """Any backbone cut at `cut` (its output_shape set); `input_scaling`: what it does to its [0, 1] input first;
    `imagenet`: a Keras-application backbone as Keras builds it with weights="imagenet" (BackboneNet)."""
    kwargs = dict(cut=cut, num_classes=num_classes, image_size=image_size, channels=channels, dtype=dtype, rngs=rngs)
    if name == "cnn":
        return TorresCNN(input_scaling=input_scaling, **kwargs)
    if name == "resnet50v2":
        return ResNet50V2(input_scaling=input_scaling, **kwargs)
    return BackboneNet(name, input_scaling=input_scaling, imagenet=imagenet, **kwargs)


class FusionNet(nnx.Module):
    """The seed's fusion generalised. Attributes for the seed's pair: `cnn` / `resnet` (cut backbones or None),
    `cnn_branch` / `resnet_branch` (per-pixel Dense); for any other pair `a` / `b` and `a_branch` / `b_branch`;
    then `fusion_dense` (relu), `fusion_dropout`, `fusion_predictions` (logits).
    A backbone cut at a 1-D layer (e.g. the CNN's `dense`) gets its branch Dense without pooling.
    spec.merge "concat" (Rahimzadeh & Attar 2020): no branch Dense; maps of the same size are concatenated
    channel-wise, then `fusion_conv` (1x1, head_width, linear), Flatten, Dropout, `fusion_predictions`; maps of
    different sizes are each averaged over space, concatenated, Dropout, `fusion_predictions`."""

    def __init__(self, spec: FusionSpec = FusionSpec(), *, input_scaling: Mapping[str, str] | None = None,
                 imagenet: tuple[str, ...] = (), dtype=None, rngs: nnx.Rngs):
        """`input_scaling`: backbone name -> what that branch does to the [0, 1] input where the branches split
        (models.cuts.INPUT_SCALINGS: "unit", the default, "symmetric", "torch", "pixels"). `imagenet`: backbone
        names built as keras.applications builds them with weights="imagenet"."""
        check_spec(spec)
        scaling = dict(input_scaling or {})
        self.spec = spec
        size, ch = spec.image_size, spec.channels
        glorot = nnx.initializers.glorot_uniform()
        self.slots = ("cnn", "resnet") if spec.seed_pair else ("a", "b")
        for slot, name, cut in zip(self.slots, (spec.backbone_a, spec.backbone_b), (spec.cnn_cut, spec.resnet_cut)):
            net = branch = nnx.data(None)
            if cut is not None:
                net = cut_backbone(name, cut, num_classes=spec.num_classes, image_size=size, channels=ch,
                                   input_scaling=scaling.get(name, "unit"), imagenet=name in imagenet, dtype=dtype,
                                   rngs=rngs)
                if spec.merge == "branches":
                    branch = nnx.Linear(net.output_shape[-1], spec.branch_width, kernel_init=glorot, dtype=dtype,
                                        rngs=rngs)
            setattr(self, slot, net)
            setattr(self, f"{slot}_branch", branch)
        nets = [getattr(self, slot) for slot in self.slots]
        if spec.merge == "concat":
            self._build_concat_head(nets, glorot, dtype, rngs)
            return
        concat_width = sum(self._pooled_width(b.output_shape) for b in nets if b is not None)
        self.fusion_dense = nnx.Linear(concat_width, spec.head_width, kernel_init=glorot, dtype=dtype, rngs=rngs)
        self.fusion_dropout = nnx.Dropout(spec.dropout, rngs=rngs)
        self.fusion_predictions = nnx.Linear(spec.head_width, spec.num_classes, kernel_init=glorot, dtype=dtype,
                                             rngs=rngs)

    def _build_concat_head(self, nets, glorot, dtype, rngs) -> None:
        shapes = [net.output_shape for net in nets]
        self.same_maps = len(shapes[0]) == len(shapes[1]) == 3 and shapes[0][:2] == shapes[1][:2]
        channels = sum(shape[-1] for shape in shapes)
        if self.same_maps:
            self.fusion_conv = nnx.Conv(channels, self.spec.head_width, (1, 1), kernel_init=glorot, dtype=dtype,
                                        rngs=rngs)
            width = shapes[0][0] * shapes[0][1] * self.spec.head_width
        else:
            self.fusion_conv = nnx.data(None)
            width = channels
        self.fusion_dense = nnx.data(None)
        self.fusion_dropout = nnx.Dropout(self.spec.dropout, rngs=rngs)
        self.fusion_predictions = nnx.Linear(width, self.spec.num_classes, kernel_init=glorot, dtype=dtype,
                                             rngs=rngs)

    def _concat_head(self, maps: list[jax.Array]) -> jax.Array:
        if self.same_maps:
            h = self.fusion_conv(jnp.concatenate(maps, axis=-1))
            h = h.reshape(h.shape[0], -1)
        else:
            h = jnp.concatenate([m if m.ndim == 2 else jnp.mean(m, axis=(1, 2)) for m in maps], axis=-1)
        return self.fusion_predictions(self.fusion_dropout(h)).astype(jnp.float32)

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
        """resnet_x: branch b's own input (the seed pair's ResNet scaling), x when None."""
        pooled = []
        activations = (self.spec.cnn_branch_activation, self.spec.resnet_branch_activation)
        if self.spec.merge == "concat":
            return self._concat_head([getattr(self, slot)(inputs) for slot, inputs in
                                      zip(self.slots, (x, x if resnet_x is None else resnet_x))])
        for slot, inputs, activation in zip(self.slots, (x, x if resnet_x is None else resnet_x), activations):
            net = getattr(self, slot)
            if net is not None:
                pooled.append(self._pool(_activate(getattr(self, f"{slot}_branch")(net(inputs)), activation)))
        h = pooled[0] if len(pooled) == 1 else jnp.concatenate(pooled, axis=-1)
        h = self.fusion_dropout(jax.nn.relu(self.fusion_dense(h)))
        return self.fusion_predictions(h).astype(jnp.float32)

    def keras_layers(self) -> dict[str, nnx.Module]:
        """The backbones' Keras names (CNN block*/dense/predictions and ResNet conv*/post_bn never collide;
        the same backbone twice is prefixed `a/`, `b/`), plus the `<slot>_branch` layers, `fusion_dense`,
        `fusion_predictions`."""
        layers: dict[str, nnx.Module] = {}
        same = self.spec.backbone_a == self.spec.backbone_b
        for slot in self.slots:
            backbone = getattr(self, slot)
            if backbone is not None:
                layers.update({(f"{slot}/{name}" if same else name): module
                               for name, module in backbone.keras_layers().items()})
        for name in (*(f"{slot}_branch" for slot in self.slots), "fusion_dense", "fusion_conv", "fusion_predictions"):
            if getattr(self, name, None) is not None:
                layers[name] = getattr(self, name)
        return layers
