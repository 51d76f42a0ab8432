"""What the sync and the async client share: request building, response decoding,
and the retry policy. No I/O here."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Sequence, TypeVar

import grpc
import numpy as np
from numpy.typing import ArrayLike
from google.protobuf import json_format

from genserve.codec import from_tensor, to_tensor
from genserve.v1 import generative_pb2 as pb

from .errors import InvalidArgument

M = TypeVar("M")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class ModelInfo:
    """One served model, as ``list_models`` reports it."""
    name: str
    version: int
    execution_provider: str
    sha256: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    metrics: dict[str, Any] = field(default_factory=dict)
    role: str = ""  # what genserve.v1 does with it; "": the Open Inference Protocol alone
    # The batching settings in force: max_batch_size, max_queue_delay_us, max_gather_us, instances.
    serving: dict[str, int] = field(default_factory=dict)


def image_tensor(images: ArrayLike) -> pb.Tensor:
    """uint8 (0..255) or float (0..1) images, [28,28], [N,28,28] or [N,1,28,28]."""
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    if images.dtype.kind not in "uif" or images.ndim not in (3, 4):
        raise InvalidArgument(f"images: uint8 or float arrays [N,28,28] or [N,1,28,28], got {images.dtype} "
                              f"{list(images.shape)}")
    if images.dtype != np.uint8:
        images = images.astype(np.float32)
    return to_tensor(images)


def latent_tensor(z: ArrayLike) -> pb.Tensor:
    z = np.asarray(z)
    if z.dtype.kind not in "uif":
        raise InvalidArgument(f"z: a float array [N,2], got {z.dtype}")
    return to_tensor(z.astype(np.float32))


def image_format(as_float: bool) -> int:
    return pb.IMAGE_FORMAT_FLOAT32 if as_float else pb.IMAGE_FORMAT_UINT8


def encode_request(images: ArrayLike, seed: int | None, version: int = 0) -> pb.EncodeRequest:
    return build(pb.EncodeRequest, images=image_tensor(images), seed=seed, version=version)


def decode_request(z: ArrayLike, as_float: bool, version: int = 0) -> pb.DecodeRequest:
    return build(pb.DecodeRequest, z=latent_tensor(z), image_format=image_format(as_float), version=version)


def sample_request(n: int, model: str, seed: int | None, as_float: bool, version: int = 0,
                   digit: int | Sequence[int] | None = None, return_latents: bool = False,
                   truncation: float | None = None, min_confidence: float | None = None) -> pb.SampleRequest:
    """``digit``: None, one digit for every image, or a sequence of n digits."""
    one, many = (digit, None) if digit is None or isinstance(digit, (int, np.integer)) else (None, digit)
    return build(pb.SampleRequest, n=n, model=model, seed=seed, image_format=image_format(as_float), version=version,
                 digit=one, digits=None if many is None else [int(d) for d in many], return_latents=return_latents,
                 truncation=truncation, min_confidence=min_confidence)


def stream_request(n: int, model: str, seed: int | None, digit: int | None, balanced: bool, chunk: int,
                   start_index: int, as_float: bool, version: int, truncation: float | None,
                   min_confidence: float | None) -> pb.SampleStreamRequest:
    return build(pb.SampleStreamRequest, n=n, model=model, seed=seed, digit=digit, balanced=balanced, chunk=chunk,
                 start_index=start_index, image_format=image_format(as_float), version=version,
                 truncation=truncation, min_confidence=min_confidence)


@dataclass(frozen=True)
class DigitChunk:
    """One message of ``stream_digits``: images ``first_index`` to ``first_index +
    len(images) - 1`` of the stream, their digits (None where the model drew them
    without one and nothing read them), and what drew them."""
    images: np.ndarray
    digits: np.ndarray | None
    first_index: int
    model: str
    version: int
    seed: int
    redrawn: int = 0  # images redrawn under min_confidence
    unmet: int = 0  # of those, images still short of it after the last redraw


def digit_chunk(response: pb.SampleChunk) -> DigitChunk:
    return DigitChunk(from_tensor(response.images), np.asarray(response.digits, np.int64) if response.digits
                      else None, response.first_index, response.model.name, response.model.version, response.seed,
                      response.redrawn, response.unmet)


# stream_digits's docstring, for both clients.
STREAM_DIGITS_DOC = """Up to millions of new digits, a chunk at a time (``DigitChunk``: images, digits,
first_index): image i is the same bytes for the same seed, model version and
controls whatever ``chunk`` and ``start_index`` are, and ``sample_digits`` of n
images draws the first n. ``balanced``: image i shows digit i mod 10 (through the
conditional twin, as ``digit`` does); ``truncation`` and ``min_confidence`` as in
``sample_digits``. A stream cut by UNAVAILABLE (a server restarting, a connection
reaching its age) resumes after the last image received, up to ``retries`` times
in a row, with the seed and version its first chunk named. Leaving the loop early
cancels the rest. ``timeout``: seconds for the whole stream; None, no limit.
"""


class Resumption:
    """Where a stream stands, so that a cut one resumes at the image after the last one
    received, with the seed and model version its first chunk named."""

    def __init__(self, request: pb.SampleStreamRequest):
        self.request = request

    def received(self, response: pb.SampleChunk) -> DigitChunk:
        chunk = digit_chunk(response)
        self.request.seed, self.request.version = chunk.seed, chunk.version
        self.request.start_index = chunk.first_index + len(chunk.images)
        return chunk

    @property
    def done(self) -> bool:
        return self.request.start_index >= self.request.n


def endpoint(point: int | ArrayLike, field: str) -> pb.Endpoint:
    """An int seed, an image [28,28] or [1,28,28], or a latent vector."""
    if isinstance(point, (int, np.integer)) and not isinstance(point, bool):
        return build(pb.Endpoint, seed=int(point))
    array = np.asarray(point)
    if array.dtype.kind not in "uif":
        raise InvalidArgument(f"{field}: an int seed, an image [28,28] or a latent vector, got {array.dtype}")
    if array.shape in ((28, 28), (1, 28, 28)):
        return pb.Endpoint(image=to_tensor(array if array.dtype == np.uint8 else array.astype(np.float32)))
    return pb.Endpoint(latent=to_tensor(array.astype(np.float32).reshape(-1)))


def interpolate_request(start: int | ArrayLike, end: int | ArrayLike, steps: int, model: str,
                        digit: int | None, as_float: bool, version: int = 0) -> pb.InterpolateRequest:
    return build(pb.InterpolateRequest, model=model, start=endpoint(start, "start"), end=endpoint(end, "end"),
                 steps=steps, digit=digit, image_format=image_format(as_float), version=version)


def latent_grid_request(size: int, span: float, digit: int | None, as_float: bool,
                        version: int = 0) -> pb.LatentGridRequest:
    return build(pb.LatentGridRequest, size=size, span=span, digit=digit, image_format=image_format(as_float),
                 version=version)


def reconstruct_request(images: ArrayLike, as_float: bool, version: int = 0) -> pb.ReconstructRequest:
    return build(pb.ReconstructRequest, images=image_tensor(images), image_format=image_format(as_float),
                 version=version)


def restyle_request(images: ArrayLike, digit: int, source_digits: Sequence[int] | None,
                    as_float: bool, version: int = 0) -> pb.RestyleRequest:
    return build(pb.RestyleRequest, images=image_tensor(images), digit=digit,
                 source_digits=None if source_digits is None else [int(d) for d in source_digits],
                 image_format=image_format(as_float), version=version)


def classify_request(images: ArrayLike, version: int = 0) -> pb.ClassifyRequest:
    return build(pb.ClassifyRequest, images=image_tensor(images), version=version)


def build(message: type[M], **fields: Any) -> M:
    """A request message; a field of the wrong type or range is the caller's InvalidArgument."""
    try:
        return message(**fields)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{message.__name__}: {exc}") from None


def denoise_request(images: ArrayLike, as_float: bool, version: int = 0) -> pb.DenoiseRequest:
    return build(pb.DenoiseRequest, images=image_tensor(images), image_format=image_format(as_float),
                 version=version)


@dataclass(frozen=True)
class Result(Generic[T_co]):
    """What a call answered, with what ran it (``return_info=True``): ``output`` (the
    images, or the encoder's arrays), the model and version that answered, and the seed
    a sampling call used (None where the call drew none, or did not say)."""
    output: T_co
    model: str
    version: int
    seed: int | None = None


def answer(output: T, response: Any, return_info: bool, seed: int | None = None) -> T | Result[T]:
    """``output``, or with ``return_info`` a Result naming what ran."""
    if not return_info:
        return output
    if "seed" in response.DESCRIPTOR.fields_by_name and response.HasField("seed"):
        seed = response.seed
    return Result(output, response.model.name, response.model.version, seed)


def encoded(response: pb.EncodeResponse, with_z: bool
            ) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean, log_var = from_tensor(response.z_mean), from_tensor(response.z_log_var)
    return (mean, log_var, from_tensor(response.z)) if with_z else (mean, log_var)


def images(response: pb.ImagesResponse) -> np.ndarray:
    return from_tensor(response.images)


def sampled(response: pb.ImagesResponse, return_latents: bool) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The images, or with ``return_latents`` (images, latents)."""
    return (images(response), from_tensor(response.latents)) if return_latents else images(response)


def grid_images(response: pb.ImagesResponse, size: int) -> np.ndarray:
    """The manifold as [size, size, 28, 28]: rows of the grid, then columns."""
    flat = images(response)
    return flat.reshape(size, size, *flat.shape[1:])


def classified(response: pb.ClassifyResponse) -> tuple[np.ndarray, np.ndarray]:
    """(digits int64 [N], probabilities float32 [N,10])."""
    return np.asarray(response.digits, np.int64), from_tensor(response.probabilities)


def models(response: pb.ListModelsResponse) -> list[ModelInfo]:
    def infos(ts: Any) -> tuple[TensorInfo, ...]:
        return tuple(TensorInfo(t.name, t.dtype, tuple(t.shape), t.description) for t in ts)
    return [ModelInfo(m.name, m.version, m.execution_provider, m.sha256, infos(m.inputs), infos(m.outputs),
                      json_format.MessageToDict(m.metrics), m.role,
                      {f.name: getattr(m.serving, f.name) for f in m.serving.DESCRIPTOR.fields})
            for m in response.models]


def backoff(attempt: int, base: float = 0.1, cap: float = 2.0) -> float:
    """Seconds before retry ``attempt`` (1, 2, ...): exponential with full jitter."""
    return random.uniform(0, min(cap, base * 2 ** attempt))


def channel_options(max_message_bytes: int, load_balancing: str | None = None,
                    extra: Sequence[tuple[str, Any]] = ()) -> list[tuple[str, Any]]:
    """The channel's arguments: the client's own, then ``extra``, which overrides them key by key."""
    options: dict[str, Any] = {"grpc.max_receive_message_length": max_message_bytes,
                               "grpc.max_send_message_length": max_message_bytes}
    if load_balancing is not None:
        options["grpc.lb_policy_name"] = load_balancing
    for item in extra:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise InvalidArgument(f"options: each must be a (name, value) pair of gRPC's channel arguments, "
                                  f"got {item!r:.80}")
        options[item[0]] = item[1]
    return list(options.items())


PEM = str | Path | bytes | None  # a PEM file's path, or its bytes


def _pem(value: PEM, what: str) -> bytes | None:
    """PEM bytes as given, or read from a path."""
    if value is None or isinstance(value, bytes):
        return value
    try:
        return Path(value).read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"{what} {value}: cannot read it ({exc.strerror})") from None


def channel_credentials(credentials: grpc.ChannelCredentials | None, ca_cert: PEM, client_cert: PEM,
                        client_key: PEM) -> grpc.ChannelCredentials | None:
    """TLS credentials from PEM files or bytes: ``ca_cert`` to trust the server (None:
    the system's roots), ``client_cert`` and ``client_key`` for mutual TLS. None, and
    no ``credentials``, means plaintext."""
    if (client_cert is None) != (client_key is None):
        raise InvalidArgument("client_cert and client_key go together")
    if credentials is not None:
        if ca_cert is not None or client_cert is not None:
            raise InvalidArgument("give either credentials or ca_cert/client_cert/client_key, not both")
        return credentials
    if ca_cert is None and client_cert is None:
        return None
    return grpc.ssl_channel_credentials(root_certificates=_pem(ca_cert, "ca_cert"),
                                        private_key=_pem(client_key, "client_key"),
                                        certificate_chain=_pem(client_cert, "client_cert"))


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...] | None:
    """The bearer token as call metadata. Sent on plaintext channels too, for servers
    behind a TLS-terminating proxy; use TLS wherever the network is not trusted."""
    if token is None:
        return None
    token = token.strip()
    if not token:
        raise InvalidArgument("token is empty")
    return (("authorization", f"Bearer {token}"),)
