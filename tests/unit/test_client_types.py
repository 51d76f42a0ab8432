"""The client SDK is typed for its callers: it ships py.typed, passes mypy --strict,
its two faces are generated from one table of operations, and what a user writes
against the results type-checks precisely (no Any: a mistake is caught)."""

import importlib.util
import subprocess
import sys

from helpers import ROOT

USER = '''
import asyncio

import numpy as np
from numpy.typing import NDArray

from client import AsyncGenerativeClient, GenerativeClient, Result


def use(client: GenerativeClient) -> int:
    digits: NDArray[np.uint8] = client.sample_digits(n=2, seed=1)
    floats: NDArray[np.float32] = client.sample_digits(n=2, as_float=True)
    images, latents = client.sample_digits(n=2, return_latents=True)
    drawn: Result[NDArray[np.uint8]] = client.sample_digits(n=2, return_info=True)
    z_mean, z_log_var = client.encode(digits)
    z_mean, z_log_var, z = client.encode(digits, with_z=True)
    read, probabilities = client.classify(digits)
    morph = client.interpolate(1, 2, steps=4, version=1)
    grid = client.latent_grid(3, return_info=True)
    seed = drawn.seed if drawn.seed is not None else 0
    return int(digits.shape[0] + floats.shape[0] + images.shape[0] + latents.shape[1] + morph.shape[0]
               + grid.output.shape[0] + read[0] + probabilities.argmax() + seed + len(drawn.model) + z.shape[0])


async def use_async(client: AsyncGenerativeClient) -> int:
    digits = await client.sample_digits(n=2)
    result = await client.denoise(digits, return_info=True)
    return int(digits.shape[0] + result.output.shape[0] + result.version)
'''
MISTAKES = '''
from client import GenerativeClient


def use(client: GenerativeClient) -> None:
    client.sample_digits(n=2).no_such_attribute
    client.sample_digits(n=2, return_info=True).shape
    client.encode(client.sample_digits(n=2))[2]
'''


def _mypy(tmp_path, *targets: str):
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), *targets],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_the_client_passes_mypy_strict(tmp_path):
    assert (ROOT / "client" / "py.typed").is_file()
    result = _mypy(tmp_path, "client")
    assert result.returncode == 0, result.stdout[-3000:]


def test_a_users_code_type_checks_against_precise_results(tmp_path):
    (tmp_path / "user.py").write_text(USER)
    result = _mypy(tmp_path, str(tmp_path / "user.py"))
    assert result.returncode == 0, result.stdout[-3000:]
    (tmp_path / "mistakes.py").write_text(MISTAKES)
    result = _mypy(tmp_path, str(tmp_path / "mistakes.py"))
    assert result.stdout.count("error:") == 3, result.stdout[-3000:]
    assert '"no_such_attribute"' in result.stdout and '"Result[' in result.stdout and "out of range" in result.stdout


def test_both_clients_are_generated_from_the_table_of_operations(tmp_path):
    spec = importlib.util.spec_from_file_location("operations", ROOT / "client" / "operations.py")
    operations = importlib.util.module_from_spec(spec)
    sys.modules["operations"] = operations  # dataclasses look their module up
    spec.loader.exec_module(operations)
    committed = (ROOT / "client" / "_generated.py").read_text()
    assert committed == operations.render(), "client/_generated.py is stale: run python client/operations.py"
    for op in operations.OPERATIONS:
        assert committed.count(f"self._stub.{op.stub}, ") == 2  # once in each client
