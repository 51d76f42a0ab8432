"""Server settings: command-line flags, each with a ``GENSERVE_*`` environment
variable as its default (flags win)."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from genserve.cli import OneLineParser, non_negative_float, non_negative_int, port, positive_float, positive_int

from .version_policy import VersionPolicy, parse_policy

PROVIDER_NAMES = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider",
                  "cpu": "CPUExecutionProvider"}
ARENA_STRATEGIES = ("next_power_of_two", "same_as_requested")
GRAPH_OPTIMIZATION = ("disable", "basic", "extended", "all")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


# A version's manifest may set these under "serving", overriding the flags for it.
SERVING_FIELDS = {"max_batch_size": 1, "max_queue_delay_us": 0, "max_gather_us": 0, "instances": 1}  # -> least value
DEFAULT_POLL_INTERVAL = 5.0  # seconds, for --model-control poll without --poll-interval


@dataclass(frozen=True)
class Settings:
    model_repository: Path = Path("models")
    host: str = "0.0.0.0"
    port: int = 50051
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 9090
    http: bool = True
    http_host: str | None = None  # None: --host's
    http_port: int = 8000
    http_timeout: float = 60.0  # seconds; 0: none
    http_max_connections: int = 512
    http_idle_timeout: float = 15.0  # seconds
    http_body_timeout: float = 30.0  # seconds
    http_allowed_hosts: tuple[str, ...] = ()  # beside localhost, IP addresses and this machine's name
    providers: tuple[str, ...] = ("cuda", "cpu")
    cuda_device: int = 0
    gpu_mem_limit: int = 0  # bytes; 0: none
    gpu_arena_extend_strategy: str = "next_power_of_two"
    intra_op_threads: int = 0
    instances: int = 0
    pin_instances: bool = True
    graph_optimization: str = "all"
    max_request_size: int = 1024
    max_sample_n: int = 1024
    max_stream_n: int = 10_000_000
    max_batch_size: int = 256
    max_queue_delay_us: int = 0
    max_gather_us: int = 5000
    max_queue_size: int = 1024
    max_concurrent_requests: int = 1024
    workers: int = 1
    poll_interval: float = 0.0
    model_control: str = ""  # "none", "poll" or "explicit"; "": poll with --poll-interval, else none
    load_model: tuple[str, ...] = ()  # explicit model control: the models loaded at start ("*": all)
    quality_sample: float = 0.0  # the share of conditional generators' images read by the classifier
    quality_gate: float = 0.0  # 0: off; else the least agreement (or confidence and spread) a new version needs
    max_connection_age: float = 300.0
    max_connection_age_grace: float = 30.0
    version_policy: VersionPolicy = VersionPolicy("latest", latest=2)
    grace_period: float = 10.0
    log_level: str = "INFO"
    log_format: str = "text"
    access_log: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    auth_token_file: Path | None = None
    auth_health: bool = False

    def serving(self, manifest: dict) -> dict[str, int]:
        """The batching settings of a model version: its manifest's ``serving`` over the
        flags; a bad value is a ValueError naming the field."""
        given = manifest.get("serving", {})
        if not isinstance(given, dict):
            raise ValueError("serving: must be an object of " + ", ".join(SERVING_FIELDS))
        unknown = sorted(set(given) - set(SERVING_FIELDS))
        if unknown:
            raise ValueError(f"serving.{unknown[0]}: not a setting; use {', '.join(SERVING_FIELDS)}")
        settings = {"max_batch_size": self.max_batch_size, "max_queue_delay_us": self.max_queue_delay_us,
                    "max_gather_us": self.max_gather_us, "instances": self.model_instances}
        for key, value in given.items():
            least = SERVING_FIELDS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= 2**31 - 1:
                raise ValueError(f"serving.{key}: must be a whole number from {least} to {2**31 - 1:,}, got "
                                 f"{json.dumps(value)[:40]}")
            settings[key] = value
        return settings

    @property
    def control(self) -> str:
        """The model-control mode in force: "none", "poll" or "explicit"."""
        return self.model_control or ("poll" if self.poll_interval > 0 else "none")

    @property
    def max_message_bytes(self) -> int:
        """The largest message a valid request or response can be: a full batch of
        float32 images plus room for the envelope."""
        return max(self.max_request_size, self.max_sample_n) * 28 * 28 * 4 + 64 * 1024

    @property
    def threads_per_run(self) -> int:
        """onnxruntime intra-op threads per run: as asked, or one. The cores go to
        concurrent runs instead (``model_instances``): threads inside one run wait for
        each other at every layer, and for any of them the OS gave to someone else."""
        return self.intra_op_threads or 1

    @property
    def model_instances(self) -> int:
        """Concurrent runs per worker: as asked, or the cores shared out among the workers
        and the threads of each run, so that workers x instances x threads does not
        exceed them."""
        if self.instances:
            return self.instances
        return max(1, available_cores() // (self.workers * self.threads_per_run))

    def instance_cores(self, worker: int = 0) -> list[frozenset[int]] | None:
        """The cores each model instance's thread is pinned to in worker ``worker``
        (0..workers-1): ``threads_per_run`` of them per instance, none shared with another
        instance or worker. None where pinning is off, where the OS offers no affinity
        call, or where the instances of all workers do not fit the cores: the OS shares
        out an oversubscribed machine better than a fixed plan."""
        cores = allowed_cores()
        if not self.pin_instances or cores is None:
            return None
        quota = cpu_quota()
        if quota is not None and quota < len(cores):
            # A container's CPU limit on a shared machine: the cores are not this process's
            # alone, and a pinned thread could not leave one that another process keeps busy.
            return None
        per_run, instances = self.threads_per_run, self.model_instances
        first = worker * instances * per_run
        if self.workers * instances * per_run > len(cores) or worker >= self.workers:
            return None
        return [frozenset(cores[first + i * per_run:first + (i + 1) * per_run]) for i in range(instances)]


def allowed_cores() -> list[int] | None:
    """The cores this process may run on, in order; None where the OS does not say."""
    try:
        return sorted(os.sched_getaffinity(0))  # honours taskset and container CPU sets
    except AttributeError:
        return None


def cpu_quota(cgroups: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPUs' worth of time this process's cgroup may use (a container's CPU limit,
    the smallest on the way up from its cgroup), or None where there is no such limit
    or it cannot be read."""
    try:
        lines = cgroups.read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        if controllers and "cpu" not in controllers.split(","):
            continue
        base = root / controllers  # cgroup v2 has no controller list, v1 a folder per hierarchy
        parts = [p for p in path.split("/") if p]
        for depth in range(len(parts), -1, -1):
            limits.append(_limit(base.joinpath(*parts[:depth]), v2=not controllers))
    known = [limit for limit in limits if limit is not None]
    return min(known) if known else None


def _limit(folder: Path, v2: bool) -> float | None:
    try:
        if v2:  # "max 100000" or "200000 100000"
            quota, period = (folder / "cpu.max").read_text().split()
            return None if quota == "max" else int(quota) / int(period)
        quota = int((folder / "cpu.cfs_quota_us").read_text())  # -1: none
        return None if quota < 0 else quota / int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None


def available_cores() -> int:
    """The cores this process may use: those it may run on, or fewer under a container's
    CPU limit (2 CPUs' worth of time on a 16-core node gives 2)."""
    cores = allowed_cores()
    count = len(cores) if cores is not None else os.cpu_count() or 1
    quota = cpu_quota()
    return count if quota is None else max(1, min(count, int(quota)))


def _env(name: str, default):
    return os.environ.get(f"GENSERVE_{name}", default)


def _optional_path(name: str) -> Path | None:
    value = os.environ.get(f"GENSERVE_{name}")
    return Path(value) if value else None


# How a GENSERVE_* variable may say on or off.
SWITCH_VALUES = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _flag(name: str) -> bool:
    return SWITCH_VALUES.get(os.environ.get(f"GENSERVE_{name}", "").lower(), False)


def _switch(parser: argparse.ArgumentParser, name: str, default: bool) -> bool:
    """A ``GENSERVE_*`` variable for a switch that is on by default, so that it can say off."""
    text = os.environ.get(f"GENSERVE_{name}")
    if text is None:
        return default
    value = text.strip().lower()
    if value not in SWITCH_VALUES:
        parser.error(f"GENSERVE_{name}={text!r}: expected one of {', '.join(SWITCH_VALUES)}")
    return SWITCH_VALUES[value]


def _providers(text: str) -> tuple[str, ...]:
    names = tuple(p.strip().lower() for p in text.split(",") if p.strip())
    unknown = [p for p in names if p not in PROVIDER_NAMES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a comma-separated list of {', '.join(PROVIDER_NAMES)}")
    return names


def _hosts(text: str) -> tuple[str, ...]:
    names = tuple(name.strip().lower() for name in text.split(",") if name.strip())
    bad = [name for name in names if not re.fullmatch(r"(\*|(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?)", name)]
    if bad:
        raise argparse.ArgumentTypeError(f"{bad[0]!r}: expected host names, '*.domain' or '*', comma-separated")
    return names


def _bytes(text: str) -> int:
    """A byte count: digits, with an optional K, M or G (powers of 1,024)."""
    found = re.fullmatch(r"(\d+)([KMG]?)i?B?", str(text).strip(), re.IGNORECASE)
    if not found:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a byte count such as 4294967296 or 4G")
    return int(found[1]) << {"": 0, "K": 10, "M": 20, "G": 30}[found[2].upper()]


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number from 0 to 1")
    return value


def _model_name(text: str) -> str:
    if text != "*" and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a model's folder name in the repository, or '*'")
    return text


def _one_of(*options: str):
    """A type check instead of ``choices``, which argparse skips for defaults from variables."""
    def check(text: str) -> str:
        if text not in options:
            raise argparse.ArgumentTypeError(f"{text!r}: expected one of {', '.join(options)}")
        return text
    check.__name__ = "choice"
    return check


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Each flag's default after its help, where it has one worth printing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class _Parser(OneLineParser):
    def explain(self, message: str) -> str:
        # A bad GENSERVE_* value fails argparse's type check like a bad flag; name its source.
        for action in self._actions:
            env = f"GENSERVE_{action.dest.upper()}"
            if action.option_strings and f"argument {action.option_strings[0]}:" in message and env in os.environ:
                message += f" (from {env}={os.environ[env]!r})"
        return message


def build_parser() -> argparse.ArgumentParser:
    d = Settings()
    p = _Parser(prog="python -m server", description=(
        "Serve genserve's ONNX models on onnxruntime: over gRPC (genserve.v1.GenerativeService, the Open Inference "
        "Protocol's inference.GRPCInferenceService, grpc.health.v1.Health, server reflection), over HTTP (the Open "
        "Inference Protocol's REST API, genserve.v1 as JSON and PNG, and the playground page at /), with "
        "Prometheus metrics. Every flag defaults to its GENSERVE_* variable."),
        formatter_class=_Help)
    p.add_argument("--model-repository", type=Path, default=Path(_env("MODEL_REPOSITORY", d.model_repository)),
                   help="model repository: <repo>/<model>/<version>/model.onnx + manifest.json "
                        "[GENSERVE_MODEL_REPOSITORY]")
    p.add_argument("--host", default=_env("HOST", d.host), help="gRPC listen address [GENSERVE_HOST]")
    p.add_argument("--port", type=port, default=_env("PORT", d.port),
                   help="gRPC port; 0 picks a free one [GENSERVE_PORT]")
    p.add_argument("--metrics-host", default=_env("METRICS_HOST", d.metrics_host),
                   help="metrics listen address [GENSERVE_METRICS_HOST]")
    p.add_argument("--metrics-port", type=port, default=_env("METRICS_PORT", d.metrics_port),
                   help="Prometheus /metrics port; 0 picks a free one [GENSERVE_METRICS_PORT]")
    p.add_argument("--http", action=argparse.BooleanOptionalAction, default=_switch(p, "HTTP", d.http),
                   help="serve HTTP too: the Open Inference Protocol's REST API, genserve.v1 as JSON and PNG, "
                        "and the playground page at / [GENSERVE_HTTP]")
    p.add_argument("--http-host", default=_env("HTTP_HOST", d.http_host),
                   help="HTTP listen address; default: --host's [GENSERVE_HTTP_HOST]")
    p.add_argument("--http-port", type=port, default=_env("HTTP_PORT", d.http_port),
                   help="HTTP port; 0 picks a free one [GENSERVE_HTTP_PORT]")
    p.add_argument("--http-timeout", type=non_negative_float, metavar="SECONDS",
                   default=_env("HTTP_TIMEOUT", d.http_timeout),
                   help="an HTTP call's deadline where it states none (the X-Request-Timeout header, or the Open "
                        "Inference Protocol's timeout parameter): a call still queued then gets 504; 0: none "
                        "[GENSERVE_HTTP_TIMEOUT]")
    p.add_argument("--http-max-connections", type=positive_int, default=_env("HTTP_MAX_CONNECTIONS",
                                                                            d.http_max_connections),
                   help="HTTP connections open at once; more are answered 503 and closed, so that HTTP cannot "
                        "take the file descriptors gRPC needs [GENSERVE_HTTP_MAX_CONNECTIONS]")
    p.add_argument("--http-idle-timeout", type=positive_float, metavar="SECONDS",
                   default=_env("HTTP_IDLE_TIMEOUT", d.http_idle_timeout),
                   help="close an HTTP connection that sends no complete request head for this long: new, "
                        "between requests, or part-way through its headers [GENSERVE_HTTP_IDLE_TIMEOUT]")
    p.add_argument("--http-body-timeout", type=positive_float, metavar="SECONDS",
                   default=_env("HTTP_BODY_TIMEOUT", d.http_body_timeout),
                   help="the longest an HTTP request's body may take to arrive; then 408 and the connection "
                        "closed [GENSERVE_HTTP_BODY_TIMEOUT]")
    p.add_argument("--http-allowed-hosts", type=_hosts, metavar="NAMES",
                   default=_env("HTTP_ALLOWED_HOSTS", ",".join(d.http_allowed_hosts)),
                   help="host names HTTP answers to beside localhost, IP addresses and this machine's name, "
                        "comma-separated ('*.example.com' for a domain, '*' for any): a request for any other "
                        "Host, or from a web page of another origin, is refused with 403, so that no page a "
                        "user opens can drive the server [GENSERVE_HTTP_ALLOWED_HOSTS]")
    p.add_argument("--providers", type=_providers, default=_env("PROVIDERS", ",".join(d.providers)),
                   help="onnxruntime execution providers in order of preference (tensorrt, cuda, cpu): "
                        "cuda,cpu falls back to the CPU where CUDA cannot load; cuda alone refuses to start "
                        "without it; tensorrt,cuda,cpu tries TensorRT first [GENSERVE_PROVIDERS]")
    p.add_argument("--cuda-device", type=non_negative_int, default=_env("CUDA_DEVICE", d.cuda_device),
                   help="the GPU the CUDA and TensorRT providers run on, by index [GENSERVE_CUDA_DEVICE]")
    p.add_argument("--gpu-mem-limit", type=_bytes, metavar="BYTES", default=_env("GPU_MEM_LIMIT", d.gpu_mem_limit),
                   help="most GPU memory the CUDA provider's arena takes per session, in bytes or with K, M or G "
                        "(4G); 0: no limit [GENSERVE_GPU_MEM_LIMIT]")
    p.add_argument("--gpu-arena-extend-strategy", type=_one_of(*ARENA_STRATEGIES),
                   metavar="{" + ",".join(ARENA_STRATEGIES) + "}",
                   default=_env("GPU_ARENA_EXTEND_STRATEGY", d.gpu_arena_extend_strategy),
                   help="how the CUDA provider's arena grows: by powers of two (fewer allocations) or by what is "
                        "asked (less memory held) [GENSERVE_GPU_ARENA_EXTEND_STRATEGY]")
    p.add_argument("--intra-op-threads", type=non_negative_int, default=_env("INTRA_OP_THREADS", d.intra_op_threads),
                   help="onnxruntime threads per model run; 0: one, the cores going to --instances "
                        "[GENSERVE_INTRA_OP_THREADS]")
    p.add_argument("--instances", type=non_negative_int, default=_env("INSTANCES", d.instances),
                   help="model runs at once per worker, as Triton's instance count; a long request that finds "
                        "the model idle is split across them; 0: the cores divided by --workers and "
                        "--intra-op-threads [GENSERVE_INSTANCES]")
    p.add_argument("--pin-instances", action=argparse.BooleanOptionalAction,
                   default=_switch(p, "PIN_INSTANCES", d.pin_instances),
                   help="pin each model instance's thread to cores of its own (and each worker's to its own "
                        "share), so that two runs never share a core while another idles; only where the "
                        "instances of all workers fit the cores, and not on a GPU [GENSERVE_PIN_INSTANCES]")
    p.add_argument("--graph-optimization", type=_one_of(*GRAPH_OPTIMIZATION), metavar="{" + ",".join(GRAPH_OPTIMIZATION) + "}",
                   default=_env("GRAPH_OPTIMIZATION", d.graph_optimization),
                   help="onnxruntime graph optimisation level [GENSERVE_GRAPH_OPTIMIZATION]")
    p.add_argument("--max-request-size", type=positive_int, default=_env("MAX_REQUEST_SIZE", d.max_request_size),
                   help="most images or latents in one request [GENSERVE_MAX_REQUEST_SIZE]")
    p.add_argument("--max-sample-n", type=positive_int, default=_env("MAX_SAMPLE_N", d.max_sample_n),
                   help="most images one Sample call may ask for [GENSERVE_MAX_SAMPLE_N]")
    p.add_argument("--max-stream-n", type=positive_int, default=_env("MAX_STREAM_N", d.max_stream_n),
                   help="most images one SampleStream call may ask for [GENSERVE_MAX_STREAM_N]")
    p.add_argument("--max-batch-size", type=positive_int, default=_env("MAX_BATCH_SIZE", d.max_batch_size),
                   help="dynamic batching: most rows in one model run; concurrent requests are merged up to "
                        "it and larger ones run in chunks of it [GENSERVE_MAX_BATCH_SIZE]")
    p.add_argument("--max-queue-delay-us", type=non_negative_int,
                   default=_env("MAX_QUEUE_DELAY_US", d.max_queue_delay_us),
                   help="dynamic batching: microseconds a request may wait for others to join its batch "
                        "while the model is idle; 0 runs at once and batches only what queued up during "
                        "the previous run [GENSERVE_MAX_QUEUE_DELAY_US]")
    p.add_argument("--max-gather-us", type=non_negative_int, default=_env("MAX_GATHER_US", d.max_gather_us),
                   help="dynamic batching under load: microseconds a batch may be held while requests keep "
                        "arriving, where the model runs faster than requests are taken in; it waits only "
                        "while that pays, so a lone caller is not held; 0: off [GENSERVE_MAX_GATHER_US]")
    p.add_argument("--max-queue-size", type=positive_int, default=_env("MAX_QUEUE_SIZE", d.max_queue_size),
                   help="requests that may wait per model; more get RESOURCE_EXHAUSTED at once "
                        "[GENSERVE_MAX_QUEUE_SIZE]")
    p.add_argument("--max-concurrent-requests", type=positive_int,
                   default=_env("MAX_CONCURRENT_REQUESTS", d.max_concurrent_requests),
                   help="calls in progress at once per worker; more get UNAVAILABLE at once, which clients "
                        "retry with backoff [GENSERVE_MAX_CONCURRENT_REQUESTS]")
    p.add_argument("--workers", type=positive_int, default=_env("WORKERS", d.workers),
                   help="server processes sharing the port (SO_REUSEPORT), metrics of all on the metrics "
                        "port [GENSERVE_WORKERS]")
    p.add_argument("--max-connection-age", type=non_negative_float, metavar="SECONDS",
                   default=_env("MAX_CONNECTION_AGE", d.max_connection_age),
                   help="close each client connection after this long (clients reconnect, and so reach replicas "
                        "added since); 0: never [GENSERVE_MAX_CONNECTION_AGE]")
    p.add_argument("--max-connection-age-grace", type=non_negative_float, metavar="SECONDS",
                   default=_env("MAX_CONNECTION_AGE_GRACE", d.max_connection_age_grace),
                   help="how long calls on an aged connection may still run [GENSERVE_MAX_CONNECTION_AGE_GRACE]")
    p.add_argument("--version-policy", type=parse_policy, default=_env("VERSION_POLICY", str(d.version_policy)),
                   metavar="POLICY", help="the versions of each model to serve: latest:N (the N newest), all, "
                   "or specific:V1,V2,...; at start and on every reload [GENSERVE_VERSION_POLICY]")
    p.add_argument("--poll-interval", type=non_negative_float, default=_env("POLL_INTERVAL", d.poll_interval),
                   metavar="SECONDS",
                   help="hot reload: look for new model versions this often and swap in each that passes "
                        "its checks; 0: off [GENSERVE_POLL_INTERVAL]")
    p.add_argument("--model-control", type=_one_of("none", "poll", "explicit"), metavar="{none,poll,explicit}",
                   default=_env("MODEL_CONTROL", None),
                   help="as Triton's: none, the repository's models at start and no change; poll, those and "
                        "every new version found (--poll-interval, default 5 s); explicit, only the models "
                        "--load-model names and those the repository API loads (default: poll with "
                        "--poll-interval, else none) [GENSERVE_MODEL_CONTROL]")
    p.add_argument("--load-model", action="append", metavar="NAME", type=_model_name,
                   default=[name for name in _env("LOAD_MODEL", "").split(",") if name] or None,
                   help="explicit model control: load this model at start, repeatable; '*' for all "
                        "[GENSERVE_LOAD_MODEL, comma-separated]")
    p.add_argument("--quality-sample", type=_fraction, metavar="F", default=_env("QUALITY_SAMPLE", d.quality_sample),
                   help="read this share (0-1) of the images conditional generators serve with the digit "
                        "classifier, off the request path, into the quality gauges [GENSERVE_QUALITY_SAMPLE]")
    p.add_argument("--quality-gate", type=_fraction, metavar="A", default=_env("QUALITY_GATE", d.quality_gate),
                   help="refuse a new generator version (at start, reload or load) whose seeded samples the "
                        "classifier reads as the digit asked for less often than A (unconditional ones: whose "
                        "mean confidence or spread over the digits is below A); 0: off [GENSERVE_QUALITY_GATE]")
    p.add_argument("--grace-period", type=float, default=_env("GRACE_PERIOD", d.grace_period),
                   help="seconds in-flight calls get to finish on SIGTERM/SIGINT [GENSERVE_GRACE_PERIOD]")
    p.add_argument("--log-level", type=_one_of(*LOG_LEVELS), metavar="{" + ",".join(LOG_LEVELS) + "}",
                   default=_env("LOG_LEVEL", d.log_level),
                   help="the least severe log lines written (to stderr) [GENSERVE_LOG_LEVEL]")
    p.add_argument("--log-format", type=_one_of("text", "json"), metavar="{text,json}",
                   default=_env("LOG_FORMAT", d.log_format),
                   help="text lines, or JSON lines with time, level, logger, message and, for a call, its "
                        "request id, rpc, model, version, status code and duration [GENSERVE_LOG_FORMAT]")
    p.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=_switch(p, "ACCESS_LOG", d.access_log),
                   help="one log line per call (logger server.access) [GENSERVE_ACCESS_LOG]")
    security = p.add_argument_group("security", "TLS, mutual TLS and bearer tokens; all off by default. "
                                                "Bind --metrics-host to an internal interface when the gRPC "
                                                "port faces the outside.")
    security.add_argument("--tls-cert", type=Path, default=_optional_path("TLS_CERT"), metavar="PEM",
                          help="serve TLS with this certificate chain (needs --tls-key) [GENSERVE_TLS_CERT]")
    security.add_argument("--tls-key", type=Path, default=_optional_path("TLS_KEY"), metavar="PEM",
                          help="the certificate's private key [GENSERVE_TLS_KEY]")
    security.add_argument("--tls-client-ca", type=Path, default=_optional_path("TLS_CLIENT_CA"), metavar="PEM",
                          help="mutual TLS: refuse clients without a certificate signed by this CA "
                               "[GENSERVE_TLS_CLIENT_CA]")
    security.add_argument("--auth-token-file", type=Path, default=_optional_path("AUTH_TOKEN_FILE"),
                          metavar="FILE", help="require 'authorization: Bearer <token>' on every call, the "
                                               "tokens one per line in FILE [GENSERVE_AUTH_TOKEN_FILE]")
    security.add_argument("--auth-health", action="store_true", default=_flag("AUTH_HEALTH"),
                          help="require the token on the health service too; by default it stays open for "
                               "probes [GENSERVE_AUTH_HEALTH]")
    return p


def parse(argv: list[str] | None = None) -> Settings:
    """Flags over ``GENSERVE_*`` variables over defaults. argparse runs the same type
    checks on a variable's text as on a flag's."""
    parser = build_parser()
    values = vars(parser.parse_args(argv))
    values["load_model"] = tuple(values["load_model"] or ())
    values["model_control"] = values["model_control"] or ""
    settings = Settings(**values)
    if (settings.tls_cert is None) != (settings.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if settings.tls_client_ca is not None and settings.tls_cert is None:
        parser.error("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)")
    if settings.auth_health and settings.auth_token_file is None:
        parser.error("--auth-health needs --auth-token-file")
    if settings.load_model and settings.control != "explicit":
        parser.error("--load-model needs --model-control explicit; the other modes load every model")
    if settings.model_control in ("none", "explicit") and settings.poll_interval > 0:
        parser.error(f"--poll-interval polls the repository: it needs --model-control poll, not "
                     f"{settings.model_control}")
    if settings.control == "explicit" and settings.workers > 1:
        parser.error("--model-control explicit needs --workers 1: a load or unload reaches one worker's models")
    if settings.model_control == "poll" and settings.poll_interval == 0:
        settings = replace(settings, poll_interval=DEFAULT_POLL_INTERVAL)
    return settings
