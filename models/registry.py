"""The ONE list of model names, and build_model: builds `cnn`, `resnet50v2`, another backbone or a fusion from a
name or FusionSpec."""
from __future__ import annotations

import difflib

from models.backbones import KERAS_BACKBONES
from models.graphs import HEADS
from models.spec import FusionSpec

MODEL_NAMES = ("cnn", "resnet50v2", "fusion")  # the seed paper's three models
PARENT_NAMES = ("cnn", "resnet50v2")  # the two models the seed fused, each also trained alone
BACKBONE_NAMES = PARENT_NAMES + KERAS_BACKBONES  # every network that can be cut (`fusion-sweep layers NAME`)
BUILDABLE_NAMES = MODEL_NAMES + KERAS_BACKBONES  # every name build_model takes


def check_model_name(name: str) -> None:
    if name not in BUILDABLE_NAMES:
        close = difflib.get_close_matches(str(name), BUILDABLE_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown model {name!r}{hint}; choose one of {', '.join(BUILDABLE_NAMES)} "
                         "or pass a FusionSpec")


def build_model(name_or_spec: str | FusionSpec, *, num_classes: int = 2, image_size: int = 256, channels: int = 3,
                resnet_head: str = "flatten", dtype=None, bn_momentum: float | None = None,
                input_scaling: dict[str, str] | None = None, imagenet: tuple[str, ...] = (), rngs):
    """Build a model with fresh (glorot-uniform) weights; call it as model(x, resnet_x=None) -> logits (B, classes).
    A backbone beyond the seed's two (xception, densenet121, ...) gets the seed's head, `resnet_head`, as ResNet50V2.
    "fusion" is FusionSpec() with the given num_classes/image_size/channels; a FusionSpec is used as given.
    `dtype` is the compute dtype (e.g. jnp.bfloat16); params stay float32 and logits are float32.
    `bn_momentum` overrides Keras' BatchNorm momentum of 0.99 (which needs ~500 steps before the moving
    statistics forget their initial values: short CPU runs want a lower value). `input_scaling`: backbone name ->
    models.cuts.INPUT_SCALINGS, what that backbone (or branch) does to the [0, 1] input first. `imagenet`: backbones
    built as keras.applications builds them with weights="imagenet" (EfficientNet gains a rescaling layer).
    `rngs`: an nnx.Rngs."""
    # flax loads here, not at import: MODEL_NAMES must stay importable where JAX may not load (analysis, configs)
    import flax.nnx as nnx

    model = _build(name_or_spec, num_classes=num_classes, image_size=image_size, channels=channels,
                   resnet_head=resnet_head, dtype=dtype, input_scaling=dict(input_scaling or {}),
                   imagenet=tuple(imagenet), rngs=rngs)
    if bn_momentum is not None:
        if not 0.0 <= bn_momentum < 1.0:
            raise ValueError(f"bn_momentum must be in [0, 1), got {bn_momentum!r}")
        for _, module in model.iter_modules():
            if isinstance(module, nnx.BatchNorm):
                module.momentum = bn_momentum
    return model


def _build(name_or_spec, *, num_classes, image_size, channels, resnet_head, dtype, input_scaling, imagenet, rngs):
    from models.backbone_net import BackboneNet
    from models.cnn import TorresCNN
    from models.fusion import FusionNet
    from models.resnet_v2 import ResNet50V2

    if isinstance(name_or_spec, FusionSpec):
        return FusionNet(name_or_spec, input_scaling=input_scaling, imagenet=imagenet, dtype=dtype, rngs=rngs)
    check_model_name(name_or_spec)
    if name_or_spec == "fusion":
        spec = FusionSpec(num_classes=num_classes, image_size=image_size, channels=channels)
        return FusionNet(spec, input_scaling=input_scaling, imagenet=imagenet, dtype=dtype, rngs=rngs)
    if name_or_spec == "cnn":
        return TorresCNN(num_classes=num_classes, image_size=image_size, channels=channels,
                         input_scaling=input_scaling.get("cnn", "unit"), dtype=dtype, rngs=rngs)
    if resnet_head not in HEADS:
        raise ValueError(f"resnet_head must be one of {', '.join(HEADS)}, got {resnet_head!r}")
    if name_or_spec in KERAS_BACKBONES:
        return BackboneNet(name_or_spec, head=resnet_head, num_classes=num_classes, image_size=image_size,
                           channels=channels, input_scaling=input_scaling.get(name_or_spec, "unit"),
                           imagenet=name_or_spec in imagenet, dtype=dtype, rngs=rngs)
    return ResNet50V2(head=resnet_head, num_classes=num_classes, image_size=image_size, channels=channels,
                      input_scaling=input_scaling.get("resnet50v2", "unit"), dtype=dtype, rngs=rngs)
