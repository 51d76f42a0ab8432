"""PNG grids of 28x28 digits, both ways, with Pillow: what the client's command line and
the server's PNG routes both write and read."""

from __future__ import annotations

import io

import numpy as np

from genserve.pixels import TILE, tile


def encode_grid(images: np.ndarray, ncol: int | None = None, scale: int = 1) -> bytes:
    """uint8 [N,28,28] (or float in [0,1]) -> one greyscale PNG, tiles edge to edge,
    row-major, each pixel drawn ``scale`` x ``scale``."""
    from PIL import Image

    picture = Image.fromarray(tile(images, ncol), mode="L")
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def decode_grid(data: bytes, where: str) -> tuple[np.ndarray, int]:
    """A PNG whose sides are multiples of 28 -> (uint8 [N,28,28] tiles, columns); a
    ValueError naming ``where`` for anything else."""
    from PIL import Image

    try:
        picture = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    except (OSError, ValueError, Image.DecompressionBombError):
        raise ValueError(f"{where}: not a readable PNG (or other image Pillow reads)") from None
    h, w = picture.shape
    if h % TILE or w % TILE:
        raise ValueError(f"{where}: {w}x{h} pixels; expected a grid of 28x28 digits (sides multiples of 28)")
    tiles = picture.reshape(h // TILE, TILE, w // TILE, TILE).swapaxes(1, 2).reshape(-1, TILE, TILE)
    return np.ascontiguousarray(tiles), w // TILE
