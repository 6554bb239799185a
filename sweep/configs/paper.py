"""The `paper` preset: the Kaggle database at 256 px on GPUs under the seed's recipe, 3 seeds."""
from __future__ import annotations

from data.spec import DataSpec, PipelineSpec
from models.spec import SEED_CNN_CUT, SEED_RESNET_CUT
from sweep.configs.schema import EarlyStopping, SearchSpace, SweepConfig, TrainConfig


def get_config() -> SweepConfig:
    """The Kaggle database at 256 px on GPUs with the seed's recipe (COVID x3 oversampling, RMSprop 1e-4, batch 16,
    up to 50 epochs, early stopping patience 5, augmentation on the CNN branch only, ResNet50V2 from ImageNet), 3
    seeds. Needs --data-dir and the ImageNet file in the weights cache (docs/pretrained.md)."""
    return SweepConfig(
        name="paper",
        train=TrainConfig(data=DataSpec(source="radiography", image_size=256),
                          pipeline=PipelineSpec(balance="oversample", oversample=(3.0, 1.0), augment="seed"),
                          batch_size=16, epochs=50, early_stopping=EarlyStopping(patience=5),
                          augment_cnn_only=True,
                          # the seed fine-tuned keras.applications' ImageNet ResNet50V2: its ResNet parent and the
                          # fusion's ResNet branch start from those features (`fusion-sweep weights fetch resnet50v2`)
                          init={"resnet50v2": "imagenet"}),
        space=SearchSpace(cnn_cuts=("block1_drop", "block2_drop", SEED_CNN_CUT, "block4_drop", "block5_drop"),
                          resnet_cuts=("conv2_block3_out", SEED_RESNET_CUT, "conv4_block6_out", "post_relu"),
                          branch_widths=(128, 512, 2048), head_widths=(256, 2048)),
        seeds=3, search="random", num_samples=24,  # 24 of the 120 grid points + the seed's fusion + parents, x3 seeds
        cpus_per_trial=4.0, gpus_per_trial=1.0, explain_images=16, explain_max_evals=500,
    )


def seed_model_config(recipe: TrainConfig, model: str) -> TrainConfig:
    """One of the paper's three models under `recipe` (this preset's training config, maybe overridden):
    augmentation reached only the CNN in the seed, i.e. the CNN alone and the CNN branch of the fusion."""
    augmented = model in ("cnn", "fusion")
    return recipe.replace(model=model,
                          pipeline=recipe.pipeline.replace(augment=recipe.pipeline.augment if augmented else "none"),
                          augment_cnn_only=recipe.augment_cnn_only and model == "fusion")
