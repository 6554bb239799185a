"""The `quick` preset: the bare `fusion-sweep run` on synthetic 32 px images, on a laptop's CPUs, with a shortcut
planted and tested end to end (synthetic sites, an external site, counterfactual copies)."""
from __future__ import annotations

from data.spec import DataSpec, ExternalSpec, SiteSpec
from models.spec import SEED_CNN_CUT
from sweep.configs.schema import EarlyStopping, OptimConfig, SearchSpace, SweepConfig, TrainConfig

# Two training sites whose class mixes make a burnt-in marker predictive: site_a sends most COVID films and marks
# 90% of its films (P(marker | COVID) = 0.72, P(marker | Normal) = 0.18) and brightens them a little; site_b marks
# none. The external site_c marks half its films whatever their class: the marker says nothing there.
SITES = (SiteSpec("site_a", class_mix=(0.8, 0.2), marker_rate=(0.9,), intensity_shift=0.06),
         SiteSpec("site_b", class_mix=(0.2, 0.8), noise=0.01))
EXTERNAL_SITE = SiteSpec("site_c", marker_rate=(0.5,))


def get_config() -> SweepConfig:
    """Synthetic data at 32 px from two sites: 6 fusion configurations that vary both branches (CNN cut x with or
    without an early ResNet50V2 branch), 3 seeds each, and both parents (1 seed), every seed also scored on 160
    images of an external site (ext:site_c) and on marker-free and shift-free copies of its test images
    (cf:no_marker, cf:no_shift): the bare `fusion-sweep run`, under 300 s on 2 cores (results/README.md has the
    measured time). To fit that budget it trains 3 epochs on 640 images (448 train / 64 val / 128 test) and leaves
    out the seed's own fusion (10.4M parameters, ~200 CPU-seconds for 3 seeds at 32 px;
    `--set space.include_seed_fusion=true` adds it back); cpu-real and paper keep it."""
    return SweepConfig(
        name="quick",
        train=TrainConfig(data=DataSpec(source="synthetic", image_size=32, num_images=640, difficulty=0.2,
                                        sites=SITES),
                          optim=OptimConfig(learning_rate=1e-3), batch_size=16, epochs=3,
                          early_stopping=EarlyStopping(patience=5), bn_momentum=0.9),
        space=SearchSpace(cnn_cuts=("block1_drop", "block2_drop", SEED_CNN_CUT),
                          resnet_cuts=(None, "conv2_block1_out"), branch_widths=(16,), head_widths=(2048,),
                          include_seed_fusion=False),
        seeds=3, parent_seeds=1, cpus_per_trial=1.0, explain_images=8, explain_max_evals=100,
        externals={"site_c": ExternalSpec(source="synthetic", site=EXTERNAL_SITE, num_images=160)},
    )
