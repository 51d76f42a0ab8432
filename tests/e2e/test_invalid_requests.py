"""Malformed requests: each gets the right status code and a message naming the
field and the limit; none reaches a model, none yields UNKNOWN or INTERNAL."""

import grpc
import numpy as np
import pytest

from genserve.v1 import generative_pb2 as pb
from genserve.v1 import generative_pb2_grpc as pb_grpc

U8, F32 = pb.DATA_TYPE_UINT8, pb.DATA_TYPE_FLOAT32
INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
MAX_BATCH, MAX_N = 512, 600  # the session server's limits (conftest)


def tensor(dtype, shape, data=None, fill=0.5):
    if data is None:
        count = int(np.prod(shape)) if shape else 0
        data = (np.full(count, fill, np.float32) if dtype == F32 else np.zeros(count, np.uint8)).tobytes()
    return pb.Tensor(dtype=dtype, shape=shape, data=data)


def images(**kw):
    return pb.DenoiseRequest(images=tensor(**kw))


def latents(**kw):
    return pb.DecodeRequest(z=tensor(**kw))


CASES = [
    # (id, rpc, request, code, message fragments)
    ("denoise-missing-images", "Denoise", pb.DenoiseRequest(), INVALID, ["images: required"]),
    ("denoise-dtype-unspecified", "Denoise", images(dtype=0, shape=[1, 28, 28], data=b"\0" * 784), INVALID,
     ["images.dtype", "uint8 or float32", "DATA_TYPE_UNSPECIFIED"]),
    ("denoise-dtype-unknown-enum", "Denoise", images(dtype=7, shape=[1, 28, 28], data=b"\0" * 784), INVALID,
     ["images.dtype", "got 7"]),
    ("denoise-no-shape", "Denoise", images(dtype=U8, shape=[], data=b"\0" * 784), INVALID, ["images.shape: required"]),
    ("denoise-zero-dim", "Denoise", images(dtype=U8, shape=[0, 28, 28], data=b""), INVALID,
     ["images.shape", ">= 1", "[0, 28, 28]"]),
    ("denoise-negative-dim", "Denoise", images(dtype=U8, shape=[1, -28, 28], data=b""), INVALID,
     ["images.shape", ">= 1"]),
    ("denoise-wrong-size", "Denoise", images(dtype=U8, shape=[2, 32, 32]), INVALID,
     ["images.shape", "[N,28,28] or [N,1,28,28]", "[2, 32, 32]"]),
    ("denoise-3-channels", "Denoise", images(dtype=F32, shape=[1, 3, 28, 28]), INVALID, ["images.shape", "[1, 3, 28, 28]"]),
    ("denoise-flat", "Denoise", images(dtype=U8, shape=[784]), INVALID, ["images.shape", "[784]"]),
    ("denoise-5d", "Denoise", images(dtype=F32, shape=[1, 1, 1, 28, 28]), INVALID, ["images.shape"]),
    ("denoise-too-few-bytes", "Denoise", images(dtype=U8, shape=[2, 28, 28], data=b"\0" * 1000), INVALID,
     ["images.data", "1000 bytes", "needs 1568"]),
    ("denoise-too-many-bytes", "Denoise", images(dtype=F32, shape=[1, 28, 28], data=b"\0" * 3137), INVALID,
     ["images.data", "3137 bytes", "needs 3136"]),
    ("denoise-uint8-shape-claims-float-bytes", "Denoise", images(dtype=U8, shape=[1, 28, 28], data=b"\0" * 3136),
     INVALID, ["images.data", "of uint8 needs 784"]),
    ("denoise-huge-claimed-shape", "Denoise", images(dtype=U8, shape=[1, 2**40, 2**40], data=b"\0"), INVALID,
     ["images.shape"]),
    ("denoise-over-max-batch", "Denoise", images(dtype=U8, shape=[MAX_BATCH + 1, 28, 28]), INVALID,
     ["images.shape", f"batch of {MAX_BATCH + 1} exceeds the maximum of {MAX_BATCH}"]),
    ("denoise-nan", "Denoise", images(dtype=F32, shape=[1, 28, 28], fill=np.nan), INVALID,
     ["images.data", "NaN or infinite"]),
    ("denoise-inf", "Denoise", images(dtype=F32, shape=[1, 1, 28, 28], fill=np.inf), INVALID,
     ["images.data", "NaN or infinite"]),
    ("denoise-pixels-above-1", "Denoise", images(dtype=F32, shape=[1, 28, 28], fill=255.0), INVALID,
     ["images.data", "must lie in [0, 1]", "255"]),
    ("denoise-negative-pixels", "Denoise", images(dtype=F32, shape=[1, 28, 28], fill=-0.5), INVALID,
     ["images.data", "[0, 1]"]),
    ("denoise-bad-format", "Denoise", pb.DenoiseRequest(images=tensor(U8, [1, 28, 28]), image_format=9), INVALID,
     ["image_format", "unknown value 9"]),
    ("encode-missing-images", "Encode", pb.EncodeRequest(), INVALID, ["images: required"]),
    ("encode-wrong-bytes", "Encode", pb.EncodeRequest(images=tensor(F32, [3, 28, 28], data=b"\0" * 12)), INVALID,
     ["images.data", "12 bytes", "needs 9408"]),
    ("encode-nan", "Encode", pb.EncodeRequest(images=tensor(F32, [2, 28, 28], fill=np.nan)), INVALID,
     ["images.data", "NaN"]),
    ("encode-over-max-batch", "Encode", pb.EncodeRequest(images=tensor(U8, [MAX_BATCH + 5, 28, 28])), INVALID,
     [f"maximum of {MAX_BATCH}"]),
    ("decode-missing-z", "Decode", pb.DecodeRequest(), INVALID, ["z: required"]),
    ("decode-uint8", "Decode", latents(dtype=U8, shape=[1, 2]), INVALID, ["z.dtype", "must be float32", "DATA_TYPE_UINT8"]),
    ("decode-three-dims", "Decode", latents(dtype=F32, shape=[4, 3]), INVALID, ["z.shape", "must be [N,2]", "[4, 3]"]),
    ("decode-1d", "Decode", latents(dtype=F32, shape=[2]), INVALID, ["z.shape", "[N,2]"]),
    ("decode-wrong-bytes", "Decode", latents(dtype=F32, shape=[4, 2], data=b"\0" * 8), INVALID,
     ["z.data", "8 bytes", "needs 32"]),
    ("decode-nan", "Decode", latents(dtype=F32, shape=[2, 2], fill=np.nan), INVALID, ["z.data", "NaN or infinite"]),
    ("decode-inf", "Decode", latents(dtype=F32, shape=[2, 2], fill=-np.inf), INVALID, ["z.data", "NaN or infinite"]),
    ("decode-absurd-latent", "Decode", latents(dtype=F32, shape=[1, 2], fill=3e38), INVALID,
     ["z.data", "must lie in [-10000, 10000]", "3e+38"]),
    ("decode-over-max-batch", "Decode", latents(dtype=F32, shape=[MAX_BATCH + 1, 2]), INVALID,
     [f"exceeds the maximum of {MAX_BATCH}"]),
    ("decode-bad-format", "Decode", pb.DecodeRequest(z=tensor(F32, [1, 2]), image_format=-1), INVALID,
     ["image_format", "unknown value -1"]),
    ("sample-n-zero", "Sample", pb.SampleRequest(n=0), INVALID, ["n: must be between 1 and 600, got 0"]),
    ("sample-n-over-max", "Sample", pb.SampleRequest(n=MAX_N + 1), INVALID, [f"n: must be between 1 and {MAX_N}"]),
    ("sample-n-uint32-max", "Sample", pb.SampleRequest(n=2**32 - 1), INVALID, ["n:", "4294967295"]),
    ("sample-unknown-model", "Sample", pb.SampleRequest(n=1, model="diffusion"), NOT_FOUND,
     ["model: unknown sampler 'diffusion'", "gan, vae"]),
    ("sample-model-case", "Sample", pb.SampleRequest(n=1, model="GAN"), NOT_FOUND, ["'GAN'"]),
    ("sample-bad-format", "Sample", pb.SampleRequest(n=1, image_format=3), INVALID, ["image_format", "unknown value 3"]),
]


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.target) as channel:
        yield pb_grpc.GenerativeServiceStub(channel)


@pytest.mark.parametrize("rpc, request_, code, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_request(stub, rpc, request_, code, fragments):
    with pytest.raises(grpc.RpcError) as error:
        getattr(stub, rpc)(request_, timeout=30)
    assert error.value.code() == code, error.value.details()
    for fragment in fragments:
        assert fragment in error.value.details(), (fragment, error.value.details())


def test_there_are_at_least_30_kinds():
    assert len(CASES) >= 30


def test_oversized_message_is_refused_and_the_server_stays_up(stub, server):
    huge = pb.DenoiseRequest(images=tensor(U8, [1, 28, 28], data=b"\0" * (600 * 784 * 4 + 128 * 1024)))
    with pytest.raises(grpc.RpcError) as error:
        stub.Denoise(huge, timeout=30)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stub.Sample(pb.SampleRequest(n=2, seed=1), timeout=30).images.shape == [2, 28, 28]


def test_extreme_seeds_are_fine(stub):
    for seed in (0, 1, 2**63, 2**64 - 1):
        response = stub.Sample(pb.SampleRequest(n=1, seed=seed), timeout=30)
        assert response.seed == seed and len(response.images.data) == 784
