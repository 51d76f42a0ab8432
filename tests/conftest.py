from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY_TRAIN = 256  # images per tiny training run: enough for every code path, seconds to train


def write_idx(path: Path, array: np.ndarray, magic: int, compress: bool = True) -> Path:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.fixture
def make_idx_dir(tmp_path):
    """A folder of the four IDX files with n_train and n_test random images."""
    def make(n_train: int = 64, n_test: int = 32, compress: bool = True) -> Path:
        rng = np.random.default_rng(0)
        for split, n in (("train", n_train), ("t10k", n_test)):
            suffix = ".gz" if compress else ""
            write_idx(tmp_path / f"{split}-images-idx3-ubyte{suffix}",
                      rng.integers(0, 256, (n, 28, 28)), 0x803, compress)
            write_idx(tmp_path / f"{split}-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n), 0x801, compress)
        return tmp_path
    return make


def run_cli(*args: str, timeout: float = 600, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainer", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """Every model trained for one epoch on the first TINY_TRAIN MNIST images."""
    from trainer.recipes import MODELS, recipe_for
    from trainer.train import train

    run_dir = tmp_path_factory.mktemp("run")
    for model in MODELS:
        train(model, recipe_for("quick", model, epochs=1, train_len=TINY_TRAIN), run_dir, progress=False)
    return run_dir


@pytest.fixture(scope="session")
def tiny_repository(tiny_run, tmp_path_factory) -> Path:
    from trainer.export import export_repository

    repository = tmp_path_factory.mktemp("models")
    export_repository(tiny_run, repository, samples=500)
    return repository
