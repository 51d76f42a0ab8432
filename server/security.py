"""Transport security and bearer tokens: TLS / mutual-TLS credentials from PEM files,
and the interceptor that checks ``authorization: Bearer <token>`` on every call.

Neither a token nor a key is ever logged: messages name the files, not their contents.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from genserve.tokens import token_lines

from .errors import StartupError, quoted

if TYPE_CHECKING:  # the worker supervisor imports this module before prometheus-client's set-up
    from .metrics import Metrics

log = logging.getLogger(__name__)

HEALTH_SERVICE = "grpc.health.v1.Health"


def describe(settings) -> str:
    """One log line on the transport and the tokens; file names only."""
    if settings.tls_client_ca is not None:
        transport = f"mutual TLS (certificate {settings.tls_cert}, client CA {settings.tls_client_ca})"
    elif settings.tls_cert is not None:
        transport = f"TLS (certificate {settings.tls_cert})"
    else:
        transport = "plaintext"
    if settings.auth_token_file is None:
        return f"transport: {transport}; bearer tokens: off"
    return (f"transport: {transport}; bearer tokens: required (from {settings.auth_token_file}, "
            f"health {'included' if settings.auth_health else 'open'})")


def _read(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StartupError(f"{what} {path}: cannot read it ({exc.strerror})") from None
    if not data.strip():
        raise StartupError(f"{what} {path}: the file is empty")
    return data


def server_credentials(cert: Path, key: Path, client_ca: Path | None) -> grpc.ServerCredentials:
    """TLS with the server's certificate chain and key; with ``client_ca``, mutual TLS:
    a client must present a certificate signed by that CA."""
    chain, private_key = _read(cert, "--tls-cert"), _read(key, "--tls-key")
    if b"PRIVATE KEY-----" not in private_key:
        raise StartupError(f"--tls-key {key}: not a PEM private key")
    if b"CERTIFICATE-----" not in chain:
        raise StartupError(f"--tls-cert {cert}: not a PEM certificate")
    roots = _read(client_ca, "--tls-client-ca") if client_ca else None
    if roots is not None and b"CERTIFICATE-----" not in roots:
        raise StartupError(f"--tls-client-ca {client_ca}: not a PEM certificate")
    return grpc.ssl_server_credentials([(private_key, chain)], root_certificates=roots,
                                       require_client_auth=roots is not None)


def read_tokens(path: Path) -> tuple[bytes, ...]:
    """One token per line; blank lines and ``#`` comments are skipped. Several lines let
    a token be rotated without downtime: add the new one, move the clients, drop the old."""
    tokens = tuple(t.encode() for t in token_lines(_read(path, "--auth-token-file").decode()))
    if not tokens:
        raise StartupError(f"--auth-token-file {path}: no token in it (one per line)")
    if any(len(t) < 16 for t in tokens):
        raise StartupError(f"--auth-token-file {path}: every token must be at least 16 characters")
    return tokens


def valid_token(presented: bytes, tokens: tuple[bytes, ...]) -> bool:
    """Whether ``presented`` is one of ``tokens``: compared against every one, without
    stopping at a match, in constant time each."""
    matches = [hmac.compare_digest(presented, token) for token in tokens]
    return any(matches)


def bearer_problem(value: str | bytes | None, tokens: tuple[bytes, ...]) -> str | None:
    """What is wrong with an ``authorization`` value (gRPC metadata or the HTTP header):
    None when it is ``Bearer <token>`` with a token the server accepts, otherwise
    "missing", "malformed" or "invalid" (the reasons of the refusals' metric)."""
    if not value:
        return "missing"
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    scheme, _, token = text.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "malformed"
    # surrogateescape: header bytes that are not UTF-8 compare as the bytes they were
    presented = token.strip().encode("utf-8", "surrogateescape")
    return None if valid_token(presented, tokens) else "invalid"


class BearerTokens(grpc.aio.ServerInterceptor):
    """Refuses any call without a valid bearer token with UNAUTHENTICATED before it
    reaches a service. The health service stays open when ``open_health`` is set, so
    that load balancers and kubelet probes need no secret."""

    def __init__(self, tokens: tuple[bytes, ...], metrics: Metrics, open_health: bool = True,
                 methods: frozenset[str] = frozenset()):
        self._tokens = tokens
        self._metrics = metrics
        self._open = {HEALTH_SERVICE} if open_health else set()
        # The refusals' metric labels: these methods by name, anything else as "unknown",
        # so that callers cannot create series by making up methods.
        self._methods = methods

    def _check(self, details) -> str | None:
        """None when the call may go on; otherwise why not."""
        values = [v for k, v in (details.invocation_metadata or ()) if k == "authorization"]
        return bearer_problem(values[0] if values else None, self._tokens)

    async def intercept_service(self, continuation, details):
        service, _, rpc = details.method.lstrip("/").rpartition("/")
        if service in self._open:
            return await continuation(details)
        problem = self._check(details)
        if problem is None:
            return await continuation(details)
        known = details.method in self._methods
        self._metrics.unauthenticated.labels(rpc if known else "unknown", problem).inc()
        handler = await continuation(details)
        return _refusal(handler, f"{rpc if known else quoted(rpc)}: {problem} bearer token; send the metadata "
                                 "'authorization: Bearer <token>' with a token the server accepts")


def _refusal(handler, message: str):
    """A handler of the same kind as ``handler`` that aborts with UNAUTHENTICATED."""
    async def refuse(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def refuse_stream(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover  (makes this an async generator, as streaming handlers are)

    if handler is None:
        return None  # an unknown method: gRPC answers UNIMPLEMENTED
    codecs = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(refuse, **codecs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, **codecs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(refuse, **codecs)
    return grpc.stream_stream_rpc_method_handler(refuse_stream, **codecs)
