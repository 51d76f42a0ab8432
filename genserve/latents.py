"""Walks through a latent space: the frames of an interpolation and the points of the
VAE's manifold grid. numpy only; the server and the client's pictures share them."""

from __future__ import annotations

import numpy as np


def lerp(start: np.ndarray, end: np.ndarray, steps: int) -> np.ndarray:
    """``steps`` points on the line from ``start`` to ``end``, both included exactly."""
    t = np.linspace(0.0, 1.0, steps)[:, None]
    return ((1 - t) * start.astype(np.float64) + t * end.astype(np.float64)).astype(np.float32)


def slerp(start: np.ndarray, end: np.ndarray, steps: int) -> np.ndarray:
    """``steps`` points on the great circle from ``start`` to ``end``, both included exactly:
    the way between two draws of high-dimensional normal noise that keeps the norm typical
    of a draw (White, Sampling Generative Networks, 2016). Falls back to ``lerp`` for
    (anti)parallel or zero vectors, where the circle is undefined."""
    a, b = start.astype(np.float64), end.astype(np.float64)
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    omega = np.arccos(np.clip(a @ b / norms, -1.0, 1.0)) if norms else 0.0
    if np.sin(omega) < 1e-6:
        return lerp(start, end, steps)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    return ((np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)).astype(np.float32)


def grid(size: int, span: float) -> np.ndarray:
    """float32 [size * size, 2]: z over [-span, span]^2, a row of the grid after another;
    z1 rises left to right and z2 top to bottom."""
    axis = np.linspace(-span, span, size)
    z2, z1 = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([z1.ravel(), z2.ravel()], 1).astype(np.float32)
