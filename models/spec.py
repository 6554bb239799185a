"""FusionSpec: the frozen description of one fusion model (where each parent is cut, branch and head widths)."""
from __future__ import annotations

import dataclasses
from typing import Literal

# The seed's fusion: the CNN keeps everything before its 4th conv ("conv2d_8" in the seed's notebook,
# output 32x32x128 at 256 px); ResNet50V2 is cut at conv3_block4_2_relu (16x16x128).
SEED_CNN_CUT = "block3_drop"
SEED_RESNET_CUT = "conv3_block4_2_relu"


@dataclasses.dataclass(frozen=True)
class FusionSpec:
    """One fusion model. A cut of None drops that branch (a single-backbone model)."""

    cnn_cut: str | None = SEED_CNN_CUT
    resnet_cut: str | None = SEED_RESNET_CUT
    branch_width: int = 2048
    cnn_branch_activation: Literal["linear", "relu", "softmax"] = "linear"
    resnet_branch_activation: Literal["linear", "relu", "softmax"] = "softmax"
    head_width: int = 2048
    dropout: float = 0.5
    pool: Literal["gap", "flatten"] = "gap"
    num_classes: int = 2
    image_size: int = 256
    channels: int = 3

    def replace(self, **changes) -> "FusionSpec":
        return dataclasses.replace(self, **changes)

    @property
    def label(self) -> str:
        """A short human-readable name, e.g. 'cnn:block3_drop+rn:conv3_block4_2_relu/b2048/h2048'."""
        return fusion_label(self.cnn_cut, self.resnet_cut, self.branch_width, self.head_width)


def fusion_label(cnn_cut: str | None, resnet_cut: str | None, branch_width: int, head_width: int) -> str:
    """The ONE short name of a fusion configuration, e.g. 'cnn:block3_drop+rn:conv3_block4_2_relu/b2048/h2048'."""
    parts = [f"cnn:{cnn_cut}"] if cnn_cut else []
    parts += [f"rn:{resnet_cut}"] if resnet_cut else []
    return "+".join(parts) + f"/b{int(branch_width)}/h{int(head_width)}"
