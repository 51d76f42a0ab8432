"""``python -m server`` in a process whose tracer provider keeps its spans in memory
(the OpenTelemetry SDK's InMemorySpanExporter) and writes them as JSON lines to the
file that GENSERVE_TEST_SPANS names when the server stops: how the tests read the
spans of a real server process."""

import os
import runpy

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
try:
    runpy.run_module("server", run_name="__main__", alter_sys=True)
finally:
    with open(os.environ["GENSERVE_TEST_SPANS"], "w") as out:
        for span in exporter.get_finished_spans():
            out.write(span.to_json(indent=None) + "\n")
