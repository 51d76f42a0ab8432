"""MNIST-shaped IDX files: reading, checking, and the salt noise of the lecture.

numpy only, so evaluation and tests can read data without torch.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGES_MAGIC = 0x00000803  # uint8, 3 dimensions
LABELS_MAGIC = 0x00000801  # uint8, 1 dimension
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "mnist"


class DataError(Exception):
    """A data file is missing, unreadable or not the IDX file it should be."""


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 [N, 28, 28]
    labels: np.ndarray  # uint8 [N]
    sha256: str  # of the uncompressed image and label payloads, in that order


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None


def read_idx(path: Path, magic: int, shape_tail: tuple[int, ...]) -> np.ndarray:
    """Read one uint8 IDX file, checking its magic number, dimensions and length."""
    data = _read_bytes(path)
    ndim = len(shape_tail) + 1
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"{path}: truncated: {len(data)} bytes, shorter than its {header_len}-byte header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DataError(f"{path}: bad magic number 0x{found:08x}, expected 0x{magic:08x}")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if shape[1:] != shape_tail:
        raise DataError(f"{path}: items of shape {shape[1:]}, expected {shape_tail}")
    expected = header_len + int(np.prod(shape))
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "trailing bytes"
        raise DataError(f"{path}: {what}: {len(data)} bytes, header {shape} needs {expected}")
    return np.frombuffer(data, np.uint8, offset=header_len).reshape(shape)


def _find(data_dir: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (data_dir / name).is_file():
            return data_dir / name
    raise DataError(f"{data_dir / stem}[.gz]: no such file")


def load_split(data_dir: Path | str = DEFAULT_DATA_DIR, split: str = "train") -> Split:
    """Images and labels of one split from a folder of the four standard IDX files."""
    data_dir = Path(data_dir)
    images_stem, labels_stem = SPLIT_FILES[split]
    images_path, labels_path = _find(data_dir, images_stem), _find(data_dir, labels_stem)
    images = read_idx(images_path, IMAGES_MAGIC, (28, 28))
    labels = read_idx(labels_path, LABELS_MAGIC, ())
    if len(images) != len(labels):
        raise DataError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path.name}")
    if labels.size and labels.max() > 9:
        raise DataError(f"{labels_path}: label {labels.max()} out of range 0-9")
    digest = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    return Split(images, labels, digest)


def to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 [N,28,28] -> float32 [N,1,28,28] in [0,1]."""
    return (images.astype(np.float32) / 255.0)[:, None]


def add_salt(images: np.ndarray, fraction: float | np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The lecture's corruption: a random share of the pixels set to white (1.0).

    ``fraction`` is one share for all images or one per image.
    """
    fraction = np.broadcast_to(np.asarray(fraction, np.float32), (len(images),))
    mask = rng.random(images.shape, dtype=np.float32) < fraction.reshape(-1, *([1] * (images.ndim - 1)))
    return np.where(mask, np.float32(1.0), images).astype(np.float32)
