"""Models and weight files made by Keras itself (JAX backend) at test time: the reference the Keras-parity tests compare
against, so they run on any machine with the test extra (no ../shared needed).

Keras builds ResNet50V2 with its own code (keras.applications' ResNet with ResNet50V2's stacks, stopped early for
the fast tests), the seed's CNN with our layer names, and writes every weight format: the legacy layout of Keras's
published ImageNet files (root attr `layer_names`, one group per layer with `weight_names`), a legacy full model
.h5, Keras 3 .weights.h5 and .keras. BatchNorm statistics are set away from 0/1, so a loader that skips them fails.
"""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # read once, at Keras's first import; the test venv has no TensorFlow

import h5py  # noqa: E402
import numpy as np  # noqa: E402

FORMATS = ("legacy-notop", "legacy-full", "weights-h5", "keras")
FILE_NAMES = {"legacy-notop": "{}_notop.h5", "legacy-full": "{}_full.h5", "weights-h5": "{}.weights.h5",
              "keras": "{}.keras"}
LOADER_FORMAT = {"legacy-notop": "legacy-h5", "legacy-full": "legacy-h5", "weights-h5": "keras3-h5",
                 "keras": "keras-archive"}
RESNET_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))


def table_rows(path) -> list[dict]:
    """The rows of a layer table (csv) as Keras wrote it: the reference the Keras-parity tests compare with."""
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def add_legacy_layer(path, name: str, kernel_shape: tuple[int, ...]) -> None:
    """Append a layer with one zero kernel to a legacy-layout .h5 (a layer of another, bigger network)."""
    with h5py.File(path, "r+") as f:
        names = [n if isinstance(n, bytes) else n.encode() for n in f.attrs["layer_names"]]
        f.attrs["layer_names"] = [*names, name.encode()]
        group = f.create_group(name)
        group.attrs["weight_names"] = [f"{name}/kernel".encode()]
        group[f"{name}/kernel"] = np.zeros(kernel_shape, np.float32)


def keras():
    import keras as keras_module

    if keras_module.backend.backend() != "jax":
        raise RuntimeError(f"the Keras reference is made with the JAX backend; Keras runs on "
                           f"{keras_module.backend.backend()!r} (unset KERAS_BACKEND)")
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
    inputs = k.Input((image_size, image_size, 3), name="input")
    x = inputs
    for i, (filters, kernel, rate) in enumerate(zip(FILTERS, KERNELS, DROPOUTS), start=1):
        for layer in (k.layers.Conv2D(filters, kernel, padding="same", name=f"block{i}_conv"),
                      k.layers.Activation("relu", name=f"block{i}_relu"),
                      k.layers.BatchNormalization(name=f"block{i}_bn"),
                      k.layers.MaxPooling2D(2, name=f"block{i}_pool"),
                      k.layers.Dropout(rate, name=f"block{i}_drop")):
            x = layer(x)
    for layer in (k.layers.Flatten(name="flatten"), k.layers.Dense(2048, activation="relu", name="dense"),
                  k.layers.Dropout(0.5, name="dropout"), k.layers.Dense(num_classes, name="predictions")):
        x = layer(x)
    model = k.Model(inputs, x, name="seed_cnn")
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
    keras().backend.clear_session()  # Keras's automatic layer names (max_pooling2d, ...) start afresh
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


# ---------------------------------------------------------------- the layer tables Keras gives (parity tests)

TABLE_SIZE = 256  # the seed's input size: the tables describe its models
SMALL_SIZE = 64  # the models whose Flatten head would need gigabytes at 256 px are counted here


def layer_table(model) -> list[dict]:
    """Every layer of a Keras model, in Keras order: name, type, output shape (HxWxC), and the params (total and
    non-trainable) of the model cut at that layer, which are the params of the layers it depends on."""
    parents = {layer.name: [t._keras_history.operation.name for t in layer._inbound_nodes[0].input_tensors]
               for layer in model.layers}
    own = {layer.name: (int(layer.count_params()) if layer.built else 0,
                        sum(int(np.prod(w.shape)) for w in layer.non_trainable_weights)) for layer in model.layers}
    rows = []
    for layer in model.layers:
        seen, todo = set(), [layer.name]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo += parents[name]
        rows.append({"layer": layer.name, "type": type(layer).__name__,
                     "output_shape": "x".join(str(d) for d in layer.output.shape[1:]),
                     "cumulative_params": str(sum(own[n][0] for n in seen)),
                     "cumulative_non_trainable": str(sum(own[n][1] for n in seen))})
    return rows


def counts(model) -> dict:
    return {"params": int(model.count_params()),
            "non_trainable": sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)}


def seed_fusion(image_size: int):
    """The seed's fusion in Keras (FusionSpec's defaults): the CNN cut at block3_drop and ResNet50V2 at
    conv3_block4_2_relu, a per-pixel Dense(2048) on each (linear; softmax), global average pooling, concatenation,
    Dense(2048, relu), Dropout(0.5), Dense(2)."""
    k = keras()
    cnn = cut(seed_cnn(image_size), "block3_drop")
    resnet = cut(resnet50v2(image_size, stages=2), "conv3_block4_2_relu")
    inputs = k.Input((image_size, image_size, 3))
    a = k.layers.GlobalAveragePooling2D()(k.layers.Dense(2048)(cnn(inputs)))
    b = k.layers.GlobalAveragePooling2D()(k.layers.Dense(2048, activation="softmax")(resnet(inputs)))
    x = k.layers.Dense(2048, activation="relu")(k.layers.Concatenate()([a, b]))
    return k.Model(inputs, k.layers.Dense(2)(k.layers.Dropout(0.5)(x)))


def build_tables(folder) -> None:
    """Into `folder`: torres_cnn_layers.csv and resnet50v2_layers.csv (as ../shared/reference has them, made here
    by Keras) and seed_models.json: params of the seed's CNN and ResNet50V2 backbone at 256 px, and of the CNN and
    ResNet50V2 with the seed's Flatten head and of the seed's fusion at 64 px."""
    import csv
    import json
    from pathlib import Path

    folder = Path(folder)
    keras().backend.clear_session()  # automatic names (input_layer, max_pooling2d) as in a fresh Keras
    backbone = keras().applications.ResNet50V2(include_top=False, weights=None,
                                                 input_shape=(TABLE_SIZE, TABLE_SIZE, 3))
    tables = {"resnet50v2_layers.csv": layer_table(backbone), "torres_cnn_layers.csv": layer_table(seed_cnn(TABLE_SIZE))}
    k = keras()
    # the seed's head on the backbone's output at 64 px (2x2x2048); the backbone's params do not depend on the size
    features = k.Input((SMALL_SIZE // 32, SMALL_SIZE // 32, 2048))
    hidden = k.layers.Dense(2048, activation="relu")(k.layers.Flatten()(features))
    head = counts(k.Model(features, k.layers.Dense(2)(k.layers.Dropout(0.5)(hidden))))
    resnet_with_head = {key: counts(backbone)[key] + head[key] for key in head}
    totals = {"resnet50v2_backbone": counts(backbone), f"cnn_{SMALL_SIZE}": counts(seed_cnn(SMALL_SIZE)),
              f"resnet50v2_{SMALL_SIZE}": resnet_with_head,
              f"seed_fusion_{SMALL_SIZE}": counts(seed_fusion(SMALL_SIZE))}
    for name, rows in tables.items():
        with open(folder / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    (folder / "seed_models.tmp.json").write_text(json.dumps(totals, indent=1))
    os.replace(folder / "seed_models.tmp.json", folder / "seed_models.json")
