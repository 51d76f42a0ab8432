"""OpenTelemetry traces, optional (``pip install 'genserve[otel]'``): each RPC is a span
(the gRPC instrumentation's, and one per HTTP request), with a child span for its time
in the batching queue and one for the onnxruntime run that answered it.

Traces are on when the standard variables ask for an exporter (``OTEL_TRACES_EXPORTER``
or an ``OTEL_EXPORTER_OTLP_*ENDPOINT``; ``OTEL_SDK_DISABLED=true`` wins), or when the
process already has an SDK tracer provider (``opentelemetry-instrument python -m server``,
or a program that embeds the server). Off, nothing of OpenTelemetry is imported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Any, Iterator, Mapping

log = logging.getLogger(__name__)

ASKED_BY = ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
EXPORTER_ALIASES = {"otlp": "otlp_proto_grpc"}  # as the SDK's own configuration reads the names
SERVICE_NAME = "genserve"  # unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES names the service
QUEUE_SPAN, RUN_SPAN = "batcher.queue", "onnxruntime.run"


class Tracing:
    """The server's tracer, and the spans genserve adds to the instrumentation's."""

    def __init__(self, provider: Any, owned: bool):
        from opentelemetry import context, propagate, trace

        self.provider = provider
        self.owned = owned  # built here from the variables, so shut down (flushed) here
        self.tracer = trace.get_tracer("genserve", tracer_provider=provider)
        self._context, self._propagate, self._trace = context, propagate, trace

    def grpc_interceptor(self) -> Any:
        """The gRPC instrumentation's server interceptor: a span per call, continuing the
        caller's trace from its ``traceparent`` metadata."""
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        return aio_server_interceptor(tracer_provider=self.provider)

    @contextlib.contextmanager
    def http_span(self, name: str, method: str, path: str, headers: Mapping[str, str]) -> Iterator[Any]:
        """A server span for one HTTP request, continuing the caller's trace from its
        ``traceparent`` header."""
        parent = self._propagate.extract(headers)
        with self.tracer.start_as_current_span(name, context=parent, kind=self._trace.SpanKind.SERVER,
                                               attributes={"http.request.method": method, "url.path": path}) as span:
            yield span

    def current(self) -> Any:
        """The calling request's context, for spans recorded after its run."""
        return self._context.get_current()

    def record(self, parent: Any, model: str, queued_ns: int, started_ns: int, ended_ns: int, rows: int,
               requests: int, parts: int) -> None:
        """A request's two child spans: its wait in the queue and the run that answered it,
        which ``requests`` requests shared (``rows`` rows over ``parts`` model instances)."""
        queued = self.tracer.start_span(QUEUE_SPAN, context=parent, start_time=queued_ns,
                                        attributes={"genserve.model": model})
        queued.end(end_time=max(queued_ns, started_ns))
        run = self.tracer.start_span(RUN_SPAN, context=parent, start_time=started_ns, attributes={
            "genserve.model": model, "genserve.batch.size": rows, "genserve.batch.requests": requests,
            "genserve.batch.parts": parts})
        run.end(end_time=ended_ns)

    def shutdown(self) -> None:
        if self.owned:
            self.provider.shutdown()


def now_ns() -> int:
    """The clock spans are timed by."""
    return time.time_ns()


def disabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether OTEL_SDK_DISABLED turns OpenTelemetry off, whatever else is set."""
    return environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def asked(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the standard variables ask for traces."""
    if disabled(environ):
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(exporter) or any(environ.get(name) for name in ASKED_BY[1:])


def setup() -> Tracing | None:
    """The server's tracing, or None where it is off or the SDK is missing (logged)."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        if asked():
            log.warning("OTEL_* variables ask for traces, but OpenTelemetry is not installed: "
                        "pip install 'genserve[otel]'; serving without traces")
        return None
    if disabled():
        return None
    installed = trace.get_tracer_provider()
    if isinstance(installed, TracerProvider):
        return Tracing(installed, owned=False)
    if not asked():
        return None
    provider = _provider_from_environment()
    if provider is None:
        return None
    trace.set_tracer_provider(provider)
    return Tracing(provider, owned=True)


def _provider_from_environment() -> Any:
    """A tracer provider with the exporters OTEL_TRACES_EXPORTER names (otlp by default),
    each behind a batch processor that the OTEL_BSP_* variables tune."""
    from importlib.metadata import entry_points

    from opentelemetry.sdk.resources import SERVICE_NAME as SERVICE, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    if resource.attributes.get(SERVICE, "").startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE: SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    names = [n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    exporters = {e.name: e for e in entry_points(group="opentelemetry_traces_exporter")}
    added = 0
    for name in names:
        found = exporters.get(EXPORTER_ALIASES.get(name, name))
        if found is None:
            log.warning("OTEL_TRACES_EXPORTER: no exporter %r is installed (there are %s); for OTLP: "
                        "pip install 'genserve[otel]'", name, ", ".join(sorted(exporters)) or "none")
            continue
        provider.add_span_processor(BatchSpanProcessor(found.load()()))
        added += 1
    if not added:
        log.warning("OTEL_TRACES_EXPORTER: none of %s can be used; serving without traces", ", ".join(names))
        return None
    log.info("tracing: exporting spans through %s as service %s", ", ".join(names),
             resource.attributes.get(SERVICE))
    return provider
