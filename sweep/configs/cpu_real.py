"""The `cpu-real` preset: a radiography folder (the real dev set) at 64 px on CPUs."""
from __future__ import annotations

from data.spec import DataSpec
from models.spec import SEED_CNN_CUT
from sweep.configs.schema import SearchSpace, SweepConfig, TrainConfig

# the patient-grouped split is stratified by (source, class) from metadata.csv's source_repo, and (source, class)
# cells of at most this many images go wholly to test: the dev set's 11 Normal films of the COVID source are its
# own test of the confound (a model that says COVID for that source gets them wrong)
RARE_TO_TEST = 20


def get_config() -> SweepConfig:
    """The real radiography dev set (../shared/data/cxr-real-dev) at 64 px on CPUs, a few epochs: 6 fusion
    configurations that vary both branches (CNN cut x with or without an early ResNet50V2 branch) + the seed's
    fusion, 3 seeds each, and both parents (1 seed); 16 class-balanced test images explained per model. From
    scratch; `--init resnet50v2=imagenet` starts the ResNet branches from ImageNet as the seed did (docs/pretrained.md)."""
    return SweepConfig(
        name="cpu-real-dev",
        train=TrainConfig(data=DataSpec(source="radiography", data_dir="../shared/data/cxr-real-dev", image_size=64,
                                        split_strata="source_class", rare_to_test=RARE_TO_TEST),
                          batch_size=16, epochs=4, early_stopping=None, bn_momentum=0.9),
        space=SearchSpace(cnn_cuts=("block1_drop", "block2_drop", SEED_CNN_CUT),
                          resnet_cuts=(None, "conv2_block3_out"), branch_widths=(64,), head_widths=(2048,)),
        seeds=3, parent_seeds=1, cpus_per_trial=1.0, explain_images=16, explain_max_evals=200,
    )
