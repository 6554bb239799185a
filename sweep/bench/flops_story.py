"""Params are not FLOPs: the seed models' params, forward FLOPs, and the cost of the fusion's per-pixel Dense(2048)."""
from __future__ import annotations

import flax.nnx as nnx

from models.profile import count_params, forward_flops
from models.registry import MODEL_NAMES, build_model
from models.spec import FusionSpec


def per_pixel_dense(height: int, width: int, in_channels: int, width_out: int) -> dict:
    """A Dense applied at every pixel of an (H, W, C) map: params are C*out+out, FLOPs 2*H*W*C*out."""
    return {"map": [height, width, in_channels], "units": width_out, "params": in_channels * width_out + width_out,
            "forward_flops": 2 * height * width * in_channels * width_out,
            "output_floats_per_image": height * width * width_out}


def seed_flops_vs_params(image_size: int = 256) -> dict:
    """Per seed model (built abstractly, nothing allocated): params, XLA forward FLOPs per image, FLOPs per param;
    for the fusion also its two per-pixel Dense(2048) branches."""
    out: dict = {"image_size": image_size, "models": {}}
    for name in MODEL_NAMES:
        model = nnx.eval_shape(lambda: build_model(name, num_classes=2, image_size=image_size, resnet_head="flatten",
                                                   rngs=nnx.Rngs(0)))
        params = count_params(model).total
        flops = forward_flops(model, (1, image_size, image_size, 3))
        out["models"][name] = {"params": params, "forward_flops_per_image": flops, "flops_per_param": flops / params}
        if name == "fusion":
            spec = FusionSpec(image_size=image_size)
            cnn_map, rn_map = model.cnn.output_shape, model.resnet.output_shape
            out["fusion_branches"] = {
                "cnn_branch": per_pixel_dense(*cnn_map, spec.branch_width),
                "resnet_branch": per_pixel_dense(*rn_map, spec.branch_width),
            }
            branch_flops = sum(b["forward_flops"] for b in out["fusion_branches"].values())
            out["fusion_branches"]["share_of_fusion_forward_flops"] = branch_flops / flops
    return out
