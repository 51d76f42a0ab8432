"""A model's images both ways a caller may ask for them (the rounding rule itself is
``genserve.pixels.to_pixels``)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Images(NamedTuple):
    """float32 [N,1,28,28] in [0,1] and uint8 [N,28,28]: rows of one batch, converted
    once for the whole batch."""
    floats: np.ndarray
    pixels: np.ndarray
