"""Cross-cutting concerns of every unary RPC: domain errors mapped to status codes
in one place, request metrics, and the deadline check."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from typing import Awaitable, Callable, TypeVar

from .errors import (AnswerTooLarge, DeadlineExceeded, FailedPrecondition, GenserveError, Internal, InvalidArgument,
                     ModelNotFound, NotReady, Overloaded, QueueFull)
from .logs import ACCESS, call_id, request_id
from .metrics import Metrics
from .servicer import current_model, current_version

log = logging.getLogger(__name__)
access = logging.getLogger(ACCESS)

STATUS = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    ModelNotFound: grpc.StatusCode.NOT_FOUND,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    NotReady: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    QueueFull: grpc.StatusCode.RESOURCE_EXHAUSTED,
    AnswerTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Overloaded: grpc.StatusCode.UNAVAILABLE,
    Internal: grpc.StatusCode.INTERNAL,
}
T = TypeVar("T")


class _Malformed:
    """What a request's bytes became when protobuf could not parse them."""

    def __init__(self, size: int):
        self.size = size


class ErrorsAndMetrics(grpc.aio.ServerInterceptor):
    """Also the drain gate: once ``draining`` is set, new calls are refused with
    UNAVAILABLE while the calls already running finish (``wait_idle``); and the
    admission gate: beyond ``max_in_flight`` calls at once, a call gets UNAVAILABLE."""

    def __init__(self, metrics: Metrics, services: tuple[str, ...], max_in_flight: int = 1024,
                 access_log: bool = False, request_ids: bool = False):
        self.metrics = metrics
        self.access_log = access_log
        self.request_ids = request_ids or access_log  # only where a log line can show them
        self.services = services
        self.max_in_flight = max_in_flight
        self.draining = False
        self._active = 0
        self.calls = 0  # calls taken in so far
        self._idle: asyncio.Event | None = None
        # Per method, built once rather than per call. Sound only while this is the last
        # interceptor (app.py puts the bearer-token check before it): what follows it is
        # the method's registered handler, the same for every call.
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}
        self._timed: dict[tuple, object] = {}  # label sets -> their series of the duration histogram
        self._finished: dict[tuple, object] = {}  # label sets -> their series of the requests counter

    @property
    def busy(self) -> bool:
        return self._active > 0

    async def wait_idle(self, timeout: float) -> bool:
        """True when no call is running, False if some still run after ``timeout`` seconds."""
        self._idle = asyncio.Event()
        if self._active == 0:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def guard(self, rpc: str, protocol: str, work: Callable[[], Awaitable[T]]) -> T:
        """``work()`` under the drain and admission gates, counted and timed by method,
        model and protocol (and logged, with the access log). Raises the domain error a
        refusal or a failure comes to; an unexpected one is logged and becomes Internal."""
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        self._active += 1
        self.calls += 1
        self.metrics.in_flight.inc()
        try:
            if self.draining:
                raise NotReady(f"{rpc}: the server is shutting down; retry on another replica")
            if self._active > self.max_in_flight:
                raise Overloaded(f"{rpc}: the server holds its maximum of {self.max_in_flight} calls in "
                                 "progress; retry with backoff or add replicas")
            return await work()
        except GenserveError as exc:
            code = STATUS[type(exc)]
            raise
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED  # the caller went away or its deadline passed
            raise
        except grpc.aio.AbortError:
            code = grpc.StatusCode.UNKNOWN
            raise
        except Exception:
            code = grpc.StatusCode.INTERNAL
            log.exception("%s failed", rpc)
            raise Internal(f"{rpc}: internal error; the server logged the details") from None
        finally:
            self._active -= 1
            if self._active == 0 and self._idle is not None:
                self._idle.set()
            self.metrics.in_flight.dec()
            model = current_model.get()  # only ever the name of a served model, or ""
            seconds = time.perf_counter() - started
            self._series(self._timed, self.metrics.request_seconds, rpc, model, protocol).observe(seconds)
            self._series(self._finished, self.metrics.requests, rpc, model, code.name, protocol).inc()
            if self.access_log:
                version = current_version.get() or None
                access.info("%s %s v%s %s %.2f ms %s request %s", rpc, model or "-", version or "-", code.name,
                            seconds * 1e3, protocol, request_id.get(),
                            extra={"rpc": rpc, "model": model, "version": version, "code": code.name,
                                   "protocol": protocol, "duration_ms": round(seconds * 1e3, 3)})

    @staticmethod
    def _series(cache: dict, metric, *labels: str):
        """A metric's series, looked up once per label set rather than per call."""
        series = cache.get(labels)
        if series is None:
            series = cache[labels] = metric.labels(*labels)
        return series

    async def intercept_service(self, continuation, details):
        wrapped = self._wrapped.get(details.method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(details)
        service, _, rpc = details.method.lstrip("/").rpartition("/")
        if handler is None or handler.unary_unary is None or service not in self.services:
            return handler
        wrapped = self._wrapped[details.method] = self._wrap(handler, details.method, rpc)
        return wrapped

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str, rpc: str) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary
        parse = handler.request_deserializer
        message = getattr(getattr(parse, "__self__", None), "__name__", "request")

        def deserialize(data: bytes):
            try:
                return parse(data)
            except Exception:  # protobuf's DecodeError, or anything else a bad buffer raises
                return _Malformed(len(data))

        async def call(request, context):
            if isinstance(request, _Malformed):
                raise InvalidArgument(f"request: {request.size:,} bytes that are not a {message} message")
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                raise DeadlineExceeded(f"{rpc}: the deadline passed before the call started")
            return await inner(request, context)

        async def wrapper(request, context):
            if self.request_ids:
                request_id.set(call_id(context.invocation_metadata()))
            try:
                return await self.guard(rpc, "grpc", lambda: call(request, context))
            except GenserveError as exc:
                await context.abort(STATUS[type(exc)], exc.reason)

        return grpc.unary_unary_rpc_method_handler(
            wrapper, request_deserializer=deserialize if parse is not None else None,
            response_serializer=handler.response_serializer)
