"""Domain errors of the server. They know nothing of gRPC: the interceptor maps
each to a status code in one place. Every one carries its message as ``reason``."""

from __future__ import annotations

from genserve.repository import RepositoryError

__all__ = ["GenserveError", "InvalidArgument", "ModelNotFound", "NotReady", "DeadlineExceeded",
           "QueueFull", "StartupError", "RepositoryError"]


class GenserveError(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class InvalidArgument(GenserveError):
    """The request is malformed or breaks a limit; the message names the field."""


class ModelNotFound(GenserveError):
    """The request names a model or version the server does not have."""


class NotReady(GenserveError):
    """The server is loading its models or draining."""


class DeadlineExceeded(GenserveError):
    """The caller's deadline passed before the work could start."""


class QueueFull(GenserveError):
    """The model's queue holds its maximum of requests; the caller should back off."""


class StartupError(GenserveError):
    """The server cannot serve: no usable execution provider, or a model missing or unloadable."""
