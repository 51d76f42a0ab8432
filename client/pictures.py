"""PNG grids of 28x28 digits, written and read with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from genserve.pixels import TILE, tile


def write_grid(images: np.ndarray, path: Path | str, ncol: int | None = None, scale: int = 1) -> Path:
    """uint8 [N,28,28] (or float in [0,1]) -> one greyscale PNG, tiles edge to edge,
    row-major, each pixel drawn ``scale`` x ``scale``."""
    picture = Image.fromarray(tile(images, ncol), mode="L")
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    picture.save(path)
    return Path(path)


def read_grid(path: Path | str) -> tuple[np.ndarray, int]:
    """A PNG whose sides are multiples of 28 -> (uint8 [N,28,28] tiles, columns)."""
    try:
        picture = np.asarray(Image.open(path).convert("L"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable image: {exc}") from None
    h, w = picture.shape
    if h % TILE or w % TILE:
        raise ValueError(f"{path}: {w}x{h} pixels; expected a grid of 28x28 digits (sides multiples of 28)")
    tiles = picture.reshape(h // TILE, TILE, w // TILE, TILE).swapaxes(1, 2).reshape(-1, TILE, TILE)
    return np.ascontiguousarray(tiles), w // TILE
