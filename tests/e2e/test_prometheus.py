"""A real Prometheus (Debian's) scrapes a running genserve with the project's own scrape
config and alert rules; its HTTP query API must show the metrics with their labels, and
every query of the Grafana dashboard must evaluate."""

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
import yaml
from helpers import ROOT

DEPLOY = ROOT / "deploy"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Prometheus:
    def __init__(self, folder, genserve_metrics_port: int):
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("Debian's prometheus is not installed; .ci/run installs it")
        # The project's config, pointed at the test server and made fast.
        config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
        config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = "1s"
        (job,) = config["scrape_configs"]
        job["scrape_interval"] = "1s"
        job["static_configs"][0]["targets"] = [f"127.0.0.1:{genserve_metrics_port}"]
        shutil.copy(DEPLOY / "prometheus" / "alerts.yml", folder / "alerts.yml")
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = _free_port()
        self.log = folder / "prometheus.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"], stdout=log, stderr=subprocess.STDOUT)

    def api(self, path: str, **params) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    def wait_for(self, query: str, timeout: float = 60) -> list[dict]:
        """The query's result once it is not empty."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                result = self.api("query", query=query)["data"]["result"]
                if result:
                    return result
            except OSError:
                pass  # not listening yet
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        raise AssertionError(f"no result for {query} within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


@pytest.fixture(scope="module")
def prometheus(server, tmp_path_factory):
    instance = Prometheus(tmp_path_factory.mktemp("prometheus"), server.metrics_port)
    yield instance
    instance.stop()


def test_prometheus_scrapes_the_request_counter_and_latency_histogram(prometheus, client):
    client.sample_digits(n=4, model="gan", seed=1)
    client.decode(np.zeros((2, 2), np.float32))
    up = prometheus.wait_for('up{job="genserve"} == 1')
    assert len(up) == 1

    requests = prometheus.wait_for('genserve_requests_total{job="genserve", rpc="Sample", code="OK"}')
    labels = requests[0]["metric"]
    assert {"rpc", "model", "code", "job", "instance"} <= labels.keys() and labels["model"]
    assert float(requests[0]["value"][1]) >= 1

    buckets = prometheus.wait_for('genserve_request_duration_seconds_bucket{job="genserve", rpc="Decode"}')
    les = {series["metric"]["le"] for series in buckets}
    assert "+Inf" in les and len(les) > 5

    # Rates need two scrapes: keep calling until the quantile has a number.
    deadline = time.monotonic() + 30
    quantile = 'histogram_quantile(0.5, sum by (le, rpc) (rate(genserve_request_duration_seconds_bucket[10s])))'
    while time.monotonic() < deadline:
        client.sample_digits(n=1)
        values = [s for s in prometheus.api("query", query=quantile)["data"]["result"]
                  if s["metric"].get("rpc") == "Sample" and s["value"][1] != "NaN"]
        if values:
            assert 0 < float(values[0]["value"][1]) < 10
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the p50 latency of Sample never had a value")


def test_every_dashboard_query_evaluates(prometheus, client):
    client.sample_digits(n=2)
    prometheus.wait_for('genserve_ready{job="genserve"}')
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "genserve.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(queries) >= 13
    for query in queries:
        # Grafana's variables, as Grafana would fill them in.
        concrete = query.replace("$__rate_interval", "1m").replace('"$instance"', '".*"')
        answer = prometheus.api("query", query=concrete)
        assert answer["status"] == "success", (query, answer)
    ready = prometheus.api("query", query='min(genserve_ready{instance=~".*"})')["data"]["result"]
    assert ready and ready[0]["value"][1] == "1"


def test_the_alert_rules_load_and_evaluate(prometheus):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        groups = prometheus.api("rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if len(rules) == 6 and all(rule.get("lastEvaluation", "").startswith("2") and rule["health"] == "ok"
                                   for rule in rules):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"alert rules not all evaluated and healthy: {rules}")
    firing = [r["name"] for r in rules if r["state"] == "firing"]
    assert "GenserveDown" not in firing
