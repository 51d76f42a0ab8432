"""The deployment files: the images' Dockerfiles (hadolint, and their install steps
really run), the health-check command, docker compose, and the Kubernetes overlays
rendered with kustomize and validated against the Kubernetes schemas."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from helpers import ROOT, ServerProcess

from server.settings import Settings

DEPLOY = ROOT / "deploy"
DOCKERFILES = sorted(DEPLOY.glob("*.Dockerfile"))
SERVING_IMAGES = [DEPLOY / "serve-cpu.Dockerfile", DEPLOY / "serve-gpu.Dockerfile"]
OVERLAYS = ("cpu", "gpu")


def _tool(name: str) -> str:
    """A command from this virtualenv's bin (pip-installed tools) or the PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; .ci/run installs it")
    return found


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def _stages(dockerfile: Path) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions(dockerfile):
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_dockerfiles_pass_hadolint():
    assert len(DOCKERFILES) == 4
    result = subprocess.run([_tool("hadolint"), *map(str, DOCKERFILES)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_hadolint_is_not_vacuous(tmp_path):
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\n")
    result = subprocess.run([_tool("hadolint"), str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "DL3006" in result.stdout  # an untagged base image


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.stem)
def test_images_are_multi_stage_and_run_as_a_non_root_user(dockerfile):
    stages = _stages(dockerfile)
    assert len(stages) >= 2
    final = dict((word, rest) for word, rest in stages[-1] if word in ("USER", "ENTRYPOINT"))
    assert final["USER"].split(":")[0] not in ("", "0", "root")
    installs = [rest for word, rest in stages[0] if word == "RUN" and "deploy/install.sh" in rest]
    assert len(installs) == 1, "the build stage installs with deploy/install.sh, as CI does"


@pytest.mark.parametrize("dockerfile", SERVING_IMAGES, ids=lambda p: p.stem)
def test_serving_images_bake_in_the_models_and_ask_the_health_service(dockerfile):
    final = _stages(dockerfile)[-1]
    assert ("COPY", "models/ /models/") in final
    assert any(word == "ENV" and "GENSERVE_MODEL_REPOSITORY=/models" in rest for word, rest in final)
    health = [rest for word, rest in final if word == "HEALTHCHECK"]
    assert len(health) == 1 and '"server.healthcheck"' in health[0]
    install = next(rest for word, rest in _stages(dockerfile)[0] if word == "RUN" and "install.sh" in rest)
    assert re.search(r"install\.sh serve(-gpu)? ", install)  # the serving extras: no torch


def test_dockerignore_keeps_runs_and_virtualenvs_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", "runs", ".venv*"} <= set(ignored)
    assert "models" not in ignored and "data" not in ignored


@pytest.mark.slow
def test_the_cpu_images_build_stage_gives_a_server_without_torch(tmp_path, tiny_repository):
    """The serving image's build stage, run here as written (its COPY lines into a fresh
    context, its RUN line with the virtualenv under tmp_path), then the server it
    installed serving a repository, asked by the image's own health check."""
    build = _stages(DEPLOY / "serve-cpu.Dockerfile")[0]
    context = tmp_path / "src"
    context.mkdir()
    for word, rest in build:
        if word == "COPY":
            *sources, target = rest.split()
            for source in sources:
                if source.endswith("/"):
                    shutil.copytree(ROOT / source, context / target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    (context / target).mkdir(parents=True, exist_ok=True)  # COPY into a folder ("./", "deploy/")
                    shutil.copy2(ROOT / source, context / target / Path(source).name)
    venv = tmp_path / "venv"
    (run,) = [rest for word, rest in build if word == "RUN"]
    result = subprocess.run(run.replace("/opt/venv", str(venv)), shell=True, cwd=context, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    python = str(venv / "bin" / "python")
    for absent in ("torch", "trainer"):
        probe = subprocess.run([python, "-c", f"import {absent}"], capture_output=True, text=True, cwd=tmp_path)
        assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr, absent

    server = ServerProcess(tiny_repository, python=python, cwd=tmp_path).wait_ready()
    check = subprocess.run([python, "-m", "server.healthcheck", "--target", server.target],
                           capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert check.returncode == 0 and "SERVING" in check.stdout, check.stderr
    assert server.stop() == 0, server.log


def test_the_health_check_exits_1_when_nothing_serves(server):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check = subprocess.run([sys.executable, "-m", "server.healthcheck", "--target", f"127.0.0.1:{port}",
                            "--timeout", "1"], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert check.returncode == 1 and "UNAVAILABLE" in check.stderr
    ok = subprocess.run([sys.executable, "-m", "server.healthcheck", "--target", server.target],
                        capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert ok.returncode == 0 and ok.stdout.strip() == f"{server.target}: SERVING"


def test_compose_wires_the_server_prometheus_and_grafana():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"genserve", "prometheus", "grafana"}
    build = services["genserve"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "serve-cpu.Dockerfile"
    for service in ("prometheus", "grafana"):
        for volume in services[service]["volumes"]:
            assert (DEPLOY / volume.split(":")[0]).exists(), volume
    grace = float(services["genserve"]["environment"]["GENSERVE_GRACE_PERIOD"])
    assert float(services["genserve"]["stop_grace_period"].rstrip("s")) > grace + 1
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["static_configs"][0]["targets"] == [f"genserve:{Settings().metrics_port}"]
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "genserve.json").read_text())
    assert dashboard["uid"] == "genserve" and len(dashboard["panels"]) >= 8


def test_prometheus_config_and_alerts_pass_promtool():
    result = subprocess.run([_tool("promtool"), "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "6 rules found" in result.stdout + result.stderr, result.stderr


def test_the_quality_alerts_pass_their_promtool_tests(tmp_path):
    """deploy/prometheus/alerts_test.yml: GenserveQualityLow after 5 minutes below 90 %,
    GenserveQualityGateRefused on a refusal; and the tests fail when the rule changes."""
    result = subprocess.run([_tool("promtool"), "test", "rules", str(DEPLOY / "prometheus" / "alerts_test.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr
    for name in ("alerts.yml", "alerts_test.yml"):
        shutil.copy(DEPLOY / "prometheus" / name, tmp_path / name)
    rules = tmp_path / "alerts.yml"
    rules.write_text(rules.read_text().replace("genserve_quality_agreement < 0.9", "genserve_quality_agreement < 0.1"))
    changed = subprocess.run([_tool("promtool"), "test", "rules", str(tmp_path / "alerts_test.yml")],
                             capture_output=True, text=True)
    assert changed.returncode != 0 and "GenserveQualityLow" in changed.stdout + changed.stderr


def _render(overlay: str) -> list[dict]:
    result = subprocess.run([_tool("kubectl"), "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _one(docs, kind, name=None):
    (doc,) = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    return doc


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_overlays_render_and_pass_the_schemas(overlay):
    docs = _render(overlay)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(["Deployment", "Service", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                            "ServiceMonitor", "Job", "Job", "PersistentVolumeClaim", "PersistentVolumeClaim",
                            "PersistentVolumeClaim"])
    version = kubernetes_validate.latest_version()
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":  # a CRD: no built-in schema; checked below instead
            continue
        kubernetes_validate.validate(doc, version, strict=True)


def test_schema_validation_is_not_vacuous():
    deployment = _one(_render("cpu"), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProb"] = {}  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_deployment_is_probed_secured_and_drained(overlay):
    docs = _render(overlay)
    deployment = _one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == 50051, probe
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    env = {e["name"]: e["value"] for e in container["env"]}
    assert pod["terminationGracePeriodSeconds"] > float(env["GENSERVE_GRACE_PERIOD"]) + 1
    assert container["image"] == f"genserve:{overlay}"
    gpus = [c["resources"]["limits"].get("nvidia.com/gpu")
            for c in (container, _one(docs, "Job", "genserve-train")["spec"]["template"]["spec"]["containers"][0])]
    assert gpus == (["1", "1"] if overlay == "gpu" else [None, None])
    if overlay == "gpu":
        assert env["GENSERVE_PROVIDERS"] == "cuda"

    # The selectors of the Service, PDB and ServiceMonitor find the pods; the HPA scales the Deployment.
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = _one(docs, "Service", "genserve")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    headless = _one(docs, "Service", "genserve-headless")
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["selector"].items() <= pod_labels.items()
    assert _one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    monitor = _one(docs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    assert _one(docs, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_training_job_and_the_servers_share_one_model_repository(overlay):
    """Retrain to serve: the suspended Job exports into the volume every replica serves
    from and polls, seeded once with the image's default models."""
    docs = _render(overlay)
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    job = _one(docs, "Job", "genserve-train")
    job_pod = job["spec"]["template"]["spec"]
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    job_claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in job_pod["volumes"]
                  if "persistentVolumeClaim" in v}
    assert claims["models"] == job_claims["models"] == "genserve-models"
    assert _one(docs, "PersistentVolumeClaim", "genserve-models")["spec"]["accessModes"] == ["ReadWriteMany"]
    assert job["spec"]["suspend"] is True

    (server,), (seed,), (trainer,) = pod["containers"], pod["initContainers"], job_pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in server["volumeMounts"]}
    env = {e["name"]: e["value"] for e in server["env"]}
    assert env["GENSERVE_MODEL_REPOSITORY"] == mounts["models"]
    assert float(env["GENSERVE_POLL_INTERVAL"]) > 0 and float(env["GENSERVE_MAX_CONNECTION_AGE"]) > 0
    assert {m["name"]: m["mountPath"] for m in seed["volumeMounts"]}["models"] in seed["command"][-1]
    assert seed["image"] == server["image"]
    job_mounts = {m["name"]: m["mountPath"] for m in trainer["volumeMounts"]}
    args = trainer["args"]
    assert args[args.index("--model-repository") + 1] == job_mounts["models"]
    from server.settings import parse
    settings = parse([])  # every variable the Deployment sets is one the server reads
    assert {f"GENSERVE_{k.upper()}" for k in vars(settings)} >= set(env)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_dataset_job_makes_one_shard_per_completion_through_the_service(overlay):
    """Pod k of the Indexed Job makes shard k (the command reads JOB_COMPLETION_INDEX;
    tests/e2e/test_dataset.py runs two indices as two processes), through the Service,
    onto a volume every pod writes."""
    docs = _render(overlay)
    job = _one(docs, "Job", "genserve-dataset")
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert spec["completionMode"] == "Indexed" and spec["suspend"] is True
    (container,) = pod["containers"]
    args = container["args"]
    assert container["image"] == "genserve-client:latest"
    assert int(args[args.index("--shards") + 1]) == spec["completions"]
    assert "--shard-index" not in args  # each pod's own index, from Kubernetes
    host, port = args[args.index("--target") + 1].split(":")
    service = _one(docs, "Service", "genserve")
    assert host == service["metadata"]["name"] and int(port) in {p["port"] for p in service["spec"]["ports"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert args[args.index("--out") + 1].startswith(mounts["datasets"] + "/")
    claim = next(v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if v["name"] == "datasets")
    assert _one(docs, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteMany"]
    from client.__main__ import build_parser
    build_parser().parse_args(args)  # the command line the pods run parses
