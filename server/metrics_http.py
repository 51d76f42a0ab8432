"""The Prometheus endpoint (``/metrics``) on its own port, served from threads of its
own so that it answers while the event loop is busy. No caller can hold it: a
connection gets READ_TIMEOUT seconds to send its request, and at most
MAX_CONNECTIONS are served at once (more are closed at once)."""

from __future__ import annotations

import logging
import socket
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

log = logging.getLogger(__name__)

READ_TIMEOUT = 10.0  # seconds
MAX_CONNECTIONS = 64


class _Handler(WSGIRequestHandler):
    timeout = READ_TIMEOUT  # the socket's timeout while the request is read (socketserver's)

    def log_message(self, format: str, *args: object) -> None:
        pass  # scrapes are not worth a log line each


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # at the cap: closed unread
            return
        super().process_request(request, client_address)

    def handle_error(self, request, client_address) -> None:
        # A caller that went away or timed out mid-request: its own business, not a traceback.
        log.debug("metrics request from %s failed", client_address, exc_info=True)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Server6(_Server):
    address_family = socket.AF_INET6


def serve_metrics(host: str, port: int, registry: CollectorRegistry) -> WSGIServer:
    """Serve ``registry`` on http://host:port/metrics (port 0: a free one, then the
    server's ``server_port``) until ``shutdown()``."""
    server = make_server(host, port, make_wsgi_app(registry), _Server6 if ":" in host else _Server,
                         handler_class=_Handler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
