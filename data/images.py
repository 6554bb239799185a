"""THE resize every source goes through when it is prepared (train, eval and external sets alike)."""
from __future__ import annotations

import cv2
import numpy as np


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Area-averaging (antialiased) resize of a 2-D grey image to size x size uint8. Aspect ratio is not kept, as in
    the seed (the Kaggle images are square already)."""
    if image.ndim != 2:
        raise ValueError(f"resize_image expects a 2-D grey image, got shape {image.shape}")
    if image.shape == (size, size):
        return np.ascontiguousarray(image, dtype=np.uint8)
    return cv2.resize(np.asarray(image, np.uint8), (size, size), interpolation=cv2.INTER_AREA)
