"""keras.applications.DenseNet121(include_top=False) as a Keras-named layer graph, in Keras' layer order."""
from __future__ import annotations

from models.cuts import Layer

BN_EPSILON = 1.001e-5
GROWTH_RATE = 32
DENSENET121_BLOCKS = (6, 12, 24, 16)


def _bn(name: str, x: str) -> Layer:
    return Layer(name, "bn", (x,), epsilon=BN_EPSILON)


def _conv_block(x: str, channels: int, name: str) -> list[Layer]:
    """BN-relu-1x1 (4 x growth) -> BN-relu-3x3 (growth), concatenated to the input."""
    return [
        _bn(f"{name}_0_bn", x),
        Layer(f"{name}_0_relu", "relu", (f"{name}_0_bn",)),
        Layer(f"{name}_1_conv", "conv", (f"{name}_0_relu",), features=4 * GROWTH_RATE, use_bias=False),
        _bn(f"{name}_1_bn", f"{name}_1_conv"),
        Layer(f"{name}_1_relu", "relu", (f"{name}_1_bn",)),
        Layer(f"{name}_2_conv", "conv", (f"{name}_1_relu",), features=GROWTH_RATE, kernel=3, padding="SAME",
              use_bias=False),
        Layer(f"{name}_concat", "concat", (x, f"{name}_2_conv")),
    ]


def _transition(x: str, channels: int, name: str) -> list[Layer]:
    """BN-relu-1x1 conv halving the channels, 2x2/2 average pool."""
    return [
        _bn(f"{name}_bn", x),
        Layer(f"{name}_relu", "relu", (f"{name}_bn",)),
        Layer(f"{name}_conv", "conv", (f"{name}_relu",), features=int(channels * 0.5), use_bias=False),
        Layer(f"{name}_pool", "avgpool", (f"{name}_conv",), kernel=2, stride=2),
    ]


def densenet_graph(blocks: tuple[int, ...] = DENSENET121_BLOCKS) -> tuple[Layer, ...]:
    """Every layer of keras.applications.DenseNet(blocks, include_top=False), named as in a fresh Keras session."""
    layers = [
        Layer("input_layer", "input"),
        Layer("zero_padding2d", "pad", ("input_layer",), pad=3),
        Layer("conv1_conv", "conv", ("zero_padding2d",), features=64, kernel=7, stride=2, use_bias=False),
        _bn("conv1_bn", "conv1_conv"),
        Layer("conv1_relu", "relu", ("conv1_bn",)),
        Layer("zero_padding2d_1", "pad", ("conv1_relu",), pad=1),
        Layer("pool1", "maxpool", ("zero_padding2d_1",), kernel=3, stride=2),
    ]
    x, channels = "pool1", 64
    for stage, count in enumerate(blocks, start=2):
        for i in range(1, count + 1):
            layers += _conv_block(x, channels, f"conv{stage}_block{i}")
            x, channels = layers[-1].name, channels + GROWTH_RATE
        if stage < len(blocks) + 1:
            layers += _transition(x, channels, f"pool{stage}")
            x, channels = layers[-1].name, int(channels * 0.5)
    layers += [_bn("bn", x), Layer("relu", "relu", ("bn",))]
    return tuple(layers)
