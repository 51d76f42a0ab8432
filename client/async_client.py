"""The asyncio twin of :class:`client.GenerativeClient`, with the same methods as coroutines."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Sequence

import grpc
import numpy as np
from grpc_health.v1 import health_pb2

from genserve.v1 import generative_pb2 as pb

from . import _calls
from ._calls import ModelInfo
from .connection import Connection


class AsyncGenerativeClient(Connection):
    """>>> async with AsyncGenerativeClient("localhost:50051") as client:   # doctest: +SKIP
    ...     digits = await client.sample_digits(n=16)

    Arguments: see :class:`client.connection.Connection`.
    """

    _channels = grpc.aio

    async def __aenter__(self) -> "AsyncGenerativeClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        deadline = self._deadline(timeout)
        for attempt in itertools.count():
            try:
                return await method(request, timeout=self._remaining(deadline), metadata=self._metadata)
            except grpc.RpcError as error:
                await asyncio.sleep(self._retry_delay(error, attempt, deadline))

    async def sample_digits(self, n: int = 16, model: str = "gan", seed: int | None = None, *,
                            digit: int | Sequence[int] | None = None, return_latents: bool = False,
                            as_float: bool = False, version: int = 0, timeout: float | None = None,
                            return_info: bool = False) -> Any:
        request = _calls.sample_request(n, model, seed, as_float, version, digit, return_latents)
        response = await self._call(self._stub.Sample, request, timeout)
        return _calls.answer(_calls.sampled(response, return_latents), response, return_info)

    async def interpolate(self, start: int | np.ndarray, end: int | np.ndarray, steps: int = 8, *,
                          model: str = "vae", digit: int | None = None, as_float: bool = False,
                          timeout: float | None = None, return_info: bool = False) -> Any:
        request = _calls.interpolate_request(start, end, steps, model, digit, as_float)
        response = await self._call(self._stub.Interpolate, request, timeout)
        return _calls.answer(_calls.images(response), response, return_info)

    async def latent_grid(self, size: int = 15, span: float = 3.0, *, digit: int | None = None,
                          as_float: bool = False, timeout: float | None = None, return_info: bool = False) -> Any:
        request = _calls.latent_grid_request(size, span, digit, as_float)
        response = await self._call(self._stub.LatentGrid, request, timeout)
        return _calls.answer(_calls.grid_images(response, size), response, return_info)

    async def reconstruct(self, images: np.ndarray, *, as_float: bool = False, timeout: float | None = None,
                          return_info: bool = False) -> Any:
        response = await self._call(self._stub.Reconstruct, _calls.reconstruct_request(images, as_float), timeout)
        return _calls.answer(_calls.images(response), response, return_info)

    async def restyle(self, images: np.ndarray, digit: int, *, source_digits: Sequence[int] | None = None,
                      as_float: bool = False, timeout: float | None = None, return_info: bool = False) -> Any:
        request = _calls.restyle_request(images, digit, source_digits, as_float)
        response = await self._call(self._stub.Restyle, request, timeout)
        return _calls.answer(_calls.images(response), response, return_info)

    async def classify(self, images: np.ndarray, *, version: int = 0, timeout: float | None = None,
                       return_info: bool = False) -> Any:
        response = await self._call(self._stub.Classify, _calls.classify_request(images, version), timeout)
        return _calls.answer(_calls.classified(response), response, return_info)

    async def encode(self, images: np.ndarray, seed: int | None = None, *, with_z: bool = False, version: int = 0,
                     timeout: float | None = None, return_info: bool = False) -> Any:
        response = await self._call(self._stub.Encode, _calls.encode_request(images, seed, version), timeout)
        return _calls.answer(_calls.encoded(response, with_z), response, return_info, seed)

    async def decode(self, z: np.ndarray, *, as_float: bool = False, version: int = 0,
                     timeout: float | None = None, return_info: bool = False) -> Any:
        response = await self._call(self._stub.Decode, _calls.decode_request(z, as_float, version), timeout)
        return _calls.answer(_calls.images(response), response, return_info)

    async def denoise(self, images: np.ndarray, *, as_float: bool = False, version: int = 0,
                      timeout: float | None = None, return_info: bool = False) -> Any:
        response = await self._call(self._stub.Denoise, _calls.denoise_request(images, as_float, version), timeout)
        return _calls.answer(_calls.images(response), response, return_info)

    async def list_models(self, *, timeout: float | None = None) -> list[ModelInfo]:
        return _calls.models(await self._call(self._stub.ListModels, pb.ListModelsRequest(), timeout))

    async def health(self, service: str = "", *, timeout: float | None = None) -> str:
        response = await self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service), timeout)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
