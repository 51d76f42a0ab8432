"""Start the server under test and the echo server as child processes on loopback."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Child:
    """A child process whose stderr/stdout lines are kept, with its port from its log."""

    def __init__(self, args: list[str], port_pattern: str, ready_pattern: str, timeout: float = 120):
        self.proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.port = self.metrics_port = None
        ready = threading.Event()

        def pump():
            for line in self.proc.stdout:
                self.lines.append(line)
                found = re.search(port_pattern, line)
                if found:
                    self.port = int(found[1])
                    if found.lastindex and found.lastindex > 1:
                        self.metrics_port = int(found[2])
                if re.search(ready_pattern, line):
                    ready.set()
        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"{' '.join(args)} did not start:\n{''.join(self.lines)}")

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS in /proc")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_server(repository: str, *args: str) -> Child:
    return Child(["-m", "server", "--model-repository", repository, "--host", "127.0.0.1", "--port", "0",
                  "--metrics-host", "127.0.0.1", "--metrics-port", "0", *args],
                 r"listening on [\d.]+:(\d+), metrics on http://[\d.]+:(\d+)", r"ready: serving")


def start_echo() -> Child:
    return Child(["-m", "bench.echo"], r"echo listening on [\d.]+:(\d+)", r"echo listening")
