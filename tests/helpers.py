"""Helpers the tests import: the repository root, tiny data, the trainer's command
line, and polling with a deadline instead of fixed sleeps."""

from __future__ import annotations

import contextlib
import gzip
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.processes import ROOT, ServerProcess  # noqa: F401  (re-exported for the tests)

TINY_TRAIN = 256  # images per tiny training run: enough for every code path, seconds to train


def write_idx(path: Path, array: np.ndarray, magic: int, compress: bool = True) -> Path:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@contextlib.contextmanager
def served(repository: Path, *args: str):
    """A ready server process for the length of the block; it must exit 0 on SIGTERM."""
    process = ServerProcess(repository, *args).wait_ready()
    try:
        yield process
    finally:
        assert process.stop() == 0, process.log


def run_cli(*args: str, timeout: float = 600, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainer", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def wait_until(predicate, timeout: float = 30, what: str = "condition"):
    """Poll ``predicate`` until it is true, and return its value; an error at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _two_cores() -> bool:
    from server.settings import allowed_cores

    return sys.platform.startswith("linux") and len(allowed_cores() or []) >= 2


needs_two_cores = pytest.mark.skipif(not _two_cores(), reason="pinning needs Linux and two cores")
