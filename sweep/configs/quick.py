"""The `quick` preset: the bare `fusion-sweep run` on synthetic 32 px images, on a laptop's CPUs."""
from __future__ import annotations

from data.spec import DataSpec
from models.spec import SEED_CNN_CUT
from sweep.configs.schema import EarlyStopping, OptimConfig, SearchSpace, SweepConfig, TrainConfig


def get_config() -> SweepConfig:
    """Synthetic data at 32 px, 8 CNN-branch fusion configs + the seed's fusion + both parents, 1 seed: the bare
    `fusion-sweep run` (< 5 min on 2 cores; compile time, not training, dominates at this size)."""
    return SweepConfig(
        name="quick",
        train=TrainConfig(data=DataSpec(source="synthetic", image_size=32, num_images=1000, difficulty=0.2),
                          optim=OptimConfig(learning_rate=1e-3), batch_size=16, epochs=7,
                          early_stopping=EarlyStopping(patience=7), bn_momentum=0.9),
        space=SearchSpace(cnn_cuts=("block1_drop", "block2_drop", SEED_CNN_CUT, "block4_drop"),
                          resnet_cuts=(None,), branch_widths=(16, 512), head_widths=(2048,)),
        seeds=1, cpus_per_trial=1.0, explain_images=2, explain_max_evals=100,
    )
