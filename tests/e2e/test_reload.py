"""Hot reload (--poll-interval) against the real server process: new versions swapped in
under load with no failed call, bad versions refused while the old one serves, version
pins through both APIs, and a repository deleted while serving."""

import json
import shutil
import threading

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from client import GenerativeClient, GenserveError
from genserve.v1 import generative_pb2 as pb
from genserve.v1 import generative_pb2_grpc as pb_grpc
from helpers import ServerProcess, wait_until

POLL = "0.2"


def version_that_ran(stub, seed: int = 0, version: int = 0) -> int:
    """Sample through the raw stub: the response names the version that ran."""
    return stub.Sample(pb.SampleRequest(n=8, model="gan", seed=seed, version=version), timeout=30).model.version


def publish(repository, model: str, version: int, source) -> None:
    """Write a version the way the exporter does: a hidden folder, then one rename."""
    staging = repository / model / f".staging-{version}"
    shutil.copytree(source, staging)
    staging.rename(repository / model / str(version))


def rewrite(folder, data: bytes) -> None:
    """A model file that matches its manifest's sha256 but holds ``data``."""
    import hashlib

    (folder / "model.onnx").write_bytes(data)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sha256"] = hashlib.sha256(data).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def repository(tiny_repository, tmp_path):
    copy = tmp_path / "models"
    shutil.copytree(tiny_repository, copy)
    return copy


@pytest.fixture
def watched(repository):
    server = ServerProcess(repository, "--poll-interval", POLL).wait_ready()
    yield server
    assert server.stop() == 0, server.log


def test_a_new_version_is_swapped_in_under_load_without_a_failed_call(watched, repository):
    seen: list[list[int]] = [[] for _ in range(4)]
    errors: list[Exception] = []
    stop = threading.Event()

    def hammer(index):
        with grpc.insecure_channel(watched.target) as channel:
            stub = pb_grpc.GenerativeServiceStub(channel)
            while not stop.is_set():
                try:
                    seen[index].append(version_that_ran(stub, seed=index))
                except grpc.RpcError as exc:
                    errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    wait_until(lambda: all(len(s) > 5 for s in seen), what="calls before the swap")
    publish(repository, "gan_generator", 2, repository / "gan_generator" / "1")
    wait_until(lambda: all(s and s[-1] == 2 for s in seen), what="calls on version 2")
    marks = [len(s) for s in seen]
    wait_until(lambda: all(len(s) >= mark + 5 for s, mark in zip(seen, marks)), what="more calls on version 2")
    stop.set()
    for thread in threads:
        thread.join(30)
    assert not errors, errors[:3]
    for versions in seen:
        assert versions[0] == 1 and versions[-1] == 2
        assert versions == sorted(versions), "once a caller saw version 2 it never got 1 again"
    assert "reloaded gan_generator: version 2 now serves new calls (was 1)" in watched.log
    assert watched.metric("genserve_model_reloads_total", model="gan_generator", result="loaded") == 1


def test_pins_and_refusals_through_both_apis(watched, repository):
    v1 = repository / "gan_generator" / "1"
    publish(repository, "gan_generator", 2, v1)
    wait_until(lambda: "reloaded gan_generator: version 2" in watched.log, what="version 2")

    with GenerativeClient(watched.target, retries=0) as client:
        newest, pinned = client.sample_digits(n=3, seed=5), client.sample_digits(n=3, seed=5, version=1)
        assert np.array_equal(newest, pinned)  # the same weights under two version numbers
        assert {(m.name, m.version) for m in client.list_models()} >= {("gan_generator", 2), ("gan_generator", 1)}
        with pytest.raises(GenserveError) as error:
            client.sample_digits(n=1, version=7)
        assert error.value.code == grpc.StatusCode.NOT_FOUND
        assert "gan_generator version 7 is not served; it serves 2, 1" in error.value.message
        with pytest.raises(GenserveError) as error:
            client.decode(np.zeros((1, 2), np.float32), version=-1)
        assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and "version: must be >= 0" in error.value.message

    # Three broken versions, each refused for its own reason while version 2 serves.
    broken = {3: "sha256", 4: "onnxruntime cannot load it", 5: "does not match gan_generator's contract"}
    staging = repository / ".work"
    shutil.copytree(v1, staging / "3")
    (staging / "3" / "model.onnx").write_bytes((staging / "3" / "model.onnx").read_bytes()[:-10] + b"0" * 10)
    shutil.copytree(v1, staging / "4")
    rewrite(staging / "4", b"not an onnx model")
    shutil.copytree(repository / "dae" / "1", staging / "5")  # a real model with the wrong tensors
    for version, reason in broken.items():
        (staging / str(version)).rename(repository / "gan_generator" / str(version))
        wait_until(lambda: f"refused gan_generator version {version}:" in watched.log, what=f"refusal {version}")
        line = next(l for l in watched.log.splitlines() if f"refused gan_generator version {version}:" in l)
        assert reason in line and "still serving version 2" in line
    # A later poll, which lists the repository after the last refusal and looks at
    # gan_generator before vae_encoder, does not try the unchanged refused versions again.
    publish(repository, "vae_encoder", 2, repository / "vae_encoder" / "1")
    wait_until(lambda: "reloaded vae_encoder: version 2" in watched.log, what="vae_encoder version 2")
    assert watched.metric("genserve_model_reloads_total", model="gan_generator", result="refused") == 3
    with grpc.insecure_channel(watched.target) as channel:
        assert version_that_ran(pb_grpc.GenerativeServiceStub(channel)) == 2

    # A good version 6: served with version 2; version 1 retired.
    publish(repository, "gan_generator", 6, v1)
    wait_until(lambda: "retired gan_generator version 1" in watched.log, what="version 1 retired")
    with triton.InferenceServerClient(watched.target) as oip:
        assert oip.is_model_ready("gan_generator", "6") and oip.is_model_ready("gan_generator", "2")
        assert not oip.is_model_ready("gan_generator", "1")
        assert oip.get_model_metadata("gan_generator").versions == ["6", "2"]
        noise = triton.InferInput("noise", [1, 100], "FP32")
        noise.set_data_from_numpy(np.zeros((1, 100), np.float32))
        assert oip.infer("gan_generator", [noise], model_version="2").get_response().model_version == "2"
        assert oip.infer("gan_generator", [noise]).get_response().model_version == "6"
        with pytest.raises(InferenceServerException) as error:
            oip.infer("gan_generator", [noise], model_version="1")
        assert error.value.status() == "StatusCode.NOT_FOUND" and "it serves 6, 2" in error.value.message()
    assert watched.metric("genserve_model_info", model="gan_generator", version="1") == 0
    assert watched.metric("genserve_model_info", model="gan_generator", version="6") == 1


def test_a_deleted_repository_is_reported_and_the_loaded_models_keep_serving(watched, repository):
    backup = repository.parent / "backup"
    repository.rename(backup)
    wait_until(lambda: "the model repository is gone; still serving the loaded models" in watched.log,
               what="the report")
    assert watched.metric("genserve_repository_readable") == 0
    with GenerativeClient(watched.target, retries=0) as client:
        assert client.health() == "SERVING"
        assert client.sample_digits(n=2, seed=1).shape == (2, 28, 28)
        assert client.denoise(np.zeros((1, 28, 28), np.uint8)).shape == (1, 28, 28)
    backup.rename(repository)
    wait_until(lambda: "the model repository is readable again" in watched.log, what="recovery")
    assert watched.metric("genserve_repository_readable") == 1
    assert watched.log.count("the model repository is gone") == 1  # reported once, not every poll


def test_poll_interval_is_checked(tiny_repository):
    server = ServerProcess(tiny_repository, "--poll-interval", "-1")
    assert server.wait_exit(30) == 2
    assert "--poll-interval: must be a finite number >= 0" in server.log
