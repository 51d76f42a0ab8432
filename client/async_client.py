"""The asyncio twin of :class:`client.GenerativeClient`, with the same methods as coroutines."""

from __future__ import annotations

import asyncio
import logging

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from genserve.v1 import generative_pb2 as pb
from genserve.v1 import generative_pb2_grpc as pb_grpc

from . import _calls
from ._calls import ModelInfo
from .errors import GenserveError
from .sync_client import DEFAULT_MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)


class AsyncGenerativeClient:
    """>>> async with AsyncGenerativeClient("localhost:50051") as client:   # doctest: +SKIP
    ...     digits = await client.sample_digits(n=16)

    Same arguments as :class:`client.GenerativeClient`.
    """

    def __init__(self, target: str = "localhost:50051", *, timeout: float = 30.0, retries: int = 3,
                 credentials: grpc.ChannelCredentials | None = None,
                 ca_cert: _calls.PEM = None, client_cert: _calls.PEM = None, client_key: _calls.PEM = None,
                 token: str | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES):
        options = _calls.channel_options(max_message_bytes)
        credentials = _calls.channel_credentials(credentials, ca_cert, client_cert, client_key)
        self._metadata = _calls.call_metadata(token)
        self._channel = (grpc.aio.secure_channel(target, credentials, options) if credentials
                         else grpc.aio.insecure_channel(target, options))
        self._stub = pb_grpc.GenerativeServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self.timeout = timeout
        self.retries = retries

    async def __aenter__(self) -> "AsyncGenerativeClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, method, request, timeout: float | None = None):
        for attempt in range(self.retries + 1):
            try:
                return await method(request, timeout=timeout or self.timeout, metadata=self._metadata)
            except grpc.RpcError as error:
                if error.code() not in _calls.RETRYABLE or attempt == self.retries:
                    raise GenserveError.from_rpc_error(error) from None
                delay = _calls.backoff(attempt + 1)
                log.info("%s: %s; retrying in %.2f s", error.code().name, error.details(), delay)
                await asyncio.sleep(delay)

    async def sample_digits(self, n: int = 16, model: str = "gan", seed: int | None = None, *,
                            as_float: bool = False, version: int = 0) -> np.ndarray:
        request = _calls.sample_request(n, model, seed, as_float, version)
        return _calls.images(await self._call(self._stub.Sample, request))

    async def encode(self, images: np.ndarray, seed: int | None = None, *, with_z: bool = False,
                     version: int = 0):
        request = _calls.encode_request(images, seed, version)
        return _calls.encoded(await self._call(self._stub.Encode, request), with_z)

    async def decode(self, z: np.ndarray, *, as_float: bool = False, version: int = 0) -> np.ndarray:
        return _calls.images(await self._call(self._stub.Decode, _calls.decode_request(z, as_float, version)))

    async def denoise(self, images: np.ndarray, *, as_float: bool = False, version: int = 0) -> np.ndarray:
        return _calls.images(await self._call(self._stub.Denoise, _calls.denoise_request(images, as_float, version)))

    async def list_models(self) -> list[ModelInfo]:
        return _calls.models(await self._call(self._stub.ListModels, pb.ListModelsRequest()))

    async def health(self, service: str = "") -> str:
        response = await self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service))
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
