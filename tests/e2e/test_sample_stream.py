"""SampleStream through a real server, over gRPC and as NDJSON over HTTP: the same bytes
for image i whatever the chunk size and start index (and unary Sample's for the first
n), the sampling controls, cancellation that stops the runs, a slow reader that holds
the server to a few chunks, and every bad input refused with the field it names."""

import json
import socket
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest

from client import GenerativeClient, InvalidArgument
from genserve.v1 import generative_pb2 as pb
from genserve.v1 import generative_pb2_grpc as pb_grpc
from helpers import wait_until


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.target, options=[("grpc.max_receive_message_length", 64 << 20)]) as channel:
        yield pb_grpc.GenerativeServiceStub(channel)


def images_of(messages) -> np.ndarray:
    return np.concatenate([np.frombuffer(m.images.data, np.uint8).reshape(-1, 28, 28) for m in messages])


def stream(stub, **fields):
    return list(stub.SampleStream(pb.SampleStreamRequest(**fields), timeout=60))


def rows_run(server, model):
    return server.metric("genserve_batch_size_sum", model=model)


def cancelled_streams(server, model="gan_generator"):
    return server.metric("genserve_requests_total", rpc="SampleStream", code="CANCELLED", protocol="grpc",
                         model=model)


def ndjson(server, payload: dict, headers=None):
    request = urllib.request.Request(f"http://127.0.0.1:{server.http_port}/v1/sample_stream",
                                     data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers["Content-Type"], [json.loads(line) for line in response]
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], [json.loads(error.read())]


@pytest.mark.parametrize("controls", [{}, {"truncation": 0.7}, {"min_confidence": 0.6}])
def test_image_i_is_the_same_bytes_whatever_the_chunk_and_the_start(stub, controls):
    whole = stream(stub, n=2100, model="cgan", seed=11, balanced=True, chunk=512, **controls)
    assert [m.first_index for m in whole] == [0, 512, 1024, 1536, 2048]
    reference = images_of(whole)
    assert reference.shape == (2100, 28, 28)
    for chunk, start in ((1, 2090), (7, 1020), (333, 0), (512, 1500)):
        part = stream(stub, n=2100, model="cgan", seed=11, balanced=True, chunk=chunk, start_index=start, **controls)
        assert part[0].first_index == start and all(len(m.digits) <= chunk for m in part)
        assert np.array_equal(images_of(part), reference[start:]), (chunk, start)
        assert [d for m in part for d in m.digits] == [i % 10 for i in range(start, 2100)]
    # Unary Sample draws the stream's first n.
    digits = [i % 10 for i in range(600)]
    unary = stub.Sample(pb.SampleRequest(n=600, model="cgan", seed=11, digits=digits, **controls))
    assert np.array_equal(np.frombuffer(unary.images.data, np.uint8).reshape(-1, 28, 28), reference[:600])
    if "min_confidence" in controls:
        assert sum(m.redrawn for m in whole) > 0 and unary.redrawn > 0  # tiny models: many are refused
        assert unary.redrawn == sum(m.redrawn for m in stream(stub, n=600, model="cgan", seed=11, balanced=True,
                                                              chunk=100, **controls))


def test_the_controls_change_the_draws_and_stay_seeded(stub):
    plain = stream(stub, n=300, model="gan", seed=5, chunk=300)
    truncated = stream(stub, n=300, model="gan", seed=5, chunk=300, truncation=0.5)
    assert not np.array_equal(images_of(plain), images_of(truncated))
    assert not plain[0].digits  # an unconditional model draws no digit, and nothing read it
    confident = stream(stub, n=300, model="gan", seed=5, chunk=300, min_confidence=0.5)
    assert len(confident[0].digits) == 300  # the classifier's reading labels them
    latents = stub.Sample(pb.SampleRequest(n=50, model="gan", seed=5, truncation=0.5, return_latents=True)).latents
    assert np.abs(np.frombuffer(latents.data, np.float32)).max() <= 0.5
    scaled = stub.Sample(pb.SampleRequest(n=50, model="vae", seed=5, truncation=0.5, return_latents=True)).latents
    prior = stub.Sample(pb.SampleRequest(n=50, model="vae", seed=5, return_latents=True)).latents
    assert np.allclose(np.frombuffer(scaled.data, np.float32), 0.5 * np.frombuffer(prior.data, np.float32))


def test_ndjson_carries_the_same_chunks(server, stub):
    status, kind, lines = ndjson(server, {"n": 1100, "model": "cvae", "digit": 4, "chunk": 500, "seed": "3"})
    assert status == 200 and kind == "application/x-ndjson"
    assert [line["firstIndex"] for line in lines] == ["0", "500", "1000"]
    assert all(set(line["digits"]) == {4} for line in lines)
    over_grpc = stream(stub, n=1100, model="cvae", digit=4, chunk=500, seed=3)
    for line, message in zip(lines, over_grpc):
        assert line["images"]["data"] == json.loads(json_of(message))["images"]["data"]
        assert line["model"] == {"name": "cvae_decoder", "version": str(message.model.version)}


def json_of(message) -> str:
    from google.protobuf import json_format

    return json_format.MessageToJson(message)


BAD = [
    ({"n": 0}, "n: must be between 1 and 10,000,000"),
    ({"n": 10_000_001}, "n: must be between 1 and 10,000,000"),
    ({"n": 10, "chunk": 0}, "chunk: must be between 1 and 512"),
    ({"n": 10, "chunk": 513}, "chunk: must be between 1 and 512"),
    ({"n": 10, "start_index": 10}, "start_index: must be between 0 and n - 1 = 9"),
    ({"n": 10, "truncation": 0}, "truncation: must be between 0.05 and 10"),
    ({"n": 10, "truncation": -1}, "truncation: must be between 0.05 and 10"),
    ({"n": 10, "min_confidence": 0}, "min_confidence: must lie strictly between 0 and 1"),
    ({"n": 10, "min_confidence": 1}, "min_confidence: must lie strictly between 0 and 1"),
    ({"n": 10, "model": "cgan", "digit": 10}, "digit: a digit is 0-9, got 10"),
    ({"n": 10, "digit": 3, "balanced": True}, "balanced: not together with digit"),
    ({"n": 10, "model": "cgan"}, "digit: required"),
]


@pytest.mark.parametrize("fields, message", BAD, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD)])
def test_every_bad_request_names_its_field(server, stub, fields, message):
    with pytest.raises(grpc.RpcError) as caught:
        stream(stub, **fields)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in caught.value.details()
    payload = {key.replace("start_index", "startIndex").replace("min_confidence", "minConfidence"): value
               for key, value in fields.items()}
    status, kind, lines = ndjson(server, payload)
    assert status == 400 and kind.startswith("application/json") and message in lines[0]["error"]


def test_sample_refuses_bad_controls(client):
    with pytest.raises(InvalidArgument, match="truncation: must be between 0.05 and 10, got 0"):
        client.sample_digits(4, truncation=0.0)
    with pytest.raises(InvalidArgument, match="min_confidence: must lie strictly between 0 and 1, got 1.5"):
        client.sample_digits(4, digit=3, min_confidence=1.5)


def test_a_cancelled_stream_stops_its_runs(server, stub):
    before = rows_run(server, "gan_generator")
    call = stub.SampleStream(pb.SampleStreamRequest(n=1_000_000, seed=1, chunk=256))
    for _, message in zip(range(3), call):
        pass
    call.cancel()
    time.sleep(0.5)
    settled = rows_run(server, "gan_generator")
    time.sleep(1.0)
    assert rows_run(server, "gan_generator") == settled  # nothing runs once the caller went away
    assert settled - before < 50_000  # a stream that ran on would have drawn far more by now
    wait_until(lambda: cancelled_streams(server) >= 1, what="the cancelled stream counted")


def test_closing_the_connection_stops_an_ndjson_stream(server):
    before = rows_run(server, "gan_generator")
    body = json.dumps({"n": 1_000_000, "seed": "1", "chunk": 256}).encode()
    with socket.create_connection(("127.0.0.1", server.http_port)) as sock:
        sock.sendall(b"POST /v1/sample_stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        received = b""
        while received.count(b"\n") < 12:  # the headers and a few lines
            received += sock.recv(1 << 16)
    time.sleep(0.5)
    settled = rows_run(server, "gan_generator")
    time.sleep(1.0)
    assert rows_run(server, "gan_generator") == settled
    assert settled - before < 50_000


def test_a_slow_reader_holds_the_server_to_a_few_chunks(server, stub):
    chunk, read = 512, 0
    before, rss = rows_run(server, "gan_generator"), server.rss_bytes()
    call = stub.SampleStream(pb.SampleStreamRequest(n=1_000_000, seed=2, chunk=chunk))
    for i, message in enumerate(call):
        read += len(message.digits) or len(message.images.data) // 784
        time.sleep(0.25)
        if i == 11:
            break
    time.sleep(1.0)
    ahead = rows_run(server, "gan_generator") - before - read
    call.cancel()
    # The server's own bound is 2 chunks beyond the one it writes; HTTP/2's and TCP's
    # windows hold some more. Unbounded, it would have drawn ~100,000 by now.
    assert ahead <= 40 * chunk, ahead
    assert server.rss_bytes() - rss < 150 * 2**20


def test_the_client_streams_resumes_and_stops(server, client):
    chunks = list(client.stream_digits(1000, balanced=True, seed=4, chunk=300))
    assert [c.first_index for c in chunks] == [0, 300, 600, 900] and chunks[0].model == "cgan_generator"
    assert np.array_equal(np.concatenate([c.digits for c in chunks]), np.arange(1000) % 10)
    tail = list(client.stream_digits(1000, balanced=True, seed=4, chunk=128, start_index=650))
    assert np.array_equal(np.concatenate([c.images for c in tail]), np.concatenate([c.images for c in chunks])[650:])
    with GenerativeClient(server.target) as other:
        first = next(iter(other.stream_digits(500_000, seed=9, chunk=64)))
    assert first.seed == 9 and first.digits is None


def test_the_async_client_streams(server):
    import asyncio

    from client import AsyncGenerativeClient

    async def draw():
        async with AsyncGenerativeClient(server.target) as c:
            return [chunk async for chunk in c.stream_digits(700, "vae", 3, digit=7, chunk=256)]

    chunks = asyncio.run(draw())
    assert [c.first_index for c in chunks] == [0, 256, 512] and chunks[0].model == "cvae_decoder"
    assert all((c.digits == 7).all() for c in chunks)


def test_callers_that_go_away_mid_write_leave_no_error_in_the_log(server, stub):
    before = cancelled_streams(server)
    for i in range(20):
        call = stub.SampleStream(pb.SampleStreamRequest(n=1_000_000, seed=i, chunk=512))
        next(call)
        call.cancel()
        with grpc.insecure_channel(server.target) as channel:  # a caller that closes its connection
            next(pb_grpc.GenerativeServiceStub(channel).SampleStream(pb.SampleStreamRequest(n=1_000_000, chunk=512)))
    wait_until(lambda: cancelled_streams(server) >= before + 40, what="the streams counted as cancelled")
    assert "Traceback" not in server.log and "ExecuteBatchError" not in server.log, server.log[-3000:]
