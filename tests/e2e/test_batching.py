"""Dynamic batching against the real server process: concurrent requests share a
model run, each caller gets its own bytes, a full queue refuses at once, and a call
whose deadline passes in the queue costs no model run."""

import asyncio

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from helpers import served, wait_until

from client import AsyncGenerativeClient, GenerativeClient, GenserveError
from genserve.pixels import to_pixels

GAN = {"model": "gan_generator"}


@pytest.fixture(scope="module")
def onnx_gan(tiny_repository):
    session = ort.InferenceSession(str(tiny_repository / "gan_generator" / "1" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    return lambda noise: session.run(None, {"noise": noise})[0].reshape(-1, 28, 28)


def runs_and_rows(server):
    """The GAN's model runs so far, and the rows they held."""
    return (server.metric("genserve_batch_size_count", **GAN), server.metric("genserve_batch_size_sum", **GAN))


def expected_gan(onnx_gan, n, seed):
    return onnx_gan(np.random.default_rng(seed).standard_normal((n, 100), dtype=np.float32))


@pytest.fixture(scope="module")
def batching_server(tiny_repository):
    # A long queue delay holds a lone request in the queue, so that the tests can
    # line up concurrent ones behind it. One instance, so that no run is split and the
    # runs can be counted (unit/test_batcher.py splits them).
    with served(tiny_repository, "--max-batch-size", "64", "--max-queue-delay-us", "400000",
                "--max-queue-size", "16", "--instances", "1") as process:
        yield process


def test_concurrent_requests_share_one_run_and_get_their_own_bytes(batching_server, onnx_gan):
    runs, rows = runs_and_rows(batching_server)

    async def eight_calls():
        # Float and uint8 callers in one batch: the pixels are converted once for the batch.
        async with AsyncGenerativeClient(batching_server.target, retries=0) as client:
            return await asyncio.gather(*(client.sample_digits(n=2, seed=seed, as_float=seed % 2 == 0)
                                          for seed in range(8)))

    results = asyncio.run(eight_calls())
    assert batching_server.metric("genserve_batch_size_count", **GAN) == runs + 1
    assert batching_server.metric("genserve_batch_size_sum", **GAN) == rows + 16
    for seed, images in enumerate(results):
        expected = expected_gan(onnx_gan, 2, seed)
        if seed % 2:
            expected = to_pixels(expected)
        assert images.dtype == expected.dtype and np.array_equal(images, expected), f"seed {seed}"


def test_a_request_over_the_maximum_batch_runs_in_chunks(batching_server, onnx_gan):
    runs = batching_server.metric("genserve_batch_size_count", **GAN)
    with GenerativeClient(batching_server.target, retries=0) as client:
        images = client.sample_digits(n=150, seed=7, as_float=True)
    assert batching_server.metric("genserve_batch_size_count", **GAN) == runs + 3  # 64 + 64 + 22
    assert np.array_equal(images, expected_gan(onnx_gan, 150, 7))


def test_a_full_queue_refuses_at_once(batching_server):
    queued = batching_server.metric("genserve_queue_duration_seconds_count", **GAN)
    rejected = batching_server.metric("genserve_queue_rejections_total", **GAN)

    async def many_calls():
        async with AsyncGenerativeClient(batching_server.target, retries=0) as client:
            async def call(seed):
                try:
                    await client.sample_digits(n=1, seed=seed)
                    return "ok", None
                except GenserveError as error:
                    return error.code, error.message
            return await asyncio.gather(*(call(seed) for seed in range(24)))

    results = asyncio.run(many_calls())
    refused = [message for code, message in results if code == grpc.StatusCode.RESOURCE_EXHAUSTED]
    served = sum(code == "ok" for code, _ in results)
    assert refused and len(refused) + served == 24, results
    assert "gan_generator" in refused[0] and "maximum of 16 requests" in refused[0]
    # Refused at once: a refused call never entered the queue, so only the served ones waited in it.
    assert batching_server.metric("genserve_queue_duration_seconds_count", **GAN) == queued + served
    assert batching_server.metric("genserve_queue_rejections_total", **GAN) == rejected + len(refused)


def test_a_deadline_that_passes_in_the_queue_costs_no_model_run(batching_server):
    runs = batching_server.metric("genserve_batch_size_count", **GAN)
    with GenerativeClient(batching_server.target, retries=0, timeout=0.1) as client:
        with pytest.raises(GenserveError) as error:
            client.sample_digits(n=1, seed=1)
    assert error.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    # Once the batcher has taken the queue again, the expired call is gone without a run.
    wait_until(lambda: batching_server.metric("genserve_queue_depth", **GAN) == 0, what="an empty queue")
    assert batching_server.metric("genserve_batch_size_count", **GAN) == runs


def test_a_request_of_more_chunks_than_the_queue_holds_is_served(tiny_repository, onnx_gan):
    with served(tiny_repository, "--max-batch-size", "4", "--max-queue-size", "2") as server:
        with GenerativeClient(server.target, retries=0) as client:
            images = client.sample_digits(n=20, seed=3, as_float=True)  # 5 chunks of 4
        assert np.array_equal(images, expected_gan(onnx_gan, 20, 3))


@pytest.fixture(scope="module")
def gathering_server(tiny_repository):
    """No fixed queue delay; gathering under load on, for up to 30 ms."""
    with served(tiny_repository, "--max-gather-us", "30000") as process:
        yield process


def test_under_load_short_runs_gather_the_requests_that_keep_arriving(gathering_server, onnx_gan):
    runs_before, requests_before = runs_and_rows(gathering_server)

    async def callers():
        async with AsyncGenerativeClient(gathering_server.target, retries=0) as client:
            async def caller(first_seed):
                return [await client.sample_digits(n=1, seed=seed, as_float=True)
                        for seed in range(first_seed, first_seed + 40)]
            return await asyncio.gather(*(caller(100 * c) for c in range(32)))

    results = asyncio.run(callers())
    runs, requests = runs_and_rows(gathering_server)
    runs, requests = runs - runs_before, requests - requests_before
    assert requests == 1280
    # A tiny model's run takes far less than taking in a request: without gathering,
    # nearly every run would be a batch of one.
    assert runs <= requests / 4, f"{requests:.0f} requests in {runs:.0f} runs"
    for c in (0, 17, 31):
        for i in (0, 39):
            assert np.array_equal(results[c][i], expected_gan(onnx_gan, 1, 100 * c + i)), (c, i)


def test_gathered_batches_grow_when_the_callers_do(gathering_server):
    # Batches learn how many callers there are, to stop gathering once all have arrived;
    # after a spell of a few callers, more callers must still get larger batches.
    async def load(callers):
        async with AsyncGenerativeClient(gathering_server.target, retries=0) as client:
            async def caller(first_seed):
                for seed in range(first_seed, first_seed + 60):
                    await client.sample_digits(n=1, seed=seed)
            await asyncio.gather(*(caller(100 * c) for c in range(callers)))

    asyncio.run(load(4))
    runs_before, requests_before = runs_and_rows(gathering_server)
    asyncio.run(load(32))
    runs, requests = runs_and_rows(gathering_server)
    runs, requests = runs - runs_before, requests - requests_before
    assert requests == 32 * 60
    assert requests / runs > 10, f"{requests:.0f} requests of 32 callers in {runs:.0f} runs, after 4 callers"


def test_a_lone_caller_is_not_held_back_to_gather(gathering_server):
    def answered_at_once():  # requests that spent under 0.5 ms in the queue
        return gathering_server.metric("genserve_queue_duration_seconds_bucket", le="0.0005", **GAN)

    with GenerativeClient(gathering_server.target, retries=0) as client:
        def gathering_has_stopped():  # after the load of other tests: five lone calls in a row not held
            before = answered_at_once()
            for seed in range(5):
                client.sample_digits(n=1, seed=seed)
            return answered_at_once() - before == 5
        wait_until(gathering_has_stopped, what="gathering to stop for a lone caller")
        before = answered_at_once()
        for seed in range(200):
            client.sample_digits(n=1, seed=seed)
    # One request in every 0.1 s tries whether gathering pays again, and waits for a gap.
    assert answered_at_once() - before >= 180
