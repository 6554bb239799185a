"""Flax NNX models of the seed paper: its CNN, ResNet50V2 and their parameterized fusion (jax + flax only)."""
from models.cnn import CNN_LAYERS, TorresCNN
from models.fusion import FusionNet
from models.registry import MODEL_NAMES, build_model
from models.resnet_v2 import RESNET50V2_LAYERS, ResNet50V2
from models.spec import FusionSpec

__all__ = [
    "CNN_LAYERS", "RESNET50V2_LAYERS", "MODEL_NAMES", "FusionNet", "FusionSpec", "ResNet50V2", "TorresCNN",
    "build_model",
]
