"""The Open Inference Protocol service, called with the real tritonclient package:
readiness, metadata and inference for every model, typed and raw contents, errors."""

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

MODELS = {  # name: (input, item shape, outputs)
    "vae_encoder": ("image", [1, 28, 28], ["z_mean", "z_log_var"]),
    "vae_decoder": ("z", [2], ["image"]),
    "gan_generator": ("noise", [100], ["image"]),
    "dae": ("noisy", [1, 28, 28], ["image"]),
}


@pytest.fixture(scope="module")
def triton_client(server):
    with triton.InferenceServerClient(server.target) as client:
        yield client


def rows(name, n, seed=0):
    _, item, _ = MODELS[name]
    rng = np.random.default_rng(seed)
    if name in ("vae_encoder", "dae"):
        return rng.random((n, *item), dtype=np.float32)
    return rng.standard_normal((n, *item), dtype=np.float32)


def in_process(repository, name, array):
    session = ort.InferenceSession(str(repository / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    return dict(zip(MODELS[name][2], session.run(None, {MODELS[name][0]: array})))


def infer(client, name, array, version="", input_name=None, datatype="FP32"):
    tensor = triton.InferInput(input_name or MODELS[name][0], list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return client.infer(name, [tensor], model_version=version)


def test_server_live_ready_and_metadata(triton_client):
    assert triton_client.is_server_live() and triton_client.is_server_ready()
    metadata = triton_client.get_server_metadata()
    assert metadata.name == "genserve" and metadata.version


@pytest.mark.parametrize("name", MODELS)
def test_model_ready_and_metadata(triton_client, name):
    assert triton_client.is_model_ready(name) and triton_client.is_model_ready(name, "1")
    assert not triton_client.is_model_ready(name, "2")
    metadata = triton_client.get_model_metadata(name)
    input_name, item, outputs = MODELS[name]
    assert metadata.versions == ["1"] and metadata.platform == "onnxruntime_onnx"
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [(input_name, "FP32", [-1, *item])]
    assert [t.name for t in metadata.outputs] == outputs


@pytest.mark.parametrize("name", MODELS)
def test_infer_with_raw_contents_equals_onnxruntime(triton_client, tiny_repository, name):
    array = rows(name, 5)
    result = infer(triton_client, name, array, version="1")
    expected = in_process(tiny_repository, name, array)
    for output, values in expected.items():
        assert np.array_equal(result.as_numpy(output), values), output
    assert result.get_response().model_version == "1"


def test_infer_with_typed_contents_and_one_requested_output(server, tiny_repository):
    import grpc

    array = rows("vae_encoder", 3)
    request = service_pb2.ModelInferRequest(model_name="vae_encoder", id="req-7")
    tensor = request.inputs.add(name="image", datatype="FP32", shape=array.shape)
    tensor.contents.fp32_contents.extend(array.ravel().tolist())
    request.outputs.add(name="z_log_var")
    with grpc.insecure_channel(server.target) as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert response.id == "req-7" and [o.name for o in response.outputs] == ["z_log_var"]
    got = np.frombuffer(response.raw_output_contents[0], "<f4").reshape(tuple(response.outputs[0].shape))
    assert np.array_equal(got, in_process(tiny_repository, "vae_encoder", array)["z_log_var"])


@pytest.mark.parametrize("call, status, fragment", [
    (lambda c: infer(c, "no_such_model", rows("dae", 1), input_name="noisy"), "StatusCode.NOT_FOUND", "unknown model 'no_such_model'"),
    (lambda c: infer(c, "dae", rows("dae", 1), version="9"), "StatusCode.NOT_FOUND", "dae version 9 is not served; it serves 1"),
    (lambda c: c.get_model_metadata("nope"), "StatusCode.NOT_FOUND", "unknown model 'nope'"),
    (lambda c: infer(c, "dae", rows("dae", 1).astype(np.float64), datatype="FP64"),
     "StatusCode.INVALID_ARGUMENT", "inputs[0].datatype: noisy is FP32, got 'FP64'"),
    (lambda c: infer(c, "dae", np.zeros((2, 28, 28), np.float32)),
     "StatusCode.INVALID_ARGUMENT", "inputs[0].shape: must be [N,1,28,28]"),
    (lambda c: infer(c, "dae", rows("dae", 1), input_name="image"),
     "StatusCode.INVALID_ARGUMENT", "dae takes 'noisy', got 'image'"),
    (lambda c: infer(c, "dae", np.full((1, 1, 28, 28), np.nan, np.float32)),
     "StatusCode.INVALID_ARGUMENT", "NaN or infinite"),
    (lambda c: infer(c, "vae_decoder", np.zeros((513, 2), np.float32)),
     "StatusCode.INVALID_ARGUMENT", "batch of 513 exceeds the maximum of 512"),
])
def test_errors_name_the_field(triton_client, call, status, fragment):
    with pytest.raises(InferenceServerException) as error:
        call(triton_client)
    assert error.value.status() == status and fragment in error.value.message()


def test_mismatched_raw_length_is_refused(server):
    import grpc

    request = service_pb2.ModelInferRequest(model_name="vae_decoder")
    request.inputs.add(name="z", datatype="FP32", shape=[2, 2])
    request.raw_input_contents.append(b"\0" * 12)
    with grpc.insecure_channel(server.target) as channel:
        with pytest.raises(grpc.RpcError) as error:
            service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "raw_input_contents[0]: 12 bytes, but shape [2, 2] of FP32 needs 16" in error.value.details()


def test_oip_calls_are_counted_with_their_model(server, triton_client):
    before = server.metric("genserve_requests_total", rpc="ModelInfer", model="vae_decoder", code="OK")
    infer(triton_client, "vae_decoder", rows("vae_decoder", 2))
    assert server.metric("genserve_requests_total", rpc="ModelInfer", model="vae_decoder", code="OK") == before + 1


def test_request_latency_is_reported_per_model(triton_client, server):
    def timed(model):
        return server.metric("genserve_request_duration_seconds_count", rpc="ModelInfer", model=model)

    before = timed("vae_decoder"), timed("gan_generator")
    infer(triton_client, "vae_decoder", rows("vae_decoder", 2))
    infer(triton_client, "gan_generator", rows("gan_generator", 1))
    infer(triton_client, "gan_generator", rows("gan_generator", 1))
    assert (timed("vae_decoder"), timed("gan_generator")) == (before[0] + 1, before[1] + 2)
    with pytest.raises(InferenceServerException):
        infer(triton_client, "made-up-model", rows("vae_decoder", 1), input_name="z")
    assert "made-up-model" not in server.scrape()  # a name no model has never becomes a label
