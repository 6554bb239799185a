"""The `quick` preset: the bare `fusion-sweep run` on synthetic 32 px images, on a laptop's CPUs."""
from __future__ import annotations

from data.spec import DataSpec
from models.spec import SEED_CNN_CUT
from sweep.configs.schema import EarlyStopping, OptimConfig, SearchSpace, SweepConfig, TrainConfig


def get_config() -> SweepConfig:
    """Synthetic data at 32 px: 6 fusion configurations that vary both branches (CNN cut x with or without an early
    ResNet50V2 branch) + the seed's fusion, 3 seeds each, and both parents (1 seed): the bare `fusion-sweep run`,
    under 5 minutes on 2 cores (README: 'The quick sweep's budget')."""
    return SweepConfig(
        name="quick",
        train=TrainConfig(data=DataSpec(source="synthetic", image_size=32, num_images=800, difficulty=0.2),
                          optim=OptimConfig(learning_rate=1e-3), batch_size=16, epochs=5,
                          early_stopping=EarlyStopping(patience=5), bn_momentum=0.9),
        space=SearchSpace(cnn_cuts=("block1_drop", "block2_drop", SEED_CNN_CUT),
                          resnet_cuts=(None, "conv2_block1_out"), branch_widths=(16,), head_widths=(2048,)),
        seeds=3, parent_seeds=1, cpus_per_trial=1.0, explain_images=8, explain_max_evals=100,
    )
