"""keras.applications.Xception(include_top=False) as a Keras-named layer graph, in Keras' layer order."""
from __future__ import annotations

from models.cuts import Layer


class _Namer:
    """Keras' automatic names for unnamed layers in a fresh session: conv2d, conv2d_1, ... per class."""

    def __init__(self):
        self.used: dict[str, int] = {}

    def __call__(self, base: str) -> str:
        n = self.used.get(base, 0)
        self.used[base] = n + 1
        return f"{base}_{n}" if n else base


def _sep(name: str, x: str, filters: int) -> list[Layer]:
    return [Layer(name, "sepconv", (x,), features=filters, kernel=3, padding="SAME", use_bias=False),
            Layer(f"{name}_bn", "bn", (name,))]


def _entry_block(auto: _Namer, block: int, x: str, filters: tuple[int, int], act_first: bool) -> list[Layer]:
    """Two separable convs, a 3x3/2 max-pool and a strided 1x1 conv + BN shortcut (blocks 2, 3, 4 and 13), in
    Keras's model.layers order (by depth: the shortcut's conv after the main path's last BN)."""
    conv, bn = auto("conv2d"), auto("batch_normalization")  # Keras creates (so names) the shortcut first
    p = f"block{block}_"
    layers = []
    if act_first:
        layers.append(Layer(p + "sepconv1_act", "relu", (x,)))
    layers += _sep(p + "sepconv1", p + "sepconv1_act" if act_first else x, filters[0])
    layers.append(Layer(p + "sepconv2_act", "relu", (p + "sepconv1_bn",)))
    layers += _sep(p + "sepconv2", p + "sepconv2_act", filters[1])
    layers += [
        Layer(conv, "conv", (x,), features=filters[1], stride=2, padding="SAME", use_bias=False),
        Layer(p + "pool", "maxpool", (p + "sepconv2_bn",), kernel=3, stride=2, padding="SAME"),
        Layer(bn, "bn", (conv,)),
        Layer(auto("add"), "add", (p + "pool", bn)),
    ]
    return layers


def xception_graph() -> tuple[Layer, ...]:
    """Every layer of keras.applications.Xception(include_top=False), named as in a fresh Keras session."""
    auto = _Namer()
    layers = [
        Layer("input_layer", "input"),
        Layer("block1_conv1", "conv", ("input_layer",), features=32, kernel=3, stride=2, use_bias=False),
        Layer("block1_conv1_bn", "bn", ("block1_conv1",)),
        Layer("block1_conv1_act", "relu", ("block1_conv1_bn",)),
        Layer("block1_conv2", "conv", ("block1_conv1_act",), features=64, kernel=3, use_bias=False),
        Layer("block1_conv2_bn", "bn", ("block1_conv2",)),
        Layer("block1_conv2_act", "relu", ("block1_conv2_bn",)),
    ]
    x = "block1_conv2_act"
    for block, filters in ((2, 128), (3, 256), (4, 728)):
        layers += _entry_block(auto, block, x, (filters, filters), act_first=block > 2)
        x = layers[-1].name
    for block in range(5, 13):  # middle flow: three relu -> sepconv -> bn, identity shortcut
        p, h = f"block{block}_", x
        for i in (1, 2, 3):
            layers.append(Layer(f"{p}sepconv{i}_act", "relu", (h,)))
            layers += _sep(f"{p}sepconv{i}", f"{p}sepconv{i}_act", 728)
            h = layers[-1].name
        layers.append(Layer(auto("add"), "add", (h, x)))
        x = layers[-1].name
    layers += _entry_block(auto, 13, x, (728, 1024), act_first=True)
    x = layers[-1].name
    layers += _sep("block14_sepconv1", x, 1536)
    layers.append(Layer("block14_sepconv1_act", "relu", ("block14_sepconv1_bn",)))
    layers += _sep("block14_sepconv2", "block14_sepconv1_act", 2048)
    layers.append(Layer("block14_sepconv2_act", "relu", ("block14_sepconv2_bn",)))
    return tuple(layers)
