"""The seed's two parents as Keras-named layer graphs (pure Python: no JAX): the CNN, ResNet50V2 and its head.

Cut names are these layers' names; models/cuts.py turns a graph into shapes and parameter counts, and
models/build.py into nnx modules.
"""
from __future__ import annotations

from models.cuts import Layer, cumulative_params, infer_shapes, needed_layers
from models.spec import FusionSpec

CNN_BN_EPSILON = 1e-3  # Keras BatchNormalization default
RESNET_BN_EPSILON = 1.001e-5  # keras.applications ResNetV2

FILTERS = (32, 64, 128, 256, 512)
KERNELS = (3, 5, 3, 5, 3)
DROPOUTS = (0.2, 0.2, 0.3, 0.3, 0.3)


def cnn_graph(num_classes: int = 2) -> tuple[Layer, ...]:
    """Every layer of the seed's CNN, in Keras order: 5 x (conv same -> relu -> bn -> maxpool 2 -> dropout), head."""
    layers = [Layer("input", "input")]
    prev = "input"
    for i, (filters, kernel, rate) in enumerate(zip(FILTERS, KERNELS, DROPOUTS), start=1):
        block = [
            Layer(f"block{i}_conv", "conv", (prev,), features=filters, kernel=kernel, padding="SAME"),
            Layer(f"block{i}_relu", "relu", (f"block{i}_conv",)),
            Layer(f"block{i}_bn", "bn", (f"block{i}_relu",), epsilon=CNN_BN_EPSILON),
            Layer(f"block{i}_pool", "maxpool", (f"block{i}_bn",), kernel=2, stride=2),
            Layer(f"block{i}_drop", "dropout", (f"block{i}_pool",), rate=rate),
        ]
        layers += block
        prev = block[-1].name
    layers += [
        Layer("flatten", "flatten", (prev,)),
        Layer("dense", "dense", ("flatten",), features=2048, activation="relu"),
        Layer("dropout", "dropout", ("dense",), rate=0.5),
        Layer("predictions", "dense", ("dropout",), features=num_classes),  # logits; softmax lives in the loss
    ]
    return tuple(layers)


CNN_LAYERS: tuple[str, ...] = tuple(layer.name for layer in cnn_graph())


STAGES = ((64, 3, 2), (128, 4, 2), (256, 6, 2), (512, 3, 1))  # filters, blocks, stride of the stage's last block
HEADS = ("flatten", "gap")


def _block(prefix: str, x: str, filters: int, stride: int, conv_shortcut: bool, pool_name: str) -> list[Layer]:
    """Keras' ResNetV2 block2: pre-activation, 1x1 -> padded 3x3 (carries the stride) -> 1x1, plus shortcut."""
    p = prefix
    layers = [
        Layer(p + "preact_bn", "bn", (x,), epsilon=RESNET_BN_EPSILON),
        Layer(p + "preact_relu", "relu", (p + "preact_bn",)),
        Layer(p + "1_conv", "conv", (p + "preact_relu",), features=filters, use_bias=False),
        Layer(p + "1_bn", "bn", (p + "1_conv",), epsilon=RESNET_BN_EPSILON),
        Layer(p + "1_relu", "relu", (p + "1_bn",)),
        Layer(p + "2_pad", "pad", (p + "1_relu",), pad=1),
        Layer(p + "2_conv", "conv", (p + "2_pad",), features=filters, kernel=3, stride=stride, use_bias=False),
        Layer(p + "2_bn", "bn", (p + "2_conv",), epsilon=RESNET_BN_EPSILON),
        Layer(p + "2_relu", "relu", (p + "2_bn",)),
    ]
    if conv_shortcut:
        shortcut = p + "0_conv"
        layers.append(Layer(shortcut, "conv", (p + "preact_relu",), features=4 * filters, stride=stride))
    elif stride > 1:
        shortcut = pool_name
        layers.append(Layer(shortcut, "maxpool", (x,), kernel=1, stride=stride))
    else:
        shortcut = x
    layers += [
        Layer(p + "3_conv", "conv", (p + "2_relu",), features=4 * filters),
        Layer(p + "out", "add", (shortcut, p + "3_conv")),
    ]
    return layers


def resnet50v2_graph() -> tuple[Layer, ...]:
    """Every layer of keras.applications.ResNet50V2(include_top=False), in Keras order."""
    layers = [
        Layer("input_layer", "input"),
        Layer("conv1_pad", "pad", ("input_layer",), pad=3),
        Layer("conv1_conv", "conv", ("conv1_pad",), features=64, kernel=7, stride=2),
        Layer("pool1_pad", "pad", ("conv1_conv",), pad=1),
        Layer("pool1_pool", "maxpool", ("pool1_pad",), kernel=3, stride=2),
    ]
    x, pools = "pool1_pool", 0
    for stage, (filters, blocks, stride) in enumerate(STAGES, start=2):
        for b in range(1, blocks + 1):
            block_stride = stride if b == blocks else 1
            pool_name = "max_pooling2d" + (f"_{pools}" if pools else "")
            block = _block(f"conv{stage}_block{b}_", x, filters, block_stride, b == 1, pool_name)
            pools += any(layer.name == pool_name for layer in block)
            layers += block
            x = block[-1].name
    layers += [
        Layer("post_bn", "bn", (x,), epsilon=RESNET_BN_EPSILON),
        Layer("post_relu", "relu", ("post_bn",)),
    ]
    return tuple(layers)


def head_graph(head: str, num_classes: int, on: str = "post_relu") -> tuple[Layer, ...]:
    """The seed's head on `on` (ResNet50V2's post_relu): Flatten (or GAP) -> Dense 2048 relu -> Dropout .5 ->
    Dense classes (logits)."""
    pool = Layer("flatten", "flatten", (on,)) if head == "flatten" else Layer("avg_pool", "gap", (on,))
    return (
        pool,
        Layer("dense", "dense", (pool.name,), features=2048, activation="relu"),
        Layer("dropout", "dropout", ("dense",), rate=0.5),
        Layer("predictions", "dense", ("dropout",), features=num_classes),
    )


RESNET50V2_LAYERS: tuple[str, ...] = tuple(layer.name for layer in resnet50v2_graph())


def param_count(name_or_spec: str | FusionSpec, *, image_size: int = 256, channels: int = 3, num_classes: int = 2,
                resnet_head: str = "flatten") -> tuple[int, int]:
    """(total, non-trainable) params of a model counted from its layer graph, without building it (no JAX):
    'cnn', 'resnet50v2' (with `resnet_head`) or a FusionSpec (its own image size, channels and classes)."""
    if isinstance(name_or_spec, FusionSpec):
        return _fusion_params(name_or_spec)
    if name_or_spec == "cnn":
        graph, model = cnn_graph(num_classes), "cnn"
    elif name_or_spec == "resnet50v2":
        graph, model = resnet50v2_graph() + head_graph(resnet_head, num_classes), "resnet50v2"
    else:
        raise ValueError(f"param_count: unknown model {name_or_spec!r}; choose cnn, resnet50v2 or a FusionSpec")
    return cumulative_params(graph, infer_shapes(graph, image_size, channels, model), "predictions", channels)


def _fusion_params(spec: FusionSpec) -> tuple[int, int]:
    """Both cut backbones, one Dense(branch_width) per branch, Dense(head_width), Dense(classes): as FusionNet."""
    from models.backbones import graph_of  # imports this module

    total = frozen = concat = 0
    maps = []
    for model, cut in ((spec.backbone_a, spec.cnn_cut), (spec.backbone_b, spec.resnet_cut)):
        if cut is None:
            continue
        graph = graph_of(model, spec.num_classes)
        shapes = infer_shapes(needed_layers(graph, cut), spec.image_size, spec.channels, model)
        n, f = cumulative_params(graph, shapes, cut, spec.channels)
        total, frozen = total + n, frozen + f
        maps.append(shapes[cut])
        if spec.merge == "concat":
            continue
        total += shapes[cut][-1] * spec.branch_width + spec.branch_width
        flattened = len(shapes[cut]) == 3 and spec.pool == "flatten"
        concat += shapes[cut][0] * shapes[cut][1] * spec.branch_width if flattened else spec.branch_width
    if spec.merge == "concat":  # as FusionNet's concat head
        channels = sum(shape[-1] for shape in maps)
        if len(maps[0]) == len(maps[1]) == 3 and maps[0][:2] == maps[1][:2]:
            conv = channels * spec.head_width + spec.head_width
            return total + conv + maps[0][0] * maps[0][1] * spec.head_width * spec.num_classes + spec.num_classes, frozen
        return total + channels * spec.num_classes + spec.num_classes, frozen
    total += concat * spec.head_width + spec.head_width + spec.head_width * spec.num_classes + spec.num_classes
    return total, frozen
