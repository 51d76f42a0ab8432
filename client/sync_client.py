"""The blocking client."""

from __future__ import annotations

import itertools
import time
from typing import Any, Sequence

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

    def sample_digits(self, n: int = 16, model: str = "gan", seed: int | None = None, *,
                      digit: int | Sequence[int] | None = None, return_latents: bool = False,
                      as_float: bool = False, version: int = 0, timeout: float | None = None,
                      return_info: bool = False) -> Any:
        """``n`` new digits from the ``"gan"`` or the ``"vae"``: uint8 [n,28,28]
        (float32 in [0,1] with ``as_float``). The same seed gives the same bytes.
        ``digit`` (one for all, or n of them) draws those digits through the conditional
        twin (cGAN, cVAE); ``return_latents`` returns (images, the latents behind them).

        Every method takes ``timeout`` (seconds for the call, retries included; default
        the client's) and ``return_info`` (a Result with the model, version and seed that
        answered); those of one model take ``version`` (a served version to pin; 0, the newest)."""
        request = _calls.sample_request(n, model, seed, as_float, version, digit, return_latents)
        response = self._call(self._stub.Sample, request, timeout)
        return _calls.answer(_calls.sampled(response, return_latents), response, return_info)

    def interpolate(self, start: int | np.ndarray, end: int | np.ndarray, steps: int = 8, *, model: str = "vae",
                    digit: int | None = None, as_float: bool = False, timeout: float | None = None,
                    return_info: bool = False) -> Any:
        """``steps`` images from ``start`` to ``end``, both included: uint8 [steps,28,28].
        Each end is an int seed (the frame is that seed's ``sample_digits(n=1)``), an image
        [28,28] (its VAE posterior mean) or a latent vector ([2] VAE, [100] GAN). Linear in
        the VAE's z, spherical in the GAN's noise; ``digit`` goes through the conditional twin."""
        request = _calls.interpolate_request(start, end, steps, model, digit, as_float)
        response = self._call(self._stub.Interpolate, request, timeout)
        return _calls.answer(_calls.images(response), response, return_info)

    def latent_grid(self, size: int = 15, span: float = 3.0, *, digit: int | None = None, as_float: bool = False,
                    timeout: float | None = None, return_info: bool = False) -> Any:
        """The VAE decoder over a size x size grid of z in [-span, span]^2 (z1 rising left
        to right, z2 top to bottom): uint8 [size,size,28,28]; with ``digit``, the cVAE's styles."""
        response = self._call(self._stub.LatentGrid, _calls.latent_grid_request(size, span, digit, as_float), timeout)
        return _calls.answer(_calls.grid_images(response, size), response, return_info)

    def reconstruct(self, images: np.ndarray, *, as_float: bool = False, timeout: float | None = None,
                    return_info: bool = False) -> Any:
        """Images -> the VAE's decoding of their posterior means, uint8 [N,28,28]."""
        response = self._call(self._stub.Reconstruct, _calls.reconstruct_request(images, as_float), timeout)
        return _calls.answer(_calls.images(response), response, return_info)

    def restyle(self, images: np.ndarray, digit: int, *, source_digits: Sequence[int] | None = None,
                as_float: bool = False, timeout: float | None = None, return_info: bool = False) -> Any:
        """The same handwriting written as ``digit``, uint8 [N,28,28]. ``source_digits``: what
        each image shows; default the digit classifier's reading."""
        request = _calls.restyle_request(images, digit, source_digits, as_float)
        response = self._call(self._stub.Restyle, request, timeout)
        return _calls.answer(_calls.images(response), response, return_info)

    def classify(self, images: np.ndarray, *, version: int = 0, timeout: float | None = None,
                 return_info: bool = False) -> Any:
        """The digit classifier's reading of images: (digits int64 [N], probabilities float32 [N,10])."""
        response = self._call(self._stub.Classify, _calls.classify_request(images, version), timeout)
        return _calls.answer(_calls.classified(response), response, return_info)

    def encode(self, images: np.ndarray, seed: int | None = None, *, with_z: bool = False, version: int = 0,
               timeout: float | None = None, return_info: bool = False) -> Any:
        """VAE posterior of images (uint8 0..255 or float 0..1, [N,28,28]): returns
        (z_mean, z_log_var), each float32 [N,2]; with ``with_z`` also a sampled z."""
        response = self._call(self._stub.Encode, _calls.encode_request(images, seed, version), timeout)
        return _calls.answer(_calls.encoded(response, with_z), response, return_info, seed)

    def decode(self, z: np.ndarray, *, as_float: bool = False, version: int = 0, timeout: float | None = None,
               return_info: bool = False) -> Any:
        """Latent points float [N,2] -> uint8 images [N,28,28]."""
        response = self._call(self._stub.Decode, _calls.decode_request(z, as_float, version), timeout)
        return _calls.answer(_calls.images(response), response, return_info)

    def denoise(self, images: np.ndarray, *, as_float: bool = False, version: int = 0, timeout: float | None = None,
                return_info: bool = False) -> Any:
        """Images with salt noise -> cleaned uint8 images [N,28,28]."""
        response = self._call(self._stub.Denoise, _calls.denoise_request(images, as_float, version), timeout)
        return _calls.answer(_calls.images(response), response, return_info)

    def list_models(self, *, timeout: float | None = None) -> list[ModelInfo]:
        return _calls.models(self._call(self._stub.ListModels, pb.ListModelsRequest(), timeout))

    def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """The health service's status: "SERVING", "NOT_SERVING", ..."""
        response = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service), timeout)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
