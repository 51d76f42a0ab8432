"""The KServe manifests (deploy/kserve), checked offline: every field against KServe's
own generated models (and the Kubernetes client's, for the pod parts), and the
runtime's ports, probes and arguments against the server's flags."""

import copy
import json
import subprocess
import sys

import pytest
import yaml

from helpers import ROOT
from server.settings import parse

KSERVE = ROOT / "deploy" / "kserve"


def field_problems(docs: list[dict]) -> list[str]:
    """tests/kserve_fields.py's verdict on ``docs``, from a process of its own."""
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "kserve_fields.py")], input=json.dumps(docs),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.splitlines()


def manifests() -> list[dict]:
    return [doc for path in sorted(KSERVE.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_every_field_is_one_kserve_declares():
    docs = manifests()
    assert sorted(d["kind"] for d in docs) == ["ClusterServingRuntime", "InferenceService", "ServingRuntime"]
    assert all(d["apiVersion"] in ("serving.kserve.io/v1alpha1", "serving.kserve.io/v1beta1") for d in docs)
    assert field_problems(docs) == []


def test_the_check_is_not_vacuous():
    runtime = copy.deepcopy(next(d for d in manifests() if d["kind"] == "ServingRuntime"))
    runtime["spec"]["containers"][0]["readinessProb"] = {}  # a typo
    runtime["spec"]["multiModel"] = "no"
    assert sorted(field_problems([runtime])) == [
        "ServingRuntime.spec.containers[0].readinessProb: V1Container has no such field",
        "ServingRuntime.spec.multiModel: 'no' is not bool"]


@pytest.mark.parametrize("kind", ["ServingRuntime", "ClusterServingRuntime"])
def test_the_runtime_agrees_with_the_servers_flags_and_the_inference_service(kind):
    docs = manifests()
    runtime = next(d for d in docs if d["kind"] == kind)
    service = next(d for d in docs if d["kind"] == "InferenceService")
    (container,) = runtime["spec"]["containers"]
    settings = parse(container["args"])  # the server accepts the arguments as they are
    assert str(settings.model_repository) == "/mnt/models"  # where KServe mounts the storageUri
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"h2c": settings.port}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == settings.port
    assert settings.poll_interval > 0
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"]["name"] in {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"] == ["grpc-v2"]
    assert model["storageUri"].startswith("pvc://genserve-models")
    deployment = yaml.safe_load((ROOT / "deploy" / "k8s" / "base" / "deployment.yaml").read_text())
    assert container["image"] == deployment["spec"]["template"]["spec"]["containers"][0]["image"]
