"""Every Prometheus metric of the server, in one place. Names follow Prometheus
conventions: ``genserve_`` prefix, base units, ``_total`` on counters. Each gauge
says how the workers' values combine under ``--workers`` (multiprocess mode)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


class Metrics:
    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self.requests = Counter(
            "genserve_requests", "Finished requests by method, model, status code (gRPC's names, over HTTP "
            "too) and protocol (grpc or http).",
            ["rpc", "model", "code", "protocol"], registry=registry)
        self.request_seconds = Histogram(
            "genserve_request_duration_seconds", "Time from receiving a request to answering it, by method and "
            "by the served model it ran on (empty before one was resolved), and by protocol.",
            ["rpc", "model", "protocol"], buckets=LATENCY_BUCKETS, registry=registry)
        self.inference_seconds = Histogram(
            "genserve_inference_duration_seconds", "Time of one onnxruntime run.",
            ["model"], buckets=LATENCY_BUCKETS, registry=registry)
        self.batch_size = Histogram(
            "genserve_batch_size", "Rows (images or latents) in one onnxruntime run, after batching.",
            ["model"], buckets=BATCH_BUCKETS, registry=registry)
        self.queue_seconds = Histogram(
            "genserve_queue_duration_seconds", "Time a request waited in its model's batching queue.",
            ["model"], buckets=LATENCY_BUCKETS, registry=registry)
        self.queue_depth = Gauge(
            "genserve_queue_depth", "Requests waiting in a model's batching queue.",
            ["model"], registry=registry, multiprocess_mode="livesum")
        self.queue_rejections = Counter(
            "genserve_queue_rejections", "Requests refused because the model's queue was full.",
            ["model"], registry=registry)
        self.unauthenticated = Counter(
            "genserve_unauthenticated_requests", "Calls refused for a missing, malformed or invalid bearer token.",
            ["rpc", "reason"], registry=registry)
        self.reloads = Counter(
            "genserve_model_reloads", "New model versions found by --poll-interval or loaded through the "
            "repository API: loaded, or refused (sha256, load, contract, warm-up or quality gate failed; the old "
            "version kept serving).",
            ["model", "result"], registry=registry)
        self.repository_readable = Gauge(
            "genserve_repository_readable", "0 while the model repository cannot be read (the loaded "
            "models keep serving).", registry=registry, multiprocess_mode="livemin")
        self.repository_readable.set(1)
        self.in_flight = Gauge(
            "genserve_requests_in_flight", "gRPC requests being handled now.", registry=registry,
            multiprocess_mode="livesum")
        self.model_info = Gauge(
            "genserve_model_info", "Models being served (value 1), with version and execution provider.",
            ["model", "version", "provider"], registry=registry,
            multiprocess_mode="liveall")  # with --workers: one series per worker, labelled pid
        self.quality_agreement = Gauge(
            "genserve_quality_agreement", "--quality-sample: of the latest sampled images a conditional generator "
            "served, the share the digit classifier reads as the digit asked for.",
            ["model", "version"], registry=registry, multiprocess_mode="liveall")
        self.quality_digit_share = Gauge(
            "genserve_quality_digit_share", "--quality-sample: of the latest sampled images, the share the "
            "classifier reads as each digit.", ["model", "version", "digit"], registry=registry,
            multiprocess_mode="liveall")
        self.quality_sampled = Counter(
            "genserve_quality_sampled_images", "--quality-sample: images read by the classifier off the request "
            "path.", ["model", "version"], registry=registry)
        self.quality_gate = Counter(
            "genserve_quality_gate", "--quality-gate: new generator versions admitted or refused by the "
            "classifier's reading of their seeded samples.", ["model", "result"], registry=registry)
        self.quality_gate_score = Gauge(
            "genserve_quality_gate_score", "--quality-gate: the figure a generator version was judged by at load "
            "(agreement, or the lower of mean confidence and spread).", ["model", "version"], registry=registry,
            multiprocess_mode="liveall")
        self.http_connections_refused = Counter(
            "genserve_http_connections_refused", "HTTP connections answered 503 and closed at once: the server "
            "held --http-max-connections.", registry=registry)
        self.ready = Gauge(
            "genserve_ready", "1 while every model is loaded and the server takes requests.", registry=registry,
            multiprocess_mode="livemin")  # with --workers: 1 only when every worker is ready
