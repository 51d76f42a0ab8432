"""``--workers N``: N server processes on one port (SO_REUSEPORT), for machines with
more cores than one Python process can use. This supervisor process serves the
metrics of all of them (prometheus-client's multiprocess mode), forwards SIGTERM,
and starts a new worker when one dies."""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import replace
from multiprocessing.process import BaseProcess

from .security import describe
from .settings import Settings

log = logging.getLogger("server")

POLL = 0.2  # seconds between looks at the workers
RESTART_DELAY = 1.0  # seconds before a dead worker is replaced, so that a crash loop cannot spin


def _worker_main(settings: Settings, index: int, ready) -> None:
    import asyncio
    import sys

    from .app import serve

    from .logs import setup

    setup(settings.log_level, settings.log_format, worker=index)
    sys.exit(asyncio.run(serve(settings, worker=index, on_ready=lambda: ready.put(index))))


def _free_port(host: str) -> int:
    """A port for the workers to share when 0 was asked for: each worker choosing its
    own would give N servers on N ports."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def run_workers(settings: Settings) -> int:
    """Run ``settings.workers`` server processes until SIGTERM or SIGINT; the exit status."""
    metrics_dir = tempfile.mkdtemp(prefix="genserve-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # read by prometheus-client in each worker
    from prometheus_client import CollectorRegistry, multiprocess

    from .metrics_http import serve_metrics

    if settings.port == 0:
        settings = replace(settings, port=_free_port(settings.host))
    if settings.http and settings.http_port == 0:
        settings = replace(settings, http_port=_free_port(settings.http_host or settings.host))
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=metrics_dir)
    metrics_server = serve_metrics(settings.metrics_host, settings.metrics_port, registry)
    if settings.providers[0] != "cpu":  # the workers may run on a GPU: its metrics, where NVML has it
        from .gpu import watch_gpus

        watch_gpus(registry, [settings.cuda_device])
    log.info("listening on %s:%d, metrics on http://%s:%d/metrics", settings.host, settings.port,
             settings.metrics_host, metrics_server.server_port)
    log.info("%s", describe(settings))
    if settings.http:
        log.info("HTTP on %s://%s:%d", "https" if settings.tls_cert else "http", settings.http_host or settings.host,
                 settings.http_port)
    log.info("starting %d workers, each running %d model instances of %d onnxruntime threads",
             settings.workers, settings.model_instances, settings.threads_per_run)

    context = multiprocessing.get_context("spawn")  # no forked gRPC or onnxruntime state
    ready = context.Queue()
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def start(index: int) -> BaseProcess:
        process = context.Process(target=_worker_main, args=(settings, index, ready), name=f"worker-{index}")
        process.start()
        return process

    workers = {index: start(index) for index in range(settings.workers)}
    pending_ready, announced, failures = set(workers), False, 0
    try:
        while not stopping:
            while not ready.empty():
                pending_ready.discard(ready.get())
            if not announced and not pending_ready:
                log.info("ready: serving with %d workers on port %d", len(workers), settings.port)
                announced = True
            for index, process in list(workers.items()):
                if process.is_alive():
                    continue
                multiprocess.mark_process_dead(process.pid, metrics_dir)
                if process.exitcode == 1 and not announced:
                    log.error("worker %d could not start (exit status 1); stopping", index)
                    stopping, failures = True, 1
                    break
                log.error("worker %d (pid %d) died with exit status %s; starting a new one",
                          index, process.pid, process.exitcode)
                time.sleep(RESTART_DELAY)
                workers[index] = start(index)
            time.sleep(POLL)
    finally:
        log.info("stopping %d workers", len(workers))
        for process in workers.values():
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + settings.grace_period + 5
        for process in workers.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("worker pid %d outlived the grace period; killing it", process.pid)
                process.kill()
                process.join()
                failures += 1
            elif process.exitcode not in (0, -signal.SIGTERM):
                failures += 1
        metrics_server.shutdown()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    log.info("stopped")
    return 1 if failures else 0
