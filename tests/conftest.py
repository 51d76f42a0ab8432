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


def as_uint8(images: np.ndarray) -> np.ndarray:
    """The uint8 pixels the server answers for float images: rint(clip(x, 0, 1) * 255)."""
    return np.rint(np.clip(images.reshape(-1, 28, 28), 0, 1) * 255).astype(np.uint8)


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


class ServerProcess:
    """``python -m server`` as a separate process on free loopback ports."""

    started: list["ServerProcess"] = []  # every one, so that a failed test leaves none behind

    def __init__(self, repository: Path, *args: str, env: dict | None = None, python: str = sys.executable,
                 cwd: Path = ROOT):
        import os
        import re
        import threading

        self.proc = subprocess.Popen(
            [python, "-m", "server", "--model-repository", str(repository), "--host", "127.0.0.1",
             "--port", "0", "--metrics-host", "127.0.0.1", "--metrics-port", "0", *args],
            cwd=cwd, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
        ServerProcess.started.append(self)
        self.lines: list[str] = []
        self._listening = threading.Event()
        self._ready = threading.Event()
        self.port = self.metrics_port = None

        def pump():
            for line in self.proc.stderr:
                self.lines.append(line)
                found = re.search(r"listening on [\d.]+:(\d+), metrics on http://[\d.]+:(\d+)", line)
                if found:
                    self.port, self.metrics_port = int(found[1]), int(found[2])
                    self._listening.set()
                if "ready: serving" in line:
                    self._ready.set()
        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def scrape(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as response:
            return response.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample on the metrics endpoint; 0 when it is not there yet."""
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(self.scrape()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return sample.value
        return 0.0

    def wait_listening(self, timeout: float = 60) -> "ServerProcess":
        if not self._listening.wait(timeout):
            raise AssertionError(f"server did not start listening:\n{self.log}")
        return self

    def wait_ready(self, timeout: float = 60, credentials=None) -> "ServerProcess":
        """Until the health service reports SERVING (over TLS with ``credentials``)."""
        import time

        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        self.wait_listening(timeout)
        deadline = time.monotonic() + timeout
        channel = grpc.secure_channel(self.target, credentials) if credentials else grpc.insecure_channel(self.target)
        with channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                try:
                    if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                        return self
                except grpc.RpcError:
                    pass
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise AssertionError(f"server never reported SERVING:\n{self.log}")

    def wait_ready_logged(self, timeout: float = 60) -> "ServerProcess":
        """Until the server logs that it is ready: for servers whose health needs a secret."""
        if not self._ready.wait(timeout):
            raise AssertionError(f"server never logged that it is ready:\n{self.log}")
        return self

    def stop(self, timeout: float = 30) -> int:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"server did not exit within {timeout} s of SIGTERM:\n{self.log}") from None
        self._pump.join(5)
        return code


@pytest.fixture(scope="session", autouse=True)
def _no_server_outlives_the_tests():
    yield
    for process in ServerProcess.started:
        if process.proc.poll() is None:
            process.proc.kill()


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
