"""2-D convolutions in the form that runs fastest on this backend, chosen per layer shape (same maths, same params).

On GPU every conv is XLA's own. On CPU (measured with `fusion-sweep bench`'s `conv_layers` section against
TensorFlow/oneDNN; results/bench/README.md has the figures):
- XLA:CPU computes the *weight* gradient of a k x k conv on a large map many times slower than a matmul would:
  on the CNN's 32x32x32 -> 64 5x5 conv it is most of the train step. "xla+dw_im2col" keeps XLA's forward and
  input gradient and computes the weight gradient per image as im2col patches^T @ dy, accumulated over the batch
  in a loop, so each image's patches stay in cache instead of one batch-sized patch matrix.
- On small, wide maps (ResNet50V2's later stages at 64-128 px) both gradients are slow in XLA: "im2col" writes the
  whole conv as one matmul over the k*k shifted slices and lets autodiff derive its gradients.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

FORMS = ("xla", "im2col", "xla+dw_im2col")
DIMENSIONS = ("NHWC", "HWIO", "NHWC")
IM2COL_MAX_OUT_PIXELS = 64  # output maps up to 8x8: the whole conv as one matmul
DW_IM2COL_MIN_OUT_PIXELS = 256  # output maps from 16x16: XLA forward, weight gradient per image


def output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    if padding == "SAME":
        return -(-size // stride)
    return (size - kernel) // stride + 1


def cpu_form(in_size: int, kernel: int, stride: int, padding: str) -> str:
    """The form that measured fastest on CPU for a conv with this input size and kernel (see the module doc)."""
    if kernel == 1:
        return "xla"
    pixels = output_size(in_size, kernel, stride, padding) ** 2
    if pixels <= IM2COL_MAX_OUT_PIXELS:
        return "im2col"
    if pixels >= DW_IM2COL_MIN_OUT_PIXELS and stride == 1:
        return "xla+dw_im2col"
    return "xla"


def form_for(in_size: int, kernel: int, stride: int, padding: str, backend: str | None = None) -> str:
    backend = backend or jax.default_backend()
    return cpu_form(in_size, kernel, stride, padding) if backend == "cpu" else "xla"


def conv2d(x: jax.Array, kernel: jax.Array, *, stride: int, padding: str, form: str | None = None) -> jax.Array:
    """NHWC x (B,H,W,C) with an HWIO `kernel` (k,k,C,O) -> (B,H',W',O), no bias. `form` None: form_for(...)."""
    form = form or form_for(x.shape[1], kernel.shape[0], stride, padding)
    if form == "xla":
        return _xla_conv(x, kernel, stride, padding)
    if form == "im2col":
        return _im2col_conv(x, kernel, stride, padding)
    if form == "xla+dw_im2col":
        return _conv_dw_im2col(x, kernel, stride, padding)
    raise ValueError(f"unknown conv form {form!r}; choose one of {', '.join(FORMS)}")


def _xla_conv(x, kernel, stride, padding):
    return lax.conv_general_dilated(x, kernel, (stride, stride), padding, dimension_numbers=DIMENSIONS)


def _pad_same(x: jax.Array, kernel: int) -> jax.Array:
    lo = (kernel - 1) // 2
    return jnp.pad(x, ((0, 0), (lo, kernel - 1 - lo), (lo, kernel - 1 - lo), (0, 0)))


def _patches(x: jax.Array, kernel: int, stride: int) -> jax.Array:
    """(B,H,W,C) already padded -> (B,H',W',k*k*C): the k*k shifted, strided slices side by side (im2col)."""
    _, height, width, _ = x.shape
    out_h, out_w = (height - kernel) // stride + 1, (width - kernel) // stride + 1
    return jnp.concatenate([x[:, i:i + stride * (out_h - 1) + 1:stride, j:j + stride * (out_w - 1) + 1:stride, :]
                            for i in range(kernel) for j in range(kernel)], axis=-1)


def _im2col_conv(x, kernel, stride, padding):
    k, _, channels, features = kernel.shape
    x = _pad_same(x, k) if padding == "SAME" else x
    return jnp.einsum("bhwc,co->bhwo", _patches(x, k, stride), kernel.reshape(k * k * channels, features))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_dw_im2col(x, kernel, stride, padding):
    return _xla_conv(x, kernel, stride, padding)


def _conv_dw_im2col_fwd(x, kernel, stride, padding):
    return _xla_conv(x, kernel, stride, padding), (x, kernel)


def _conv_dw_im2col_bwd(stride, padding, residuals, dy):
    x, kernel = residuals
    _, input_vjp = jax.vjp(lambda x: _xla_conv(x, kernel, stride, padding), x)
    return input_vjp(dy)[0], _weight_grad_per_image(x, dy, kernel.shape, stride, padding).astype(kernel.dtype)


def _weight_grad_per_image(x, dy, kernel_shape, stride, padding):
    """sum over images of patches(x_b)^T @ dy_b, one image per loop step (its patches stay in cache)."""
    k, _, channels, features = kernel_shape
    x = _pad_same(x, k) if padding == "SAME" else x

    def add_image(total, image):
        x_b, dy_b = image
        patches = _patches(x_b[None], k, stride)[0]
        return total + jnp.einsum("hwc,hwo->co", patches, dy_b, preferred_element_type=total.dtype), None

    zero = jnp.zeros((k * k * channels, features), jnp.promote_types(x.dtype, jnp.float32))
    total, _ = lax.scan(add_image, zero, (x, dy))
    return total.reshape(kernel_shape)


_conv_dw_im2col.defvjp(_conv_dw_im2col_fwd, _conv_dw_im2col_bwd)
