"""HTTP beside gRPC, against the real server: the Open Inference Protocol's REST API
through the real ``tritonclient.http`` (JSON and binary tensors), genserve.v1 as
canonical JSON and as PNG against the gRPC answers, bad input, and the bearer token."""

import base64
import io
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.http as triton_http
from PIL import Image
from tritonclient.utils import InferenceServerException

from client.pictures import read_grid
from helpers import ServerProcess


def fetch(server, path, body=None, headers=None, method=None):
    """(status, headers, body bytes) of one HTTP call."""
    request = urllib.request.Request(f"http://127.0.0.1:{server.http_port}{path}", data=body,
                                     headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def post_json(server, path, payload, headers=None):
    status, _, body = fetch(server, path, json.dumps(payload).encode(),
                            {"Content-Type": "application/json", **(headers or {})})
    return status, json.loads(body)


@pytest.fixture(scope="module")
def rest(server):
    with triton_http.InferenceServerClient(f"127.0.0.1:{server.http_port}") as client:
        yield client


def test_health_and_metadata_through_tritonclient_http(rest):
    assert rest.is_server_live() and rest.is_server_ready()
    assert rest.get_server_metadata()["name"] == "genserve"
    assert rest.is_model_ready("gan_generator") and rest.is_model_ready("gan_generator", "1")
    assert not rest.is_model_ready("gan_generator", "9")
    metadata = rest.get_model_metadata("cgan_generator")
    assert metadata["versions"] == ["1"] and metadata["platform"] == "onnxruntime_onnx"
    assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["inputs"]] == [
        ("noise", "FP32", [-1, 100]), ("digit", "INT64", [-1])]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_through_tritonclient_http_equals_grpc(rest, client, binary):
    noise = client.sample_digits(n=4, seed=3, return_latents=True)[1]
    tensor = triton_http.InferInput("noise", [4, 100], "FP32")
    tensor.set_data_from_numpy(noise, binary_data=binary)
    outputs = [triton_http.InferRequestedOutput("image", binary_data=binary)]
    got = rest.infer("gan_generator", [tensor], outputs=outputs).as_numpy("image")
    np.testing.assert_array_equal(got.reshape(4, 28, 28), client.sample_digits(n=4, seed=3, as_float=True))
    z = np.array([[0, 0], [1, -1]], np.float32)
    tensor = triton_http.InferInput("z", [2, 2], "FP32")
    tensor.set_data_from_numpy(z, binary_data=binary)
    got = rest.infer("vae_decoder", [tensor]).as_numpy("image")  # default settings: binary outputs
    np.testing.assert_array_equal(got.reshape(2, 28, 28), client.decode(z, as_float=True))


def test_infer_with_two_dtypes_and_errors_over_rest(rest, client, server):
    noise = client.sample_digits(n=2, seed=8, return_latents=True)[1]
    inputs = [triton_http.InferInput("noise", [2, 100], "FP32"), triton_http.InferInput("digit", [2], "INT64")]
    inputs[0].set_data_from_numpy(noise)
    inputs[1].set_data_from_numpy(np.array([4, 2], np.int64))
    got = rest.infer("cgan_generator", inputs).as_numpy("image")
    np.testing.assert_array_equal(got.reshape(2, 28, 28), client.sample_digits(n=2, seed=8, digit=[4, 2], as_float=True))
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        rest.infer("nope", inputs)
    bad = triton_http.InferInput("z", [1, 3], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 3), np.float32))
    with pytest.raises(InferenceServerException, match=r"inputs\[0\].shape"):
        rest.infer("vae_decoder", [bad])
    status, answer = post_json(server, "/v2/models/vae_decoder/infer",
                               {"inputs": [{"name": "z", "shape": [1, 2], "datatype": "FP32", "data": [0, "x"]}]})
    assert status == 400 and "inputs[0].data" in answer["error"]
    status, answer = post_json(server, "/v2/models/nope/infer", {"inputs": []})
    assert status == 404 and "nope" in answer["error"]


@pytest.mark.parametrize("rpc, payload, grpc_call", [
    ("sample", {"n": 3, "model": "gan", "seed": 5, "digit": 2}, lambda c: c.sample_digits(n=3, seed=5, digit=2)),
    ("decode", {"z": {"dtype": "DATA_TYPE_FLOAT32", "shape": [1, 2],
                      "data": base64.b64encode(np.array([0.5, -1], "<f4").tobytes()).decode()}},
     lambda c: c.decode(np.array([[0.5, -1]], np.float32))),
    ("interpolate", {"start": {"seed": 1}, "end": {"seed": 2}, "steps": 4},
     lambda c: c.interpolate(1, 2, steps=4)),
    ("latent_grid", {"size": 3, "digit": 5}, lambda c: c.latent_grid(3, digit=5).reshape(9, 28, 28)),
])
def test_v1_json_round_trips_the_grpc_answer(server, client, rpc, payload, grpc_call):
    status, answer = post_json(server, f"/v1/{rpc}", payload)
    assert status == 200, answer
    images = answer["images"]
    pixels = np.frombuffer(base64.b64decode(images["data"]), np.uint8).reshape([int(d) for d in images["shape"]])
    np.testing.assert_array_equal(pixels, grpc_call(client))


def test_v1_json_classify_and_list_models(server, client):
    digits = client.sample_digits(n=2, seed=4)
    tensor = {"dtype": "DATA_TYPE_UINT8", "shape": [2, 28, 28], "data": base64.b64encode(digits.tobytes()).decode()}
    status, answer = post_json(server, "/v1/classify", {"images": tensor})
    assert status == 200 and answer["digits"] == client.classify(digits)[0].tolist()
    status, answer = post_json(server, "/v1/list_models", {})
    assert status == 200 and {m["name"] for m in answer["models"]} >= {"gan_generator", "cgan_generator"}


@pytest.mark.parametrize("path, payload, status, fragment", [
    ("/v1/sample", {"n": 0}, 400, "n: must be between 1 and 600"),
    ("/v1/sample", {"n": 2, "digit": 12}, 400, "digit"),
    ("/v1/sample", {"n": "many"}, 400, "request body"),
    ("/v1/sample", {"n": 2, "model": "diffusion"}, 404, "unknown sampler 'diffusion'"),
    ("/v1/latent_grid", {"size": 65}, 400, "size: must be between 2 and 64"),
    ("/v1/no_such_call", {}, 404, "no such call"),
])
def test_v1_json_bad_input(server, path, payload, status, fragment):
    got, answer = post_json(server, path, payload)
    assert got == status and fragment in answer["error"], answer


def test_png_routes(server, client, tmp_path):
    status, headers, body = fetch(server, "/v1/sample.png?n=6&model=gan&seed=1&digit=7&scale=2")
    assert status == 200 and headers["Content-Type"] == "image/png"
    picture = Image.open(io.BytesIO(body))
    assert picture.size == (3 * 28 * 2, 2 * 28 * 2)
    (tmp_path / "grid.png").write_bytes(fetch(server, "/v1/sample.png?n=6&seed=1&digit=7")[2])
    tiles, _ = read_grid(tmp_path / "grid.png")
    np.testing.assert_array_equal(tiles, client.sample_digits(n=6, seed=1, digit=7))
    status, _, body = fetch(server, "/v1/grid.png?size=5&digit=3")
    assert status == 200 and Image.open(io.BytesIO(body)).size == (5 * 28, 5 * 28)
    status, _, body = fetch(server, "/v1/interpolate.png?from_seed=1&to_seed=2&steps=7")
    assert status == 200 and Image.open(io.BytesIO(body)).size == (7 * 28, 28)
    status, _, body = fetch(server, "/v1/denoise.png", (tmp_path / "grid.png").read_bytes(),
                            {"Content-Type": "image/png"})
    (tmp_path / "clean.png").write_bytes(body)
    np.testing.assert_array_equal(read_grid(tmp_path / "clean.png")[0], client.denoise(tiles))


@pytest.mark.parametrize("path, status, fragment", [
    ("/v1/sample.png?n=0", 400, "n: must be between 1"),
    ("/v1/sample.png?n=abc", 400, "query"),
    ("/v1/sample.png?scale=99", 400, "scale: a whole number between 1 and 16"),
    ("/v1/sample.png?color=red", 400, "'color': not a parameter"),
    ("/v1/grid.png?span=-1", 400, "span"),
    ("/v1/interpolate.png?from_seed=1", 400, "to_seed: required"),
    ("/nothing/here", 404, "no such route"),
])
def test_png_routes_bad_input(server, path, status, fragment):
    got, _, body = fetch(server, path)
    assert got == status and fragment in json.loads(body)["error"]


def test_bad_bodies(server):
    status, _, body = fetch(server, "/v1/denoise.png", b"not a png", {"Content-Type": "image/png"})
    assert status == 400 and "not a readable PNG" in json.loads(body)["error"]
    status, _, body = fetch(server, "/v1/sample", b"{", {"Content-Type": "application/json"})
    assert status == 400 and "request body" in json.loads(body)["error"]
    status, _, body = fetch(server, "/v2/models/vae_decoder/infer", b"x" * 4_000_000,
                            {"Content-Type": "application/json"})
    assert status == 413 and "over the limit" in json.loads(body)["error"]
    status, _, body = fetch(server, "/v2/models/vae_decoder/infer", b"{}", {"Inference-Header-Content-Length": "9"})
    assert status == 400 and "Inference-Header-Content-Length" in json.loads(body)["error"]


def test_http_requests_are_counted_with_their_protocol(server, client):
    fetch(server, "/v1/sample.png?n=2&seed=1")
    client.sample_digits(n=2, seed=1)
    text = server.scrape()
    assert 'genserve_requests_total{code="OK",model="gan_generator",protocol="http",rpc="Sample"}' in text
    assert 'genserve_requests_total{code="OK",model="gan_generator",protocol="grpc",rpc="Sample"}' in text


def test_the_playground_page_is_served(server):
    status, headers, body = fetch(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"genserve playground" in body and b"http://" not in body and b"https://" not in body


def test_a_token_guards_http_as_it_guards_grpc(tiny_repository, tmp_path):
    token = "s3cret-token-0123456789abcdef"
    (tmp_path / "tokens").write_text(token + "\n")
    server = ServerProcess(tiny_repository, "--auth-token-file", str(tmp_path / "tokens")).wait_ready_logged()
    try:
        assert fetch(server, "/v2/health/ready")[0] == 200  # health stays open, as over gRPC
        assert fetch(server, "/")[0] == 200
        for headers in ({}, {"Authorization": "Bearer wrong-token-000000000000"}, {"Authorization": token}):
            status, _, body = fetch(server, "/v1/sample.png?n=1", headers=headers)
            assert status == 401 and "bearer token" in json.loads(body)["error"]
        assert fetch(server, "/v1/sample.png?n=1", headers={"Authorization": f"Bearer {token}"})[0] == 200
        with triton_http.InferenceServerClient(f"127.0.0.1:{server.http_port}") as rest:
            with pytest.raises(InferenceServerException, match="bearer token"):
                rest.get_model_metadata("dae")
            assert rest.get_model_metadata("dae", headers={"Authorization": f"Bearer {token}"})["name"] == "dae"
    finally:
        assert server.stop() == 0
