"""What the blocking and the asyncio client share: the channel and its stubs, the
call settings, and the retry rule. The two clients differ only in how they wait."""

from __future__ import annotations

import logging

import grpc
from grpc_health.v1 import health_pb2_grpc

from genserve.v1 import generative_pb2_grpc as pb_grpc

from . import _calls
from .errors import GenserveError

log = logging.getLogger("client")

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class Connection:
    """A channel to a genserve server, with the settings every call uses.

    Args:
        target: ``host:port`` of the server.
        timeout: seconds each call may take, retries included in none of them.
        retries: extra attempts on UNAVAILABLE (a server starting, draining or
            restarting), with jittered exponential backoff. Other errors are not retried.
        credentials: ``grpc.ssl_channel_credentials(...)`` for TLS; or, simpler:
        ca_cert: PEM (path or bytes) of the CA that signed the server's certificate;
            TLS with it (plaintext when neither it nor ``credentials`` is given).
        client_cert, client_key: PEM (paths or bytes) for mutual TLS.
        token: bearer token sent as ``authorization: Bearer <token>`` on every call.
        max_message_bytes: the largest message sent or received.
        load_balancing: gRPC's load-balancing policy over the addresses of ``target``,
            e.g. ``"round_robin"`` with ``dns:///genserve-headless:50051`` to spread calls
            over every replica; None: gRPC's default (pick_first, one connection).
    """

    _channels = grpc  # the module whose channels this client opens: grpc, or grpc.aio

    def __init__(self, target: str = "localhost:50051", *, timeout: float = 30.0, retries: int = 3,
                 credentials: grpc.ChannelCredentials | None = None,
                 ca_cert: _calls.PEM = None, client_cert: _calls.PEM = None, client_key: _calls.PEM = None,
                 token: str | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, load_balancing: str | None = None):
        options = _calls.channel_options(max_message_bytes)
        if load_balancing is not None:
            options.append(("grpc.lb_policy_name", load_balancing))
        credentials = _calls.channel_credentials(credentials, ca_cert, client_cert, client_key)
        self._metadata = _calls.call_metadata(token)
        self._channel = (self._channels.secure_channel(target, credentials, options) if credentials
                         else self._channels.insecure_channel(target, options))
        self._stub = pb_grpc.GenerativeServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self.timeout = timeout
        self.retries = retries

    def _retry_delay(self, error: grpc.RpcError, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (0, 1, ...) before the next;
        raises the caller's GenserveError when the error is not retried or attempts are spent."""
        if error.code() not in _calls.RETRYABLE or attempt >= self.retries:
            raise GenserveError.from_rpc_error(error) from None
        delay = _calls.backoff(attempt + 1)
        log.info("%s: %s; retrying in %.2f s", error.code().name, error.details(), delay)
        return delay
