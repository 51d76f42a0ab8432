"""The gRPC server: services, health, reflection, metrics endpoint, and graceful
shutdown on SIGTERM / SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from dataclasses import dataclass
from typing import Awaitable, Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY, CollectorRegistry

from genserve.oip import inference_pb2, inference_pb2_grpc
from genserve.v1 import generative_pb2, generative_pb2_grpc

from .engine import Engine
from .errors import RepositoryError, StartupError
from .gate import Gate
from .gpu import watch_gpus
from .grpc_gate import GrpcGate
from .grpc_oip import SERVICE as OIP_SERVICE, InferenceServicer
from .grpc_v1 import SERVICE, GenerativeServicer
from .http import HttpApi, raise_open_files_limit, start_http
from .memory import trim_when_idle
from .metrics import Metrics
from .metrics_http import serve_metrics
from .quality import QualityWatch
from .reload import RepositoryWatcher, off_loop
from .security import BearerTokens, describe, read_tokens, server_credentials
from .service import Service
from .settings import Settings
from .tracing import Tracing, setup as setup_tracing

log = logging.getLogger("server")

PENDING_CALLS = 65_536
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
REFLECTION_METHODS = (f"/{reflection.SERVICE_NAME}/ServerReflectionInfo", f"/{REFLECTION_V1}/ServerReflectionInfo")


def enable_reflection(server: grpc.aio.Server, services: tuple[str, ...]) -> None:
    """Server reflection, as grpcurl and other tools ask for it: v1alpha (grpcio-reflection's)
    and v1, whose messages are v1alpha's under another package name, so that v1alpha's
    servicer answers both."""
    names = (*services, reflection.SERVICE_NAME, REFLECTION_V1)
    servicer = reflection.aio.ReflectionServicer(names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo, request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(REFLECTION_V1, {
        "ServerReflectionInfo": handler}),))


SHUTDOWN_STEP = 5.0  # seconds each step of the shutdown after the drain may take


async def _bounded(what: str, step: Awaitable[object], stuck: list[str], seconds: float = SHUTDOWN_STEP) -> None:
    """One step of the shutdown, given at most ``seconds``: a step that hangs is named in
    the log and in ``stuck``, and left behind, so that SIGTERM always ends the process."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        log.error("shutdown: %s did not finish within %.0f s; going on without it", what, seconds)
        stuck.append(what)


def connection_age(settings: Settings) -> list[tuple[str, int]]:
    """gRPC's options for --max-connection-age: a client connection is closed (GOAWAY)
    after that long, so that clients reconnect and spread over replicas added since."""
    if settings.max_connection_age <= 0:
        return []
    return [("grpc.max_connection_age_ms", round(settings.max_connection_age * 1000)),
            ("grpc.max_connection_age_grace_ms", round(settings.max_connection_age_grace * 1000))]


def served_methods() -> frozenset[str]:
    """Every method this server answers, as gRPC spells it: ``/package.Service/Method``."""
    services = (generative_pb2.DESCRIPTOR.services_by_name["GenerativeService"],
                inference_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"],
                health_pb2.DESCRIPTOR.services_by_name["Health"])
    return frozenset(f"/{s.full_name}/{m.name}" for s in services for m in s.methods) | set(REFLECTION_METHODS)
DRAIN_LINGER = 1.0  # seconds
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class App:
    server: grpc.aio.Server
    port: int
    gate: Gate
    health: health.aio.HealthServicer
    service: Service  # the core every door calls
    engine: Engine
    metrics: Metrics
    http: HttpApi | None = None  # None: --no-http
    tracing: Tracing | None = None  # None: no traces (server/tracing.py)

    @property
    def servicer(self) -> Service:
        """The core, by the name embedding programs used for its ``ready`` flag."""
        return self.service

    async def set_health(self, status) -> None:
        for service in ("", SERVICE, OIP_SERVICE):
            await self.health.set(service, status)
        self.metrics.ready.set(1 if status == SERVING else 0)


def create_server(settings: Settings, registry: CollectorRegistry = REGISTRY, worker: int | None = None,
                  tracing: Tracing | None = None) -> App:
    """Build the server and bind its port (0 picks a free one); nothing loaded yet."""
    metrics = Metrics(registry)
    engine = Engine(settings, metrics, worker or 0, tracing)
    service = Service(engine, settings, metrics)
    if settings.quality_sample > 0:
        engine.quality = QualityWatch(engine, settings.quality_sample, metrics)
    limit = settings.max_message_bytes
    gate = Gate(metrics, settings.max_concurrent_requests, access_log=settings.access_log,
                request_ids=settings.log_format == "json", passes=(grpc.aio.AbortError,))
    interceptors: list[grpc.aio.ServerInterceptor] = [GrpcGate(gate, (SERVICE, OIP_SERVICE), served_methods())]
    if settings.auth_token_file is not None:
        tokens = read_tokens(settings.auth_token_file)
        interceptors.insert(0, BearerTokens(tokens, metrics, open_health=not settings.auth_health,
                                            methods=served_methods()))
    if tracing is not None:  # first: refused calls get a span too
        interceptors.insert(0, tracing.grpc_interceptor())
    credentials = (server_credentials(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
                   if settings.tls_cert is not None else None)
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
                 # Calls gRPC holds before the event loop takes them in: past its own limits
                 # (1,000 by default) it cancels them unseen and uncounted, so that the server's
                 # admission gate (--max-concurrent-requests) is what refuses a burst.
                 ("grpc.server.max_pending_requests", PENDING_CALLS),
                 ("grpc.server.max_pending_requests_hard_limit", 2 * PENDING_CALLS),
                 # Worker processes share the port; a lone server must not share it by accident.
                 ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
                 *connection_age(settings)])
    generative_pb2_grpc.add_GenerativeServiceServicer_to_server(GenerativeServicer(service), server)
    inference_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(service), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection(server, (SERVICE, OIP_SERVICE, health.SERVICE_NAME))
    address = f"{settings.host}:{settings.port}"
    try:
        port = (server.add_secure_port(address, credentials) if credentials is not None
                else server.add_insecure_port(address))
    except RuntimeError:  # grpcio raises where older versions returned 0
        port = 0
    if port == 0:
        raise StartupError(f"cannot listen on {address}: the port is taken or the address is not this "
                           "machine's; choose another --port or --host")
    http = HttpApi(settings, service, gate, tracing) if settings.http else None
    return App(server, port, gate, health_servicer, service, engine, metrics, http, tracing)


async def serve(settings: Settings, worker: int | None = None, on_ready: Callable[[], None] | None = None) -> int:
    """Run until SIGTERM or SIGINT; returns the process exit status.

    As one of several ``worker`` processes (server/workers.py) it serves no metrics
    endpoint of its own: the supervisor serves the metrics of all of them.
    """
    tracing = setup_tracing()
    try:
        app = create_server(settings, worker=worker, tracing=tracing)
    except StartupError as exc:
        log.error("cannot serve: %s", exc.reason)
        return 1
    raise_open_files_limit()
    metrics_server = None
    if worker is None:
        try:
            metrics_server = serve_metrics(settings.metrics_host, settings.metrics_port, REGISTRY)
        except OSError as exc:
            log.error("cannot serve: cannot listen on %s:%d for metrics (%s); choose another --metrics-port or "
                      "--metrics-host", settings.metrics_host, settings.metrics_port, exc.strerror)
            return 1
    await app.server.start()
    await app.set_health(NOT_SERVING)
    http_listener = None
    if app.http is not None:
        try:
            http_listener, http_port = await start_http(app.http, reuse_port=worker is not None)
        except StartupError as exc:
            log.error("cannot serve: %s", exc.reason)
            await app.server.stop(0)
            if metrics_server is not None:
                metrics_server.shutdown()
            return 1
    if metrics_server is not None:
        log.info("listening on %s:%d, metrics on http://%s:%d/metrics", settings.host, app.port,
                 settings.metrics_host, metrics_server.server_port)
        if http_listener is not None:
            log.info("HTTP on %s://%s:%d (the Open Inference Protocol's REST API, genserve.v1 as JSON and PNG, "
                     "the playground at /)", "https" if settings.tls_cert else "http",
                     settings.http_host or settings.host, http_port)
        log.info("%s", describe(settings))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    try:
        await asyncio.to_thread(app.engine.load)
    except (StartupError, RepositoryError) as exc:
        log.error("cannot serve: %s", exc.reason)
        await app.server.stop(0)
        if http_listener is not None:
            await http_listener.close()
        if metrics_server is not None:
            metrics_server.shutdown()
        return 1
    app.service.ready = True
    if worker is None and any(m.provider != "CPUExecutionProvider" for m in app.engine.models.values()):
        watch_gpus(REGISTRY, [settings.cuda_device])
    await app.set_health(SERVING)
    if on_ready is not None:
        on_ready()
    log.info("%s: serving %s", "ready" if worker is None else f"worker {worker} ready", app.engine.describe())
    trimmer = loop.create_task(trim_when_idle(lambda: app.gate.calls, lambda: app.gate.busy))
    watcher = None
    if settings.control == "explicit":
        log.info("model control explicit: serving %s; load and unload through the repository API",
                 ", ".join(sorted(app.engine.served)) or "no model yet")
    if settings.poll_interval > 0:
        watch = RepositoryWatcher(app.engine, settings.model_repository, settings.poll_interval, app.metrics)
        watcher = loop.create_task(watch.run())
        log.info("watching %s for new model versions every %.1f s", settings.model_repository,
                 settings.poll_interval)

    await stop.wait()
    log.info("draining: new calls are refused, in-flight calls get %.1f s", settings.grace_period)
    await app.set_health(NOT_SERVING)
    app.gate.draining = True
    started = loop.time()
    if not await app.gate.wait_idle(settings.grace_period):
        log.warning("grace period over: cancelling the calls still running")
    # Keep answering new calls with UNAVAILABLE a moment longer: a call that reaches a
    # server already closing its transport is cancelled instead, which clients don't retry.
    await asyncio.sleep(max(0.0, min(settings.grace_period, DRAIN_LINGER) - (loop.time() - started)))
    # Only streams such as health watches remain; they end with the server.
    stuck: list[str] = []
    await _bounded("the gRPC server's stop", app.server.stop(0.5), stuck)
    if http_listener is not None:
        await _bounded("the HTTP listener's close", http_listener.close(), stuck)
        app.http.close()
    for task in (watcher, trimmer):
        if task is not None:
            task.cancel()
            await _bounded(f"the end of task {task.get_name()}", asyncio.gather(task, return_exceptions=True), stuck)
    await _bounded("the batchers' close", app.engine.close(), stuck)
    if metrics_server is not None:
        await _bounded("the metrics server's shutdown", off_loop(metrics_server.shutdown), stuck)
    if tracing is not None:
        await asyncio.to_thread(tracing.shutdown)  # the last spans exported
    if stuck:  # the calls were drained; what hangs must not keep the process alive
        log.error("stopped, leaving behind: %s", "; ".join(stuck))
        logging.shutdown()
        os._exit(0)
    log.info("stopped")
    return 0
