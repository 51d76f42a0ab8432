"""The real server process, driven through the real client."""

import asyncio
import shutil
import subprocess
import sys
import urllib.request

import numpy as np
import onnxruntime as ort
import pytest
from helpers import ROOT

from client import AsyncGenerativeClient, GenserveError
from genserve.pixels import to_pixels
from trainer.data import add_salt, load_split


@pytest.fixture(scope="module")
def onnx(tiny_repository):
    """In-process onnxruntime on the same files the server loads."""
    def run(name, array):
        session = ort.InferenceSession(str(tiny_repository / name / "1" / "model.onnx"),
                                       providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: array})
    return run


@pytest.fixture(scope="module")
def digits():
    return load_split(split="test").images[:40]


def test_sample_gan_equals_in_process_onnxruntime(client, onnx):
    images = client.sample_digits(n=20, model="gan", seed=7)
    assert images.shape == (20, 28, 28) and images.dtype == np.uint8
    noise = np.random.default_rng(7).standard_normal((20, 100), dtype=np.float32)
    np.testing.assert_array_equal(images, to_pixels(onnx("gan_generator", noise)[0]))


def test_sample_vae_float_equals_in_process_onnxruntime(client, onnx):
    images = client.sample_digits(n=9, model="vae", seed=3, as_float=True)
    assert images.dtype == np.float32
    z = np.random.default_rng(3).standard_normal((9, 2), dtype=np.float32)
    np.testing.assert_array_equal(images, onnx("vae_decoder", z)[0].reshape(-1, 28, 28))


def test_same_seed_same_bytes_other_seed_other_bytes(client):
    first = client.sample_digits(n=16, seed=11)
    for _ in range(3):
        assert client.sample_digits(n=16, seed=11).tobytes() == first.tobytes()
    assert client.sample_digits(n=16, seed=12).tobytes() != first.tobytes()
    assert client.sample_digits(n=16).tobytes() != client.sample_digits(n=16).tobytes()


def test_encode_equals_in_process_onnxruntime(client, onnx, digits):
    mean, log_var, z = client.encode(digits, seed=5, with_z=True)
    expected_mean, expected_log_var = onnx("vae_encoder", (digits[:, None] / np.float32(255)).astype(np.float32))
    np.testing.assert_array_equal(mean, expected_mean)
    np.testing.assert_array_equal(log_var, expected_log_var)
    eps = np.random.default_rng(5).standard_normal((40, 2), dtype=np.float32)
    np.testing.assert_array_equal(z, (expected_mean + np.exp(0.5 * expected_log_var) * eps).astype(np.float32))
    # float input in [0, 1] and [N,1,28,28] means the same as uint8.
    np.testing.assert_array_equal(client.encode(digits[:, None] / np.float32(255))[0], mean)


def test_decode_equals_in_process_onnxruntime(client, onnx):
    z = np.random.default_rng(0).standard_normal((33, 2)).astype(np.float32) * 2
    np.testing.assert_array_equal(client.decode(z), to_pixels(onnx("vae_decoder", z)[0]))


def test_denoise_equals_in_process_onnxruntime(client, onnx, digits):
    noisy = add_salt(digits[:, None] / np.float32(255), 0.1, np.random.default_rng(0))
    expected = onnx("dae", noisy)[0]
    np.testing.assert_array_equal(client.denoise(noisy), to_pixels(expected))
    np.testing.assert_array_equal(client.denoise(noisy, as_float=True), expected.reshape(-1, 28, 28))


def test_list_models(client, tiny_repository):
    models = {m.name: m for m in client.list_models()}
    assert {"vae_encoder", "vae_decoder", "gan_generator", "dae"} <= set(models)
    gan = models["gan_generator"]
    assert gan.version == 1 and gan.execution_provider == "CPUExecutionProvider"
    assert [t.name for t in gan.inputs] == ["noise"] and gan.inputs[0].shape == ("N", "100")
    assert [t.name for t in models["vae_encoder"].outputs] == ["z_mean", "z_log_var"]
    assert "inception_score" in gan.metrics and len(gan.sha256) == 64


def test_the_async_client_gives_the_same_answers(client, server, digits):
    async def calls():
        async with AsyncGenerativeClient(server.target, retries=0) as aclient:
            results = await asyncio.gather(
                aclient.sample_digits(n=8, seed=2), aclient.encode(digits),
                aclient.decode(np.zeros((3, 2), np.float32)), aclient.denoise(digits), aclient.health())
            with pytest.raises(GenserveError) as error:
                await aclient.sample_digits(n=8, model="nope")
            return results, error.value
    (sample, (mean, _), decoded, denoised, health), error = asyncio.run(calls())
    np.testing.assert_array_equal(sample, client.sample_digits(n=8, seed=2))
    np.testing.assert_array_equal(mean, client.encode(digits)[0])
    np.testing.assert_array_equal(decoded, client.decode(np.zeros((3, 2), np.float32)))
    np.testing.assert_array_equal(denoised, client.denoise(digits))
    assert health == "SERVING" and error.code.name == "NOT_FOUND"


def test_a_passed_deadline_is_deadline_exceeded(server):
    from client import GenerativeClient
    with GenerativeClient(server.target, timeout=1e-6, retries=0) as hurried:
        with pytest.raises(GenserveError) as error:
            hurried.sample_digits(n=600)
    assert error.value.code.name == "DEADLINE_EXCEEDED"


def _scrape(server) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as response:
        return response.read().decode()


def test_metrics(client, server):
    client.sample_digits(n=5, seed=1)
    with pytest.raises(GenserveError):
        client.sample_digits(n=0)
    text = _scrape(server)
    assert 'genserve_requests_total{code="OK",model="gan_generator",protocol="grpc",rpc="Sample"}' in text
    assert 'genserve_requests_total{code="INVALID_ARGUMENT",model="",protocol="grpc",rpc="Sample"}' in text
    for name in ("genserve_request_duration_seconds_bucket{", 'genserve_inference_duration_seconds_bucket{',
                 'genserve_batch_size_bucket{', "genserve_requests_in_flight ", "genserve_ready 1.0"):
        assert name in text, name
    assert 'genserve_model_info{model="gan_generator",provider="CPUExecutionProvider",version="1"} 1.0' in text


def test_metrics_pass_promtool(client, server, tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian's prometheus package; .ci/run installs it)")
    client.sample_digits(n=3)
    result = subprocess.run([promtool, "check", "metrics"], input=_scrape(server), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_client_command_line(server, tmp_path):
    out = tmp_path / "digits.png"
    run = lambda *a: subprocess.run([sys.executable, "-m", "client", "--target", server.target, *a],  # noqa: E731
                                    capture_output=True, text=True, cwd=ROOT, timeout=60)
    result = run("sample", "--n", "16", "--model", "gan", "--seed", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    from client.pictures import read_grid
    tiles, ncol = read_grid(out)
    assert tiles.shape == (16, 28, 28) and ncol == 4
    result = run("denoise", str(out), "--out", str(tmp_path / "clean.png"))
    assert result.returncode == 0, result.stderr
    assert read_grid(tmp_path / "clean.png")[0].shape == (16, 28, 28)
    result = run("sample", "--n", "0", "--out", str(out))
    assert result.returncode == 1 and result.stderr.startswith("error: INVALID_ARGUMENT: n:")


def test_reflection_lists_the_services(server):
    import grpc
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    with grpc.insecure_channel(server.target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {"genserve.v1.GenerativeService", "grpc.health.v1.Health"} <= services
        methods = {m.name for m in database.FindFileContainingSymbol("genserve.v1.GenerativeService")
                   .service[0].method}
        assert methods == {"Encode", "Decode", "Sample", "Denoise", "ListModels", "Interpolate", "LatentGrid",
                           "Reconstruct", "Restyle", "Classify", "SampleStream"}
