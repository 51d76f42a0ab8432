"""Dynamic batching against the real server process: concurrent requests share a
model run, each caller gets its own bytes, a full queue refuses at once, and a call
whose deadline passes in the queue costs no model run."""

import asyncio
import time

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from prometheus_client import CollectorRegistry

from client import AsyncGenerativeClient, GenerativeClient, GenserveError
from conftest import ServerProcess, as_uint8
from server.engine import WIDE_ROWS, Engine
from server.metrics import Metrics
from server.settings import Settings

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
    # runs can be counted (test_instances.py splits them).
    process = ServerProcess(tiny_repository, "--max-batch-size", "64", "--max-queue-delay-us", "400000",
                            "--max-queue-size", "16", "--instances", "1").wait_ready()
    yield process
    assert process.stop() == 0, process.log


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
            expected = as_uint8(expected)
        assert images.dtype == expected.dtype and np.array_equal(images, expected), f"seed {seed}"


def test_a_request_over_the_maximum_batch_runs_in_chunks(batching_server, onnx_gan):
    runs = batching_server.metric("genserve_batch_size_count", **GAN)
    with GenerativeClient(batching_server.target, retries=0) as client:
        images = client.sample_digits(n=150, seed=7, as_float=True)
    assert batching_server.metric("genserve_batch_size_count", **GAN) == runs + 3  # 64 + 64 + 22
    assert np.array_equal(images, expected_gan(onnx_gan, 150, 7))


def test_a_full_queue_refuses_at_once(batching_server):
    async def many_calls():
        async with AsyncGenerativeClient(batching_server.target, retries=0) as client:
            started = time.monotonic()

            async def call(seed):
                try:
                    await client.sample_digits(n=1, seed=seed)
                    return "ok", None
                except GenserveError as error:
                    return error.code, (error.message, time.monotonic() - started)
            return await asyncio.gather(*(call(seed) for seed in range(24)))

    results = asyncio.run(many_calls())
    refused = [detail for code, detail in results if code == grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert refused and len(refused) + sum(code == "ok" for code, _ in results) == 24, results
    message, after = refused[0]
    assert "gan_generator" in message and "maximum of 16 requests" in message
    assert after < 0.3, "refused only after the queue delay: it waited instead"
    assert batching_server.metric("genserve_queue_rejections_total", **GAN) >= len(refused)


def test_a_deadline_that_passes_in_the_queue_costs_no_model_run(batching_server):
    runs = batching_server.metric("genserve_batch_size_count", **GAN)
    with GenerativeClient(batching_server.target, retries=0, timeout=0.1) as client:
        with pytest.raises(GenserveError) as error:
            client.sample_digits(n=1, seed=1)
    assert error.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    time.sleep(0.6)  # past the queue delay: the batcher has looked at the queue again
    assert batching_server.metric("genserve_batch_size_count", **GAN) == runs
    assert batching_server.metric("genserve_queue_depth", **GAN) == 0


def test_a_request_of_more_chunks_than_the_queue_holds_is_served(tiny_repository, onnx_gan):
    server = ServerProcess(tiny_repository, "--max-batch-size", "4", "--max-queue-size", "2").wait_ready()
    try:
        with GenerativeClient(server.target, retries=0) as client:
            images = client.sample_digits(n=20, seed=3, as_float=True)  # 5 chunks of 4
        assert np.array_equal(images, expected_gan(onnx_gan, 20, 3))
    finally:
        assert server.stop() == 0, server.log


def assert_same_bytes(model, first, second, sizes, rng):
    """Two sessions of ``model`` give the same bytes for the same random batches."""
    item_shape = model.session.get_inputs()[0].shape[1:]
    for n in sizes:
        feed = {model.input_name: rng.random((n, *item_shape), dtype=np.float32)}
        for one, other in zip(first.run(None, feed), second.run(None, feed)):
            assert np.array_equal(one, other), f"{model.name} at batch {n}"


def test_short_runs_use_a_one_thread_session_that_gives_the_same_bytes(tiny_repository):
    rng = np.random.default_rng(0)
    engine = Engine(Settings(model_repository=tiny_repository, intra_op_threads=2), Metrics(CollectorRegistry()))
    engine.load()
    for name, model in engine.models.items():
        assert model.session.get_session_options().intra_op_num_threads == 2
        assert model.short_session.get_session_options().intra_op_num_threads == 1
        assert_same_bytes(model, model.session, model.short_session, (1, 5, 64), rng)
        # What splitting a batch across instances relies on: the rows' bytes do not
        # depend on the run they are in.
        rows = rng.random((96, *model.session.get_inputs()[0].shape[1:]), dtype=np.float32)
        whole = model.session.run(None, {model.input_name: rows})
        parts = [model.short_session.run(None, {model.input_name: part}) for part in (rows[:48], rows[48:])]
        for output, *split in zip(whole, *parts):
            assert np.array_equal(output, np.concatenate(split)), f"{name} split in two"

    assert all(m.wide_session is m.session for m in engine.models.values())

    one_thread = Engine(Settings(model_repository=tiny_repository, intra_op_threads=1), Metrics(CollectorRegistry()))
    one_thread.load()
    assert all(m.short_session is m.session for m in one_thread.models.values())


def test_batches_on_the_event_loop_use_a_two_thread_session_that_gives_the_same_bytes(tiny_repository):
    rng = np.random.default_rng(1)
    engine = Engine(Settings(model_repository=tiny_repository, instances=2), Metrics(CollectorRegistry()))
    engine.load()
    for model in engine.models.values():
        assert model.wide_session.get_session_options().intra_op_num_threads == 2
        assert model.loop_session(WIDE_ROWS) is model.wide_session
        assert model.loop_session(WIDE_ROWS - 1) is model.short_session
        assert_same_bytes(model, model.wide_session, model.short_session, (WIDE_ROWS, 64), rng)

    # One core per model instance: no second core for the other half.
    one_core = Engine(Settings(model_repository=tiny_repository, instances=1), Metrics(CollectorRegistry()))
    one_core.load()
    for model in one_core.models.values():
        assert model.wide_session is None and model.loop_session(64) is model.short_session


@pytest.fixture(scope="module")
def gathering_server(tiny_repository):
    """No fixed queue delay; gathering under load on, for up to 30 ms."""
    process = ServerProcess(tiny_repository, "--max-gather-us", "30000").wait_ready()
    yield process
    assert process.stop() == 0, process.log


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

    time.sleep(0.5)  # load from another test has gone: gathering stops after a few lone requests
    with GenerativeClient(gathering_server.target, retries=0) as client:
        for seed in range(5):
            client.sample_digits(n=1, seed=seed)
        before = answered_at_once()
        for seed in range(200):
            client.sample_digits(n=1, seed=seed)
    # One request in every 0.1 s tries whether gathering pays again, and waits for a gap.
    assert answered_at_once() - before >= 180
