"""keras.applications.EfficientNetB0(include_top=False) as a Keras-named layer graph, in Keras' layer order."""
from __future__ import annotations

import math

from models.cuts import Layer

# keras.applications.efficientnet.DEFAULT_BLOCKS_ARGS: kernel, repeats, filters in/out, expansion, stride
# (every block: squeeze-excite ratio 0.25, identity skip)
BLOCKS_ARGS = ((3, 1, 32, 16, 1, 1), (3, 2, 16, 24, 6, 2), (5, 2, 24, 40, 6, 2), (3, 3, 40, 80, 6, 2),
               (5, 3, 80, 112, 6, 1), (5, 4, 112, 192, 6, 2), (3, 1, 192, 320, 6, 1))
SE_RATIO = 0.25
# keras.applications.efficientnet.IMAGENET_STDDEV_RGB: with weights="imagenet" Keras adds a third
# Rescaling(1 / sqrt(stddev)) after the Normalization (its imagenet files store std where variance belongs)
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    filters *= width
    new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    return int(new + divisor if new < 0.9 * filters else new)


def _block(x: str, name: str, filters_in: int, filters_out: int, kernel: int, stride: int, expansion: int,
           drop_rate: float) -> list[Layer]:
    """keras.applications.efficientnet.block: expand, depthwise, squeeze-excite, project, skip."""
    filters = filters_in * expansion
    layers, h = [], x
    if expansion != 1:
        layers += [Layer(f"{name}expand_conv", "conv", (h,), features=filters, padding="SAME", use_bias=False),
                   Layer(f"{name}expand_bn", "bn", (f"{name}expand_conv",)),
                   Layer(f"{name}expand_activation", "swish", (f"{name}expand_bn",))]
        h = f"{name}expand_activation"
    if stride == 2:
        layers.append(Layer(f"{name}dwconv_pad", "pad", (h,), pad_for_kernel=kernel))
        h = f"{name}dwconv_pad"
    filters_se = max(1, int(filters_in * SE_RATIO))
    layers += [
        Layer(f"{name}dwconv", "dwconv", (h,), kernel=kernel, stride=stride,
              padding="VALID" if stride == 2 else "SAME", use_bias=False),
        Layer(f"{name}bn", "bn", (f"{name}dwconv",)),
        Layer(f"{name}activation", "swish", (f"{name}bn",)),
        Layer(f"{name}se_squeeze", "gap", (f"{name}activation",)),
        Layer(f"{name}se_reshape", "reshape", (f"{name}se_squeeze",), shape=(1, 1, filters)),
        Layer(f"{name}se_reduce", "conv", (f"{name}se_reshape",), features=filters_se, padding="SAME",
              activation="swish"),
        Layer(f"{name}se_expand", "conv", (f"{name}se_reduce",), features=filters, padding="SAME",
              activation="sigmoid"),
        Layer(f"{name}se_excite", "multiply", (f"{name}activation", f"{name}se_expand")),
        Layer(f"{name}project_conv", "conv", (f"{name}se_excite",), features=filters_out, padding="SAME",
              use_bias=False),
        Layer(f"{name}project_bn", "bn", (f"{name}project_conv",)),
    ]
    if stride == 1 and filters_in == filters_out:
        h = f"{name}project_bn"
        if drop_rate > 0:
            layers.append(Layer(f"{name}drop", "dropout", (h,), rate=drop_rate, per_sample=True))
            h = f"{name}drop"
        layers.append(Layer(f"{name}add", "add", (h, x)))
    return layers


def efficientnet_graph(width: float = 1.0, depth: float = 1.0, drop_connect_rate: float = 0.2,
                       imagenet_rescaling: bool = False) -> tuple[Layer, ...]:
    """Every layer of keras.applications.EfficientNet(width, depth, include_top=False) (B0: 1.0, 1.0), named as
    in a fresh Keras session. imagenet_rescaling: the extra `rescaling_1` Keras adds with weights="imagenet"."""
    layers = [
        Layer("input_layer", "input"),
        Layer("rescaling", "rescale", ("input_layer",), scale=1.0 / 255.0),
        Layer("normalization", "norm", ("rescaling",), epsilon=1e-7),
    ]
    x = "normalization"
    if imagenet_rescaling:
        layers.append(Layer("rescaling_1", "rescale", (x,), scale=tuple(1.0 / math.sqrt(s) for s in IMAGENET_STDDEV_RGB)))
        x = "rescaling_1"
    stem = _round_filters(32, width)
    layers += [
        Layer("stem_conv_pad", "pad", (x,), pad_for_kernel=3),
        Layer("stem_conv", "conv", ("stem_conv_pad",), features=stem, kernel=3, stride=2, use_bias=False),
        Layer("stem_bn", "bn", ("stem_conv",)),
        Layer("stem_activation", "swish", ("stem_bn",)),
    ]
    x = "stem_activation"
    repeats = [int(math.ceil(depth * args[1])) for args in BLOCKS_ARGS]
    total, b = float(sum(repeats)), 0
    for i, ((kernel, _, f_in, f_out, expansion, stride), count) in enumerate(zip(BLOCKS_ARGS, repeats)):
        f_in, f_out = _round_filters(f_in, width), _round_filters(f_out, width)
        for j in range(count):
            if j > 0:
                stride, f_in = 1, f_out
            layers += _block(x, f"block{i + 1}{chr(j + 97)}_", f_in, f_out, kernel, stride, expansion,
                             drop_connect_rate * b / total)
            x, b = layers[-1].name, b + 1
    layers += [
        Layer("top_conv", "conv", (x,), features=_round_filters(1280, width), padding="SAME", use_bias=False),
        Layer("top_bn", "bn", ("top_conv",)),
        Layer("top_activation", "swish", ("top_bn",)),
    ]
    return tuple(layers)
