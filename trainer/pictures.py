"""PNG pictures of a training run: sample grids, loss curves, the VAE's latent space,
and the DAE's noisy / denoised / clean rows. Inputs are numpy arrays."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")  # files only; no display here or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from genserve.pixels import tile, to_pixels  # noqa: E402

SCALE = 3  # 28-pixel digits are too small to look at one to one


def grid(images: np.ndarray, ncol: int | None = None, pad: int = 2) -> Image.Image:
    """Digits tiled white-on-black with a grey border, enlarged ``SCALE`` times."""
    image = Image.fromarray(tile(images, ncol, pad=pad, background=64), mode="L")
    return image.resize((image.width * SCALE, image.height * SCALE), Image.NEAREST)


def save_grid(images: np.ndarray, path: Path, ncol: int | None = None) -> Path:
    grid(images, ncol).save(path)
    return path


def loss_curves(metrics_log: Path, path: Path, title: str) -> Path:
    """One small plot per logged figure, against the epoch."""
    records = [json.loads(line) for line in Path(metrics_log).read_text().splitlines() if line]
    keys = [k for k in records[0] if k not in ("epoch", "seconds", "lr")]
    epochs = [r["epoch"] for r in records]
    cols = min(3, len(keys))
    rows = int(np.ceil(len(keys) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        ax.plot(epochs, [r.get(key) for r in records], marker="o", markersize=3)
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def latent_manifold(decode: Callable[[np.ndarray], np.ndarray], path: Path, n: int = 20,
                    span: float = 3.0) -> Path:
    """Decoded images over an n x n grid of z in [-span, span]^2 (z1 across, z2 up)."""
    z1 = np.linspace(-span, span, n)
    z2 = np.linspace(span, -span, n)
    z = np.array([[a, b] for b in z2 for a in z1], np.float32)
    return save_grid(decode(z), path, ncol=n)


def latent_scatter(z_mean: np.ndarray, labels: np.ndarray, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 6))
    points = ax.scatter(z_mean[:, 0], z_mean[:, 1], c=labels, cmap="tab10", s=2, vmin=-0.5, vmax=9.5)
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title("VAE: test images' latent means")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def denoise_rows(noisy: np.ndarray, denoised: np.ndarray, clean: np.ndarray, path: Path) -> Path:
    """Three rows: noisy input, denoised output, clean original."""
    return save_grid(np.concatenate([to_pixels(noisy), to_pixels(denoised), to_pixels(clean)]), path,
                     ncol=len(clean))
