"""What the blocking and the asyncio client share: the channel and its stubs, the
call settings, and the retry rule. The two clients differ only in how they wait."""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

import grpc
from grpc_health.v1 import health_pb2_grpc

from genserve.v1 import generative_pb2_grpc as pb_grpc

from . import _calls
from .errors import DeadlineExceeded, GenserveError

log = logging.getLogger("client")

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class Connection:
    """A channel to a genserve server, with the settings every call uses.

    Args:
        target: ``host:port`` of the server.
        timeout: seconds each call may take, all its attempts together; each method's
            ``timeout=`` overrides it for that call.
        retries: extra attempts on UNAVAILABLE (a server starting, draining, restarting or
            at its limit of calls), with jittered exponential backoff, within the call's
            deadline. Other errors are not retried.
        credentials: ``grpc.ssl_channel_credentials(...)`` for TLS; or, simpler:
        ca_cert: PEM (path or bytes) of the CA that signed the server's certificate;
            TLS with it (plaintext when neither it nor ``credentials`` is given).
        client_cert, client_key: PEM (paths or bytes) for mutual TLS.
        token: bearer token sent as ``authorization: Bearer <token>`` on every call.
        max_message_bytes: the largest message sent or received.
        load_balancing: gRPC's load-balancing policy over the addresses of ``target``,
            e.g. ``"round_robin"`` with ``dns:///genserve-headless:50051`` to spread calls
            over every replica; None: gRPC's default (pick_first, one connection).
        options: more of gRPC's channel arguments, as (name, value) pairs, e.g.
            ``[("grpc.keepalive_time_ms", 30000)]``; they override the client's own.
    """

    _channels = grpc  # the module whose channels this client opens: grpc, or grpc.aio

    def __init__(self, target: str = "localhost:50051", *, timeout: float = 30.0, retries: int = 3,
                 credentials: grpc.ChannelCredentials | None = None,
                 ca_cert: _calls.PEM = None, client_cert: _calls.PEM = None, client_key: _calls.PEM = None,
                 token: str | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, load_balancing: str | None = None,
                 options: Sequence[tuple[str, Any]] = ()):
        channel_options = _calls.channel_options(max_message_bytes, load_balancing, options)
        credentials = _calls.channel_credentials(credentials, ca_cert, client_cert, client_key)
        self._metadata = _calls.call_metadata(token)
        self._channel = (self._channels.secure_channel(target, credentials, channel_options) if credentials
                         else self._channels.insecure_channel(target, channel_options))
        self._stub = pb_grpc.GenerativeServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self.timeout = timeout
        self.retries = retries

    # The retries are a loop here rather than gRPC's retry policy (service config): that
    # policy treats more than 5 attempts as 5, and a caller waiting for a server to start
    # asks for more; and its backoff knows nothing of the call's deadline.

    def _deadline(self, timeout: float | None) -> float:
        """The call's deadline on the time.monotonic() clock."""
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    @staticmethod
    def _remaining(deadline: float) -> float:
        """Seconds left for the next attempt; DeadlineExceeded when none are."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded("the call's deadline passed before its next attempt")
        return left

    def _retry_delay(self, error: grpc.RpcError, attempt: int, deadline: float) -> float:
        """Seconds to wait after failed attempt ``attempt`` (0, 1, ...) before the next;
        raises the caller's GenserveError when the error is not retried, the attempts are
        spent, or the wait would pass the call's deadline."""
        failure = GenserveError.from_rpc_error(error)
        delay = _calls.backoff(attempt + 1)
        if failure.code not in _calls.RETRYABLE or attempt >= self.retries or time.monotonic() + delay >= deadline:
            raise failure from None
        log.info("%s: %s; retrying in %.2f s", failure.code.name, failure.message, delay)
        return delay
