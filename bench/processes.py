"""Child processes on loopback: the server under test (``python -m server`` on free
ports) and the echo server. The one launcher of the tests and the benchmarks."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LISTENING = r"listening on [\d.]+:(\d+), metrics on http://[\d.]+:(\d+)"
READY = "ready: serving"
HTTP = r"HTTP on https?://[\d.]+:(\d+)"


class Process:
    """A child Python process whose output lines are kept as they come, with its ports
    read from the line that matches ``listening`` and its readiness from ``ready``."""

    started: list["Process"] = []  # every one, so that a failed run can leave none behind

    def __init__(self, args: list[str], *, listening: str, ready: str, env: dict | None = None,
                 python: str = sys.executable, cwd: Path = ROOT):
        self.args = args
        self.proc = subprocess.Popen([python, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env={**os.environ, **(env or {})})
        Process.started.append(self)
        self.lines: list[str] = []
        self.port: int | None = None
        self.metrics_port: int | None = None
        self.http_port: int | None = None
        self._listening, self._ready = threading.Event(), threading.Event()

        def pump():
            for line in self.proc.stdout:
                self.lines.append(line)
                found = re.search(listening, line)
                if found:
                    self.port = int(found[1])
                    if found.lastindex and found.lastindex > 1:
                        self.metrics_port = int(found[2])
                    self._listening.set()
                if re.search(ready, line):
                    self._ready.set()
                found = re.search(HTTP, line)
                if found:
                    self.http_port = int(found[1])
        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def _wait(self, event: threading.Event, timeout: float, what: str) -> "Process":
        deadline = time.monotonic() + timeout
        while not event.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._pump.join(5)
                raise AssertionError(f"{' '.join(self.args[:2])} {what}:\n{self.log}")
        return self

    def wait_listening(self, timeout: float = 60) -> "Process":
        return self._wait(self._listening, timeout, "did not start listening")

    def wait_ready_logged(self, timeout: float = 60) -> "Process":
        """Until the process logs that it is ready (for a server whose health needs a secret)."""
        return self._wait(self._ready, timeout, "never logged that it is ready")

    def wait_exit(self, timeout: float = 60) -> int:
        """Its exit status, once it has exited by itself and its last lines are read."""
        code = self.proc.wait(timeout)
        self._pump.join(5)
        return code

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS in /proc")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then its exit status; killed, and an error, if it outlives ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.wait_exit(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"{' '.join(self.args[:2])} did not exit within {timeout} s of SIGTERM:\n"
                                 f"{self.log}") from None

    @classmethod
    def kill_all(cls) -> None:
        for process in cls.started:
            if process.proc.poll() is None:
                process.proc.kill()


class ServerProcess(Process):
    """``python -m server`` on free loopback ports, gRPC and metrics (``module``: another
module that runs the server's command line)."""

    def __init__(self, repository: Path | str, *args: str, env: dict | None = None,
                 python: str = sys.executable, cwd: Path = ROOT, module: str = "server"):
        super().__init__(["-m", module, "--model-repository", str(repository), "--host", "127.0.0.1",
                          "--port", "0", "--metrics-host", "127.0.0.1", "--metrics-port", "0",
                          "--http-port", "0", *args],
                         listening=LISTENING, ready=READY, env=env, python=python, cwd=cwd)

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as response:
            return response.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample on the metrics endpoint; 0 when it is not there yet."""
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(self.scrape()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return sample.value
        return 0.0

    def wait_ready(self, timeout: float = 60, credentials=None) -> "ServerProcess":
        """Until the health service reports SERVING (over TLS with ``credentials``)."""
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        self.wait_listening(timeout)
        deadline = time.monotonic() + timeout
        channel = grpc.secure_channel(self.target, credentials) if credentials else grpc.insecure_channel(self.target)
        with channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                        return self
                except grpc.RpcError:
                    pass
                time.sleep(0.05)
        self._pump.join(1)
        raise AssertionError(f"server never reported SERVING:\n{self.log}")


def start_server(repository: Path | str, *args: str) -> ServerProcess:
    return ServerProcess(repository, *args).wait_ready_logged(120)


def commit() -> str:
    """The checkout's commit, short, that a benchmark's table names ("?" outside git)."""
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return found.stdout.strip() or "?"


def stop_and_report(server: ServerProcess) -> int:
    """Stops the server and prints its exit status and the tracebacks in its log; 1 if
    either says something went wrong, else 0."""
    code = server.stop()
    tracebacks = server.log.count("Traceback")
    print(f"server exit status {code}, {tracebacks} tracebacks in its log")
    return 1 if code or tracebacks else 0


def start_echo(*args: str) -> Process:
    return Process(["-m", "bench.echo", *args], listening=r"echo listening on [\d.]+:(\d+)", ready="echo listening"
                   ).wait_ready_logged(120)
