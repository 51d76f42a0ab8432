"""Domain errors of the server. They know nothing of gRPC: the interceptor maps
each to a status code in one place. Every one carries its message as ``reason``."""

from __future__ import annotations

from genserve.repository import RepositoryError

__all__ = ["GenserveError", "InvalidArgument", "ModelNotFound", "FailedPrecondition", "Internal", "NotReady", "DeadlineExceeded",
           "QueueFull", "AnswerTooLarge", "Overloaded", "StartupError", "RepositoryError", "quoted"]


class GenserveError(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class InvalidArgument(GenserveError):
    """The request is malformed or breaks a limit; the message names the field."""


class ModelNotFound(GenserveError):
    """The request names a model or version the server does not have."""


class FailedPrecondition(GenserveError):
    """The call needs a model the repository does not hold in the role the call needs."""


class NotReady(GenserveError):
    """The server is loading its models or draining."""


class DeadlineExceeded(GenserveError):
    """The caller's deadline passed before the work could start."""


class QueueFull(GenserveError):
    """The model's queue holds its maximum of requests; the caller should back off."""


class AnswerTooLarge(GenserveError):
    """The answer would exceed the message limit; refused before any work."""


class Overloaded(GenserveError):
    """The server holds its maximum of calls in progress; the caller should retry with backoff."""


class Internal(GenserveError):
    """Something failed that no request should make fail; the server logged the details."""


class StartupError(GenserveError):
    """The server cannot serve: no usable execution provider, or a model missing or unloadable."""


QUOTE_LIMIT = 40  # characters of a caller's text that an error message repeats


def quoted(text: str, limit: int = QUOTE_LIMIT) -> str:
    """A caller's text for an error message: repr of at most ``limit`` characters, so that
    a message never grows with what the caller sent."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"
