import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from genserve.repository import newest_versions
from trainer import export
from trainer.export import SPECS, ExportError, export_repository
from trainer.train import load_trained

CONTRACT = {  # the public model contract, written out here independently of genserve.contract
    "vae_encoder": (["image"], ["z_mean", "z_log_var"]),
    "vae_decoder": (["z"], ["image"]),
    "gan_generator": (["noise"], ["image"]),
    "dae": (["noisy"], ["image"]),
}


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_models_follow_the_contract(tiny_repository, name):
    path = tiny_repository / name / "1" / "model.onnx"
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    session = _session(path)
    inputs, outputs = CONTRACT[name]
    assert [i.name for i in session.get_inputs()] == inputs
    assert [o.name for o in session.get_outputs()] == outputs
    for n in (1, 3, 257):  # the batch axis is dynamic
        shape = [n, *session.get_inputs()[0].shape[1:]]
        assert all(isinstance(d, int) for d in shape[1:])
        result = session.run(None, {inputs[0]: np.random.default_rng(n).random(shape, dtype=np.float32)})
        assert all(r.shape[0] == n and r.dtype == np.float32 for r in result)
        if "image" in outputs:
            image = result[outputs.index("image")]
            assert image.shape == (n, 1, 28, 28) and image.min() >= 0 and image.max() <= 1


def test_manifest_describes_the_file(tiny_repository):
    for spec in SPECS:
        folder = tiny_repository / spec.name / "1"
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["name"] == spec.name and manifest["version"] == 1
        assert manifest["sha256"] == hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()
        assert [i["name"] for i in manifest["inputs"]] == [t.name for t in spec.inputs]
        assert [o["name"] for o in manifest["outputs"]] == [t.name for t in spec.outputs]
        assert [t["dtype"] for t in manifest["inputs"]] == [t.dtype for t in spec.inputs]
        assert all(t["shape"][0] == "N" for t in manifest["inputs"] + manifest["outputs"])
        assert manifest["role"] == spec.contract.role
        assert manifest["training"]["epochs_trained"] == 1 and manifest["training"]["recipe"]["epochs"] == 1
        assert len(manifest["data_sha256"]) == 64
        assert manifest["parity_max_abs_diff"] <= export.TOLERANCE
        assert manifest["metrics"], spec.name
    gan = json.loads((tiny_repository / "gan_generator" / "1" / "manifest.json").read_text())
    assert gan["parameters"] == 1_486_352
    assert {"frechet_distance", "inception_score", "digit_share"} <= set(gan["metrics"])
    assert "test_neg_elbo" in json.loads((tiny_repository / "vae_decoder/1/manifest.json").read_text())["metrics"]
    cgan = json.loads((tiny_repository / "cgan_generator" / "1" / "manifest.json").read_text())
    assert cgan["parameters"] == 1_486_352 + 10 * 256  # the one-hot code's weights in the first layer
    assert {"digit_agreement", "digit_agreement_per_digit", "frechet_distance"} <= set(cgan["metrics"])
    cvae = json.loads((tiny_repository / "cvae_decoder" / "1" / "manifest.json").read_text())["metrics"]
    assert "test_neg_elbo" in cvae and len(cvae["samples"]["digit_agreement_per_digit"]) == 10


def test_the_evaluation_report_names_the_written_versions(tiny_repository):
    report = json.loads((tiny_repository / "evaluation.json").read_text())
    assert report["models"]["gan_generator"] == str(tiny_repository / "gan_generator" / "1" / "model.onnx")
    assert all(Path(path).is_file() for path in report["models"].values())


def test_onnx_matches_pytorch(tiny_run, tiny_repository):
    task, _ = load_trained(tiny_run, "gan")
    noise = np.random.default_rng(5).standard_normal((64, 100)).astype(np.float32)
    with torch.no_grad():
        expected = (task.generator_ema(torch.from_numpy(noise)).numpy() + 1) / 2
    got = _session(tiny_repository / "gan_generator/1/model.onnx").run(None, {"noise": noise})[0]
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_a_new_export_adds_a_version_and_keeps_the_old(tiny_run, tiny_repository, tmp_path):
    repository = tmp_path / "models"
    export_repository(tiny_run, repository, samples=200)
    first = {p: p.read_bytes() for p in repository.rglob("1/*")}
    export_repository(tiny_run, repository, samples=200)
    assert {p: p.read_bytes() for p in repository.rglob("1/*")} == first
    assert {name: v.version for name, v in newest_versions(repository).items()} == {spec.name: 2 for spec in SPECS}
    assert json.loads((repository / "dae/2/manifest.json").read_text())["version"] == 2
    assert not list(repository.rglob(".staging-*"))


def test_a_model_failing_parity_is_not_written(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "TOLERANCE", -1.0)  # nothing can pass
    with pytest.raises(ExportError, match="vae_encoder: onnxruntime differs from PyTorch"):
        export_repository(tiny_run, tmp_path, samples=200)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_the_generators_graphs_keep_their_images_in_the_unit_interval(tiny_repository):
    for name, feeds in (("gan_generator", {}), ("cgan_generator", {"digit": np.arange(64) % 10})):
        path = tiny_repository / name / "1" / "model.onnx"
        assert "Clip" in {node.op_type for node in onnx.load(str(path)).graph.node}
        noise = np.random.default_rng(0).standard_normal((64, 100), dtype=np.float32) * 1e3  # tanh saturated
        image = _session(path).run(None, {"noise": noise, **feeds})[0]
        assert image.min() >= 0 and image.max() <= 1
