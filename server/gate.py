"""The gate every call of every door passes: the drain and admission gates, request
metrics (by method, the model that answered, status and protocol), the access log,
and the one place where an unexpected exception becomes a logged Internal error.
Knows no protocol: doors hand it a ``Call`` and the work."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import AsyncIterator, Awaitable, Callable, TypeVar

from .calls import Call
from .errors import GenserveError, Internal, NotReady, Overloaded
from .logs import ACCESS, request_id
from .metrics import Metrics

log = logging.getLogger(__name__)
access = logging.getLogger(ACCESS)

T = TypeVar("T")


class Gate:
    """Also the drain gate: once ``draining`` is set, new calls are refused with
    UNAVAILABLE while the calls already running finish (``wait_idle``); and the
    admission gate: beyond ``max_in_flight`` calls at once, a call gets UNAVAILABLE.

    ``passes``: exception types a door raises to end a call its own way (gRPC's abort);
    they go through unchanged, counted with the call's ``code``.
    """

    def __init__(self, metrics: Metrics, max_in_flight: int = 1024, access_log: bool = False,
                 request_ids: bool = False, passes: tuple[type[BaseException], ...] = ()):
        self.metrics = metrics
        self.access_log = access_log
        self.request_ids = request_ids or access_log  # only where a log line can show them
        self.max_in_flight = max_in_flight
        self.passes = passes
        self.draining = False
        self._active = 0
        self.calls = 0  # calls taken in so far
        self._idle: asyncio.Event | None = None
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

    async def run(self, call: Call, work: Callable[[], Awaitable[T]], admit: bool = True) -> T:
        """``work()`` under the drain and admission gates (``admit=False``: neither, for the
        standard services such as health, which must answer while draining), counted and
        timed. Raises the domain error a refusal or a failure comes to; an unexpected one
        is logged and becomes Internal."""
        with _Passage(self, call, admit):
            self._admit(call, admit)
            return await work()

    async def stream(self, call: Call, messages: Callable[[], AsyncIterator[T]], admit: bool = True
                     ) -> AsyncIterator[T]:
        """The messages of a streaming call, under the same gates, counted and timed once
        when the stream ends."""
        with _Passage(self, call, admit):
            self._admit(call, admit)
            async for message in messages():
                yield message

    def _failure(self, call: Call, exc: BaseException) -> tuple[str, GenserveError | None]:
        """The status a failed call ends with, and the error to raise instead of ``exc``
        (None: ``exc`` itself)."""
        if isinstance(exc, GenserveError):
            return exc.code, None
        if not isinstance(exc, Exception):  # cancelled: the caller went away or its deadline passed
            return "CANCELLED", None
        if isinstance(exc, self.passes):
            return call.code or "UNKNOWN", None
        log.exception("%s failed", call.rpc)
        return "INTERNAL", Internal(f"{call.rpc}: internal error; the server logged the details")

    def count(self, call: Call, code: str) -> None:
        """A call refused before it reached the gate (by a door's own checks), counted."""
        self._record(call, code, 0.0)

    def _enter(self) -> None:
        self._active += 1
        self.calls += 1
        self.metrics.in_flight.inc()

    def _admit(self, call: Call, admit: bool) -> None:
        if self.request_ids:
            request_id.set(call.request_id)
        if admit and self.draining:
            raise NotReady(f"{call.rpc}: the server is shutting down; retry on another replica")
        if admit and self._active > self.max_in_flight:
            raise Overloaded(f"{call.rpc}: the server holds its maximum of {self.max_in_flight} calls in "
                             "progress; retry with backoff or add replicas")
        call.check_deadline()

    def _leave(self) -> None:
        self._active -= 1
        if self._active == 0 and self._idle is not None:
            self._idle.set()
        self.metrics.in_flight.dec()

    def _record(self, call: Call, code: str, seconds: float) -> None:
        model = call.model  # only ever the name of a served model, or ""
        self._series(self._timed, self.metrics.request_seconds, call.rpc, model, call.protocol).observe(seconds)
        self._series(self._finished, self.metrics.requests, call.rpc, model, code, call.protocol).inc()
        if self.access_log:
            version = call.version or None
            access.info("%s %s v%s %s %.2f ms %s request %s", call.rpc, model or "-", version or "-", code,
                        seconds * 1e3, call.protocol, call.request_id,
                        extra={"rpc": call.rpc, "model": model, "version": version, "code": code,
                               "protocol": call.protocol, "duration_ms": round(seconds * 1e3, 3)})

    @staticmethod
    def _series(cache: dict, metric, *labels: str):
        """A metric's series, looked up once per label set rather than per call."""
        series = cache.get(labels)
        if series is None:
            series = cache[labels] = metric.labels(*labels)
        return series


class _Passage:
    """One call's way through the gate: counted in flight while inside, then recorded
    with the status its end gives it."""

    __slots__ = ("gate", "call", "admit", "started")

    def __init__(self, gate: Gate, call: Call, admit: bool):
        self.gate, self.call, self.admit = gate, call, admit
        self.started = time.perf_counter()
        if admit:
            gate._enter()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, traceback: object) -> None:
        code, instead = ("OK", None) if exc is None else self.gate._failure(self.call, exc)
        if self.admit:
            self.gate._leave()
        self.gate._record(self.call, code, time.perf_counter() - self.started)
        if instead is not None:
            raise instead from None
