"""Traces with OpenTelemetry (the ``otel`` extra): each call is a span, with a child
span for its wait in the batching queue and one for the onnxruntime run that answered
it, whose attributes say the model and the batch. Read from a real server process
through the SDK's in-memory exporter (tests/traced_server.py), and through the
standard variables (OTEL_TRACES_EXPORTER=console)."""

import json
import os

import grpc
import numpy as np
import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.instrumentation.grpc")

from bench.processes import ServerProcess  # noqa: E402
from client import GenerativeClient  # noqa: E402
from genserve.v1 import generative_pb2 as pb  # noqa: E402

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


def spans_of(repository, tmp_path, calls) -> list[dict]:
    """The spans a server process recorded while ``calls(target, http_port)`` ran."""
    path = tmp_path / "spans.jsonl"
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    server = ServerProcess(repository, module="traced_server",
                           env={"GENSERVE_TEST_SPANS": str(path), "PYTHONPATH": tests})
    try:
        server.wait_ready()
        calls(server.target, server.http_port)
    finally:
        assert server.stop() == 0, server.log
    return [json.loads(line) for line in path.read_text().splitlines()]


def children(spans: list[dict], parent: dict) -> dict[str, dict]:
    found = [s for s in spans if s["parent_id"] == parent["context"]["span_id"]]
    return {s["name"]: s for s in found}


def test_a_sample_and_a_model_infer_each_have_their_queue_and_run_spans(tiny_repository, tmp_path):
    import tritonclient.grpc as triton

    def calls(target, http_port):
        with grpc.insecure_channel(target) as channel:  # a caller's trace context, as its instrumentation sends it
            sample = channel.unary_unary("/genserve.v1.GenerativeService/Sample",
                                         request_serializer=pb.SampleRequest.SerializeToString,
                                         response_deserializer=pb.ImagesResponse.FromString)
            sample(pb.SampleRequest(n=3, seed=1), metadata=(("traceparent", TRACEPARENT),), timeout=30)
        oip = triton.InferenceServerClient(target)
        z = triton.InferInput("z", [2, 2], "FP32")
        z.set_data_from_numpy(np.zeros((2, 2), np.float32))
        oip.infer("vae_decoder", [z])
        oip.close()

    spans = spans_of(tiny_repository, tmp_path, calls)
    by_name = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)

    (sample,) = by_name["/genserve.v1.GenerativeService/Sample"]
    assert sample["kind"] == "SpanKind.SERVER"
    assert sample["context"]["trace_id"] == "0x" + CALLER_TRACE  # the caller's trace, continued
    assert sample["parent_id"] == "0x" + CALLER_SPAN
    below = children(spans, sample)
    assert set(below) == {"batcher.queue", "onnxruntime.run"}, below
    run = below["onnxruntime.run"]
    assert run["attributes"]["genserve.model"] == "gan_generator"
    assert run["attributes"]["genserve.batch.size"] >= 3 and run["attributes"]["genserve.batch.requests"] >= 1
    assert below["batcher.queue"]["end_time"] <= run["start_time"] <= run["end_time"] <= sample["end_time"]

    (infer,) = by_name["/inference.GRPCInferenceService/ModelInfer"]
    below = children(spans, infer)
    assert set(below) == {"batcher.queue", "onnxruntime.run"}, below
    assert below["onnxruntime.run"]["attributes"]["genserve.model"] == "vae_decoder"
    assert below["onnxruntime.run"]["attributes"]["genserve.batch.size"] == 2


def test_an_http_call_is_a_span_with_the_same_children(tiny_repository, tmp_path):
    import urllib.request

    def calls(target, http_port):
        request = urllib.request.Request(f"http://127.0.0.1:{http_port}/v1/sample", data=b'{"n": 2, "seed": 4}',
                                         headers={"content-type": "application/json", "traceparent": TRACEPARENT})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200

    spans = spans_of(tiny_repository, tmp_path, calls)
    (call,) = [s for s in spans if s["name"] == "POST /v1/{rpc}"]
    assert call["parent_id"] == "0x" + CALLER_SPAN and call["attributes"]["rpc.method"] == "Sample"
    assert set(children(spans, call)) == {"batcher.queue", "onnxruntime.run"}


def test_the_standard_variables_turn_traces_on(tiny_repository):
    server = ServerProcess(tiny_repository, env={"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "digits"})
    try:
        with GenerativeClient(server.wait_ready().target, retries=0) as client:
            client.sample_digits(n=1, seed=1)
    finally:
        assert server.stop() == 0, server.log
    # The console exporter writes each span as JSON when the server flushes them at exit.
    assert '"name": "onnxruntime.run"' in server.log and '"service.name": "digits"' in server.log
    assert "tracing: exporting spans through console as service digits" in server.log


def test_without_the_variables_there_are_no_traces(server):
    with GenerativeClient(server.target, retries=0) as client:
        client.sample_digits(n=1, seed=1)
    assert "tracing:" not in server.log and "onnxruntime.run" not in server.log
