"""Training augmentation: random affine pose and exposure changes, drawn per image from (key, position) alone."""
from __future__ import annotations

import math

import cv2
import numpy as np

AUGMENTATIONS = ("none", "mild", "seed")
# "mild": small pose and exposure changes a radiograph plausibly has.
MILD = dict(rotation_deg=7.0, shift=0.05, zoom=0.0, shear_deg=0.0, hflip=False, brightness=0.08, contrast=0.1)
# "seed": ASSUMED Keras ImageDataGenerator settings of the seed notebook (the notebook is not available here):
# rotation_range=20, width/height_shift_range=0.2, shear_range=0.2 (degrees, as Keras reads it), zoom_range=0.2,
# horizontal_flip=True, fill_mode='nearest'; no brightness/contrast change.
SEED = dict(rotation_deg=20.0, shift=0.2, zoom=0.2, shear_deg=0.2 * 180 / math.pi, hflip=True, brightness=0.0,
            contrast=0.0)
DRAWS = 10  # uniforms per image: angle, shear, zoom x/y, shift x/y, flip, gain, bias, spare

_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def stream_key(*parts: int) -> int:
    """A 64-bit key for one random stream, e.g. stream_key(seed, epoch, 1): distinct tuples give unrelated keys."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0])


def uniforms(key: int, positions: np.ndarray, count: int = DRAWS) -> np.ndarray:
    """(len(positions), count) floats in [0, 1): splitmix64 of (key, position, draw). Counter-based, so an image's
    draws depend on its key and position only, never on batch size, worker count or the order batches are made."""
    pos = np.asarray(positions, np.uint64).reshape(-1, 1)
    x = np.uint64(key) ^ (pos * np.uint64(count) + np.arange(count, dtype=np.uint64)) * _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def _span(u: np.ndarray, low: float, high: float) -> np.ndarray:
    return low + (high - low) * u


def affine_matrices(u: np.ndarray, size: int, p: dict) -> np.ndarray:
    """(B,2,3) affine matrices about the image centre from (B, DRAWS) uniforms."""
    angle = np.deg2rad(_span(u[:, 0], -p["rotation_deg"], p["rotation_deg"]))
    shear = np.deg2rad(_span(u[:, 1], -p["shear_deg"], p["shear_deg"]))
    zx, zy = _span(u[:, 2], 1 - p["zoom"], 1 + p["zoom"]), _span(u[:, 3], 1 - p["zoom"], 1 + p["zoom"])
    tx, ty = _span(u[:, 4], -p["shift"], p["shift"]) * size, _span(u[:, 5], -p["shift"], p["shift"]) * size
    flip = np.where(p["hflip"] & (u[:, 6] < 0.5), -1.0, 1.0)
    c, s = np.cos(angle), np.sin(angle)
    rotate = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    ones, zeros = np.ones_like(shear), np.zeros_like(shear)
    shear_m = np.stack([np.stack([ones, -np.sin(shear)], -1), np.stack([zeros, np.cos(shear)], -1)], -2)
    scale = np.stack([np.stack([zx * flip, zeros], -1), np.stack([zeros, zy], -1)], -2)
    m = rotate @ shear_m @ scale
    centre = np.full(2, size / 2 - 0.5)
    offset = centre - m @ centre + np.stack([tx, ty], -1)
    return np.concatenate([m, offset[:, :, None]], axis=2)


def augment(images: np.ndarray, kind: str, u: np.ndarray) -> np.ndarray:
    """uint8 (B,H,W) -> float32 (B,H,W) in [0,1], augmented per `kind` with the (B, DRAWS) uniforms `u`:
    an affine warp, then contrast about each image's mean and a brightness offset, fused into one multiply-add."""
    if kind not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {kind!r}")
    grey = images.astype(np.float32)  # 0..255 until the final scale
    if kind == "none" or len(images) == 0:
        grey *= np.float32(1.0 / 255.0)
        return grey
    p = MILD if kind == "mild" else SEED
    size = images.shape[1]
    out = np.empty_like(grey)
    for i, matrix in enumerate(affine_matrices(u, size, p)):
        # BORDER_REPLICATE is Keras' fill_mode='nearest'
        cv2.warpAffine(grey[i], matrix, (size, size), dst=out[i], flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    gain = _span(u[:, 7], 1 - p["contrast"], 1 + p["contrast"])
    bias = _span(u[:, 8], -p["brightness"], p["brightness"])
    mean = out.mean(axis=(1, 2), dtype=np.float64) / 255.0 if p["contrast"] else 0.0
    # ((x/255 - mean) * gain + mean + bias) == x * (gain/255) + (mean * (1 - gain) + bias)
    out *= (gain / 255.0).astype(np.float32)[:, None, None]
    out += (mean * (1.0 - gain) + bias).astype(np.float32)[:, None, None]
    return np.clip(out, 0.0, 1.0, out=out)
