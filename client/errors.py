"""The errors the SDK raises: every failure is a GenserveError carrying the gRPC status
code and the server's words, as a subclass per code, so that callers can catch
``client.NotFound`` rather than compare codes."""

from __future__ import annotations

import grpc


class GenserveError(Exception):
    """Any failed call: ``code`` is the gRPC status code, ``message`` the server's words."""

    CODE = grpc.StatusCode.UNKNOWN

    def __init__(self, code: grpc.StatusCode | None, message: str):
        self.code = code or self.CODE
        self.message = message
        super().__init__(f"{self.code.name}: {message}")

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> "GenserveError":
        code = error.code()
        details = error.details() or ""
        kind = BY_CODE.get(code)
        return kind(details) if kind is not None else GenserveError(code, details)


class _ForCode(GenserveError):
    def __init__(self, message: str, code: grpc.StatusCode | None = None):
        super().__init__(code or self.CODE, message)


class InvalidArgument(_ForCode, ValueError):
    """The request breaks a rule: from the server, or found before sending it."""
    CODE = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(_ForCode, LookupError):
    """No such model or version on the server."""
    CODE = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(_ForCode):
    CODE = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(_ForCode, ConnectionError):
    """The server is unreachable, starting, draining or at its limit; retried with backoff."""
    CODE = grpc.StatusCode.UNAVAILABLE


class Unauthenticated(_ForCode, PermissionError):
    CODE = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(_ForCode, PermissionError):
    CODE = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(_ForCode):
    """A queue or a size limit of the server is full; back off, or send less."""
    CODE = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceeded(_ForCode, TimeoutError):
    """The call's deadline passed, retries included."""
    CODE = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(_ForCode):
    CODE = grpc.StatusCode.CANCELLED


class Unimplemented(_ForCode):
    CODE = grpc.StatusCode.UNIMPLEMENTED


class Internal(_ForCode):
    CODE = grpc.StatusCode.INTERNAL


BY_CODE: dict[grpc.StatusCode, type[_ForCode]] = {
    cls.CODE: cls for cls in (InvalidArgument, NotFound, FailedPrecondition, Unavailable, Unauthenticated,
                              PermissionDenied, ResourceExhausted, DeadlineExceeded, Cancelled, Unimplemented,
                              Internal)}
