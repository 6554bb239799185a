"""keras.applications.MobileNetV2(alpha=1.0, include_top=False) as a Keras-named layer graph, in Keras' order."""
from __future__ import annotations

from models.cuts import Layer

BN = {"epsilon": 1e-3, "momentum": 0.999}
# (filters, stride, expansion) of _inverted_res_block 0..16, as MobileNetV2() calls it
BLOCKS = ((16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6), (64, 2, 6), (64, 1, 6),
          (64, 1, 6), (64, 1, 6), (96, 1, 6), (96, 1, 6), (96, 1, 6), (160, 2, 6), (160, 1, 6), (160, 1, 6),
          (320, 1, 6))


def make_divisible(v: float, divisor: int = 8) -> int:
    """keras.applications.mobilenet_v2._make_divisible."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _inverted_res_block(x: str, in_channels: int, filters: int, stride: int, expansion: int, alpha: float,
                        block_id: int) -> list[Layer]:
    out = make_divisible(int(filters * alpha))
    p = f"block_{block_id}_" if block_id else "expanded_conv_"
    layers, h = [], x
    if block_id:
        layers += [Layer(p + "expand", "conv", (h,), features=expansion * in_channels, padding="SAME", use_bias=False),
                   Layer(p + "expand_BN", "bn", (p + "expand",), **BN),
                   Layer(p + "expand_relu", "relu6", (p + "expand_BN",))]
        h = p + "expand_relu"
    if stride == 2:
        layers.append(Layer(p + "pad", "pad", (h,), pad_for_kernel=3))
        h = p + "pad"
    layers += [
        Layer(p + "depthwise", "dwconv", (h,), kernel=3, stride=stride, padding="SAME" if stride == 1 else "VALID",
              use_bias=False),
        Layer(p + "depthwise_BN", "bn", (p + "depthwise",), **BN),
        Layer(p + "depthwise_relu", "relu6", (p + "depthwise_BN",)),
        Layer(p + "project", "conv", (p + "depthwise_relu",), features=out, padding="SAME", use_bias=False),
        Layer(p + "project_BN", "bn", (p + "project",), **BN),
    ]
    if in_channels == out and stride == 1:
        layers.append(Layer(p + "add", "add", (x, p + "project_BN")))
    return layers


def mobilenet_v2_graph(alpha: float = 1.0) -> tuple[Layer, ...]:
    """Every layer of keras.applications.MobileNetV2(alpha, include_top=False)."""
    first = make_divisible(32 * alpha)
    layers = [
        Layer("input_layer", "input"),
        Layer("Conv1", "conv", ("input_layer",), features=first, kernel=3, stride=2, padding="SAME", use_bias=False),
        Layer("bn_Conv1", "bn", ("Conv1",), **BN),
        Layer("Conv1_relu", "relu6", ("bn_Conv1",)),
    ]
    x, channels = "Conv1_relu", first
    for block_id, (filters, stride, expansion) in enumerate(BLOCKS):
        layers += _inverted_res_block(x, channels, filters, stride, expansion, alpha, block_id)
        x, channels = layers[-1].name, make_divisible(int(filters * alpha))
    last = make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    layers += [
        Layer("Conv_1", "conv", (x,), features=last, use_bias=False),
        Layer("Conv_1_bn", "bn", ("Conv_1",), **BN),
        Layer("out_relu", "relu6", ("Conv_1_bn",)),
    ]
    return tuple(layers)
