"""2-D convolutions in the form that runs fastest on this backend, chosen per layer shape (same maths, same params).

A form is a plan for the three products of a conv layer in training: the forward output, the input gradient (dx)
and the weight gradient (dw), each computed either by XLA's own convolution or as matmuls over im2col patches
(the k*k shifted, strided slices of the input side by side). On GPU every conv is XLA's own ("xla"). On CPU,
XLA's convolutions lose to the same arithmetic as matmuls in places (`fusion-sweep bench`'s `conv_layers` section
times each layer; results/bench/README.md has the figures):
- the weight gradient of a k x k conv on a large map: "xla/xla/im2col_per_image" computes it per image as
  patches^T @ dy, accumulated over the batch in a loop, so each image's patches stay in cache;
- both gradients on small, wide maps (ResNet50V2's later stages at 64-128 px, 3x3 kernels; any kernel on maps up
  to 4x4, such as the CNN's last 5x5 convs at 32-64 px) and every 1x1 conv: "im2col" writes the whole conv as one
  matmul and lets autodiff derive its gradients.
Those rules are only the fallback: which form is fastest depends on the CPU, so the caller measures the forms on
the machine at hand (sweep/engine/autotune.py, docs/autotune.md) and hands the chosen ones in with `use_forms`;
a layer shape the mapping does not name takes the rule's form.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import Iterator, Mapping

import jax
import jax.numpy as jnp
from jax import lax

FORWARD = ("xla", "im2col")
INPUT_GRAD = ("xla", "im2col")
WEIGHT_GRAD = ("xla", "im2col", "im2col_per_image")
FORMS = ("xla", "im2col") + tuple(f"{f}/{dx}/{dw}" for f in FORWARD for dx in INPUT_GRAD for dw in WEIGHT_GRAD
                                  if (f, dx, dw) not in (("xla", "xla", "xla"), ("im2col", "im2col", "im2col")))
DIMENSIONS = ("NHWC", "HWIO", "NHWC")
IM2COL_ANY_KERNEL_MAX_OUT_PIXELS = 16  # output maps up to 4x4: every conv as one matmul (the CNN's 5x5 convs on
# 4x4 and 2x2 maps at 32 px: train step 27 -> 136 img/s, eval 61 -> 651 img/s on one core, batch 16)
IM2COL_MAX_OUT_PIXELS = 64  # output maps up to 8x8: the whole conv as one matmul...
IM2COL_MAX_KERNEL = 3  # ...for 3x3 kernels: the CNN's 5x5 on 8x8 maps is faster as XLA's conv (its patches are 25x)
PER_IMAGE_DW_MIN_OUT_PIXELS = 256  # output maps from 16x16: XLA forward and dx, weight gradient per image


def output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    if padding == "SAME":
        return -(-size // stride)
    return (size - kernel) // stride + 1


def cpu_form(in_size: int, kernel: int, stride: int, padding: str) -> str:
    """The form that measured fastest on CPU for a conv with this input size and kernel (see the module doc)."""
    if kernel == 1:  # a 1x1 conv is a matmul: as one, forward 1.3-1.8x and forward+grads 2.6-3.7x XLA's conv
        return "im2col"
    pixels = output_size(in_size, kernel, stride, padding) ** 2
    if pixels <= IM2COL_ANY_KERNEL_MAX_OUT_PIXELS:
        return "im2col"
    if pixels <= IM2COL_MAX_OUT_PIXELS and kernel <= IM2COL_MAX_KERNEL:
        return "im2col"
    if pixels >= PER_IMAGE_DW_MIN_OUT_PIXELS:
        return "xla/xla/im2col_per_image"
    return "xla"


PHASES = ("train", "inference")  # a train program runs forward and gradients; an inference program the forward only
_process_forms: Mapping[str, Mapping[str, str]] | None = None  # set_forms: every thread of the process sees it
_FORMS: contextvars.ContextVar[Mapping[str, Mapping[str, str]] | None] = contextvars.ContextVar("conv_forms",
                                                                                                default=None)
_PHASE: contextvars.ContextVar[str] = contextvars.ContextVar("conv_phase", default="train")
_RECORD: contextvars.ContextVar[list | None] = contextvars.ContextVar("conv_record", default=None)


def layer_key(x_shape, kernel_shape, stride: int, padding: str, dtype) -> str:
    """The name a chosen-forms mapping gives one conv layer shape: batch, input map, kernel, stride, padding and
    compute dtype, e.g. 'b32_16x16x64_k3x3x64x64_s1_SAME_float32'."""
    batch, height, width, channels = x_shape
    k_h, k_w, _, features = kernel_shape
    return (f"b{batch}_{height}x{width}x{channels}_k{k_h}x{k_w}x{channels}x{features}_s{stride}_{padding}_"
            f"{jnp.dtype(dtype).name}")


def any_batch_key(key: str) -> str:
    """layer_key with the batch left open ('b*_...'): the mapping's entry for a shape measured at another batch."""
    return "b*_" + key.split("_", 1)[1]


def parse_layer_key(key: str) -> dict:
    """layer_key's fields back: x_shape, kernel_shape, stride, padding, dtype."""
    batch, image, kernel, stride, padding, dtype = key.split("_")
    height, width, channels = (int(v) for v in image.split("x"))
    return {"x_shape": (int(batch[1:]), height, width, channels),
            "kernel_shape": tuple(int(v) for v in kernel[1:].split("x")), "stride": int(stride[1:]),
            "padding": padding, "dtype": dtype}


@contextlib.contextmanager
def use_forms(forms: Mapping[str, Mapping[str, str]] | None) -> Iterator[None]:
    """Within the block (this thread), conv layers take their form from `forms` ({phase: {layer_key: form}}),
    over set_forms'. Read when a program is traced, so wrap the tracing (the first call of a jitted function)."""
    token = _FORMS.set(forms)
    try:
        yield
    finally:
        _FORMS.reset(token)


def set_forms(forms: Mapping[str, Mapping[str, str]] | None) -> None:
    """The chosen forms for every program this process traces from now on (None: the rules)."""
    global _process_forms
    _process_forms = forms


def chosen_forms() -> Mapping[str, Mapping[str, str]] | None:
    forms = _FORMS.get()
    return forms if forms is not None else _process_forms


@contextlib.contextmanager
def program_phase(phase: str) -> Iterator[None]:
    """Mark the program being traced as 'train' (forward and gradients) or 'inference' (forward only)."""
    if phase not in PHASES:
        raise ValueError(f"unknown program phase {phase!r}; choose one of {', '.join(PHASES)}")
    token = _PHASE.set(phase)
    try:
        yield
    finally:
        _PHASE.reset(token)


def in_phase(phase: str, fn):
    """fn, tracing inside program_phase(phase): what a jitted step function is wrapped in."""
    @functools.wraps(fn)
    def traced(*args, **kwargs):
        with program_phase(phase):
            return fn(*args, **kwargs)

    return traced


@contextlib.contextmanager
def recording_layers() -> Iterator[list[str]]:
    """Collect the layer_key of every conv traced within the block (in order; what a program's autotuning times)."""
    keys: list[str] = []
    token = _RECORD.set(keys)
    try:
        yield keys
    finally:
        _RECORD.reset(token)


def form_for(in_size: int, kernel: int, stride: int, padding: str, backend: str | None = None, *,
             key: str | None = None) -> str:
    """The form for a conv layer: the chosen mapping's for this phase and layer `key` when it names one; else, on
    CPU, the rule of cpu_form, and XLA's own conv on other backends."""
    record = _RECORD.get()
    if record is not None and key is not None:
        record.append(key)
    backend = backend or jax.default_backend()
    if backend != "cpu":
        return "xla"
    chosen = (chosen_forms() or {}).get(_PHASE.get(), {})
    if key is not None:
        for name in (key, any_batch_key(key)):
            if name in chosen:
                return chosen[name]
    return cpu_form(in_size, kernel, stride, padding)


def conv2d(x: jax.Array, kernel: jax.Array, *, stride: int, padding: str, form: str | None = None) -> jax.Array:
    """NHWC x (B,H,W,C) with an HWIO `kernel` (k,k,C,O) -> (B,H',W',O), no bias. `form` None: form_for(...)."""
    form = form or form_for(x.shape[1], kernel.shape[0], stride, padding)
    if form not in FORMS:
        raise ValueError(f"unknown conv form {form!r}; choose one of {', '.join(FORMS)}")
    if form == "xla":
        return _xla_conv(x, kernel, stride, padding)
    if form == "im2col":
        return _im2col_conv(x, kernel, stride, padding)
    return _planned_conv(x, kernel, stride, padding, tuple(form.split("/")))


def _xla_conv(x, kernel, stride, padding):
    return lax.conv_general_dilated(x, kernel, (stride, stride), padding, dimension_numbers=DIMENSIONS)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(low, high) zero padding of XLA's and TensorFlow's SAME: the output has ceil(size / stride) pixels, the
    total padding is what that needs, and any odd pixel goes to the high side."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: jax.Array, kernel: int, stride: int = 1) -> jax.Array:
    rows, cols = same_padding(x.shape[1], kernel, stride), same_padding(x.shape[2], kernel, stride)
    return jnp.pad(x, ((0, 0), rows, cols, (0, 0)))


def _patches(x: jax.Array, kernel: int, stride: int) -> jax.Array:
    """(B,H,W,C) already padded -> (B,H',W',k*k*C): the k*k shifted, strided slices side by side (im2col)."""
    _, height, width, _ = x.shape
    out_h, out_w = (height - kernel) // stride + 1, (width - kernel) // stride + 1
    return jnp.concatenate([x[:, i:i + stride * (out_h - 1) + 1:stride, j:j + stride * (out_w - 1) + 1:stride, :]
                            for i in range(kernel) for j in range(kernel)], axis=-1)


def _im2col_conv(x, kernel, stride, padding):
    k, _, channels, features = kernel.shape
    x = _pad_same(x, k, stride) if padding == "SAME" else x
    return jnp.einsum("bhwc,co->bhwo", _patches(x, k, stride), kernel.reshape(k * k * channels, features))


_FORWARD = {"xla": _xla_conv, "im2col": _im2col_conv}


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _planned_conv(x, kernel, stride, padding, plan):
    return _FORWARD[plan[0]](x, kernel, stride, padding)


def _planned_fwd(x, kernel, stride, padding, plan):
    return _FORWARD[plan[0]](x, kernel, stride, padding), (x, kernel)


def _planned_bwd(stride, padding, plan, residuals, dy):
    x, kernel = residuals
    _, input_vjp = jax.vjp(lambda x: _FORWARD[plan[1]](x, kernel, stride, padding), x)
    if plan[2] == "im2col_per_image":
        dw = _weight_grad_per_image(x, dy, kernel.shape, stride, padding)
    else:
        _, weight_vjp = jax.vjp(lambda w: _FORWARD[plan[2]](x, w, stride, padding), kernel)
        dw = weight_vjp(dy)[0]
    return input_vjp(dy)[0], dw.astype(kernel.dtype)


def _weight_grad_per_image(x, dy, kernel_shape, stride, padding):
    """sum over images of patches(x_b)^T @ dy_b, one image per loop step (its patches stay in cache)."""
    k, _, channels, features = kernel_shape
    x = _pad_same(x, k, stride) if padding == "SAME" else x

    def add_image(total, image):
        x_b, dy_b = image
        patches = _patches(x_b[None], k, stride)[0]
        return total + jnp.einsum("hwc,hwo->co", patches, dy_b, preferred_element_type=total.dtype), None

    zero = jnp.zeros((k * k * channels, features), jnp.promote_types(x.dtype, jnp.float32))
    total, _ = lax.scan(add_image, zero, (x, dy))
    return total.reshape(kernel_shape)


_planned_conv.defvjp(_planned_fwd, _planned_bwd)
