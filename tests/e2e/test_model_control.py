"""Operating genserve as Triton's users do, through tritonclient (gRPC and HTTP) against
a real server: the model-repository extension (index, load, unload) under each
--model-control mode, a load of a version that breaks its contract, an unload under
load, the token on the API; and the statistics extension."""

import asyncio
import json
import shutil
import threading

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from helpers import ServerProcess, served, wait_until

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def clients(server, token=None):
    headers = {"authorization": f"Bearer {token}"} if token else None
    return (triton_grpc.InferenceServerClient(server.target), triton_http.InferenceServerClient(
        f"127.0.0.1:{server.http_port}")), headers


def z_input(module, rows=1):
    tensor = module.InferInput("z", [rows, 2], "FP32")
    tensor.set_data_from_numpy(np.zeros((rows, 2), np.float32))
    return tensor


def states(index) -> dict:
    """{name: (versions READY, reason when none)} from either client's index."""
    entries = index["models"] if isinstance(index, dict) else index
    found: dict = {}
    for entry in entries:
        ready, reason = found.get(entry["name"], ([], ""))
        if entry.get("state") == "READY":
            ready = ready + [entry["version"]]
        found[entry["name"]] = (ready, entry.get("reason", reason) or reason)
    return found


@pytest.fixture
def repository(tiny_repository, tmp_path):
    copy = tmp_path / "models"
    shutil.copytree(tiny_repository, copy)
    return copy


def test_explicit_control_loads_only_what_is_asked_and_answers_once_it_serves(repository):
    with served(repository, "--model-control", "explicit", "--load-model", "gan_generator") as server:
        (grpc_client, http_client), _ = clients(server)
        assert set(http_client.get_server_metadata()["extensions"]) == {"binary_tensor_data", "model_repository",
                                                                        "statistics"}
        assert set(grpc_client.get_server_metadata(as_json=True)["extensions"]) == {"model_repository", "statistics"}
        found = states(grpc_client.get_model_repository_index(as_json=True))
        assert found["gan_generator"][0] == ["1"] and found["vae_decoder"] == ([], "not loaded")
        assert not http_client.is_model_ready("vae_decoder")
        with pytest.raises(InferenceServerException, match="unknown model 'vae_decoder'"):
            http_client.infer("vae_decoder", [z_input(triton_http)])

        http_client.load_model("vae_decoder")  # answers once the model serves
        assert http_client.is_model_ready("vae_decoder")
        assert http_client.infer("vae_decoder", [z_input(triton_http)]).as_numpy("image").shape == (1, 1, 28, 28)
        assert states(http_client.get_model_repository_index())["vae_decoder"][0] == ["1"]
        ready_only = grpc_client.get_model_repository_index(as_json=True)
        assert all(m.get("state") == "READY" for m in ready_only["models"] if m["name"] == "vae_decoder")

        grpc_client.unload_model("vae_decoder")
        assert states(http_client.get_model_repository_index())["vae_decoder"] == ([], "unloaded")
        with pytest.raises(InferenceServerException, match="unknown model"):
            grpc_client.infer("vae_decoder", [z_input(triton_grpc)])
        grpc_client.load_model("vae_decoder")
        assert grpc_client.is_model_ready("vae_decoder")

        for call, match in ((lambda: http_client.load_model("no_such_model"), "no model 'no_such_model'"),
                            (lambda: grpc_client.unload_model("dae"), "'dae' is not loaded"),
                            (lambda: http_client.load_model("vae_decoder", config="{}"), "parameters: ")):
            with pytest.raises(InferenceServerException, match=match):
                call()


def test_a_load_of_a_version_that_breaks_its_contract_is_refused_and_the_old_one_serves(repository):
    with served(repository, "--model-control", "explicit", "--load-model", "vae_decoder") as server:
        (grpc_client, http_client), _ = clients(server)
        bad = repository / "vae_decoder" / "2"
        shutil.copytree(repository / "gan_generator" / "1", bad)  # a sampler's tensors in a decoder's place
        manifest = json.loads((bad / "manifest.json").read_text())
        (bad / "manifest.json").write_text(json.dumps(manifest | {"name": "vae_decoder", "version": 2}))
        for client in (http_client, grpc_client):
            with pytest.raises(InferenceServerException, match="vae_decoder version 2: refused: .*still serving "
                                                               "version 1"):
                client.load_model("vae_decoder")
        assert http_client.infer("vae_decoder", [z_input(triton_http)]).get_response()["model_version"] == "1"
        assert states(http_client.get_model_repository_index())["vae_decoder"][0] == ["1"]
        assert server.metric("genserve_model_reloads_total", model="vae_decoder", result="refused") == 2


def test_an_unload_lets_the_calls_already_running_finish(repository):
    # Each request waits up to a second in the queue for company: the unload comes while they wait.
    with served(repository, "--model-control", "explicit", "--load-model", "*",
                "--max-queue-delay-us", "1000000") as server:
        failures, results = [], []

        async def calls():
            import tritonclient.grpc.aio as triton_aio

            client = triton_aio.InferenceServerClient(server.target)
            try:
                return await asyncio.gather(*(client.infer("vae_decoder", [z_input(triton_grpc)])
                                              for _ in range(16)), return_exceptions=True)
            finally:
                await client.close()

        thread = threading.Thread(target=lambda: results.extend(asyncio.run(calls())))
        thread.start()
        wait_until(lambda: server.metric("genserve_queue_depth", model="vae_decoder") >= 16, what="calls queued")
        (grpc_client, _), _ = clients(server)
        grpc_client.unload_model("vae_decoder")
        thread.join(30)
        failures = [r for r in results if isinstance(r, Exception)]
        assert len(results) == 16 and not failures, failures
        assert not grpc_client.is_model_ready("vae_decoder")


def test_load_and_unload_are_refused_unless_the_mode_is_explicit(repository):
    for mode in ("none", "poll"):
        with served(repository, "--model-control", mode) as server:
            (grpc_client, http_client), _ = clients(server)
            assert states(grpc_client.get_model_repository_index(as_json=True))["dae"][0] == ["1"]
            for client in (grpc_client, http_client):
                with pytest.raises(InferenceServerException, match=f"--model-control {mode}; loading and unloading"):
                    client.unload_model("dae")
                with pytest.raises(InferenceServerException, match="need --model-control explicit"):
                    client.load_model("dae")
            assert http_client.is_model_ready("dae")


def test_the_repository_api_always_needs_the_token(repository, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("secret-token-0123456789\n")
    with served(repository, "--model-control", "explicit", "--auth-token-file", str(tokens)) as server:
        (grpc_client, http_client), headers = clients(server, "secret-token-0123456789")
        assert http_client.is_server_live()  # health stays open
        for call in (lambda h: http_client.get_model_repository_index(headers=h),
                     lambda h: grpc_client.get_model_repository_index(headers=h),
                     lambda h: http_client.load_model("dae", headers=h),
                     lambda h: grpc_client.unload_model("dae", headers=h),
                     lambda h: http_client.get_inference_statistics(headers=h),
                     lambda h: grpc_client.get_inference_statistics(headers=h)):
            with pytest.raises(InferenceServerException, match="(?i)bearer token"):
                call(None)
            call(headers)


def test_statistics_count_requests_runs_and_times_per_version(server):
    (grpc_client, http_client), _ = clients(server)
    before = http_client.get_inference_statistics("vae_decoder")["model_stats"][0]
    for rows in (1, 3, 3):
        http_client.infer("vae_decoder", [z_input(triton_http, rows)])
    grpc_client.infer("vae_decoder", [z_input(triton_grpc, 2)])
    with pytest.raises(InferenceServerException):
        bad = triton_http.InferInput("z", [1, 2], "FP32")
        bad.set_data_from_numpy(np.full((1, 2), np.nan, np.float32))
        http_client.infer("vae_decoder", [bad])  # refused before the model: not a model request
    after = http_client.get_inference_statistics("vae_decoder", "1")["model_stats"][0]
    assert after["name"] == "vae_decoder" and after["version"] == "1"
    assert after["inference_count"] - before["inference_count"] == 9
    runs = after["execution_count"] - before["execution_count"]
    assert runs >= 4  # a request runs once, or in parts across idle instances
    stats, earlier = after["inference_stats"], before["inference_stats"]
    for part, count in (("success", 4), ("fail", 0), ("queue", 4), ("compute_input", runs), ("compute_infer", runs),
                        ("compute_output", runs)):
        assert stats[part]["count"] - earlier[part]["count"] == count, part
        assert stats[part]["ns"] > earlier[part]["ns"] or count == 0, part
    assert sum(b["compute_infer"]["count"] for b in after["batch_stats"]) == after["execution_count"]
    assert after["last_inference"] > 0
    over_grpc = grpc_client.get_inference_statistics("vae_decoder", as_json=True)["model_stats"][0]
    assert over_grpc["inference_count"] == str(after["inference_count"])  # protobuf's JSON: uint64 as text
    everything = http_client.get_inference_statistics()["model_stats"]
    assert {"gan_generator", "vae_decoder", "dae"} <= {m["name"] for m in everything}
    for call, match in ((lambda: http_client.get_inference_statistics("nope"), "unknown model 'nope'"),
                        (lambda: grpc_client.get_inference_statistics("vae_decoder", "7"), "version '7' is not "
                                                                                            "served")):
        with pytest.raises(InferenceServerException, match=match):
            call()


def test_a_start_with_an_unknown_load_model_says_so(repository):
    process = ServerProcess(repository, "--model-control", "explicit", "--load-model", "nope")
    assert process.wait_exit(60) == 1
    assert "--load-model nope: no such model in" in process.log


def test_a_manifest_sets_its_versions_batching_and_a_bad_value_refuses_the_version(repository):
    manifest_path = repository / "vae_decoder" / "1" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps(manifest | {"serving": {"max_batch_size": 4, "instances": 1,
                                                                "max_gather_us": 0}}))
    with served(repository, "--model-control", "explicit", "--load-model", "vae_decoder",
                "--max-batch-size", "64") as server:
        from client import GenerativeClient

        with GenerativeClient(server.target) as client:
            (info,) = [m for m in client.list_models() if m.name == "vae_decoder"]
            assert info.serving == {"max_batch_size": 4, "max_queue_delay_us": 0, "max_gather_us": 0,
                                    "instances": 1}
            client.decode(np.zeros((10, 2), np.float32))
        (_, http_client), _ = clients(server)
        sizes = {int(b["batch_size"]) for b in http_client.get_inference_statistics("vae_decoder")["model_stats"][0]
                 ["batch_stats"]}
        assert max(sizes) <= 4  # ten rows in runs of at most four

        bad = repository / "vae_decoder" / "2"
        shutil.copytree(repository / "vae_decoder" / "1", bad)
        (bad / "manifest.json").write_text(json.dumps(manifest | {"version": 2, "serving": {"max_batch_size": 0}}))
        with pytest.raises(InferenceServerException, match="serving.max_batch_size: must be a whole number from 1"):
            http_client.load_model("vae_decoder")
        (bad / "manifest.json").write_text(json.dumps(manifest | {"version": 2, "serving": {"batch": 8}}))
        with pytest.raises(InferenceServerException, match="serving.batch: not a setting"):
            http_client.load_model("vae_decoder")
        assert states(http_client.get_model_repository_index())["vae_decoder"][0] == ["1"]
