"""Spreading calls over replicas: a client with round_robin over two server processes
calls both; with a short --max-connection-age, a long-lived client that started on one
server also reaches a server started after it."""

import socket

from client import GenerativeClient
from helpers import ServerProcess, served, wait_until


def calls(server) -> float:
    return server.metric("genserve_requests_total", rpc="Sample", model="gan_generator", code="OK")


def test_round_robin_spreads_calls_over_every_address(tiny_repository):
    with served(tiny_repository) as first, served(tiny_repository) as second:
        target = f"ipv4:127.0.0.1:{first.port},127.0.0.1:{second.port}"
        with GenerativeClient(target, retries=0, load_balancing="round_robin") as client:
            for seed in range(40):
                client.sample_digits(n=1, seed=seed)
        assert calls(first) > 0 and calls(second) > 0
        assert calls(first) + calls(second) == 40


def test_an_aged_connection_moves_a_long_lived_client_to_a_server_started_after_it(tiny_repository):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        later_port = s.getsockname()[1]
    with served(tiny_repository, "--max-connection-age", "1", "--max-connection-age-grace", "1") as first:
        # pick_first over [later, first]: the later server is not up, so the client settles on the first.
        with GenerativeClient(f"ipv4:127.0.0.1:{later_port},127.0.0.1:{first.port}", retries=3) as client:
            client.sample_digits(n=1, seed=0)
            assert calls(first) == 1
            later = ServerProcess(tiny_repository, "--port", str(later_port)).wait_ready()
            try:
                def reached_later():
                    client.sample_digits(n=1, seed=1)
                    return calls(later) > 0
                wait_until(reached_later, timeout=60, what="a call on the server started later")
            finally:
                assert later.stop() == 0, later.log
