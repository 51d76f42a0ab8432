"""genserve installs beside Triton's client, which pins protobuf below 7: a fresh
virtualenv with the client extra and tritonclient[grpc] resolves in one command and
calls a running server with both; one with the server extra serves."""

import subprocess
import sys
import venv

import pytest

from helpers import ROOT, ServerProcess

CALL_BOTH = """
import sys
import numpy as np
import google.protobuf
import tritonclient.grpc as triton
from client import GenerativeClient

with GenerativeClient(sys.argv[1], retries=0) as client:
    digits = client.sample_digits(n=4, seed=1)
with triton.InferenceServerClient(sys.argv[1]) as oip:
    z = triton.InferInput("z", [2, 2], "FP32")
    z.set_data_from_numpy(np.zeros((2, 2), np.float32))
    images = oip.infer("vae_decoder", [z]).as_numpy("image")
print(google.protobuf.__version__)
print(digits.shape, images.shape)
"""


def fresh_env(tmp_path, *requirements: str) -> str:
    """A new virtualenv with ``requirements`` installed by one pip command; its python."""
    folder = tmp_path / "venv"
    venv.create(folder, with_pip=True)
    python = str(folder / "bin" / "python")
    result = subprocess.run([python, "-m", "pip", "install", "-q", *requirements], capture_output=True, text=True,
                            timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return python


@pytest.mark.slow
def test_the_client_installs_and_works_beside_tritonclient(tmp_path, server):
    python = fresh_env(tmp_path, "-e", f"{ROOT}[client]", "tritonclient[grpc]")
    result = subprocess.run([python, "-c", CALL_BOTH, server.target], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    protobuf, shapes = result.stdout.splitlines()
    assert protobuf.startswith("6."), result.stdout  # Triton's client keeps protobuf below 7
    assert shapes == "(4, 28, 28) (2, 1, 28, 28)", result.stdout


@pytest.mark.slow
def test_the_server_installs_and_serves_beside_tritonclient(tmp_path, tiny_repository):
    python = fresh_env(tmp_path, "-e", f"{ROOT}[serve]", "tritonclient[grpc]")
    version = subprocess.run([python, "-c", "import google.protobuf; print(google.protobuf.__version__)"],
                             capture_output=True, text=True).stdout
    assert version.startswith("6."), version
    server = ServerProcess(tiny_repository, python=python).wait_ready()
    try:
        result = subprocess.run([sys.executable, "-c", CALL_BOTH, server.target], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr[-3000:]
    finally:
        assert server.stop() == 0, server.log
