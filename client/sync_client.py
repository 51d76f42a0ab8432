"""The blocking client."""

from __future__ import annotations

import itertools
import time

import grpc
import numpy as np
from grpc_health.v1 import health_pb2

from genserve.v1 import generative_pb2 as pb

from . import _calls
from ._calls import ModelInfo
from .connection import Connection


class GenerativeClient(Connection):
    """Talks to a genserve server over gRPC. numpy in, numpy out.

    >>> from client import GenerativeClient
    >>> with GenerativeClient("localhost:50051") as client:      # doctest: +SKIP
    ...     digits = client.sample_digits(n=16, seed=1)           # uint8 [16, 28, 28]

    Arguments: see :class:`client.connection.Connection`.
    """

    def __enter__(self) -> "GenerativeClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method, request, timeout: float | None = None):
        for attempt in itertools.count():
            try:
                return method(request, timeout=timeout or self.timeout, metadata=self._metadata)
            except grpc.RpcError as error:
                time.sleep(self._retry_delay(error, attempt))

    def sample_digits(self, n: int = 16, model: str = "gan", seed: int | None = None, *,
                      as_float: bool = False, version: int = 0) -> np.ndarray:
        """``n`` new digits from the ``"gan"`` or the ``"vae"``: uint8 [n,28,28]
        (float32 in [0,1] with ``as_float``). The same seed gives the same bytes.
        Every method takes ``version``: a served version to pin; 0, the newest."""
        return _calls.images(self._call(self._stub.Sample, _calls.sample_request(n, model, seed, as_float, version)))

    def encode(self, images: np.ndarray, seed: int | None = None, *, with_z: bool = False, version: int = 0):
        """VAE posterior of images (uint8 0..255 or float 0..1, [N,28,28]): returns
        (z_mean, z_log_var), each float32 [N,2]; with ``with_z`` also a sampled z."""
        return _calls.encoded(self._call(self._stub.Encode, _calls.encode_request(images, seed, version)), with_z)

    def decode(self, z: np.ndarray, *, as_float: bool = False, version: int = 0) -> np.ndarray:
        """Latent points float [N,2] -> uint8 images [N,28,28]."""
        return _calls.images(self._call(self._stub.Decode, _calls.decode_request(z, as_float, version)))

    def denoise(self, images: np.ndarray, *, as_float: bool = False, version: int = 0) -> np.ndarray:
        """Images with salt noise -> cleaned uint8 images [N,28,28]."""
        return _calls.images(self._call(self._stub.Denoise, _calls.denoise_request(images, as_float, version)))

    def list_models(self) -> list[ModelInfo]:
        return _calls.models(self._call(self._stub.ListModels, pb.ListModelsRequest()))

    def health(self, service: str = "") -> str:
        """The health service's status: "SERVING", "NOT_SERVING", ..."""
        response = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service))
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
