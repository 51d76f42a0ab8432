"""The blocking client's connection: how its calls wait (the operations themselves are
generated from client/operations.py into client/_generated.py)."""

from __future__ import annotations

import itertools
import time
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2

from genserve.v1 import generative_pb2 as pb

from . import _calls
from ._calls import ModelInfo
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
