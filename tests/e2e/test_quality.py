"""Quality watched and gating, with the shipped models and a deliberately bad version
(a generator that always draws the same 1): --quality-gate refuses it at start, on
reload and through the load API while the serving version serves on, and admits the
shipped ones; --quality-sample's gauges move when the bad version serves."""

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from client import GenerativeClient
from genserve.repository import sha256_file
from helpers import ROOT, ServerProcess, served, wait_until
from trainer.data import load_split

def always_one(inputs: list[dict]) -> onnx.ModelProto:
    """A generator with the given inputs (its manifest's) that ignores them and draws the
    first 1 of MNIST's training set."""
    split = load_split(ROOT / "data" / "mnist", "train")
    one = (split.images[np.flatnonzero(split.labels == 1)[0]] / 255.0).astype(np.float32).reshape(1, 1, 28, 28)
    types = {"float32": TensorProto.FLOAT, "int64": TensorProto.INT64}
    graph_inputs = [helper.make_tensor_value_info(t["name"], types[t["dtype"]], t["shape"]) for t in inputs]
    nodes = [helper.make_node("Shape", [inputs[0]["name"]], ["shape"], start=0, end=1),
             helper.make_node("Concat", ["shape", "tail"], ["size"], axis=0),
             helper.make_node("Expand", ["one", "size"], ["image"])]
    graph = helper.make_graph(nodes, "always_one", graph_inputs,
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])],
                              [helper.make_tensor("one", TensorProto.FLOAT, [1, 1, 28, 28], one.ravel().tolist()),
                               helper.make_tensor("tail", TensorProto.INT64, [3], [1, 28, 28])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def publish_bad(repository, name: str, version: int) -> None:
    """A version of ``name`` that always draws a 1, with its model's manifest, renamed in whole."""
    newest = max((p for p in (repository / name).iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    stage = repository / name / f".stage-{version}"
    stage.mkdir()
    manifest = json.loads((newest / "manifest.json").read_text())
    onnx.save(always_one(manifest["inputs"]), stage / "model.onnx")
    manifest |= {"version": version, "sha256": sha256_file(stage / "model.onnx"),
                 "bytes": (stage / "model.onnx").stat().st_size}
    (stage / "manifest.json").write_text(json.dumps(manifest))
    stage.rename(repository / name / str(version))


@pytest.fixture
def shipped(tmp_path):
    repository = tmp_path / "models"
    shutil.copytree(ROOT / "models", repository)
    return repository


def served_versions(server, name):
    with GenerativeClient(server.target) as client:
        return sorted(m.version for m in client.list_models() if m.name == name)


def test_the_gate_admits_the_shipped_generators_and_refuses_one_that_draws_only_1(shipped):
    with served(shipped, "--quality-gate", "0.85", "--poll-interval", "0.3") as server:
        for name in ("gan_generator", "vae_decoder", "cgan_generator", "cvae_decoder"):
            assert server.metric("genserve_quality_gate_total", model=name, result="admitted") >= 1, name
        publish_bad(shipped, "cgan_generator", 2)
        publish_bad(shipped, "gan_generator", 6)
        wait_until(lambda: server.metric("genserve_quality_gate_total", model="gan_generator", result="refused") == 1
                   and server.metric("genserve_quality_gate_total", model="cgan_generator", result="refused") == 1,
                   timeout=60, what="both bad versions refused")
        assert served_versions(server, "cgan_generator") == [1] and served_versions(server, "gan_generator")[-1] == 5
        assert "refused by the quality gate (agreement 0.1" in server.log  # ten digits asked for, one drawn
        assert "refused by the quality gate (spread over the digits 0.000" in server.log
        assert server.metric("genserve_quality_gate_score", model="cgan_generator", version="2") < 0.2
        with GenerativeClient(server.target) as client:
            assert client.sample_digits(4, digit=3, return_info=True).version == 1


def test_the_gate_refuses_a_bad_version_through_the_load_api_and_at_start(shipped):
    import tritonclient.http as triton_http
    from tritonclient.utils import InferenceServerException

    publish_bad(shipped, "cvae_decoder", 2)
    process = ServerProcess(shipped, "--quality-gate", "0.85")
    assert process.wait_exit(120) == 1 and "refused by the quality gate" in process.log  # no good one to serve
    shutil.rmtree(shipped / "cvae_decoder" / "2")
    with served(shipped, "--quality-gate", "0.85", "--model-control", "explicit", "--load-model", "*") as server:
        publish_bad(shipped, "cvae_decoder", 2)
        client = triton_http.InferenceServerClient(f"127.0.0.1:{server.http_port}")
        with pytest.raises(InferenceServerException, match=r"cvae_decoder version 2: refused: .*refused by the quality "
                                                           r"gate \(agreement .*still serving version 1"):
            client.load_model("cvae_decoder")
        assert served_versions(server, "cvae_decoder") == [1]


def test_the_quality_gauges_move_when_a_bad_version_serves(shipped):
    with served(shipped, "--quality-sample", "1", "--poll-interval", "0.3") as server:
        with GenerativeClient(server.target) as client:
            client.sample_digits(200, digit=list(np.arange(200) % 10), seed=1)
            good = wait_until(lambda: server.metric("genserve_quality_agreement", model="cgan_generator", version="1"),
                              what="the gauge of version 1")
            assert good > 0.9
            publish_bad(shipped, "cgan_generator", 2)
            wait_until(lambda: served_versions(server, "cgan_generator") == [1, 2], what="the bad version served")
            client.sample_digits(200, digit=list(np.arange(200) % 10), seed=2)
            bad = wait_until(lambda: server.metric("genserve_quality_agreement", model="cgan_generator", version="2"),
                             what="the gauge of version 2")
            assert 0.05 < bad < 0.2  # it draws a 1 whatever it is asked for
            ones = server.metric("genserve_quality_digit_share", model="cgan_generator", version="2", digit="1")
            assert ones > 0.9
            assert server.metric("genserve_quality_sampled_images_total", model="cgan_generator", version="2") == 200
