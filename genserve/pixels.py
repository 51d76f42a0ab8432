"""The one rule from a model's float images to the uint8 pixels callers see, and the
tiling of digits into one picture. numpy only: the server, the client and the trainer
all use these."""

from __future__ import annotations

import math

import numpy as np

TILE = 28  # digits are TILE x TILE pixels


def to_pixels(images: np.ndarray) -> np.ndarray:
    """float [N,1,28,28] or [N,28,28] in [0,1] -> uint8 [N,28,28] = rint(clip(x, 0, 1) * 255);
    uint8 images pass through as [N,28,28]. One float32 temporary, not three."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.reshape(-1, TILE, TILE)
    scaled = np.multiply(images.reshape(-1, TILE, TILE), np.float32(255), dtype=np.float32)
    np.clip(scaled, 0, 255, out=scaled)
    pixels: np.ndarray = np.rint(scaled, out=scaled).astype(np.uint8)
    return pixels


def tile(images: np.ndarray, ncol: int | None = None, pad: int = 0, background: int = 0) -> np.ndarray:
    """Digits as one uint8 picture, row-major, ``ncol`` to a row (default: a square),
    ``pad`` pixels of ``background`` around and between them."""
    tiles = to_pixels(images)
    n = len(tiles)
    ncol = ncol or max(1, math.ceil(math.sqrt(n)))
    nrow = max(1, math.ceil(n / ncol))
    step = TILE + pad
    canvas = np.full((nrow * step + pad, ncol * step + pad), background, np.uint8)
    for i, digit in enumerate(tiles):
        r, c = divmod(i, ncol)
        canvas[pad + r * step:pad + r * step + TILE, pad + c * step:pad + c * step + TILE] = digit
    return canvas
