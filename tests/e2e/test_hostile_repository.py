"""A tampered model repository under hot reload: manifests of the wrong JSON type or
nesting or of a wrong role, special files, versions that break their model's contract or whose warm-up
answers are wrong, and version folders outside int64. Each is refused once, with its
reason, while the old versions serve; the models after it still reload; SIGTERM still
stops the server."""

import json
import os
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from client import GenerativeClient
from genserve.repository import sha256_file
from helpers import ServerProcess, wait_until


def decoder(body: list, out_shape: list, initializers=()) -> onnx.ModelProto:
    """A stand-in vae_decoder: input z [N,2], output ``image`` of ``out_shape``."""
    graph = helper.make_graph(body, "decoder", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 2])],
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, out_shape)],
                              list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def weights(name, shape, value=0.01):
    return helper.make_tensor(name, TensorProto.FLOAT, shape, np.full(shape, value, np.float32).ravel().tolist())


WRONG_SHAPE = decoder([helper.make_node("MatMul", ["z", "w"], ["image"])], ["N", 10], [weights("w", [2, 10])])
OUT_OF_RANGE = decoder(
    [helper.make_node("MatMul", ["z", "w"], ["flat"]), helper.make_node("Reshape", ["flat", "shape"], ["grid"]),
     helper.make_node("Add", ["grid", "five"], ["image"])], ["N", 1, 28, 28],
    [weights("w", [2, 784]), helper.make_tensor("shape", TensorProto.INT64, [4], [-1, 1, 28, 28]),
     weights("five", [1], 5.0)])
# One row whatever N is, by a row count computed at run time (so that no shape inference sees it).
ONE_ROW = decoder(
    [helper.make_node("MatMul", ["z", "w"], ["flat"]), helper.make_node("Reshape", ["flat", "shape"], ["grid"]),
     helper.make_node("Sigmoid", ["grid"], ["pixels"]), helper.make_node("Mul", ["z", "nought"], ["zeros"]),
     helper.make_node("ReduceMin", ["zeros"], ["least"], keepdims=0), helper.make_node("Add", ["least", "one"], ["rows"]),
     helper.make_node("Cast", ["rows"], ["count"], to=TensorProto.INT64),
     helper.make_node("Unsqueeze", ["count", "axis"], ["end"]),
     helper.make_node("Slice", ["pixels", "start", "end", "axis"], ["image"])], ["N", 1, 28, 28],
    [weights("w", [2, 784]), helper.make_tensor("shape", TensorProto.INT64, [4], [-1, 1, 28, 28]),
     weights("nought", [1], 0.0), weights("one", [], 1.0), helper.make_tensor("axis", TensorProto.INT64, [1], [0]),
     helper.make_tensor("start", TensorProto.INT64, [1], [0])])


def publish(repository, model: str, version: str, *, onnx_model=None, source=None, manifest=None) -> None:
    """A version folder written aside and renamed in, as the exporter does."""
    stage = repository / model / f".stage-{version}"
    stage.mkdir(parents=True)
    if source is not None:
        shutil.copy(source / "model.onnx", stage / "model.onnx")
    else:
        onnx.save(onnx_model, stage / "model.onnx")
    if manifest is None:
        manifest = json.dumps({"sha256": sha256_file(stage / "model.onnx")})
    if callable(manifest):
        manifest(stage / "manifest.json")
    else:
        (stage / "manifest.json").write_text(manifest)
    stage.rename(repository / model / version)


@pytest.fixture
def watched(tmp_path, tiny_repository):
    repository = tmp_path / "models"
    shutil.copytree(tiny_repository, repository)
    server = ServerProcess(repository, "--poll-interval", "0.2", "--grace-period", "5").wait_ready()
    yield server, repository
    server.stop()


def refusals(server, model, version) -> list[str]:
    return [line for line in server.log.splitlines() if f"refused {model} version {version}:" in line]


def test_every_kind_of_bad_version_is_refused_once_and_the_rest_reload(watched):
    server, repository = watched
    gan_v1 = repository / "gan_generator" / "1"

    def fifo(path):
        os.mkfifo(path)

    def dev_zero(path):
        path.symlink_to("/dev/zero")

    def manifest_of(model, **changes):
        manifest = json.loads((repository / model / "1" / "manifest.json").read_text())
        return json.dumps(manifest | changes)

    cgan_v1, cvae_v1 = repository / "cgan_generator" / "1", repository / "cvae_decoder" / "1"
    float_digit = json.loads(manifest_of("cvae_decoder"))["inputs"]
    float_digit[1]["dtype"] = "float32"
    cases = [  # (model, version, how it is published, what the refusal says)
        ("cgan_generator", "2", dict(source=cgan_v1, manifest=manifest_of("cgan_generator", role="painter")),
         "role 'painter' is not one genserve knows"),
        ("cgan_generator", "3", dict(source=cvae_v1, manifest=manifest_of("cvae_decoder")),
         "does not match cgan_generator's contract: its manifest gives it the role conditional_decoder"),
        ("cvae_decoder", "2", dict(source=cvae_v1, manifest=manifest_of("cvae_decoder", inputs=float_digit)),
         "inputs must be z float32 [N,2], digit int64 [N] for the role conditional_decoder"),
        ("dae", "2", dict(source=repository / "dae" / "1", manifest="[]"), "a JSON object, not list"),
        ("digit_classifier", "2", dict(source=repository / "digit_classifier" / "1", manifest=dev_zero),
         "not a regular file"),
        ("digit_classifier", "3", dict(source=gan_v1), "does not match digit_classifier's contract"),
        ("gan_generator", "2", dict(source=gan_v1, manifest="[" * 100_000), "unreadable manifest"),
        ("vae_decoder", "2", dict(source=repository / "vae_decoder" / "1", manifest=fifo), "not a regular file"),
        ("vae_decoder", "3", dict(onnx_model=WRONG_SHAPE), "output image must be float32 [N,1,28,28]"),
        ("vae_decoder", "4", dict(onnx_model=OUT_OF_RANGE), "outside [0, 1]"),
        ("vae_decoder", "5", dict(onnx_model=ONE_ROW), "has shape [1, 1, 28, 28] for 16 rows"),
        ("vae_encoder", "2", dict(source=repository / "vae_encoder" / "1", manifest='{"sha256": "x", "metrics": "fast"}'),
         "metrics must be an object"),
    ]
    for model, version, how, reason in cases:
        publish(repository, model, version, **how)
        wait_until(lambda: refusals(server, model, version), what=f"{model} version {version} refused")
        assert reason in refusals(server, model, version)[0], refusals(server, model, version)[0]
    shutil.copytree(gan_v1, repository / "gan_generator" / "9223372036854775808")

    # A good version of the last model in order still loads, after more looks at the bad ones.
    publish(repository, "vae_encoder", "3", source=repository / "vae_encoder" / "1",
            manifest=(repository / "vae_encoder" / "1" / "manifest.json").read_text())
    wait_until(lambda: "reloaded vae_encoder: version 3" in server.log, what="vae_encoder version 3")
    for model, version, _, _ in cases:
        assert len(refusals(server, model, version)) == 1, (model, version)
    assert server.metric("genserve_model_reloads_total", model="vae_decoder", result="refused") == 4
    assert "Traceback" not in server.log

    with GenerativeClient(server.target, retries=0) as client:
        served = {(m.name, m.version) for m in client.list_models()}
        assert ("vae_encoder", 3) in served and ("gan_generator", 1) in served
        assert not any(version > 3 for _, version in served)
        assert client.sample_digits(n=2, model="vae", seed=1).shape == (2, 28, 28)
        assert client.sample_digits(n=2, model="gan", seed=1).shape == (2, 28, 28)
    assert server.stop(timeout=15) == 0  # the FIFO in the repository holds nothing up


def test_a_bad_manifest_at_start_is_one_line_naming_the_file(tmp_path, tiny_repository):
    repository = tmp_path / "models"
    shutil.copytree(tiny_repository, repository)
    manifest = repository / "dae" / "1" / "manifest.json"
    manifest.unlink()
    os.mkfifo(manifest)
    server = ServerProcess(repository)
    assert server.wait_exit(60) == 1
    assert f"{manifest}: not a regular file" in server.log and "Traceback" not in server.log
