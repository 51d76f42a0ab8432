"""--workers 2: two processes share the port, both serve, and the metrics port
reports the requests of both."""

from prometheus_client.parser import text_string_to_metric_families

from client import GenerativeClient
from helpers import ServerProcess


def test_two_workers_serve_one_port_and_report_metrics_together(tiny_repository):
    server = ServerProcess(tiny_repository, "--workers", "2").wait_ready()
    try:
        calls = 30
        for seed in range(calls):  # a new connection per call: the kernel spreads them over the workers
            with GenerativeClient(server.target, retries=3) as client:
                assert client.sample_digits(n=1, seed=seed).shape == (1, 28, 28)
        families = {f.name: f for f in text_string_to_metric_families(server.scrape())}
        served = sum(s.value for s in families["genserve_requests"].samples
                     if s.name == "genserve_requests_total" and s.labels["rpc"] == "Sample"
                     and s.labels["code"] == "OK")
        assert served == calls
        pids = {s.labels["pid"] for s in families["genserve_model_info"].samples}
        assert len(pids) == 2, pids
        assert server.metric("genserve_ready") == 1
        assert server.log.count("worker 0 ready") == 1 and server.log.count("worker 1 ready") == 1
    finally:
        assert server.stop() == 0, server.log
    assert "stopped" in server.log.splitlines()[-1]
