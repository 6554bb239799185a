"""The jitted train/eval/predict steps and the optimiser: plain jax.jit over nnx.split state, donated buffers.

Every step is a pure function of arrays: the model is split once into (graphdef, params, rest) with
`nnx.split(model, nnx.Param, ...)` (rest = BatchNorm statistics and dropout RNG state), and each step
merges them back inside `jax.jit`. A train step reads and returns ONE pytree, TrainState(params, rest,
opt_state, totals), so `state, metrics = train_step(state, batch)`; stacking states along a leading axis
(e.g. seeds) and jax.vmap-ing the step needs nothing else. Shapes stay fixed for a whole run (the data
pipeline pads the last batch and marks padded rows with `valid=False`), so each step compiles once.

Timing a step in isolation (what `fusion-sweep bench` does):

    from sweep.engine.steps import step_kit
    kit = step_kit(model, batch_size=32, image_size=64)   # random batch, RMSprop like the seed
    kit.train(10)            # runs 10 train steps and blocks until they finished
    kit.evaluate(10)         # 10 eval steps
    kit.train_step._cache_size()   # compilations so far (1 after the first call)

`kit.state` is the TrainState and `kit.batch` the example batch, for custom loops:
`kit.state, metrics = kit.train_step(kit.state, kit.batch)` (the state is donated: use only the returned one).

Seeds in one program: `make_seeds_train_step` vmaps the same step over K TrainStates stacked on a leading axis
(`stack_trees`), each seed with its own batch, and an `active` mask that leaves a seed's state untouched (one that
stopped early, diverged, or is an epoch ahead after a resume): one compilation for all K seeds.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from data.model_input import to_model_input  # jax only: the GPU path never loads grain, cv2 or TFDS
from data.spec import PipelineSpec
from models.conv_kernels import in_phase
from models.inference_options import inference_compiler_options
from sweep.configs.schema import OptimConfig
from sweep.engine.checks import check_optim

def _learning_rate(optim: OptimConfig, steps_per_epoch: int, epochs: int):
    warmup = int(round(optim.warmup_epochs * steps_per_epoch))
    total = max(steps_per_epoch * epochs, warmup + 1)
    if optim.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0 if warmup else optim.learning_rate, peak_value=optim.learning_rate,
            warmup_steps=warmup, decay_steps=total, end_value=0.0)
    if warmup:
        return optax.join_schedules(
            [optax.linear_schedule(0.0, optim.learning_rate, warmup), optax.constant_schedule(optim.learning_rate)],
            [warmup])
    return optim.learning_rate


def make_optimizer(optim: OptimConfig, steps_per_epoch: int, epochs: int) -> optax.GradientTransformation:
    """The optax transformation for `optim`. RMSprop mirrors Keras: v = rho v + (1-rho) g^2; g / (sqrt(v) + eps)."""
    check_optim(optim)
    lr = _learning_rate(optim, steps_per_epoch, epochs)
    if optim.name == "rmsprop":
        return optax.rmsprop(lr, decay=optim.rho, eps=optim.eps, eps_in_sqrt=False)
    if optim.name == "adam":
        return optax.adam(lr, eps=optim.eps)
    if optim.name == "adamw":
        return optax.adamw(lr, eps=optim.eps, weight_decay=optim.weight_decay)
    return optax.sgd(lr, momentum=optim.momentum or None)


def split_model(model: nnx.Module, *, train: bool):
    """(graphdef, params, rest) of `model` in train or eval mode (the mode lives in the graphdef)."""
    model.train() if train else model.eval()
    return nnx.split(model, nnx.Param, ...)


class TrainState(NamedTuple):
    """Everything a train step changes, as one pytree."""

    params: Any  # nnx.State of the trainable weights
    rest: Any  # nnx.State of the rest: BatchNorm moving statistics, dropout RNG keys and counts
    opt_state: Any  # the optimiser's state (e.g. RMSprop's running mean of squared gradients)
    totals: dict[str, jax.Array]  # running sums since the last reset (see init_totals)


def init_totals() -> dict[str, jax.Array]:
    """On-device running sums of one epoch; `bad_step` is the first step (1-based) whose loss was not finite."""
    return {
        "loss_sum": jnp.zeros((), jnp.float32), "correct": jnp.zeros((), jnp.float32),
        "count": jnp.zeros((), jnp.float32), "steps": jnp.zeros((), jnp.int32), "bad_step": jnp.full((), -1, jnp.int32),
    }


def init_state(params, rest, tx: optax.GradientTransformation) -> TrainState:
    """A fresh TrainState: the optimiser initialised on `params`, totals at zero."""
    return TrainState(params, rest, tx.init(params), init_totals())


def _forward(graphdef, params, rest, batch, pipeline: PipelineSpec, augment_cnn_only: bool):
    """(float32 logits, updated rest). Compute runs in the model's own dtype (build it with dtype=jnp.bfloat16 for
    bfloat16; params stay float32); with augment_cnn_only the ResNet branch sees the un-augmented image."""
    model = nnx.merge(graphdef, params, rest, copy=True)
    resnet_x = to_model_input(batch["clean_image"], pipeline) if augment_cnn_only and "clean_image" in batch else None
    logits = model(to_model_input(batch["image"], pipeline), resnet_x=resnet_x).astype(jnp.float32)
    _, new_rest = nnx.state(model, nnx.Param, ...)
    return logits, new_rest


def _add_to_totals(totals: dict, loss, correct, n_valid) -> dict:
    steps = totals["steps"] + 1
    bad = totals["bad_step"]
    return {"loss_sum": totals["loss_sum"] + loss * n_valid, "correct": totals["correct"] + correct,
            "count": totals["count"] + n_valid, "steps": steps,
            "bad_step": jnp.where((bad < 0) & ~jnp.isfinite(loss), steps, bad)}


def train_step_fn(graphdef, tx: optax.GradientTransformation, pipeline: PipelineSpec, *,
                  class_weights: np.ndarray | None = None, augment_cnn_only: bool = False) -> Callable:
    """The pure (state, batch) -> (state, metrics) that make_train_step jits; metrics: this batch's mean loss and
    accuracy.

    Loss: softmax cross-entropy averaged over the valid rows (padded rows contribute nothing), each row
    scaled by its class weight when `class_weights` is given (Keras' class_weight convention)."""
    weights = None if class_weights is None else jnp.asarray(class_weights, jnp.float32)

    def loss_fn(params, rest, batch):
        logits, new_rest = _forward(graphdef, params, rest, batch, pipeline, augment_cnn_only)
        valid = batch["valid"]
        ce = jnp.where(valid, optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]), 0.0)
        row_weight = valid.astype(jnp.float32)
        if weights is not None:
            row_weight = row_weight * weights[batch["label"]]
        n_valid = jnp.maximum(valid.sum(), 1).astype(jnp.float32)
        return jnp.sum(ce * row_weight) / n_valid, (logits, new_rest)

    def step(state: TrainState, batch):
        (loss, (logits, new_rest)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, state.rest, batch)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        valid = batch["valid"]
        n_valid = valid.sum().astype(jnp.float32)
        correct = jnp.sum((jnp.argmax(logits, -1) == batch["label"]) & valid).astype(jnp.float32)
        state = TrainState(optax.apply_updates(state.params, updates), new_rest, opt_state,
                           _add_to_totals(state.totals, loss, correct, n_valid))
        return state, {"loss": loss, "accuracy": correct / jnp.maximum(n_valid, 1.0)}

    return in_phase("train", step)


def make_train_step(graphdef, tx: optax.GradientTransformation, pipeline: PipelineSpec, *,
                    class_weights: np.ndarray | None = None, augment_cnn_only: bool = False) -> Callable:
    """jit(state, batch) -> (state, metrics), the state donated (see train_step_fn)."""
    return jax.jit(train_step_fn(graphdef, tx, pipeline, class_weights=class_weights,
                                 augment_cnn_only=augment_cnn_only), donate_argnums=0)


def make_seeds_train_step(graphdef, tx: optax.GradientTransformation, pipeline: PipelineSpec, *,
                          class_weights: np.ndarray | None = None, augment_cnn_only: bool = False) -> Callable:
    """jit(states, batches, active) -> (states, metrics) for K seeds at once, the states donated.

    states: K TrainStates stacked on a leading axis; batches: each seed's own batch, stacked the same way;
    active: (K,) bool. An inactive seed's state comes back unchanged (its step is computed and dropped), so a seed
    that stopped or diverged never disturbs its siblings, and siblings never see each other's data."""
    step = train_step_fn(graphdef, tx, pipeline, class_weights=class_weights, augment_cnn_only=augment_cnn_only)

    def masked_step(state: TrainState, batch, active):
        new_state, metrics = step(state, batch)
        return jax.tree.map(lambda new, old: jnp.where(active, new, old), new_state, state), metrics

    return jax.jit(jax.vmap(masked_step), donate_argnums=0)


def eval_step_fn(graphdef, pipeline: PipelineSpec) -> Callable:
    """The pure (params, rest, batch) -> (per-row cross-entropy (0 on padded rows), probabilities (B, K))."""

    def step(params, rest, batch):
        logits, _ = _forward(graphdef, params, rest, batch, pipeline, False)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        return jnp.where(batch["valid"], ce, 0.0), jax.nn.softmax(logits, axis=-1)

    return in_phase("inference", step)


def make_eval_step(graphdef, pipeline: PipelineSpec) -> Callable:
    """jit(params, rest, batch) -> (per-row cross-entropy (0 on padded rows), probabilities (B, K))."""
    return jax.jit(eval_step_fn(graphdef, pipeline), compiler_options=inference_compiler_options())


def make_seeds_eval_step(graphdef, pipeline: PipelineSpec) -> Callable:
    """jit(params, rest, batch) for K seeds' stacked params/rest on ONE shared batch -> ((K, B), (K, B, classes))."""
    return jax.jit(jax.vmap(eval_step_fn(graphdef, pipeline), in_axes=(0, 0, None)),
                   compiler_options=inference_compiler_options())


def stack_trees(trees: list) -> Any:
    """K pytrees of the same structure -> one pytree whose leaves carry a leading axis of length K."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def tree_slice(tree, index: int) -> Any:
    """Seed `index` of a stacked pytree (new arrays: the stacked tree may be donated afterwards)."""
    return jax.tree.map(lambda leaf: leaf[index], tree)


def make_predict_fn(model: nnx.Module, pipeline: PipelineSpec, batch_size: int) -> Callable[[np.ndarray], np.ndarray]:
    """images (N,H,W,1) float in [0,1] -> probabilities (N,K). One jitted function; every call is padded or
    chunked to `batch_size` rows, so calls of any N reuse a single compilation (put the model in eval mode)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    graphdef, params, rest = split_model(model, train=False)

    @functools.partial(jax.jit, compiler_options=inference_compiler_options())
    @functools.partial(in_phase, "inference")
    def probs(params, rest, images):
        logits = nnx.merge(graphdef, params, rest, copy=True)(to_model_input(images, pipeline))
        return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)

    def predict(images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, np.float32)
        if images.ndim == 3:
            images = images[..., None]
        n = images.shape[0]
        out = []
        for start in range(0, max(n, 1), batch_size):
            chunk = images[start:start + batch_size]
            pad = batch_size - chunk.shape[0]
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), np.float32)])
            out.append(np.asarray(probs(params, rest, chunk))[:batch_size - pad])
        return np.concatenate(out)[:n]

    predict.jitted = probs  # exposes _cache_size() for tests
    return predict


@dataclasses.dataclass
class StepKit:
    """A model's compiled steps with a state and a random example batch, for timing steps in isolation."""

    train_step: Callable
    eval_step: Callable
    state: TrainState
    eval_graph: Any
    batch: dict

    def train(self, steps: int) -> None:
        for _ in range(steps):
            self.state, _ = self.train_step(self.state, self.batch)
        jax.block_until_ready(self.state)

    def evaluate(self, steps: int) -> None:
        out = None
        for _ in range(steps):
            out = self.eval_step(self.state.params, self.state.rest, self.batch)
        jax.block_until_ready(out)


def step_kit(model: nnx.Module, *, batch_size: int, image_size: int, num_classes: int = 2,
             pipeline: PipelineSpec = PipelineSpec(), optim: OptimConfig = OptimConfig(), seed: int = 0) -> StepKit:
    """Build (state, train/eval step, random example batch) for `model` at this batch size, as training does.
    For bfloat16 compute, build the model with dtype=jnp.bfloat16."""
    rng = np.random.default_rng(seed)
    batch = {
        "image": jnp.asarray(rng.random((batch_size, image_size, image_size, 1), np.float32)),
        "label": jnp.asarray(rng.integers(0, num_classes, batch_size), jnp.int32),
        "valid": jnp.ones((batch_size,), bool),
    }
    eval_graph, _, _ = split_model(model, train=False)
    graphdef, params, rest = split_model(model, train=True)
    tx = make_optimizer(optim, steps_per_epoch=100, epochs=1)
    return StepKit(make_train_step(graphdef, tx, pipeline), make_eval_step(eval_graph, pipeline),
                   init_state(params, rest, tx), eval_graph, batch)
