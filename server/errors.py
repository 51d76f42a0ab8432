"""Domain errors of the server. They know nothing of gRPC: the interceptor maps
each to a status code in one place. Every one carries its message as ``reason``."""

from __future__ import annotations


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


class RepositoryError(GenserveError):
    """The model repository is missing, inconsistent, or a file fails its check."""
