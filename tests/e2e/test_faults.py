"""Faults under load: a worker killed with SIGKILL while the other serves, and the client
riding through a server restart. (SIGTERM under load is in test_lifecycle.py, the
repository deleted while serving in test_reload.py, CUDA where it cannot load in
test_lifecycle.py.)"""

import os
import signal
import socket
import threading
import time

from prometheus_client.parser import text_string_to_metric_families

from client import GenerativeClient, GenserveError
from helpers import ServerProcess


def _worker_pids(server) -> set[str]:
    families = {f.name: f for f in text_string_to_metric_families(server.scrape())}
    return {s.labels["pid"] for s in families["genserve_model_info"].samples if s.value == 1}


class Load:
    """Callers in threads, each on its own connection, until stopped; failures kept."""

    def __init__(self, target: str, callers: int = 4, retries: int = 8):
        self.ok, self.failures = 0, []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._call, args=(target, seed, retries)) for seed in range(callers)]
        for thread in self._threads:
            thread.start()

    def _call(self, target, seed, retries):
        while not self._stop.is_set():
            with GenerativeClient(target, retries=retries, timeout=30) as client:
                for _ in range(5):  # a few calls per connection, then a new one
                    try:
                        assert client.sample_digits(n=4, seed=seed).shape == (4, 28, 28)
                        self.ok += 1
                    except GenserveError as exc:
                        self.failures.append(exc)

    def wait_for(self, calls: int, timeout: float = 60) -> None:
        deadline, target = time.monotonic() + timeout, self.ok + calls
        while self.ok < target:
            assert time.monotonic() < deadline, f"only {self.ok} calls; failures {self.failures[:3]}"
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def test_a_killed_worker_is_replaced_while_the_other_serves(tiny_repository):
    server = ServerProcess(tiny_repository, "--workers", "2").wait_ready()
    load = None
    try:
        pids = _worker_pids(server)
        assert len(pids) == 2
        load = Load(server.target)
        load.wait_for(20)
        victim = int(min(pids))
        os.kill(victim, signal.SIGKILL)
        load.wait_for(50)  # served on while one worker is dead and its replacement starts
        deadline = time.monotonic() + 60
        while True:
            now = _worker_pids(server)
            if len(now) == 2 and str(victim) not in now:
                break
            assert time.monotonic() < deadline, f"no replacement worker: {now}\n{server.log}"
            time.sleep(0.2)
        load.wait_for(20)
    finally:
        if load is not None:
            load.stop()
        code = server.stop()
    assert not load.failures, load.failures[:3]
    assert f"(pid {victim}) died with exit status -9; starting a new one" in server.log
    assert code == 0, server.log


def test_the_client_retries_through_a_server_restart(tiny_repository):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    first = ServerProcess(tiny_repository, "--port", str(port), "--grace-period", "2").wait_ready()
    load = Load(f"127.0.0.1:{port}", callers=2, retries=15)
    second = None
    try:
        load.wait_for(10)
        assert first.stop() == 0, first.log
        served_before_restart = load.ok
        second = ServerProcess(tiny_repository, "--port", str(port)).wait_ready()
        load.wait_for(10)
        assert load.ok > served_before_restart
    finally:
        load.stop()
        if second is not None:
            assert second.stop() == 0, second.log
    assert not load.failures, load.failures[:3]
