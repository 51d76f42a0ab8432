"""What every door hands the service core, tested through the real server: an HTTP
call's deadline (header, the protocol's timeout parameter, the server's default) and
its cancellation when the caller goes away, over HTTP and gRPC alike; the model label
of each call (the model that produced the answer); and version pins on every
genserve.v1 call."""

import json
import socket
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest

from genserve.v1 import generative_pb2 as pb
from helpers import served, wait_until

HOLD = "1000000"  # --max-queue-delay-us: a request waits a second in the queue for company
INFER = "/v2/models/vae_decoder/infer"
ROW = {"inputs": [{"name": "z", "shape": [1, 2], "datatype": "FP32", "data": [0.5, -1.0]}]}


def post(server, path, payload, headers=None):
    request = urllib.request.Request(f"http://127.0.0.1:{server.http_port}{path}", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def rows_run(server, model="vae_decoder"):
    """Rows the model has run so far (the batch-size histogram's sum)."""
    return server.metric("genserve_batch_size_sum", model=model)


@pytest.fixture(scope="module")
def holding(tiny_repository):
    """A server whose queue holds each request a second, and whose HTTP calls default to a 0.3 s deadline."""
    with served(tiny_repository, "--max-queue-delay-us", HOLD, "--http-timeout", "0.3") as server:
        yield server


def test_an_http_call_expires_in_the_queue_by_the_servers_default(holding):
    before = rows_run(holding)
    status, answer = post(holding, INFER, ROW)
    assert status == 504 and "deadline passed" in answer["error"]
    status, answer = post(holding, "/v1/decode", {"z": {"dtype": "DATA_TYPE_FLOAT32", "shape": [1, 2],
                                                         "data": "AAAAAAAAAAA="}})
    assert status == 504, answer
    assert rows_run(holding) == before  # expired before a run: no model time spent on them
    assert holding.metric("genserve_requests_total", rpc="ModelInfer", code="DEADLINE_EXCEEDED", protocol="http") == 1


def test_the_header_and_the_timeout_parameter_set_an_http_calls_deadline(holding):
    status, answer = post(holding, INFER, ROW, {"X-Request-Timeout": "5"})  # longer than the default
    assert status == 200 and answer["outputs"][0]["shape"] == [1, 1, 28, 28]
    status, answer = post(holding, INFER, ROW | {"parameters": {"timeout": 200_000}}, {"X-Request-Timeout": "5"})
    assert status == 504, answer  # the parameter, in microseconds as Triton's, brings it forward
    for bad in ("0", "-1", "soon", "nan"):
        status, answer = post(holding, INFER, ROW, {"X-Request-Timeout": bad})
        assert status == 400 and "X-Request-Timeout" in answer["error"]
    status, answer = post(holding, INFER, ROW | {"parameters": {"timeout": "1s"}})
    assert status == 400 and "parameters.timeout" in answer["error"]


def _abandon(server, count: int) -> None:
    """``count`` HTTP infer calls whose callers hang up 50 ms after sending them."""
    body = json.dumps(ROW).encode()
    request = (f"POST {INFER} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"X-Request-Timeout: 30\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", server.http_port))
        sock.sendall(request)
        sockets.append(sock)
    wait_until(lambda: server.metric("genserve_queue_depth", model="vae_decoder") >= count, what="calls queued")
    for sock in sockets:
        sock.close()


def test_a_caller_that_hangs_up_cancels_its_queued_work(holding):
    before = rows_run(holding)
    _abandon(holding, 20)
    wait_until(lambda: holding.metric("genserve_requests_total", rpc="ModelInfer", code="CANCELLED",
                                      protocol="http") == 20, what="20 cancelled calls")
    # A call queued after them runs after any run they could have had: its batch is itself alone.
    assert post(holding, INFER, ROW, {"X-Request-Timeout": "10"})[0] == 200
    assert rows_run(holding) == before + 1


def test_a_grpc_caller_that_gives_up_cancels_its_queued_work(holding):
    before = rows_run(holding)
    with grpc.insecure_channel(holding.target) as channel:
        decode = channel.unary_unary("/genserve.v1.GenerativeService/Decode",
                                     request_serializer=pb.DecodeRequest.SerializeToString,
                                     response_deserializer=pb.ImagesResponse.FromString)
        z = pb.Tensor(dtype=pb.DATA_TYPE_FLOAT32, shape=[1, 2], data=np.zeros(2, "<f4").tobytes())
        with pytest.raises(grpc.RpcError) as error:
            decode(pb.DecodeRequest(z=z), timeout=0.2)
        assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert decode(pb.DecodeRequest(z=z), timeout=10).model.name == "vae_decoder"
    assert rows_run(holding) == before + 1


def _count(server, rpc, model):
    return server.metric("genserve_requests_total", rpc=rpc, model=model, code="OK", protocol="grpc")


@pytest.mark.parametrize("rpc, call, model", [
    ("Restyle", lambda c, d: c.restyle(d, 3), "cvae_decoder"),
    ("Restyle", lambda c, d: c.restyle(d, 3, source_digits=[1, 2]), "cvae_decoder"),
    ("Interpolate", lambda c, d: c.interpolate(d[0], d[1], steps=3), "vae_decoder"),
    ("Interpolate", lambda c, d: c.interpolate(np.zeros(2), np.ones(2), steps=3), "vae_decoder"),
    ("Interpolate", lambda c, d: c.interpolate(1, 2, steps=3), "vae_decoder"),
    ("Interpolate", lambda c, d: c.interpolate(1, 2, steps=3, model="gan"), "gan_generator"),
    ("Reconstruct", lambda c, d: c.reconstruct(d), "vae_decoder"),
    ("Encode", lambda c, d: c.encode(d), "vae_encoder"),
], ids=["restyle-read", "restyle-given", "interpolate-images", "interpolate-latents", "interpolate-seeds",
        "interpolate-gan", "reconstruct", "encode"])
def test_a_calls_model_label_is_the_model_that_answered(server, client, rpc, call, model):
    digits = client.sample_digits(n=2, seed=1)
    before = {name: _count(server, rpc, name) for name in ("vae_encoder", "cvae_encoder", "digit_classifier", model)}
    call(client, digits)
    assert _count(server, rpc, model) == before[model] + 1
    helpers = set(before) - {model}
    assert all(_count(server, rpc, name) == before[name] for name in helpers)  # helpers never label the call


@pytest.mark.parametrize("call", [
    lambda c, v, d: c.interpolate(1, 2, steps=3, version=v),
    lambda c, v, d: c.interpolate(d[0], d[1], steps=3, version=v),
    lambda c, v, d: c.latent_grid(2, version=v),
    lambda c, v, d: c.reconstruct(d, version=v),
    lambda c, v, d: c.restyle(d, 4, version=v),
], ids=["interpolate", "interpolate-images", "latent-grid", "reconstruct", "restyle"])
def test_every_call_may_pin_a_version(client, call):
    from client import NotFound

    digits = client.sample_digits(n=2, seed=2)
    pinned = call(client, 1, digits)
    assert np.array_equal(pinned, call(client, 0, digits))  # the tiny repository serves version 1 only
    with pytest.raises(NotFound, match="version 9 is not served"):
        call(client, 9, digits)
