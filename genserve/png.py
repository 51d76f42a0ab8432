"""PNG grids of 28x28 digits, both ways, with Pillow: what the client's command line and
the server's PNG routes both write and read. A grid says its scale in a text chunk
(SCALE_KEY), so that a grid drawn large reads back as the digits it shows."""

from __future__ import annotations

import io

import numpy as np

from genserve.pixels import TILE, tile

SCALE_KEY = "genserve:scale"  # PNG tEXt chunk: each pixel drawn SCALE x SCALE
MAX_SCALE = 16


def encode_grid(images: np.ndarray, ncol: int | None = None, scale: int = 1) -> bytes:
    """uint8 [N,28,28] (or float in [0,1]) -> one greyscale PNG, tiles edge to edge,
    row-major, each pixel drawn ``scale`` x ``scale`` (said in the SCALE_KEY chunk)."""
    from PIL import Image, PngImagePlugin

    picture = Image.fromarray(tile(images, ncol), mode="L")
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    info = PngImagePlugin.PngInfo()
    info.add_text(SCALE_KEY, str(scale))
    out = io.BytesIO()
    picture.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def decode_grid(data: bytes, where: str, max_pixels: int | None = None) -> tuple[np.ndarray, int]:
    """A PNG grid of 28x28 digits (sides multiples of 28 times its scale) -> (uint8
    [N,28,28] tiles, columns); a ValueError naming ``where`` for anything else. The
    picture's size is read from its header and checked against ``max_pixels`` before
    any of it is decoded."""
    from PIL import Image

    try:
        picture = Image.open(io.BytesIO(data))
        width, height = picture.size
        if max_pixels is not None and width * height > max_pixels:
            raise ValueError(f"{where}: {width}x{height} pixels, over the limit of {max_pixels:,} pixels")
        scale = _scale(picture.info.get(SCALE_KEY), where)
        pixels = np.asarray(picture.convert("L"))
    except ValueError:
        raise
    except (OSError, Image.DecompressionBombError, SyntaxError):
        raise ValueError(f"{where}: not a readable PNG (or other image Pillow reads)") from None
    side = TILE * scale
    if height % side or width % side:
        raise ValueError(f"{where}: {width}x{height} pixels; expected a grid of 28x28 digits (sides multiples "
                         f"of 28{f' x its scale {scale}' if scale > 1 else ''})")
    pixels = pixels[::scale, ::scale]
    h, w = pixels.shape
    tiles = pixels.reshape(h // TILE, TILE, w // TILE, TILE).swapaxes(1, 2).reshape(-1, TILE, TILE)
    return np.ascontiguousarray(tiles), w // TILE


def _scale(text: object, where: str) -> int:
    if text is None:
        return 1
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_SCALE):
        raise ValueError(f"{where}: its {SCALE_KEY} chunk must be a whole number from 1 to {MAX_SCALE}")
    return int(text)
