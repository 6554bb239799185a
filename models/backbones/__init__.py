"""The Keras-application backbones as data: graph, last layer, input scaling, stage outputs (pure Python: no JAX).

Each backbone is a Keras-named layer graph (models/cuts.Layer) mirroring keras.applications' source, so
models/cuts.py counts and shapes it and models/build.py builds it; docs/backbones.md says how to add one.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Literal

from models.backbones.densenet import densenet_graph
from models.backbones.efficientnet import efficientnet_graph
from models.backbones.mobilenet_v2 import mobilenet_v2_graph
from models.backbones.xception import xception_graph
from models.cuts import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, Layer, cumulative_params, infer_shapes, needed_layers
from models.graphs import resnet50v2_graph


@dataclasses.dataclass(frozen=True)
class InputScaling:
    """What keras.applications.<app>.preprocess_input does to RGB pixels in [0, 255], as x * scale + offset
    per channel. mode: imagenet_utils' name for it ('tf': [-1, 1]; 'torch': /255 then ImageNet mean/std;
    'none': the model takes [0, 255] and scales inside, as EfficientNet's Rescaling + Normalization layers)."""

    mode: Literal["tf", "torch", "none"]
    scale: tuple[float, float, float]
    offset: tuple[float, float, float]


TF_SCALING = InputScaling("tf", (1 / 127.5,) * 3, (-1.0,) * 3)
TORCH_SCALING = InputScaling("torch", tuple(1 / (255 * s) for s in IMAGENET_STD_RGB),
                             tuple(-m / s for m, s in zip(IMAGENET_MEAN_RGB, IMAGENET_STD_RGB)))
NO_SCALING = InputScaling("none", (1.0,) * 3, (0.0,) * 3)
# the models.cuts.INPUT_AFFINE name that does a preprocess_input mode to [0, 1] images
SCALING_OF_MODE = {"tf": "symmetric", "torch": "torch", "none": "pixels"}


@dataclasses.dataclass(frozen=True)
class Backbone:
    """One keras.applications backbone: `graph()` is Model(include_top=False) layer by layer."""

    name: str
    keras_app: str  # the keras.applications function that builds it
    keras_module: str  # keras.applications.<module> holding its preprocess_input
    graph: Callable[[], tuple[Layer, ...]]
    output: str  # the include_top=False output layer
    input_scaling: InputScaling
    min_size: int  # keras.applications' smallest accepted input
    stages: tuple[str, ...]  # stage outputs, shallow to deep: the natural cut points
    # the graph keras.applications builds with weights="imagenet" when it differs (EfficientNet's rescaling_1)
    imagenet_graph: Callable[[], tuple[Layer, ...]] | None = None

    def layers(self, imagenet: bool = False) -> tuple[Layer, ...]:
        """graph(), or the graph Keras builds with weights="imagenet" (the same for most applications)."""
        return (self.imagenet_graph or self.graph)() if imagenet else self.graph()


BACKBONES: dict[str, Backbone] = {b.name: b for b in (
    Backbone("resnet50v2", "ResNet50V2", "resnet_v2", resnet50v2_graph, "post_relu", TF_SCALING, 32,
             ("conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "post_relu")),
    Backbone("xception", "Xception", "xception", xception_graph, "block14_sepconv2_act", TF_SCALING, 71,
             ("block1_conv2_act", "add", "add_1", "add_2", "add_6", "add_10", "add_11", "block14_sepconv2_act")),
    Backbone("densenet121", "DenseNet121", "densenet", densenet_graph, "relu", TORCH_SCALING, 32,
             # + the middle of the 24-block stage 4, which holds 40% of the layers
             ("conv1_relu", "pool2_pool", "pool3_pool", "conv4_block12_concat", "pool4_pool", "relu")),
    Backbone("mobilenetv2", "MobileNetV2", "mobilenet_v2", mobilenet_v2_graph, "out_relu", TF_SCALING, 32,
             ("Conv1_relu", "block_2_add", "block_5_add", "block_9_add", "block_12_add", "block_15_add",
              "out_relu")),
    Backbone("efficientnetb0", "EfficientNetB0", "efficientnet", efficientnet_graph, "top_activation", NO_SCALING, 32,
             ("stem_activation", "block2b_add", "block3b_add", "block4c_add", "block5c_add", "block6d_add",
              "top_activation"), imagenet_graph=lambda: efficientnet_graph(imagenet_rescaling=True)),
)}
KERAS_BACKBONES = tuple(name for name in BACKBONES if name != "resnet50v2")  # beyond the seed's two parents


def backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name]


def pretrained_scaling(name: str) -> str:
    """The models.cuts.INPUT_AFFINE name of what `name`'s preprocess_input does (for [0, 1] images)."""
    return SCALING_OF_MODE[backbone(name).input_scaling.mode]


def backbone_param_count(name: str, *, image_size: int = 224, channels: int = 3) -> tuple[int, int]:
    """(total, non-trainable) params of keras.applications' <name>(include_top=False), from the graph alone."""
    info = backbone(name)
    graph = needed_layers(info.graph(), info.output)
    return cumulative_params(graph, infer_shapes(graph, image_size, channels, name), info.output, channels)


CNN_STAGES = tuple(f"block{i}_drop" for i in range(1, 6))  # the seed CNN's five conv blocks


def graph_of(name: str, num_classes: int = 2) -> tuple[Layer, ...]:
    """The cuttable graph of any backbone: the seed's CNN (with its head) or a BACKBONES entry."""
    if name == "cnn":
        from models.graphs import cnn_graph

        return cnn_graph(num_classes)
    return backbone(name).graph()


def default_cuts(name: str) -> tuple[str, ...]:
    """A backbone's default cuts: its stage outputs nearest 1/4, 1/2 and 3/4 of its depth (in layers)."""
    names = [layer.name for layer in graph_of(name)]
    stages = CNN_STAGES if name == "cnn" else backbone(name).stages
    last = len(names) - 1
    depth = {stage: names.index(stage) / last for stage in stages}
    cuts = []
    for target in (0.25, 0.5, 0.75):
        cut = min(stages, key=lambda stage: abs(depth[stage] - target))
        if cut not in cuts:
            cuts.append(cut)
    return tuple(cuts)
