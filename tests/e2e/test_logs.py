"""Logs as log collectors want them: --log-format json gives one JSON object per line,
with time, level, logger and message, and for a call its request id (the caller's
x-request-id, or a new one), rpc, model, version, status code and duration;
--access-log adds one such line per call."""

import json

import grpc
import pytest

from client import GenerativeClient, NotFound
from genserve.v1 import generative_pb2 as pb
from helpers import served, wait_until


@pytest.fixture(scope="module")
def json_server(tiny_repository):
    with served(tiny_repository, "--log-format", "json", "--access-log") as server:
        yield server


def lines(server) -> list[dict]:
    return [json.loads(line) for line in server.log.splitlines() if line.strip()]


def test_every_line_is_a_json_object_with_the_fields(json_server):
    records = lines(json_server)  # raises on any line that is not JSON
    assert records and all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    assert any("ready: serving" in record["message"] for record in records)


def test_a_calls_request_id_is_in_its_access_line(json_server):
    with grpc.insecure_channel(json_server.target) as channel:
        sample = channel.unary_unary("/genserve.v1.GenerativeService/Sample",
                                     request_serializer=pb.SampleRequest.SerializeToString,
                                     response_deserializer=pb.ImagesResponse.FromString)
        sample(pb.SampleRequest(n=2, seed=1), metadata=(("x-request-id", "trace-42"),), timeout=30)
        sample(pb.SampleRequest(n=2, seed=1), metadata=(("x-request-id", "a bad id " + "x" * 200),), timeout=30)
    with GenerativeClient(json_server.target, retries=0) as client, pytest.raises(NotFound):
        client.sample_digits(n=1, model="nope")

    def access_lines():  # the server writes a call's line after answering it
        found = [r for r in lines(json_server) if r["logger"] == "server.access"]
        return found if any(r["code"] == "NOT_FOUND" for r in found) else None
    access = wait_until(access_lines, what="the access line of the refused call")
    (ours,) = [r for r in access if r.get("request_id") == "trace-42"]
    assert ours["rpc"] == "Sample" and ours["model"] == "gan_generator" and ours["version"] == 1
    assert ours["code"] == "OK" and ours["duration_ms"] > 0
    made = [r for r in access if r["rpc"] == "Sample" and r.get("request_id") not in ("trace-42",)]
    assert len(made) >= 2 and all(len(r["request_id"]) == 32 for r in made)  # a bad id is replaced by a new one
    assert any(r["code"] == "NOT_FOUND" and "model" not in r for r in made)  # no model resolved


def test_without_access_log_there_are_no_access_lines(server):
    with GenerativeClient(server.target, retries=0) as client:
        client.sample_digits(n=1, seed=1)
    assert "server.access" not in server.log
