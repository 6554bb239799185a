"""Models and weight files made by Keras itself (JAX backend) at test time: the reference the Keras-parity tests compare
against, so they run on any machine with the test extra (no ../shared needed).

Keras builds ResNet50V2 with its own code (keras.applications' ResNet with ResNet50V2's stacks, stopped early for
the fast tests), the seed's CNN with our layer names, and writes every weight format: the legacy layout of Keras's
published ImageNet files (root attr `layer_names`, one group per layer with `weight_names`), a legacy full model
.h5, Keras 3 .weights.h5 and .keras. BatchNorm statistics are set away from 0/1, so a loader that skips them fails.
"""
from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "jax"  # read once, at Keras's first import; the test venv has no TensorFlow

import h5py  # noqa: E402
import numpy as np  # noqa: E402

FORMATS = ("legacy-notop", "legacy-full", "weights-h5", "keras")
FILE_NAMES = {"legacy-notop": "{}_notop.h5", "legacy-full": "{}_full.h5", "weights-h5": "{}.weights.h5",
              "keras": "{}.keras"}
LOADER_FORMAT = {"legacy-notop": "legacy-h5", "legacy-full": "legacy-h5", "weights-h5": "keras3-h5",
                 "keras": "keras-archive"}
RESNET_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))


def keras():
    import keras as keras_module

    return keras_module


def randomise_batchnorm(model, seed: int = 2) -> None:
    """Gamma, beta, moving mean and variance drawn away from Keras's 1/0/0/1 (variance > 0)."""
    rng = np.random.default_rng(seed)
    for layer in _all_layers(model):
        if isinstance(layer, keras().layers.BatchNormalization):
            gamma, beta, mean, var = (w.shape for w in layer.get_weights())
            layer.set_weights([rng.uniform(0.5, 1.5, gamma), rng.uniform(-0.5, 0.5, beta),
                               rng.uniform(-0.5, 0.5, mean), rng.uniform(0.5, 1.5, var)])


def _all_layers(model):
    for layer in model.layers:
        yield from (_all_layers(layer) if hasattr(layer, "layers") else (layer,))


def seed_cnn(image_size: int, num_classes: int = 2):
    """The seed's CNN in Keras with our layer names; the last Dense without softmax (our models return logits)."""
    from models.graphs import DROPOUTS, FILTERS, KERNELS

    k = keras()
    layers = [k.Input((image_size, image_size, 3))]
    for i, (filters, kernel, rate) in enumerate(zip(FILTERS, KERNELS, DROPOUTS), start=1):
        layers += [k.layers.Conv2D(filters, kernel, padding="same", name=f"block{i}_conv"),
                   k.layers.Activation("relu", name=f"block{i}_relu"),
                   k.layers.BatchNormalization(name=f"block{i}_bn"),
                   k.layers.MaxPooling2D(2, name=f"block{i}_pool"),
                   k.layers.Dropout(rate, name=f"block{i}_drop")]
    layers += [k.layers.Flatten(name="flatten"), k.layers.Dense(2048, activation="relu", name="dense"),
               k.layers.Dropout(0.5, name="dropout"), k.layers.Dense(num_classes, name="predictions")]
    model = k.Sequential(layers, name="seed_cnn")
    randomise_batchnorm(model)
    return model


def resnet50v2(image_size: int, stages: int = 4, include_top: bool = False, weights_seed: int = 2):
    """keras.applications' ResNet50V2 built by Keras's own ResNet code with its first `stages` stages (4: all of
    it, what ResNet50V2(include_top=False, weights=None) builds; fewer: a smaller model whose layers up to the end
    of those stages are ResNet50V2's)."""
    from keras.src.applications.resnet import ResNet, stack_residual_blocks_v2

    def stack_fn(x):
        for i, (filters, blocks) in enumerate(RESNET_STAGES[:stages]):
            x = stack_residual_blocks_v2(x, filters, blocks, stride1=1 if i == 3 else 2, name=f"conv{i + 2}")
        return x

    model = ResNet(stack_fn, True, True, name="resnet50v2", weights_name="resnet50v2", include_top=include_top,
                   weights=None, input_shape=(image_size, image_size, 3))
    randomise_batchnorm(model, weights_seed)
    return model


def cut(model, layer: str):
    return keras().Model(model.inputs, model.get_layer(layer).output)


def save(model, path, fmt: str) -> None:
    """Write `model`'s weights in one of FORMATS."""
    if fmt == "legacy-notop":  # how Keras wrote its published application files
        from keras.src.legacy.saving import legacy_h5_format

        with h5py.File(path, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, model)
    elif fmt == "legacy-full":
        model.save(path)
    elif fmt == "weights-h5":
        model.save_weights(path)
    else:
        model.save(path)


def outputs(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x, training=False))


# ---------------------------------------------------------------- the fast tests' files, made once per Keras version

IMAGE_SIZE = 32  # the smallest input keras.applications' ResNet takes, and the CNN's five pools allow
RESNET_CUTS = ("conv2_block3_out", "conv2_block3_2_relu")  # the first stage: stem, pre-activation, both shortcuts


def build_fast_files(folder) -> None:
    """Into `folder`: the seed's CNN and ResNet50V2's first stage (Keras's code), each in every format, and
    outputs.npz (the input and Keras's outputs; written last, so its presence says the folder is complete)."""
    from pathlib import Path

    folder = Path(folder)
    x = np.random.default_rng(3).uniform(-1, 1, (2, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)
    cnn = seed_cnn(IMAGE_SIZE)
    resnet = cut(resnet50v2(IMAGE_SIZE, stages=1), RESNET_CUTS[0])
    ref = {"x": x, "cnn_logits": outputs(cnn, x), "cnn_backbone": outputs(cut(cnn, "block5_drop"), x)}
    for name in RESNET_CUTS:
        ref[f"resnet_{name}"] = outputs(cut(resnet, name), x)
    for fmt in FORMATS:
        save(cnn, folder / FILE_NAMES[fmt].format("cnn"), fmt)
        save(resnet, folder / FILE_NAMES[fmt].format("resnet"), fmt)
    np.savez(folder / "outputs.tmp.npz", **ref)
    os.replace(folder / "outputs.tmp.npz", folder / "outputs.npz")
