"""A model's float images and the uint8 pixels callers get by default, with the one rounding rule."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Images(NamedTuple):
    """A model's images both ways a caller may ask for them: float32 [N,1,28,28] in [0,1]
    and uint8 [N,28,28]. Rows of one batch, converted once for the whole batch."""
    floats: np.ndarray
    pixels: np.ndarray


def to_pixels(images: np.ndarray) -> np.ndarray:
    """float32 [N,1,28,28] -> uint8 [N,28,28]: the same bytes as rint(clip(x, 0, 1) * 255),
    with one temporary instead of three."""
    scaled = np.multiply(images.reshape(-1, 28, 28), np.float32(255), dtype=np.float32)
    np.clip(scaled, 0, 255, out=scaled)
    return np.rint(scaled, out=scaled).astype(np.uint8)
