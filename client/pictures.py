"""PNG grids of 28x28 digits as files (the encoding is genserve.png's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genserve.png import decode_grid, encode_grid


def write_grid(images: np.ndarray, path: Path | str, ncol: int | None = None, scale: int = 1) -> Path:
    """uint8 [N,28,28] (or float in [0,1]) -> one greyscale PNG, tiles edge to edge,
    row-major, each pixel drawn ``scale`` x ``scale``."""
    Path(path).write_bytes(encode_grid(images, ncol, scale))
    return Path(path)


def read_grid(path: Path | str) -> tuple[np.ndarray, int]:
    """A PNG whose sides are multiples of 28 -> (uint8 [N,28,28] tiles, columns)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror})") from None
    return decode_grid(data, str(path))
