"""The seed's three models (and single conv layers) in Keras 3, timed like `fusion-sweep bench` times ours.

Standalone (keras + numpy; tensorflow for conv layers): run it under the backend's interpreter with KERAS_BACKEND
set. `--serve` answers timing requests on stdin, so the bench can interleave its windows with ours
(sweep/bench/peer.py); without it, it times the given models and prints one JSON line."""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

MODELS = ("cnn", "resnet50v2", "fusion")  # models.registry.MODEL_NAMES: this script runs without the project
# the other keras.applications backbones (models.backbones), each with the seed's Flatten/Dense(2048) head
APPLICATIONS = {"xception": "Xception", "densenet121": "DenseNet121", "mobilenetv2": "MobileNetV2",
                "efficientnetb0": "EfficientNetB0"}


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
    """cnn (Torres 2023), resnet50v2 + Flatten/Dense(2048) head, or the seed's fusion, as the seed built them; or
    another keras.applications backbone (APPLICATIONS) with the same head."""
    import keras
    from keras import layers

    inputs = keras.Input((image_size, image_size, 3))
    if name == "cnn":
        return keras.Model(inputs, _head(layers.Flatten()(_cnn_blocks(inputs, 5)), classes))
    if name in APPLICATIONS:
        app = getattr(keras.applications, APPLICATIONS[name])(include_top=False, weights=None, input_tensor=inputs)
        return keras.Model(inputs, _head(layers.Flatten()(app.output), classes))
    resnet = keras.applications.ResNet50V2(include_top=False, weights=None, input_tensor=inputs)
    if name == "resnet50v2":
        return keras.Model(inputs, _head(layers.Flatten()(resnet.output), classes))
    if name != "fusion":
        raise ValueError(f"unknown model {name!r}; choose from {MODELS + tuple(APPLICATIONS)}")
    cnn_map = _cnn_blocks(inputs, 3)  # everything before the CNN's 4th conv (the seed's "conv2d_8")
    resnet_map = resnet.get_layer("conv3_block4_2_relu").output
    a = layers.GlobalAveragePooling2D()(layers.Dense(2048)(cnn_map))
    b = layers.GlobalAveragePooling2D()(layers.Dense(2048, activation="softmax")(resnet_map))
    return keras.Model(inputs, _head(layers.Concatenate()([a, b]), classes))


def _timed(fn, steps: int) -> dict:
    """Wall and process CPU seconds per call over `steps` calls of fn (fn returns something to materialise)."""
    import numpy as np

    wall, cpu = time.perf_counter(), time.process_time()
    out = None
    for _ in range(steps):
        out = fn()
    for value in (out if isinstance(out, (list, tuple)) else [out]):
        np.asarray(value)  # the last call's results exist, as jax.block_until_ready does for ours
    return {"wall_s": (time.perf_counter() - wall) / steps, "cpu_s": (time.process_time() - cpu) / steps}


class Session:
    """What the server holds between requests: one model per jit_compile setting (train and eval functions) and
    some conv layers."""

    def __init__(self):
        self.variants: dict = {}  # jit_compile setting ("default", "false", "true") -> {"train": fn, "eval": fn}
        self.phases: dict = {}
        self.convs: list = []

    def model(self, name: str, image_size: int, batch_size: int, jit_compile=None, keep: bool = False) -> dict:
        """Build and compile (first call) one of the seed's models, with Keras' default jit_compile (None) or the
        given one; time one step of each phase. keep=True keeps the models built before (another jit_compile
        setting of the same model, timed in turn)."""
        import keras
        import numpy as np

        if not keep:
            self.variants = {}
        self.phases = {}
        keras.utils.set_random_seed(0)
        model = build(name, image_size)
        options = {} if jit_compile is None else {"jit_compile": bool(jit_compile)}
        model.compile(optimizer=keras.optimizers.RMSprop(1e-4, rho=0.9, epsilon=1e-7),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"], **options)
        rng = np.random.default_rng(0)
        x = rng.random((batch_size, image_size, image_size, 3), dtype=np.float32)
        y = rng.integers(0, 2, batch_size).astype(np.int32)
        self.phases = {"train": lambda: model.train_on_batch(x, y), "eval": lambda: model.predict_on_batch(x)}
        self.variants[_variant(jit_compile)] = self.phases
        out = {"model": name, "image_size": image_size, "batch_size": batch_size, "params": int(model.count_params()),
               "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
               "jit_compile": str(getattr(model, "jit_compile", None)), "jit_compile_asked": jit_compile}
        for phase in self.phases:
            out[f"{phase}_first_call_s"] = _timed(self.phases[phase], 1)["wall_s"]
            out[f"{phase}_step_s"] = _timed(self.phases[phase], 1)["wall_s"]
        return out

    def conv_layers(self, layers: list[dict], batch_size: int) -> dict:
        """Keras Conv2D layers of the given shapes; per layer a forward and a forward+gradients function
        (gradients for the kernel and bias, and for the input unless it is the model's input)."""
        import numpy as np
        import tensorflow as tf
        from keras import layers as kl

        rng = np.random.default_rng(0)
        self.convs = []
        for spec in layers:
            size, channels = spec["size"], spec["channels"]
            x = tf.constant(rng.standard_normal((batch_size, size, size, channels), np.float32))
            conv = kl.Conv2D(spec["features"], spec["kernel"], strides=spec["stride"],
                             padding=spec["padding"].lower(), use_bias=spec["bias"])
            conv.build(x.shape)
            out_shape = conv.compute_output_shape(x.shape)
            dy = tf.constant(rng.standard_normal(tuple(out_shape), np.float32))
            self.convs.append({"fwd": tf.function(conv.__call__).get_concrete_function(x),
                               "grad": _conv_grad(conv, x, dy, spec["input_grad"]), "x": x})
        steps = []
        for i in range(len(self.convs)):
            self.window("fwd", 1, i), self.window("grad", 1, i)  # trace and warm up
            steps.append([self.window(phase, 1, i)["wall_s"] for phase in ("fwd", "grad")])
        return {"layers": len(self.convs), "step_s": steps}

    def window(self, phase: str, steps: int, layer: int | None = None, jit_compile="last") -> dict:
        if layer is None:
            phases = self.phases if jit_compile == "last" else self.variants[_variant(jit_compile)]
            return _timed(phases[phase], steps)
        conv = self.convs[layer]
        return _timed((lambda: conv["fwd"](conv["x"])) if phase == "fwd" else conv["grad"], steps)


def _variant(jit_compile) -> str:
    return "default" if jit_compile is None else str(bool(jit_compile)).lower()


def _conv_grad(conv, x, dy, input_grad: bool):
    import tensorflow as tf

    weights = list(conv.trainable_variables)

    @tf.function
    def grad():
        with tf.GradientTape() as tape:
            if input_grad:
                tape.watch(x)
            y = conv(x)
        return tape.gradient(y, ([x] if input_grad else []) + weights, output_gradients=dy)

    return grad


def versions() -> dict:
    import keras

    out = {"python": platform.python_version(), "keras": keras.__version__, "backend": keras.backend.backend()}
    for module in ("jax", "tensorflow", "numpy"):
        try:
            out[module] = __import__(module).__version__
        except ImportError:
            pass
    return out


def serve(stdin=sys.stdin, stdout=sys.stdout) -> int:
    """Answer one JSON request per line with one JSON line: {"cmd": "hello"} (versions), "model" (name,
    image_size, batch_size, jit_compile: null|false|true, keep), "conv_layers" (layers, batch_size), "window"
    (phase: train|eval|fwd|grad, steps, layer for fwd/grad, jit_compile of the model to time), "quit". An
    exception becomes {"error": ...}."""
    session = Session()
    handlers = {
        "hello": lambda r: {"backend": os.environ.get("KERAS_BACKEND", "tensorflow"), "versions": versions()},
        "model": lambda r: session.model(r["model"], int(r["image_size"]), int(r["batch_size"]),
                                         r.get("jit_compile"), bool(r.get("keep", False))),
        "conv_layers": lambda r: session.conv_layers(r["layers"], int(r["batch_size"])),
        "window": lambda r: session.window(r["phase"], int(r["steps"]), r.get("layer"),
                                           r.get("jit_compile", "last")),
    }
    for line in stdin:
        request = json.loads(line)
        if request.get("cmd") == "quit":
            break
        try:
            reply = handlers[request["cmd"]](request)
        except Exception as err:  # noqa: BLE001 - reported to the client, which records it
            reply = {"error": f"{type(err).__name__}: {err}"}
        stdout.write(json.dumps(reply) + "\n")
        stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", action="store_true", help="answer JSON requests on stdin (sweep/bench/peer.py)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--sizes", default="64")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args(argv)
    if args.serve:
        return serve()
    models = [m for m in args.models.split(",") if m]
    bad = [m for m in models if m not in MODELS and m not in APPLICATIONS]
    if bad:
        parser.error(f"unknown models {bad}; choose from {MODELS + tuple(APPLICATIONS)}")
    session, results = Session(), []
    for size in (int(s) for s in args.sizes.split(",") if s):
        for name in models:
            row = session.model(name, size, args.batch_size)
            row.update({phase: session.window(phase, args.steps) for phase in ("train", "eval")})
            results.append(row)
    print(json.dumps({"backend": os.environ.get("KERAS_BACKEND", "tensorflow"), "versions": versions(),
                      "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
