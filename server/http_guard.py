"""What keeps the HTTP door from being used against the rest of the server or its user:
a cap on open connections (beyond it, 503 and closed before any request is read),
the Host and Origin checks that keep web pages of other sites from driving a server on
the user's machine, and the response headers browsers act on."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from typing import Callable
from urllib.parse import urlsplit

from aiohttp import web

from .errors import Forbidden, quoted

FULL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s")
FULL_BODY = b'{"error": "the server holds its maximum of HTTP connections; retry with backoff"}'
PAGE_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
               "script-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
               "form-action 'none'")


class _Full(asyncio.Protocol):
    """A connection over the cap: answered 503 and closed, nothing read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(FULL % (len(FULL_BODY), FULL_BODY))  # type: ignore[attr-defined]
        transport.close()


class Listener:
    """An HTTP port whose connections beyond ``max_connections`` get _Full."""

    def __init__(self, runner: web.AppRunner, max_connections: int, refused: Callable[[], None]):
        self.runner = runner
        self.max_connections = max_connections
        self.refused = refused  # counts a refused connection
        self.server: asyncio.base_events.Server | None = None

    def _protocol(self) -> asyncio.BaseProtocol:
        handlers = self.runner.server
        assert handlers is not None
        if len(handlers.connections) >= self.max_connections:
            self.refused()
            return _Full()
        return handlers()

    async def start(self, host: str, port: int, context: ssl.SSLContext | None, reuse_port: bool) -> int:
        self.server = await asyncio.get_running_loop().create_server(
            self._protocol, host, port, ssl=context, reuse_port=reuse_port or None, backlog=128)
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        await self.runner.cleanup()


class Hosts:
    """Whether a request's Host, and its Origin where a browser sent one, are ones the
    server answers: IP addresses, localhost and this machine's name always, and the
    names of --http-allowed-hosts ('*.domain' for a domain, '*' for any)."""

    def __init__(self, allowed: tuple[str, ...]):
        self.any = "*" in allowed
        self.names = {"localhost", socket.gethostname().lower(), *(n for n in allowed if not n.startswith("*"))}
        self.domains = tuple(n[1:] for n in allowed if n.startswith("*."))  # ".example.com"

    def _known(self, name: str) -> bool:
        name = name.lower().rstrip(".")
        if self.any or name in self.names or (self.domains and name.endswith(self.domains)):
            return True
        try:
            ipaddress.ip_address(name.strip("[]"))
            return True
        except ValueError:
            return False

    def check(self, request: web.Request) -> None:
        """Forbidden unless the Host is known and any Origin is the same or a known host:
        a DNS-rebinding page names its own host, a cross-site page its own origin."""
        host = request.headers.get("Host", "")
        name = urlsplit(f"//{host}").hostname if host.isascii() else None
        if not name or not self._known(name):
            raise Forbidden(f"Host {quoted(host)}: not a name this server answers to; add it to "
                            "--http-allowed-hosts")
        origin = request.headers.get("Origin")
        if origin is None:
            return
        parts = urlsplit(origin) if origin.isascii() else None
        same = parts is not None and parts.netloc.lower() == host.lower()
        if not same and (parts is None or not parts.hostname or not self._known(parts.hostname)):
            raise Forbidden(f"Origin {quoted(origin)}: web pages of other origins may not call this server; "
                            "add their host to --http-allowed-hosts")


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: what browsers act on, on every answer; no framework versions."""
    response.headers["Server"] = "genserve"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if response.content_type == "text/html":
        response.headers["Content-Security-Policy"] = PAGE_POLICY
        response.headers["X-Frame-Options"] = "DENY"
