"""Fuzzing both APIs of the real server process with hypothesis: more than 10,000
requests over every RPC, valid ones mixed with malformed ones (bad shapes, byte
lengths, dtypes, NaN and Inf, empty and huge batches, unknown models and versions,
oversized messages, absurd seeds, ranks of up to 200,000 axes, repeated fields far
beyond the model's, caller text up to 200,000 characters, versions in non-ASCII
digits or beyond int64). Messages stay short whatever was sent. Every answer must be OK or a client-error code
with a message, never UNKNOWN or INTERNAL; the server must stay up and healthy, and
valid requests in the mix must keep returning the same, correct bytes."""

import math

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritonclient.grpc import service_pb2 as oip

from genserve.v1 import generative_pb2 as pb

EXAMPLES = 1_000
REQUESTS_PER_EXAMPLE = 10  # 10,000 requests in all, plus the canaries
CLIENT_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED}
OVERSIZED = 3 * 1024 * 1024  # bytes: over the fixture server's message limit (~1.9 MiB)
V1, OIP = "/genserve.v1.GenerativeService/", "/inference.GRPCInferenceService/"
OIP_RPCS = {"ModelInfer", "ModelMetadata", "ModelReady", "ServerLive", "ServerReady", "ServerMetadata"}
MODELS = ["vae_encoder", "vae_decoder", "gan_generator", "dae", "digit_classifier"]

U64 = st.integers(0, 2**64 - 1)
LONG_TEXT = st.integers(1_000, 200_000).map(lambda n: "x" * n)  # echoed in no message at any length
I64 = st.sampled_from([0, 0, 0, 1, 2, -1, 7, 2**62, -(2**63)])
DIMS = st.one_of(st.integers(-3, 40), st.sampled_from([0, 28, 2, 1, 100, 513, 2**31, 2**62]))
SHAPES = st.one_of(
    st.lists(DIMS, max_size=5),
    st.integers(5, 200_000).map(lambda rank: [1] * rank),  # rank far beyond any tensor's
    st.tuples(st.integers(1, 6)).map(lambda t: [t[0], 28, 28]),
    st.tuples(st.integers(1, 6)).map(lambda t: [t[0], 1, 28, 28]),
    st.tuples(st.integers(1, 6)).map(lambda t: [t[0], 2]),
)
SPECIALS = st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 2.0, 1e30])


@st.composite
def payload(draw, shape, itemsize):
    """Bytes for a tensor of ``shape``: usually the right length, sometimes not; float
    data sometimes with NaN, Inf or out-of-range values."""
    count = math.prod(shape) if shape and all(0 < d < 10_000 for d in shape) else 0
    kind = draw(st.sampled_from(["exact", "exact", "exact", "short", "long", "empty", "oversized"]))
    if kind == "oversized":
        return b"\0" * OVERSIZED
    if kind == "empty" or count * itemsize > 1_000_000:
        return b""
    if itemsize == 4:
        values = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).random(count, dtype=np.float32)
        if count and draw(st.booleans()):
            values[draw(st.integers(0, count - 1))] = draw(SPECIALS)
        data = values.tobytes()
    else:
        data = bytes(draw(st.binary(min_size=count, max_size=count))) if count <= 64 else bytes(count)
    return {"exact": data, "short": data[:-1], "long": data + b"\0"}[kind]


@st.composite
def tensor(draw):
    dtype = draw(st.sampled_from([pb.DATA_TYPE_UINT8, pb.DATA_TYPE_FLOAT32, pb.DATA_TYPE_FLOAT32,
                                  pb.DATA_TYPE_UNSPECIFIED, 9]))
    shape = draw(SHAPES)
    data = draw(payload(shape, 1 if dtype == pb.DATA_TYPE_UINT8 else 4))
    return pb.Tensor(dtype=dtype, shape=shape, data=data)


FORMATS = st.sampled_from([0, 1, 2, 5])
v1_requests = st.one_of(
    st.builds(lambda t, s, v: ("Encode", pb.EncodeRequest(images=t, seed=s, version=v)), tensor(), U64, I64),
    st.builds(lambda t, f, v: ("Decode", pb.DecodeRequest(z=t, image_format=f, version=v)), tensor(), FORMATS, I64),
    st.builds(lambda n, m, s, f, v: ("Sample", pb.SampleRequest(n=n, model=m, seed=s, image_format=f, version=v)),
              st.one_of(st.integers(0, 8), st.sampled_from([600, 601, 2**32 - 1])),
              st.one_of(st.sampled_from(["", "gan", "vae", "GAN", "dae", "x" * 300, "\u00e9"]), LONG_TEXT),
              U64, FORMATS, I64),
    st.builds(lambda t, f, v: ("Denoise", pb.DenoiseRequest(images=t, image_format=f, version=v)),
              tensor(), FORMATS, I64),
    st.just(("ListModels", pb.ListModelsRequest())),
)

NAMES = st.one_of(st.sampled_from(MODELS + ["", "nope", "../dae", "gan_generator\0"]), LONG_TEXT)
VERSIONS = st.sampled_from(["", "", "1", "2", "0", "-1", "abc", "9" * 40, "²", "٥", "５", "1٧", "1" * 5000,
                            "9223372036854775808", " 1", "01"])
DATATYPES = st.sampled_from(["FP32", "FP32", "FP32", "FP16", "UINT8", "INT64", "BYTES", ""])
INPUT_NAMES = st.sampled_from(["noise", "z", "image", "noisy", "x", ""])


@st.composite
def model_infer(draw):
    shape = draw(SHAPES)
    tensor = oip.ModelInferRequest.InferInputTensor(name=draw(INPUT_NAMES), datatype=draw(DATATYPES), shape=shape)
    request = oip.ModelInferRequest(model_name=draw(NAMES), model_version=draw(VERSIONS), id="fuzz")
    count = math.prod(shape) if shape and all(0 < d < 10_000 for d in shape) else 0
    how = draw(st.sampled_from(["raw", "raw", "typed", "none", "both"]))
    if how in ("raw", "both"):
        request.raw_input_contents.append(draw(payload(shape, 4)))
    if how in ("typed", "both") and count <= 20_000:
        values = [draw(st.one_of(st.floats(0, 1, width=32), SPECIALS))] * count
        tensor.contents.fp32_contents.extend(values)
    request.inputs.append(tensor)
    if draw(st.booleans()):
        request.inputs.append(tensor)  # one input too many
    for name in draw(st.lists(st.sampled_from(["image", "z_mean", "z_log_var", "bogus"]), max_size=2)):
        request.outputs.add(name=name)
    for _ in range(draw(st.sampled_from([0, 0, 0, 3, 10_000]))):  # a repeated field far beyond the model's
        request.outputs.add(name="image")
    if draw(st.integers(0, 9)) == 0:
        request.id = "i" * draw(st.integers(257, 100_000))
    return "ModelInfer", request


oip_requests = st.one_of(
    model_infer(), model_infer(), model_infer(),
    st.builds(lambda n, v: ("ModelMetadata", oip.ModelMetadataRequest(name=n, version=v)), NAMES, VERSIONS),
    st.builds(lambda n, v: ("ModelReady", oip.ModelReadyRequest(name=n, version=v)), NAMES, VERSIONS),
    st.sampled_from([("ServerLive", oip.ServerLiveRequest()), ("ServerReady", oip.ServerReadyRequest()),
                     ("ServerMetadata", oip.ServerMetadataRequest())]),
)
requests = st.one_of(v1_requests, v1_requests, oip_requests)


class Caller:
    """Raw calls to any RPC: the fuzzer must be able to send what no client would."""

    def __init__(self, target: str):
        self.channel = grpc.insecure_channel(target, [("grpc.max_send_message_length", -1),
                                                      ("grpc.max_receive_message_length", -1)])
        self.sent = 0
        self.codes: dict[str, int] = {}

    def __call__(self, rpc: str, request) -> tuple[grpc.StatusCode, object]:
        prefix = OIP if rpc in OIP_RPCS else V1
        method = self.channel.unary_unary(prefix + rpc, request_serializer=type(request).SerializeToString,
                                          response_deserializer=lambda b: b)
        self.sent += 1
        try:
            answer = method(request, timeout=60)
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code, answer = error.code(), error.details()
            assert code in CLIENT_ERRORS, f"{rpc} gave {code.name}: {answer}\n{request!s:.500}"
            assert answer, f"{rpc} gave {code.name} without a message"
            assert len(answer) < 1_000, f"{rpc}: a message of {len(answer):,} characters"
        self.codes[code.name] = self.codes.get(code.name, 0) + 1
        return code, answer


@pytest.fixture(scope="module")
def caller(server):
    caller = Caller(server.target)
    yield caller
    caller.channel.close()


CANARIES = [  # valid requests whose answers must not change, whatever came before them
    ("Sample", pb.SampleRequest(n=3, model="gan", seed=7)),
    ("Sample", pb.SampleRequest(n=2, model="vae", seed=8, image_format=pb.IMAGE_FORMAT_FLOAT32)),
    ("Decode", pb.DecodeRequest(z=pb.Tensor(dtype=pb.DATA_TYPE_FLOAT32, shape=[2, 2],
                                            data=np.array([[0, 0], [1, -1]], "<f4").tobytes()))),
    ("Denoise", pb.DenoiseRequest(images=pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=[1, 28, 28], data=bytes(784)))),
    ("Encode", pb.EncodeRequest(images=pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=[1, 28, 28], data=bytes(784)),
                                seed=3)),
]


@pytest.mark.slow
def test_fuzzed_requests_get_ok_or_a_client_error_and_valid_ones_stay_correct(server, caller, tiny_repository):
    import onnxruntime as ort

    expected = {}
    for rpc, request in CANARIES:
        code, answer = caller(rpc, request)
        assert code == grpc.StatusCode.OK
        expected[rpc, request.SerializeToString()] = answer
    # The Decode canary is right in the first place: the same numbers as onnxruntime here.
    decoded = pb.ImagesResponse.FromString(expected["Decode", CANARIES[2][1].SerializeToString()])
    session = ort.InferenceSession(str(tiny_repository / "vae_decoder" / "1" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    want = session.run(None, {"z": np.array([[0, 0], [1, -1]], np.float32)})[0]
    got = np.frombuffer(decoded.images.data, np.uint8).reshape(2, 28, 28)
    assert np.abs(got.astype(int) - np.round(want[:, 0] * 255).astype(int)).max() <= 1

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(requests, min_size=REQUESTS_PER_EXAMPLE, max_size=REQUESTS_PER_EXAMPLE),
           st.sampled_from(CANARIES))
    def run(batch, canary):
        for rpc, request in batch:
            caller(rpc, request)
        rpc, request = canary
        code, answer = caller(rpc, request)
        assert code == grpc.StatusCode.OK and answer == expected[rpc, request.SerializeToString()], rpc

    run()
    print(f"\nfuzzing: {caller.sent:,} requests, answers {dict(sorted(caller.codes.items()))}")
    assert caller.sent >= EXAMPLES * REQUESTS_PER_EXAMPLE
    # The mix really held both kinds, and every client-error code the server documents.
    assert caller.codes["OK"] > 1000 and caller.codes["INVALID_ARGUMENT"] > 1000, caller.codes
    assert caller.codes["NOT_FOUND"] > 100 and caller.codes["RESOURCE_EXHAUSTED"] > 10, caller.codes

    assert server.proc.poll() is None, server.log
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    status = health_pb2_grpc.HealthStub(caller.channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    for code in ("INTERNAL", "UNKNOWN"):
        assert server.metric("genserve_requests_total", code=code) == 0
    assert "Traceback" not in server.log
