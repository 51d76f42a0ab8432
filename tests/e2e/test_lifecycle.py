"""Start-up, health transitions, refusal of bad repositories, and draining."""

import json
import logging
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers import ROOT, ServerProcess

from client import GenerativeClient, GenserveError

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


# Runs in a child process: the server's generated Open Inference Protocol code and
# tritonclient's (tests/e2e/test_oip.py) both define the protobuf package ``inference``,
# which one process cannot import twice.
_LOADING_SCENARIO = """
import asyncio, json, sys
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry
from genserve.v1 import generative_pb2, generative_pb2_grpc
from server.app import NOT_SERVING, SERVING, create_server
from server.settings import Settings

async def scenario():
    app = create_server(Settings(model_repository=sys.argv[1], host="127.0.0.1", port=0), CollectorRegistry())
    await app.server.start()
    await app.set_health(NOT_SERVING)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        before = (await health.Check(health_pb2.HealthCheckRequest())).status
        try:
            await generative_pb2_grpc.GenerativeServiceStub(channel).Sample(generative_pb2.SampleRequest(n=1))
            early = ("OK", "")
        except grpc.aio.AioRpcError as error:
            early = (error.code().name, error.details())
        app.engine.load()
        app.servicer.ready = True
        await app.set_health(SERVING)
        after = (await health.Check(health_pb2.HealthCheckRequest(service="genserve.v1.GenerativeService"))).status
    await app.server.stop(0)
    print(json.dumps({"before": before == NOT_SERVING, "after": after == SERVING, "early": early}))

asyncio.run(scenario())
"""


def test_health_is_not_serving_until_the_models_are_loaded(tiny_repository):
    result = subprocess.run([sys.executable, "-c", _LOADING_SCENARIO, str(tiny_repository)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome["before"] and outcome["after"], outcome
    code, details = outcome["early"]
    assert code == "UNAVAILABLE" and "loading" in details


def test_sigterm_drains_calls_in_flight(tiny_repository):
    server = ServerProcess(tiny_repository, "--grace-period", "20").wait_ready()
    outcomes, sigterm_at = [], []
    stop = threading.Event()

    def caller():
        with GenerativeClient(server.target, retries=0, timeout=30) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    images = client.sample_digits(n=1024, seed=1)
                    outcomes.append(("OK", started, time.monotonic(), images.shape))
                except GenserveError as error:
                    outcomes.append((error.code.name, started, time.monotonic(), None))
                    if error.code == grpc.StatusCode.UNAVAILABLE:
                        return

    with grpc.insecure_channel(server.target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert next(watch).status == SERVING
        threads = [threading.Thread(target=caller) for _ in range(6)]
        for t in threads:
            t.start()
        while len(outcomes) < 6:
            time.sleep(0.01)
        sigterm_at.append(time.monotonic())
        server.proc.send_signal(signal.SIGTERM)
        assert next(watch).status == NOT_SERVING
        watch.cancel()
    for t in threads:
        t.join(60)
    stop.set()
    assert server.stop() == 0, server.log
    exited = time.monotonic()
    assert exited - sigterm_at[0] < 20 + 3, "the exit came after the grace period"
    assert {code for code, *_ in outcomes} <= {"OK", "UNAVAILABLE"}, outcomes
    across = [o for o in outcomes if o[0] == "OK" and o[1] < sigterm_at[0] < o[2]]
    assert across, "no call was in flight when SIGTERM came"
    assert all(shape == (1024, 28, 28) for code, _, _, shape in outcomes if code == "OK")
    assert "draining" in server.log and "stopped" in server.log


def _copy(repository, tmp_path):
    copy = tmp_path / "models"
    shutil.copytree(repository, copy)
    return copy


def _refused(repository, *args) -> str:
    server = ServerProcess(repository, *args)
    code = server.wait_exit(60)
    assert code == 1, server.log
    assert "Traceback" not in server.log
    return server.log


def test_a_corrupt_model_file_is_refused_at_start(tiny_repository, tmp_path):
    repository = _copy(tiny_repository, tmp_path)
    model = repository / "gan_generator" / "1" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    log = _refused(repository)
    assert f"cannot serve: {model}: sha256" in log and "does not match the manifest" in log


def test_a_missing_model_is_refused(tiny_repository, tmp_path):
    repository = _copy(tiny_repository, tmp_path)
    shutil.rmtree(repository / "dae")
    assert "no version of dae" in _refused(repository)


def test_a_taken_port_is_refused_with_its_address(tiny_repository):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert f"cannot listen on 127.0.0.1:{port}: the port is taken" in _refused(tiny_repository, "--port", str(port))


def test_a_missing_repository_is_refused(tmp_path):
    assert f"{tmp_path / 'none'}: no such model repository" in _refused(tmp_path / "none")


def test_cuda_alone_is_refused_where_it_cannot_load(tiny_repository):
    import onnxruntime
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    log = _refused(tiny_repository, "--providers", "cuda")
    assert "none of the execution providers asked for (cuda) is available" in log


def test_cuda_then_cpu_falls_back_and_says_so(server):
    import onnxruntime
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    assert "CUDAExecutionProvider are not available" in server.log
    with GenerativeClient(server.target) as client:
        assert {m.execution_provider for m in client.list_models()} == {"CPUExecutionProvider"}
    assert server.metric("genserve_model_info", model="gan_generator", provider="CPUExecutionProvider") == 1


def test_settings_come_from_the_environment(tiny_repository):
    server = ServerProcess(tiny_repository, env={"GENSERVE_MAX_SAMPLE_N": "7"}).wait_ready()
    try:
        with GenerativeClient(server.target, retries=0) as client:
            with pytest.raises(GenserveError, match="n: must be between 1 and 7, got 8"):
                client.sample_digits(n=8)
    finally:
        assert server.stop() == 0


def test_a_bad_environment_value_is_one_clear_line(tiny_repository):
    server = ServerProcess(tiny_repository, env={"GENSERVE_MAX_REQUEST_SIZE": "lots"})
    assert server.wait_exit(30) == 2
    assert "argument --max-request-size: 'lots' is not an integer (from GENSERVE_MAX_REQUEST_SIZE='lots')" in server.log
    assert "Traceback" not in server.log


def test_the_client_retries_until_the_server_is_up(tiny_repository):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = {}
    retried = threading.Event()

    class Retries(logging.Handler):
        def emit(self, record):
            if "retrying in" in record.getMessage():
                retried.set()

    def call():
        with GenerativeClient(f"127.0.0.1:{port}", retries=12, timeout=5) as client:
            result["images"] = client.sample_digits(n=2, seed=1)
    handler, client_log = Retries(), logging.getLogger("client")
    client_log.addHandler(handler)
    client_log.setLevel(logging.INFO)
    try:
        thread = threading.Thread(target=call)
        thread.start()
        assert retried.wait(30), "the client never retried"  # its first attempt found nothing listening
        server = ServerProcess(tiny_repository, "--port", str(port))  # the later --port wins
        try:
            thread.join(60)
            assert result["images"].shape == (2, 28, 28)
        finally:
            assert server.stop() == 0
    finally:
        client_log.removeHandler(handler)
        client_log.setLevel(logging.NOTSET)
