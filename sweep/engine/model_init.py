"""The model of a TrainConfig: built with fresh weights from its seed, then each backbone's --init weights loaded."""
from __future__ import annotations

import flax.nnx as nnx
import jax.numpy as jnp

from models.registry import build_model
from sweep.configs.schema import TrainConfig
from sweep.init_sources import SCRATCH, branch_scaling, published_backbones, weights_cache_dir


def init_model(config: TrainConfig, num_classes: int, image_size: int):
    """The model of `config` with fresh weights from config.seed (params) and config.seed + 1 (dropout)."""
    spec = config.model
    if config.model == "fusion":
        spec = config.fusion.replace(num_classes=num_classes, image_size=image_size, channels=config.pipeline.channels)
    return build_model(spec, num_classes=num_classes, image_size=image_size, channels=config.pipeline.channels,
                       resnet_head=config.resnet_head, rngs=nnx.Rngs(params=config.seed, dropout=config.seed + 1),
                       dtype=jnp.bfloat16 if config.precision == "bfloat16" else None,
                       bn_momentum=config.bn_momentum,
                       input_scaling=branch_scaling(config.init, config.pipeline.normalization),
                       imagenet=published_backbones(config.init))


def load_init_weights(model, config: TrainConfig) -> None:
    """Each backbone's starting weights from its source (config.init; scratch: as built), up to its cut."""
    from models.pretrained import load_sources, source_path

    if all(source == SCRATCH for source in config.init.values()):
        return
    cache = weights_cache_dir()
    load_sources(model, {backbone: source_path(backbone, source, cache) for backbone, source in config.init.items()})
