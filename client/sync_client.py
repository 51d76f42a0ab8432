"""The blocking client's connection: how its calls wait (the operations themselves are
generated from client/operations.py into client/_generated.py)."""

from __future__ import annotations

import itertools
import math
import time
from typing import Any, Iterator, TypeVar

import grpc
from grpc_health.v1 import health_pb2

from genserve.v1 import generative_pb2 as pb

from . import _calls
from ._calls import DigitChunk, ModelInfo
from .connection import Connection


C = TypeVar("C", bound="SyncConnection")


class SyncConnection(Connection):
    def __enter__(self: C) -> C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        deadline = self._deadline(timeout)
        for attempt in itertools.count():
            try:
                return method(request, timeout=self._remaining(deadline), metadata=self._metadata)
            except grpc.RpcError as error:
                time.sleep(self._retry_delay(error, attempt, deadline))

    def list_models(self, *, timeout: float | None = None) -> list[ModelInfo]:
        """The served models, each version's name, role, tensors, provider and metrics."""
        return _calls.models(self._call(self._stub.ListModels, pb.ListModelsRequest(), timeout))

    def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """The health service's status: "SERVING", "NOT_SERVING", ..."""
        response = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service), timeout)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

    def stream_digits(self, n: int, model: str = "gan", seed: int | None = None, *, digit: int | None = None,
                      balanced: bool = False, chunk: int = 256, start_index: int = 0,
                      truncation: float | None = None, min_confidence: float | None = None, as_float: bool = False,
                      version: int = 0, timeout: float | None = None) -> Iterator[DigitChunk]:
        where = _calls.Resumption(_calls.stream_request(n, model, seed, digit, balanced, chunk, start_index,
                                                      as_float, version, truncation, min_confidence))
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        attempt = 0
        while not where.done:
            left = None if timeout is None else self._remaining(deadline)
            responses = self._stub.SampleStream(where.request, timeout=left, metadata=self._metadata)
            try:
                for response in responses:
                    attempt = 0
                    yield where.received(response)
            except grpc.RpcError as error:
                time.sleep(self._retry_delay(error, attempt, deadline))
                attempt += 1
            finally:
                responses.cancel()

    stream_digits.__doc__ = _calls.STREAM_DIGITS_DOC
