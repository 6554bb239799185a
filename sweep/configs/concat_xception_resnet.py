"""The `concat-xception-resnet` preset: Rahimzadeh & Attar's (2020) concatenation of whole Xception and ResNet50V2."""
from __future__ import annotations

from data.spec import DataSpec
from sweep.configs.schema import EarlyStopping, OptimConfig, SearchSpace, SweepConfig, TrainConfig

# Rahimzadeh & Attar, "A modified deep convolutional neural network for detecting COVID-19 and pneumonia from chest
# X-ray images based on the concatenation of Xception and ResNet50V2", Informatics in Medicine Unlocked 19 (2020)
# 100360; their code: github.com/mr7495/covid19 (data_Loading_Training_Evaluating.ipynb)
IMAGE_SIZE = 300
CONV_WIDTH = 1024  # their Conv2D(1024, (1, 1)) on the concatenated 10x10x4096 maps


def get_config() -> SweepConfig:
    """Both backbones whole (their include_top=False outputs, 10x10x2048 each at 300 px) from ImageNet, their
    maps concatenated channel-wise, a 1x1 conv of 1024, Flatten, Dropout 0.5, Dense(classes) (FusionSpec.merge
    "concat"), beside both backbones alone with the seed's head, on the radiography database at 300 px; Adam
    1e-4 (their Nadam's nearest here), batch 20, 3 seeds. Needs --data-dir and both ImageNet files in the weights
    cache (`fusion-sweep weights fetch xception`, `... resnet50v2`; docs/backbones.md says where it differs)."""
    return SweepConfig(
        name="concat-xception-resnet",
        train=TrainConfig(data=DataSpec(source="radiography", image_size=IMAGE_SIZE),
                          optim=OptimConfig(name="adam", learning_rate=1e-4), batch_size=20, epochs=50,
                          early_stopping=EarlyStopping(patience=5),
                          init={"xception": "imagenet", "resnet50v2": "imagenet"}),
        space=SearchSpace(backbones=("xception", "resnet50v2"), merge="concat",
                          cnn_cuts=("block14_sepconv2_act",), resnet_cuts=("post_relu",),
                          branch_widths=(CONV_WIDTH,), head_widths=(CONV_WIDTH,), include_seed_fusion=False),
        seeds=3, cpus_per_trial=4.0, gpus_per_trial=1.0, explain_images=16, explain_max_evals=500,
    )
