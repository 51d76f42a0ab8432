"""Hostile requests against the real server, by class: the size of a request's structure,
caller text at any length, version strings, made-up methods, answers over the message
limit, bytes that are not a message, and more calls at once than the server takes. Each
gets a status a client understands and a short message, and is counted; none is UNKNOWN,
INTERNAL or CANCELLED."""

import asyncio

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as oip

from client import AsyncGenerativeClient
from genserve.v1 import generative_pb2 as pb
from helpers import served

V1, OIP = "/genserve.v1.GenerativeService/", "/inference.GRPCInferenceService/"
INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
SHORT = 400  # characters: no message may grow with what the caller sent


def call(target: str, method: str, request, metadata=None) -> tuple[grpc.StatusCode, str]:
    """One raw call: the request as a message or as bytes; its code and message."""
    payload = request if isinstance(request, bytes) else request.SerializeToString()
    with grpc.insecure_channel(target, [("grpc.max_send_message_length", -1),
                                        ("grpc.max_receive_message_length", -1)]) as channel:
        try:
            channel.unary_unary(method)(payload, timeout=60, metadata=metadata)
            return grpc.StatusCode.OK, ""
        except grpc.RpcError as error:
            return error.code(), error.details() or ""


def assert_refused(target, method, request, code, *fragments):
    got, message = call(target, method, request)
    assert got == code, (got, message[:SHORT])
    assert len(message) < SHORT, message[:SHORT]
    for fragment in fragments:
        assert fragment in message, message


def infer_request(name="vae_decoder", version="", shape=(1, 2), input_name="z", **kw):
    request = oip.ModelInferRequest(model_name=name, model_version=version, **kw)
    request.inputs.add(name=input_name, datatype="FP32", shape=list(shape))
    request.raw_input_contents.append(np.zeros(shape, "<f4").tobytes() if len(shape) <= 4 else b"\0" * 8)
    return request


def test_the_size_of_a_requests_structure_is_bounded_before_any_work(server):
    deep = pb.DenoiseRequest(images=pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=[1] * 300_000, data=b"\0"))
    assert_refused(server.target, V1 + "Denoise", deep, INVALID, "images.shape", "300,000 axes", "at most 4")
    assert_refused(server.target, OIP + "ModelInfer", infer_request(shape=[1] * 300_000), INVALID,
                   "inputs[0].shape", "300,000 axes")
    many = infer_request()
    for _ in range(100_000):
        many.outputs.add(name="image")
    assert_refused(server.target, OIP + "ModelInfer", many, INVALID, "outputs", "100,000 asked for")
    twice = infer_request(name="vae_encoder", shape=(1, 1, 28, 28), input_name="image")
    twice.outputs.add(name="z_mean")
    twice.outputs.add(name="z_mean")
    assert_refused(server.target, OIP + "ModelInfer", twice, INVALID, "outputs[1].name", "asked for twice")


def test_caller_text_is_quoted_short_in_every_message(server):
    long = "x" * 100_000
    assert_refused(server.target, V1 + "Sample", pb.SampleRequest(n=1, model=long), NOT_FOUND,
                   "unknown sampler 'xxxx", "100,000 characters")
    assert_refused(server.target, OIP + "ModelInfer", infer_request(name=long), NOT_FOUND, "100,000 characters")
    assert_refused(server.target, OIP + "ModelMetadata", oip.ModelMetadataRequest(name=long), NOT_FOUND)
    assert_refused(server.target, OIP + "ModelInfer", infer_request(input_name=long), INVALID, "inputs[0].name")
    odd = infer_request()
    odd.inputs[0].datatype = long
    assert_refused(server.target, OIP + "ModelInfer", odd, INVALID, "inputs[0].datatype")
    unknown = infer_request()
    unknown.outputs.add(name=long)
    assert_refused(server.target, OIP + "ModelInfer", unknown, INVALID, "outputs[0].name")
    assert_refused(server.target, OIP + "ModelInfer", infer_request(id="i" * 100_000), INVALID,
                   "id: 100,000 characters; at most 256")


@pytest.mark.parametrize("version", ["²", "٥", "５", "1٧", "1" * 5000, "9223372036854775808", "-1", " 1", "01", "1.0"])
def test_versions_are_ascii_digits_within_int64(server, version):
    for method, request in ((OIP + "ModelInfer", infer_request(version=version)),
                            (OIP + "ModelMetadata", oip.ModelMetadataRequest(name="vae_decoder", version=version))):
        assert_refused(server.target, method, request, NOT_FOUND, "not served", "ASCII digits")
    code, _ = call(server.target, OIP + "ModelReady", oip.ModelReadyRequest(name="vae_decoder", version=version))
    assert code == grpc.StatusCode.OK
    with grpc.insecure_channel(server.target) as channel:
        answer = channel.unary_unary(OIP + "ModelReady", response_deserializer=oip.ModelReadyResponse.FromString)(
            oip.ModelReadyRequest(name="vae_decoder", version=version).SerializeToString(), timeout=10)
    assert answer.ready is False


def test_bytes_that_are_not_a_message_get_invalid_argument(server):
    # No model was resolved: the series of the empty model label, whatever other tests counted.
    before = server.metric("genserve_requests_total", rpc="Sample", model="", code="INVALID_ARGUMENT")
    for method, name in ((V1 + "Sample", "SampleRequest"), (V1 + "Denoise", "DenoiseRequest"),
                         (OIP + "ModelInfer", "ModelInferRequest")):
        for junk in (b"\xff\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", bytes(range(256)) * 10):
            assert_refused(server.target, method, junk, INVALID, "request:", f"not a {name} message")
    assert server.metric("genserve_requests_total", rpc="Sample", model="", code="INVALID_ARGUMENT") == before + 3


def test_an_answer_over_the_message_limit_is_refused_before_the_run(tmp_path, tiny_repository):
    """A model served over the Open Inference Protocol alone, whose answer at 4 rows is
    over the message limit of a server of --max-request-size 512 (1.6 MB)."""
    import shutil

    import onnx
    from onnx import TensorProto, helper

    repository = tmp_path / "models"
    shutil.copytree(tiny_repository, repository)
    width = 200_000  # float32 per row: 800 KB
    graph = helper.make_graph(
        [helper.make_node("Tile", ["x", "repeats"], ["y"])], "wide",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor("repeats", TensorProto.INT64, [2], [1, width // 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder = repository / "wide" / "1"
    folder.mkdir(parents=True)
    onnx.save(model, folder / "model.onnx")
    from genserve.repository import sha256_file
    (folder / "manifest.json").write_text(f'{{"sha256": "{sha256_file(folder / "model.onnx")}"}}')

    with served(repository, "--max-request-size", "512", "--max-sample-n", "512") as wide:
        request = infer_request(name="wide", shape=(1, 4), input_name="x")
        assert call(wide.target, OIP + "ModelInfer", request)[0] == grpc.StatusCode.OK
        runs = wide.metric("genserve_batch_size_count", model="wide")
        big = infer_request(name="wide", shape=(4, 4), input_name="x")
        assert_refused(wide.target, OIP + "ModelInfer", big, grpc.StatusCode.RESOURCE_EXHAUSTED,
                       "the answer would be", "over the message limit")
        assert wide.metric("genserve_batch_size_count", model="wide") == runs  # no run for it
        assert wide.metric("genserve_requests_total", rpc="ModelInfer", model="wide", code="RESOURCE_EXHAUSTED") == 1


def test_more_calls_at_once_than_the_server_takes_are_refused_with_unavailable_and_counted(tiny_repository):
    with served(tiny_repository, "--max-concurrent-requests", "8", "--max-queue-delay-us", "200000") as busy:
        async def flood():
            async with AsyncGenerativeClient(busy.target, retries=0) as client:
                async def one(seed):
                    try:
                        await client.sample_digits(n=1, seed=seed)
                        return "OK", ""
                    except Exception as error:  # noqa: BLE001 - every failure is a GenserveError
                        return error.code.name, error.message
                return await asyncio.gather(*(one(seed) for seed in range(400)))

        results = asyncio.run(flood())
        codes = {code for code, _ in results}
        assert codes <= {"OK", "UNAVAILABLE"}, codes
        refused = [message for code, message in results if code == "UNAVAILABLE"]
        assert refused and "maximum of 8 calls in progress" in refused[0]
        counted = busy.metric("genserve_requests_total", rpc="Sample", model="", code="UNAVAILABLE")
        assert counted == len(refused)

        async def patient():  # the client's retries carry a caller through the refusals
            async with AsyncGenerativeClient(busy.target, retries=8) as client:
                return await asyncio.gather(*(client.sample_digits(n=1, seed=s) for s in range(64)))
        assert len(asyncio.run(patient())) == 64
