"""FusionSpec: the frozen description of one fusion model (where each parent is cut, branch and head widths)."""
from __future__ import annotations

import dataclasses
from typing import Literal

# The seed's fusion: the CNN keeps everything before its 4th conv ("conv2d_8" in the seed's notebook,
# output 32x32x128 at 256 px); ResNet50V2 is cut at conv3_block4_2_relu (16x16x128).
SEED_CNN_CUT = "block3_drop"
SEED_RESNET_CUT = "conv3_block4_2_relu"
SEED_BACKBONES = ("cnn", "resnet50v2")


@dataclasses.dataclass(frozen=True)
class FusionSpec:
    """One fusion model. A cut of None drops that branch (a single-backbone model).
    Any two backbones fuse: `backbone_a` is cut at `cnn_cut` (alias `cut_a`), `backbone_b` at `resnet_cut`
    (alias `cut_b`); the field names are the seed pair's (cnn, resnet50v2). The branch activations apply to
    branches a and b; FusionSpec.of() makes them linear for pairs other than the seed's."""

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
    backbone_a: str = SEED_BACKBONES[0]
    backbone_b: str = SEED_BACKBONES[1]
    # "branches": per-pixel Dense per branch, pool, concat, Dense head (the seed's). "concat": Rahimzadeh & Attar's
    # (2020) head: the two maps concatenated channel-wise, a 1x1 conv of head_width, Flatten, Dropout, Dense
    # (maps of different sizes: each pooled, concatenated, Dropout, Dense); branch_width unused
    merge: Literal["branches", "concat"] = "branches"

    @classmethod
    def of(cls, backbone_a: str, backbone_b: str, cut_a: str | None, cut_b: str | None, **fields) -> "FusionSpec":
        """A fusion of any two backbones; branch activations linear unless given (the seed's softmax over
        channels stays on the seed pair's ResNet branch)."""
        if (backbone_a, backbone_b) != SEED_BACKBONES:
            fields = {"cnn_branch_activation": "linear", "resnet_branch_activation": "linear", **fields}
        return cls(cnn_cut=cut_a, resnet_cut=cut_b, backbone_a=backbone_a, backbone_b=backbone_b, **fields)

    @property
    def cut_a(self) -> str | None:
        return self.cnn_cut

    @property
    def cut_b(self) -> str | None:
        return self.resnet_cut

    @property
    def seed_pair(self) -> bool:
        return (self.backbone_a, self.backbone_b) == SEED_BACKBONES

    def replace(self, **changes) -> "FusionSpec":
        return dataclasses.replace(self, **changes)

    @property
    def label(self) -> str:
        """A short human-readable name, e.g. 'cnn:block3_drop+rn:conv3_block4_2_relu/b2048/h2048'."""
        return fusion_label(self.cnn_cut, self.resnet_cut, self.branch_width, self.head_width,
                            backbone_a=self.backbone_a, backbone_b=self.backbone_b, merge=self.merge)


def fusion_label(cnn_cut: str | None, resnet_cut: str | None, branch_width: int, head_width: int, *,
                 backbone_a: str = SEED_BACKBONES[0], backbone_b: str = SEED_BACKBONES[1], merge: str = "branches") -> str:
    """The ONE short name of a fusion configuration, e.g. 'cnn:block3_drop+rn:conv3_block4_2_relu/b2048/h2048'
    (the seed's pair), 'xception:add_1+mobilenetv2:block_5_add/b64/h128' (any other), 'xception:...+resnet50v2:
    post_relu/concat/h1024' (merge "concat": no branch width)."""
    names = ("cnn", "rn") if (backbone_a, backbone_b) == SEED_BACKBONES else (backbone_a, backbone_b)
    parts = [f"{names[0]}:{cnn_cut}"] if cnn_cut else []
    parts += [f"{names[1]}:{resnet_cut}"] if resnet_cut else []
    middle = "concat" if merge == "concat" else f"b{int(branch_width)}"
    return "+".join(parts) + f"/{middle}/h{int(head_width)}"
