"""The seeded latents behind Sample and SampleStream, keyed so that image i of a seed
is the same bytes whatever call asks for it: alone, in a unary Sample, or in any chunk
of a stream that starts anywhere.

Images come in blocks of ``BLOCK``. Draw d of block b is a standard-normal float32
stream, row-major, from ``PCG64(SeedSequence(seed, spawn_key=key))`` jumped b times,
where the key is () for the first draw (so block 0's first draw is ``default_rng(seed)``'s
stream, unary Sample's) and (0, d) for redraw d. Image i is row i mod BLOCK of block
i div BLOCK. With the GAN's truncation t, each component beyond +-t takes, in row-major
order, the next value within +-t of the block's second stream (key (1, d)); the VAE's
truncation scales its prior's draw by t instead. Everything an image depends on lies
in its block's rows up to its own, so any prefix of a block is computed alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.random import PCG64, Generator, SeedSequence

from .errors import InvalidArgument

BLOCK = 1024  # images a block of draws holds
TRUNCATION = (0.05, 10.0)  # the range of ``truncation``
MAX_DRAWS = 8  # draws of one image under min_confidence: the first and up to seven redraws
NOISE, WITHIN = 0, 1  # the two streams of a block: its draw, and the truncation's replacements


@dataclass(frozen=True)
class Controls:
    """How images are drawn beyond the seed. ``truncation``: the GAN's noise within
    +-t (redrawn beyond it), the VAE's prior scaled by t. ``min_confidence``: images the
    digit classifier reads as another digit, or below this probability, redrawn."""
    truncation: float | None = None
    min_confidence: float | None = None

    def __post_init__(self) -> None:
        low, high = TRUNCATION
        t = self.truncation
        if t is not None and not (math.isfinite(t) and low <= t <= high):
            raise InvalidArgument(f"truncation: must be between {low:g} and {high:g}, got {t:g}")
        c = self.min_confidence
        if c is not None and not (math.isfinite(c) and 0 < c < 1):
            raise InvalidArgument(f"min_confidence: must lie strictly between 0 and 1, got {c:g}")


def _stream(seed: int, draw: int, lane: int, block: int) -> Generator:
    key = () if draw == 0 and lane == NOISE else (lane, draw)
    bits = PCG64(SeedSequence(seed, spawn_key=key))
    return Generator(bits.jumped(block) if block else bits)


def _block(seed: int, draw: int, block: int, rows: int, size: int, truncate: float | None, scale: float | None
           ) -> np.ndarray:
    """Rows [0, rows) of one block's draw, float32 [rows, size]."""
    noise = _stream(seed, draw, NOISE, block).standard_normal((rows, size), dtype=np.float32)
    if scale is not None:
        noise *= np.float32(scale)
    if truncate is not None:
        beyond = np.abs(noise) > truncate
        count = int(beyond.sum())
        if count:
            noise[beyond] = _within(_stream(seed, draw, WITHIN, block), count, truncate)
    return noise


def _within(stream: Generator, count: int, t: float) -> np.ndarray:
    """The first ``count`` values within +-t of a standard-normal stream."""
    share = math.erf(t / math.sqrt(2))  # P(|x| <= t)
    kept: list[np.ndarray] = []
    while count > 0:
        values = stream.standard_normal(int(count / share * 1.1) + 64, dtype=np.float32)
        values = values[np.abs(values) <= t][:count]
        kept.append(values)
        count -= len(values)
    return np.concatenate(kept)


def latents(seed: int, indices: np.ndarray, size: int, gan: bool, truncation: float | None = None,
            draw: int = 0) -> np.ndarray:
    """float32 [len(indices), size]: the latents of images ``indices`` (draw ``draw``) of
    ``seed``, for a model whose latent has ``size`` values (``gan``: noise that
    truncation truncates; otherwise a VAE's z that it scales)."""
    indices = np.asarray(indices, np.int64)
    out = np.empty((len(indices), size), np.float32)
    if not len(indices):
        return out
    blocks = indices // BLOCK
    for block in np.unique(blocks):
        mine = np.flatnonzero(blocks == block)
        rows = indices[mine] - block * BLOCK
        drawn = _block(seed, draw, int(block), int(rows.max()) + 1, size,
                       truncation if gan else None, None if gan else truncation)
        out[mine] = drawn[rows]
    return out


def span(seed: int, start: int, count: int, size: int, gan: bool, truncation: float | None = None) -> np.ndarray:
    """The first draw of images [start, start + count)."""
    block, row = divmod(start, BLOCK)
    if count and (start + count - 1) // BLOCK == block:  # one block: no gathering of rows
        return _block(seed, 0, block, row + count, size, truncation if gan else None,
                      None if gan else truncation)[row:]
    return latents(seed, np.arange(start, start + count), size, gan, truncation)
