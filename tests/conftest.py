"""Fixtures shared by tests/unit and tests/e2e: tiny trained models, their exported
repository, and a server process serving it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_TRAIN, write_idx

from bench.processes import ServerProcess


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


@pytest.fixture(scope="session", autouse=True)
def _no_server_outlives_the_tests():
    yield
    ServerProcess.kill_all()


@pytest.fixture(scope="session")
def server(tiny_repository):
    process = ServerProcess(tiny_repository, "--max-request-size", "512", "--max-sample-n", "600").wait_ready()
    yield process
    assert process.stop() == 0, process.log


@pytest.fixture
def client(server):
    from client import GenerativeClient

    with GenerativeClient(server.target, timeout=30, retries=0) as c:
        yield c
