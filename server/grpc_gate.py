"""The gRPC door's side of the gate, for every service the server hosts (genserve.v1,
the Open Inference Protocol, health, reflection): bytes that are not the method's
request message become INVALID_ARGUMENT naming the message type, each call becomes a
``calls.Call`` and passes the gate (``gate.Gate``), and a domain error becomes its
status. Unary and streaming methods alike."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from typing import AsyncIterator

import grpc

from . import calls
from .errors import GenserveError, InvalidArgument
from .gate import Gate
from .logs import call_id


CALLER_GONE_S = 5.0  # the longest a failed write waits for gRPC to cancel its call


class _Malformed:
    """What a request's bytes became when protobuf could not parse them."""

    def __init__(self, size: int):
        self.size = size


class GrpcGate(grpc.aio.ServerInterceptor):
    """``admitted``: the services whose calls the drain and admission gates hold back;
    the others (health, reflection) answer while the server drains. ``methods``: every
    method served, by gRPC's name (a closed set of metric labels); a call of any other
    is left to gRPC, which answers UNIMPLEMENTED."""

    def __init__(self, gate: Gate, admitted: tuple[str, ...], methods: frozenset[str]):
        self.gate = gate
        self.admitted = admitted
        self.methods = methods
        # Per method, built once rather than per call. Sound only while this is the last
        # interceptor (app.py puts the others before it): what follows it is the method's
        # registered handler, the same for every call.
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(self, continuation, details):
        wrapped = self._wrapped.get(details.method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(details)
        if handler is None or details.method not in self.methods:
            return handler  # gRPC answers UNIMPLEMENTED
        service, _, rpc = details.method.lstrip("/").rpartition("/")
        wrapped = self._wrapped[details.method] = self._wrap(handler, rpc, service in self.admitted)
        return wrapped

    def _call(self, rpc: str, context) -> calls.Call:
        remaining = context.time_remaining()
        call = calls.Call(rpc, "grpc", None if remaining is None else time.monotonic() + remaining,
                          call_id(_metadata(context, "x-request-id")) if self.gate.request_ids else None)
        calls.current.set(call)
        return call

    def _wrap(self, handler: grpc.RpcMethodHandler, rpc: str, admit: bool) -> grpc.RpcMethodHandler:
        parse = handler.request_deserializer
        message = getattr(getattr(parse, "__self__", None), "__name__", "request")
        gate = self.gate

        def deserialize(data: bytes):
            try:
                return parse(data)
            except Exception:  # protobuf's DecodeError, or anything else a bad buffer raises
                return _Malformed(len(data))

        def check(request):
            if isinstance(request, _Malformed):
                raise InvalidArgument(f"request: {request.size:,} bytes that are not a {message} message")
            return request

        async def checked(requests: AsyncIterator) -> AsyncIterator:
            async for request in requests:
                yield check(request)

        inner = handler.unary_unary or handler.stream_unary or handler.unary_stream or handler.stream_stream
        unary_request = handler.unary_unary is not None or handler.unary_stream is not None
        streams = handler.unary_stream is not None or handler.stream_stream is not None
        codecs = {"request_deserializer": deserialize if parse is not None else None,
                  "response_serializer": handler.response_serializer}
        make = {(False, False): grpc.stream_unary_rpc_method_handler, (False, True): grpc.stream_stream_rpc_method_handler,
                (True, False): grpc.unary_unary_rpc_method_handler, (True, True): grpc.unary_stream_rpc_method_handler
                }[unary_request, streams]

        def work(request, context):
            return inner(check(request) if unary_request else checked(request), context)

        if not (streams and inspect.isasyncgenfunction(inner)):
            # A unary method, or a streaming one that writes through its context: one awaitable.
            async def awaited(request, context):
                call = self._call(rpc, context)
                try:
                    # genserve's own services end calls by raising, never by aborting.
                    return await gate.run(call, (lambda: work(request, context)) if admit else
                                          (lambda: _noting_abort(call, context, work(request, context))), admit)
                except GenserveError as error:
                    await context.abort(grpc.StatusCode[error.code], error.reason)

            return make(awaited, **codecs)

        async def streamed(request, context):
            call = self._call(rpc, context)
            try:
                async with contextlib.aclosing(gate.stream(
                        call, lambda: _passing(call, context, work(request, context)), admit)) as responses:
                    async for response in responses:
                        await _write(context, response)
            except GenserveError as error:
                await context.abort(grpc.StatusCode[error.code], error.reason)

        return make(streamed, **codecs)


async def _noting_abort(call: calls.Call, context, work):
    """``work``'s result, noting the status where the handler aborts the call itself."""
    try:
        return await work
    except grpc.aio.AbortError:
        _note(call, context)
        raise


async def _write(context, response) -> None:
    """One message of a streaming call written. A write fails once the caller has gone;
    gRPC then cancels the handler's task, so the failure waits for that cancellation
    rather than surfacing as the handler's error."""
    try:
        await context.write(response)
    except Exception:
        await asyncio.sleep(CALLER_GONE_S)
        raise


def _note(call: calls.Call, context) -> None:
    code = context.code()
    call.code = code.name if isinstance(code, grpc.StatusCode) else ""


async def _passing(call: calls.Call, context, responses: AsyncIterator) -> AsyncIterator:
    """A streaming handler's responses, noting the status where the handler aborts."""
    try:
        async for response in responses:
            yield response
    except grpc.aio.AbortError:
        _note(call, context)
        raise


def _metadata(context, key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value if isinstance(value, str) else None
    return None
