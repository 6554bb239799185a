"""Model size and cost: params (trainable / non-trainable), forward FLOPs from XLA cost analysis, latency."""
from __future__ import annotations

import math
import statistics
import time
from typing import NamedTuple

import flax.nnx as nnx
import jax
import jax.numpy as jnp

from models.backbones import BACKBONES, backbone_param_count
from models.cuts import KERAS_TYPES, check_image, check_num_classes, cumulative_params, infer_shapes
from models.conv_kernels import in_phase
from models.graphs import cnn_graph
from models.inference_options import inference_compiler_options
from models.registry import build_model
from models.spec import FusionSpec


class ParamCount(NamedTuple):
    total: int
    trainable: int
    non_trainable: int  # BatchNorm moving mean/variance (nnx.BatchStat), as Keras counts them


def _size(state) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(state))


def count_params(model: nnx.Module) -> ParamCount:
    """Keras-style param counts; works on a model from nnx.eval_shape (nothing is allocated)."""
    trainable = _size(nnx.state(model, nnx.Param))
    non_trainable = _size(nnx.state(model, nnx.BatchStat))
    return ParamCount(trainable + non_trainable, trainable, non_trainable)


def cut_table(backbone: str, *, image_size: int = 256, channels: int = 3, num_classes: int = 2) -> list[dict]:
    """Every cut point of `backbone` ("cnn", "resnet50v2", "xception", ...) with its Keras type, per-image output
    shape and the params of the model cut there, counted from the layer specs (instant; tests check it against real
    builds)."""
    check_image(image_size, channels)
    check_num_classes(num_classes)
    graphs = {"cnn": lambda: cnn_graph(num_classes), **{name: info.graph for name, info in BACKBONES.items()}}
    if backbone not in graphs:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(graphs)}")
    graph = graphs[backbone]()
    shapes = infer_shapes(graph, image_size, channels, backbone)
    rows = []
    for layer in graph:
        total, non_trainable = cumulative_params(graph, shapes, layer.name, channels)
        rows.append({
            "layer": layer.name, "type": KERAS_TYPES[layer.kind], "output_shape": shapes[layer.name],
            "cumulative_params": total, "cumulative_non_trainable": non_trainable,
        })
    return rows


def _eval_forward(model: nnx.Module):
    """(jittable fn(state, x) -> logits in inference mode, state); the caller's model keeps its mode."""
    graphdef, state = nnx.split(model)

    def forward(state, x):
        module = nnx.merge(graphdef, state)
        module.eval()
        return module(x)

    return forward, state


def output_shape(model: nnx.Module, batch_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of model(x) for x of batch_shape, traced only."""
    forward, state = _eval_forward(model)
    return tuple(jax.eval_shape(forward, state, jax.ShapeDtypeStruct(batch_shape, jnp.float32)).shape)


def forward_flops(model: nnx.Module, batch_shape: tuple[int, ...]) -> float:
    """FLOPs per image of the jitted inference forward, from XLA's cost analysis (an abstract model is fine)."""
    forward, state = _eval_forward(model)
    abstract_state = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), state)
    compiled = jax.jit(forward).lower(abstract_state, jax.ShapeDtypeStruct(batch_shape, jnp.float32)).compile()
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax returned one dict per device
        cost = cost[0]
    return float(cost.get("flops", float("nan"))) / batch_shape[0]


def latency_ms(model: nnx.Module, batch_shape: tuple[int, ...], repeats: int = 20, warmup: int = 2) -> float:
    """Median wall time in ms of one jitted inference forward (after compiling and `warmup` runs)."""
    forward, state = _eval_forward(model)
    run = jax.jit(in_phase("inference", forward), compiler_options=inference_compiler_options())
    x = jnp.zeros(batch_shape, jnp.float32)
    for _ in range(max(1, warmup)):
        jax.block_until_ready(run(state, x))
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        jax.block_until_ready(run(state, x))
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def profile_model(name_or_spec: str | FusionSpec, *, image_size: int = 256, num_classes: int = 2, channels: int = 3,
                  resnet_head: str = "flatten", batch_size: int = 1, repeats: int = 20, flops: bool = True,
                  latency: bool = True, seed: int = 0) -> dict:
    """Params, FLOPs per image and median latency (ms, at `batch_size`) of one model. For a FusionSpec its own
    image_size/num_classes/channels are used. flops/latency=False skip those (reported as None)."""
    if isinstance(name_or_spec, FusionSpec):
        image_size, num_classes, channels = name_or_spec.image_size, name_or_spec.num_classes, name_or_spec.channels

    def build():
        return build_model(name_or_spec, num_classes=num_classes, image_size=image_size, channels=channels,
                           resnet_head=resnet_head, rngs=nnx.Rngs(params=seed, dropout=seed + 1))

    abstract = nnx.eval_shape(build)  # validates and counts without allocating
    batch_shape = (batch_size, image_size, image_size, channels)
    counts = count_params(abstract)
    result = {
        "params": counts.total,
        "trainable_params": counts.trainable,
        "non_trainable_params": counts.non_trainable,
        "flops": forward_flops(abstract, batch_shape) if flops else None,
        "latency_ms": latency_ms(build(), batch_shape, repeats=repeats) if latency else None,
        "output_shape": list(output_shape(abstract, batch_shape)),
    }
    if isinstance(name_or_spec, str) and name_or_spec in BACKBONES:
        # the keras.applications backbone alone (include_top=False), as Keras counts it; `params` has the head
        total, non_trainable = backbone_param_count(name_or_spec, image_size=image_size, channels=channels)
        result.update(backbone_params=total, backbone_trainable_params=total - non_trainable,
                      backbone_non_trainable_params=non_trainable)
    return result
