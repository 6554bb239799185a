"""Flax NNX models of the seed paper: its CNN, ResNet50V2 and their parameterized fusion.

Importing this package loads no JAX: the layer graphs (models.graphs, models.cuts), FusionSpec (models.spec) and
the model names (models.registry.MODEL_NAMES) are plain Python; the nnx modules load with models.cnn, models.fusion...
Pretrained weights: models.weights_store (the published files and a cache folder the caller names) and
models.pretrained (sources, file checks, load_backbone) read files without JAX until weights are copied.
"""
