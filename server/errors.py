"""Domain errors of the server. They import no protocol: each class says, in its own
definition, the gRPC status (by name) and the HTTP status it answers with, and every
door reads them from there. Every one carries its message as ``reason``."""

from __future__ import annotations

from genserve.repository import RepositoryError

__all__ = ["GenserveError", "InvalidArgument", "ModelNotFound", "FailedPrecondition", "Internal", "NotReady",
           "DeadlineExceeded", "QueueFull", "TooLarge", "Overloaded", "Cancelled", "Forbidden", "UnsupportedMediaType",
           "BodyTimeout", "StartupError",
           "RepositoryError", "quoted"]


class GenserveError(Exception):
    code = "UNKNOWN"  # gRPC's status name
    http_status = 500

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class InvalidArgument(GenserveError):
    """The request is malformed or breaks a limit; the message names the field."""
    code, http_status = "INVALID_ARGUMENT", 400


class ModelNotFound(GenserveError):
    """The request names a model or version the server does not have."""
    code, http_status = "NOT_FOUND", 404


class FailedPrecondition(GenserveError):
    """The call needs a model the repository does not hold in the role the call needs."""
    code, http_status = "FAILED_PRECONDITION", 400


class NotReady(GenserveError):
    """The server is loading its models or draining."""
    code, http_status = "UNAVAILABLE", 503


class DeadlineExceeded(GenserveError):
    """The caller's deadline passed before the work could start."""
    code, http_status = "DEADLINE_EXCEEDED", 504


class QueueFull(GenserveError):
    """The model's queue holds its maximum of requests; the caller should back off."""
    code, http_status = "RESOURCE_EXHAUSTED", 429


class TooLarge(GenserveError):
    """A request body, or the answer it would get, exceeds the message limit; refused
    before any work."""
    code, http_status = "RESOURCE_EXHAUSTED", 413


class Overloaded(GenserveError):
    """The server holds its maximum of calls in progress; the caller should retry with backoff."""
    code, http_status = "UNAVAILABLE", 503


class Cancelled(GenserveError):
    """The caller went away before the answer was ready (HTTP's 499, as nginx counts it)."""
    code, http_status = "CANCELLED", 499


class Forbidden(GenserveError):
    """The request came for a host, or from a web page's origin, the server does not answer."""
    code, http_status = "PERMISSION_DENIED", 403


class UnsupportedMediaType(GenserveError):
    """A request body of a type the route does not take (HTTP only)."""
    code, http_status = "INVALID_ARGUMENT", 415


class BodyTimeout(GenserveError):
    """A request's body did not arrive within its time (HTTP only)."""
    code, http_status = "DEADLINE_EXCEEDED", 408


class Internal(GenserveError):
    """Something failed that no request should make fail; the server logged the details."""
    code, http_status = "INTERNAL", 500


class StartupError(GenserveError):
    """The server cannot serve: no usable execution provider, or a model missing or unloadable."""
    code, http_status = "UNAVAILABLE", 503


QUOTE_LIMIT = 40  # characters of a caller's text that an error message repeats


def quoted(text: str, limit: int = QUOTE_LIMIT) -> str:
    """A caller's text for an error message: repr of at most ``limit`` characters, so that
    a message never grows with what the caller sent."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"
