"""The seed's three models in Keras 3, timed like `fusion-sweep bench` times ours. Standalone (keras + numpy only):
run it as a script under the backend's interpreter with KERAS_BACKEND set; it prints one JSON line."""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

MODELS = ("cnn", "resnet50v2", "fusion")  # models.registry.MODEL_NAMES: this script runs without the project


def _cnn_blocks(x, blocks: int):
    from keras import layers

    specs = ((32, 3, 0.2), (64, 5, 0.2), (128, 3, 0.3), (256, 5, 0.3), (512, 3, 0.3))
    for filters, kernel, rate in specs[:blocks]:
        x = layers.Conv2D(filters, kernel, padding="same", activation="relu")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(rate)(x)
    return x


def _head(x, classes: int):
    from keras import layers

    x = layers.Dense(2048, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    return layers.Dense(classes, activation="softmax")(x)


def build(name: str, image_size: int, classes: int = 2):
    """cnn (Torres 2023), resnet50v2 + Flatten/Dense(2048) head, or the seed's fusion, as the seed built them."""
    import keras
    from keras import layers

    inputs = keras.Input((image_size, image_size, 3))
    if name == "cnn":
        return keras.Model(inputs, _head(layers.Flatten()(_cnn_blocks(inputs, 5)), classes))
    resnet = keras.applications.ResNet50V2(include_top=False, weights=None, input_tensor=inputs)
    if name == "resnet50v2":
        return keras.Model(inputs, _head(layers.Flatten()(resnet.output), classes))
    if name != "fusion":
        raise ValueError(f"unknown model {name!r}; choose from {MODELS}")
    cnn_map = _cnn_blocks(inputs, 3)  # everything before the CNN's 4th conv (the seed's "conv2d_8")
    resnet_map = resnet.get_layer("conv3_block4_2_relu").output
    a = layers.GlobalAveragePooling2D()(layers.Dense(2048)(cnn_map))
    b = layers.GlobalAveragePooling2D()(layers.Dense(2048, activation="softmax")(resnet_map))
    return keras.Model(inputs, _head(layers.Concatenate()([a, b]), classes))


def _windows(fn, steps: int, windows: int) -> list[float]:
    out = []
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        out.append((time.perf_counter() - start) / steps)
    return out


def _summary(per_step: list[float], batch: int) -> dict:
    per_step_sorted = sorted(per_step)
    median = per_step_sorted[len(per_step_sorted) // 2]
    return {"images_per_s": batch / median, "best_images_per_s": batch / per_step_sorted[0],
            "seconds_per_step": median, "windows_s": [round(s, 5) for s in per_step]}


def measure(name: str, image_size: int, batch: int, steps: int, windows: int) -> dict:
    """Compile (first call) and time train_on_batch and predict_on_batch of one model."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    model = build(name, image_size)
    model.compile(optimizer=keras.optimizers.RMSprop(1e-4, rho=0.9, epsilon=1e-7),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((batch, image_size, image_size, 3), dtype=np.float32)
    y = rng.integers(0, 2, batch).astype(np.int32)
    start = time.perf_counter()
    model.train_on_batch(x, y)
    first = time.perf_counter() - start
    train = _summary(_windows(lambda: model.train_on_batch(x, y), steps, windows), batch)
    start = time.perf_counter()
    model.predict_on_batch(x)
    eval_first = time.perf_counter() - start
    evaluate = _summary(_windows(lambda: model.predict_on_batch(x), max(steps, 2), windows), batch)
    return {"model": name, "image_size": image_size, "batch_size": batch, "params": int(model.count_params()),
            "train_first_call_s": first, "train": train, "eval_first_call_s": eval_first, "eval": evaluate,
            "jit_compile": str(getattr(model, "jit_compile", None))}


def versions() -> dict:
    import keras

    out = {"python": platform.python_version(), "keras": keras.__version__, "backend": keras.backend.backend()}
    for module in ("jax", "tensorflow", "numpy"):
        try:
            out[module] = __import__(module).__version__
        except ImportError:
            pass
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--sizes", default="64")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--windows", type=int, default=3)
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    bad = [m for m in models if m not in MODELS]
    if bad:
        parser.error(f"unknown models {bad}; choose from {MODELS}")
    result = {"backend": os.environ.get("KERAS_BACKEND", "tensorflow"), "versions": versions(), "results": []}
    for size in (int(s) for s in args.sizes.split(",") if s):
        for name in models:
            result["results"].append(measure(name, size, args.batch_size, args.steps, args.windows))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
