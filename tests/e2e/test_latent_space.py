"""Digits on demand and the latent space, against a real server on the tiny models:
Sample with digits and latents, Interpolate, LatentGrid, Reconstruct, Restyle and
Classify through the client, their identities, each bad input, and the conditional
models over the Open Inference Protocol."""

import asyncio
import json
import shutil
import subprocess
import sys

import grpc
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton

from client import AsyncGenerativeClient, FailedPrecondition, GenerativeClient, InvalidArgument
from client.pictures import read_grid
from genserve.codec import to_tensor
from genserve.latents import grid, slerp
from genserve.v1 import generative_pb2 as pb
from genserve.v1 import generative_pb2_grpc as pb_grpc
from helpers import ROOT, served

MAX_BATCH = 512  # the session server's --max-request-size (conftest)


def _session(repository, name):
    return ort.InferenceSession(str(repository / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"])


def _pixels(floats):
    return np.clip(np.rint(floats.reshape(-1, 28, 28) * 255), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.target) as channel:
        yield pb_grpc.GenerativeServiceStub(channel)


@pytest.fixture
def test_images(client):
    return client.sample_digits(n=6, model="vae", seed=11, digit=[0, 1, 2, 3, 4, 5])


@pytest.mark.parametrize("model, served_as", [("gan", "cgan_generator"), ("vae", "cvae_decoder"),
                                              ("cgan", "cgan_generator"), ("cvae", "cvae_decoder")])
def test_sample_with_a_digit_runs_the_conditional_model(client, tiny_repository, model, served_as):
    result = client.sample_digits(n=5, model=model, seed=3, digit=7, return_latents=True, return_info=True)
    images, latents = result.output
    assert result.model == served_as and images.shape == (5, 28, 28) and images.dtype == np.uint8
    assert latents.shape == (5, 100 if "gan" in model else 2) and latents.dtype == np.float32
    # The images are the conditional model's on those latents and that digit.
    inputs = {"noise" if "gan" in model else "z": latents, "digit": np.full(5, 7, np.int64)}
    np.testing.assert_array_equal(images, _pixels(_session(tiny_repository, served_as).run(None, inputs)[0]))


def test_same_seed_same_latents_whatever_the_digits(client):
    _, first = client.sample_digits(n=4, seed=9, digit=1, return_latents=True)
    _, second = client.sample_digits(n=4, seed=9, digit=[2, 3, 4, 5], return_latents=True)
    _, plain = client.sample_digits(n=4, seed=9, return_latents=True)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, plain)


def test_one_digit_per_image_and_the_same_bytes_batched_or_not(client, server):
    digits = [0, 1, 2, 3, 4, 5, 6, 7]
    alone = client.sample_digits(n=8, seed=5, digit=digits)
    assert not np.array_equal(alone[0], alone[1])
    with GenerativeClient(server.target, timeout=30) as other:
        import concurrent.futures as cf
        with cf.ThreadPoolExecutor(8) as pool:  # concurrent calls the batcher may join into one run
            answers = list(pool.map(lambda _: other.sample_digits(n=8, seed=5, digit=digits), range(16)))
    assert all(np.array_equal(a, alone) for a in answers)


def test_interpolation_between_seeds_starts_and_ends_on_their_samples(client):
    for model, digit in (("gan", None), ("vae", None), ("gan", 4), ("vae", 4)):
        frames = client.interpolate(1, 2, steps=6, model=model, digit=digit)
        first = client.sample_digits(n=1, model=model, seed=1, digit=digit)
        last = client.sample_digits(n=1, model=model, seed=2, digit=digit)
        assert frames.shape == (6, 28, 28)
        np.testing.assert_array_equal(frames[0], first[0])
        np.testing.assert_array_equal(frames[-1], last[0])


def test_gan_interpolation_is_spherical(client, tiny_repository):
    _, a = client.sample_digits(n=1, seed=1, return_latents=True)
    _, b = client.sample_digits(n=1, seed=2, return_latents=True)
    frames = client.interpolate(a[0], b[0], steps=5, model="gan")
    expected = _session(tiny_repository, "gan_generator").run(None, {"noise": slerp(a[0], b[0], 5)})[0]
    np.testing.assert_array_equal(frames, _pixels(expected))


def test_vae_interpolation_from_images_is_linear_between_posterior_means(client, test_images):
    means, _ = client.encode(test_images[:2])
    frames = client.interpolate(test_images[0], test_images[1], steps=3, model="vae")
    middle = client.decode(means.mean(0, keepdims=True))
    np.testing.assert_array_equal(frames[[0, 2]], client.decode(means))
    assert np.abs(frames[1].astype(int) - middle[0]).max() <= 1  # z computed in float64, then rounded


def test_latent_grid_is_the_decoder_over_the_grid(client, tiny_repository):
    manifold = client.latent_grid(4, span=2.0)
    assert manifold.shape == (4, 4, 28, 28)
    expected = _session(tiny_repository, "vae_decoder").run(None, {"z": grid(4, 2.0)})[0]
    np.testing.assert_array_equal(manifold.reshape(16, 28, 28), _pixels(expected))
    z = grid(4, 2.0).reshape(4, 4, 2)
    assert z[0, 0].tolist() == [-2, -2] and z[0, 3].tolist() == [2, -2] and z[3, 0].tolist() == [-2, 2]
    styles = client.latent_grid(3, digit=8, return_info=True)
    assert styles.model == "cvae_decoder" and styles.output.shape == (3, 3, 28, 28)


def test_reconstruct_decodes_the_posterior_means(client, test_images):
    means, _ = client.encode(test_images)
    np.testing.assert_array_equal(client.reconstruct(test_images), client.decode(means))


def test_restyle_encodes_with_the_source_digit_and_decodes_with_the_target(client, tiny_repository, test_images):
    source = [0, 1, 2, 3, 4, 5]
    written = client.restyle(test_images, 9, source_digits=source)
    style = _session(tiny_repository, "cvae_encoder").run(
        None, {"image": test_images[:, None].astype(np.float32) / 255, "digit": np.array(source, np.int64)})[0]
    expected = _session(tiny_repository, "cvae_decoder").run(None, {"z": style, "digit": np.full(6, 9, np.int64)})[0]
    np.testing.assert_array_equal(written, _pixels(expected))
    # Without source digits, the classifier's reading is the source.
    read, _ = client.classify(test_images)
    np.testing.assert_array_equal(client.restyle(test_images, 9), client.restyle(test_images, 9, source_digits=read))


def test_classify_gives_probabilities_and_digits(client, tiny_repository, test_images):
    digits, probabilities = client.classify(test_images)
    assert digits.dtype == np.int64 and probabilities.shape == (6, 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-5)
    np.testing.assert_array_equal(digits, probabilities.argmax(1))
    logits = _session(tiny_repository, "digit_classifier").run(
        None, {"image": test_images[:, None].astype(np.float32) / 255})[0]
    np.testing.assert_array_equal(digits, logits.argmax(1))


def test_list_models_reports_each_role(client):
    roles = {m.name: m.role for m in client.list_models()}
    assert roles == {"vae_encoder": "encoder", "vae_decoder": "decoder", "gan_generator": "sampler", "dae": "denoiser",
                     "digit_classifier": "classifier", "cgan_generator": "conditional_sampler",
                     "cvae_encoder": "conditional_encoder", "cvae_decoder": "conditional_decoder"}


def _image(shape, dtype=pb.DATA_TYPE_UINT8):
    size = int(np.prod(shape)) * (1 if dtype == pb.DATA_TYPE_UINT8 else 4)
    return pb.Tensor(dtype=dtype, shape=shape, data=b"\0" * size)


SEED = pb.Endpoint(seed=1)
IMAGES = _image([2, 28, 28])
BAD = [
    # (id, rpc, request, message fragments)
    ("digit-too-big", "Sample", pb.SampleRequest(n=2, digit=10), ["digit", "0-9", "10"]),
    ("digits-not-n", "Sample", pb.SampleRequest(n=3, digits=[1, 2]), ["digits", "2 digits for 3 images"]),
    ("digits-out-of-range", "Sample", pb.SampleRequest(n=2, digits=[1, 12]), ["digits[1]", "0-9", "12"]),
    ("digit-and-digits", "Sample", pb.SampleRequest(n=1, digit=1, digits=[1]), ["digits", "not together"]),
    ("conditional-without-digit", "Sample", pb.SampleRequest(n=1, model="cgan"), ["digit: required"]),
    ("steps-1", "Interpolate", pb.InterpolateRequest(start=SEED, end=SEED, steps=1), ["steps", "between 2 and 512"]),
    ("steps-over-limit", "Interpolate", pb.InterpolateRequest(start=SEED, end=SEED, steps=513),
     ["steps", "between 2 and 512", "513"]),
    ("no-end", "Interpolate", pb.InterpolateRequest(start=SEED, steps=3), ["end: required"]),
    ("latent-wrong-size", "Interpolate",
     pb.InterpolateRequest(start=pb.Endpoint(latent=to_tensor(np.zeros(3, np.float32))), end=SEED, steps=3),
     ["start.latent.shape", "[2]", "[3]"]),
    ("gan-latent-wrong-size", "Interpolate",
     pb.InterpolateRequest(model="gan", start=SEED, end=pb.Endpoint(latent=to_tensor(np.zeros(2, np.float32))),
                           steps=3), ["end.latent.shape", "[100]"]),
    ("latent-nan", "Interpolate",
     pb.InterpolateRequest(start=pb.Endpoint(latent=to_tensor(np.full(2, np.nan, np.float32))), end=SEED, steps=3),
     ["start.latent.data", "NaN"]),
    ("endpoint-image-not-28", "Interpolate",
     pb.InterpolateRequest(start=pb.Endpoint(image=_image([27, 28])), end=SEED, steps=3),
     ["start.image.shape", "[28,28]", "[27, 28]"]),
    ("endpoint-image-for-gan", "Interpolate",
     pb.InterpolateRequest(model="gan", start=pb.Endpoint(image=_image([28, 28])), end=SEED, steps=3),
     ["start.image", "no encoder"]),
    ("interpolate-digit", "Interpolate", pb.InterpolateRequest(start=SEED, end=SEED, steps=2, digit=11),
     ["digit", "0-9"]),
    ("grid-size-1", "LatentGrid", pb.LatentGridRequest(size=1), ["size", "between 2 and 64"]),
    ("grid-size-65", "LatentGrid", pb.LatentGridRequest(size=65), ["size", "between 2 and 64", "65"]),
    ("grid-span-nan", "LatentGrid", pb.LatentGridRequest(size=3, span=float("nan")), ["span", "finite"]),
    ("grid-span-zero", "LatentGrid", pb.LatentGridRequest(size=3, span=0), ["span", "> 0"]),
    ("grid-span-inf", "LatentGrid", pb.LatentGridRequest(size=3, span=float("inf")), ["span", "finite"]),
    ("grid-digit", "LatentGrid", pb.LatentGridRequest(size=3, digit=10), ["digit", "0-9"]),
    ("reconstruct-not-28", "Reconstruct", pb.ReconstructRequest(images=_image([2, 28, 27])),
     ["images.shape", "[N,28,28]"]),
    ("restyle-no-digit", "Restyle", pb.RestyleRequest(images=IMAGES), ["digit: required"]),
    ("restyle-digit", "Restyle", pb.RestyleRequest(images=IMAGES, digit=10), ["digit", "0-9"]),
    ("restyle-sources-not-n", "Restyle", pb.RestyleRequest(images=IMAGES, digit=1, source_digits=[1]),
     ["source_digits", "1 digits for 2 images"]),
    ("classify-not-28", "Classify", pb.ClassifyRequest(images=_image([1, 32, 32])), ["images.shape"]),
    ("classify-over-batch", "Classify", pb.ClassifyRequest(images=_image([MAX_BATCH + 1, 28, 28])),
     ["images.shape", f"maximum of {MAX_BATCH}"]),
]


@pytest.mark.parametrize("rpc, request_, fragments", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_is_invalid_argument_naming_the_field(stub, rpc, request_, fragments):
    with pytest.raises(grpc.RpcError) as info:
        getattr(stub, rpc)(request_, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    for fragment in fragments:
        assert fragment in info.value.details()


def test_the_client_refuses_what_it_cannot_send(client):
    with pytest.raises(InvalidArgument, match="start"):
        client.interpolate("one", 2)
    with pytest.raises(InvalidArgument):
        client.sample_digits(n=2, digit=-1)


def test_oip_infer_on_the_conditional_generator_matches_sample(server, client):
    _, noise = client.sample_digits(n=3, seed=21, return_latents=True)
    expected = client.sample_digits(n=3, seed=21, digit=[3, 1, 4], as_float=True)
    with triton.InferenceServerClient(server.target) as oip:
        metadata = oip.get_model_metadata("cgan_generator")
        assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
            ("noise", "FP32", [-1, 100]), ("digit", "INT64", [-1])]
        inputs = [triton.InferInput("noise", [3, 100], "FP32"), triton.InferInput("digit", [3], "INT64")]
        inputs[0].set_data_from_numpy(noise)
        inputs[1].set_data_from_numpy(np.array([3, 1, 4], np.int64))
        got = oip.infer("cgan_generator", inputs).as_numpy("image")
        np.testing.assert_array_equal(got.reshape(3, 28, 28), expected)
        inputs[1].set_data_from_numpy(np.array([3, 1, 10], np.int64))
        with pytest.raises(Exception, match=r"inputs\[1\] \(digit\).*\[0, 9\].*10"):
            oip.infer("cgan_generator", inputs)


@pytest.fixture(scope="module")
def lecture_repository(tiny_repository, tmp_path_factory):
    """The tiny repository without the conditional models, and with a model of no role
    (the cGAN's file under another name) that only the Open Inference Protocol serves."""
    repository = tmp_path_factory.mktemp("lecture") / "models"
    shutil.copytree(tiny_repository, repository,
                    ignore=lambda folder, names: [n for n in names if n.startswith(("cgan", "cvae"))])
    shutil.copytree(tiny_repository / "cgan_generator", repository / "painter")
    manifest = json.loads((repository / "painter/1/manifest.json").read_text())
    del manifest["role"]
    (repository / "painter/1/manifest.json").write_text(json.dumps(manifest | {"name": "painter"}))
    return repository


def test_a_model_without_a_role_is_served_over_oip_alone(lecture_repository):
    with served(lecture_repository) as server, GenerativeClient(server.target, timeout=30) as client:
        assert {m.name: m.role for m in client.list_models()}["painter"] == ""
        noise = np.random.default_rng(0).standard_normal((2, 100), dtype=np.float32)
        with triton.InferenceServerClient(server.target) as oip:
            inputs = [triton.InferInput("digit", [2], "INT64"), triton.InferInput("noise", [2, 100], "FP32")]
            inputs[0].set_data_from_numpy(np.array([5, 6], np.int64))
            inputs[1].set_data_from_numpy(noise)
            got = oip.infer("painter", inputs).as_numpy("image")
        expected = _session(lecture_repository, "painter").run(None, {"noise": noise, "digit": np.array([5, 6])})[0]
        np.testing.assert_array_equal(got, expected)


def test_without_the_conditional_models_their_calls_fail_precondition(lecture_repository):
    with served(lecture_repository) as server, GenerativeClient(server.target, timeout=30) as client:
        assert client.sample_digits(n=2, seed=1).shape == (2, 28, 28)
        images = client.sample_digits(n=2, model="vae", seed=1)
        for call, missing in ((lambda: client.sample_digits(n=2, digit=3), "cgan_generator"),
                              (lambda: client.sample_digits(n=2, model="vae", digit=3), "cvae_decoder"),
                              (lambda: client.interpolate(1, 2, digit=3), "cvae_decoder"),
                              (lambda: client.latent_grid(3, digit=3), "cvae_decoder"),
                              (lambda: client.restyle(images, 3), "cvae_encoder")):
            with pytest.raises(FailedPrecondition, match=f"{missing}: not in the model repository"):
                call()
        assert client.latent_grid(3).shape == (3, 3, 28, 28)
        assert client.classify(images)[0].shape == (2,)


def test_the_async_client_has_every_new_call(client, server, test_images):
    async def calls():
        async with AsyncGenerativeClient(server.target, retries=0) as aclient:
            return await asyncio.gather(
                aclient.sample_digits(n=4, seed=2, digit=[1, 2, 3, 4], return_latents=True),
                aclient.interpolate(1, 2, steps=4, model="gan", digit=5), aclient.latent_grid(3, span=1.5),
                aclient.reconstruct(test_images), aclient.restyle(test_images, 6), aclient.classify(test_images))
    (sampled, latents), frames, manifold, rebuilt, restyled, (digits, probs) = asyncio.run(calls())
    expected, expected_latents = client.sample_digits(n=4, seed=2, digit=[1, 2, 3, 4], return_latents=True)
    np.testing.assert_array_equal(sampled, expected)
    np.testing.assert_array_equal(latents, expected_latents)
    np.testing.assert_array_equal(frames, client.interpolate(1, 2, steps=4, model="gan", digit=5))
    np.testing.assert_array_equal(manifold, client.latent_grid(3, span=1.5))
    np.testing.assert_array_equal(rebuilt, client.reconstruct(test_images))
    np.testing.assert_array_equal(restyled, client.restyle(test_images, 6))
    np.testing.assert_array_equal(digits, client.classify(test_images)[0])
    np.testing.assert_array_equal(probs, client.classify(test_images)[1])


def test_the_command_line(server, client, tmp_path):
    def run(*args):
        result = subprocess.run([sys.executable, "-m", "client", "--target", server.target, *args],
                                capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    run("sample", "--digit", "7", "--n", "10", "--seed", "4", "--out", str(tmp_path / "sevens.png"))
    sevens, _ = read_grid(tmp_path / "sevens.png")
    np.testing.assert_array_equal(sevens[:10], client.sample_digits(n=10, seed=4, digit=7))
    run("grid", "--size", "5", "--digit", "2", "--out", str(tmp_path / "manifold.png"))
    manifold, columns = read_grid(tmp_path / "manifold.png")
    assert columns == 5
    np.testing.assert_array_equal(manifold, client.latent_grid(5, digit=2).reshape(25, 28, 28))
    run("interpolate", "--from-seed", "1", "--to-seed", "2", "--steps", "10", "--out", str(tmp_path / "morph.png"))
    np.testing.assert_array_equal(read_grid(tmp_path / "morph.png")[0], client.interpolate(1, 2, steps=10))
    lines = run("classify", str(tmp_path / "morph.png")).splitlines()
    digits, probabilities = client.classify(client.interpolate(1, 2, steps=10))
    assert lines[0] == "image\tdigit\tprobability" and len(lines) == 11
    assert [int(line.split("\t")[1]) for line in lines[1:]] == digits.tolist()
    run("restyle", str(tmp_path / "morph.png"), "--digit", "3", "--out", str(tmp_path / "threes.png"))
    assert read_grid(tmp_path / "threes.png")[0].shape == (10, 28, 28)
    run("reconstruct", str(tmp_path / "morph.png"), "--out", str(tmp_path / "rebuilt.png"))
    assert read_grid(tmp_path / "rebuilt.png")[0].shape == (10, 28, 28)
    bad = subprocess.run([sys.executable, "-m", "client", "--target", server.target, "sample", "--digit", "12"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 1 and bad.stderr.startswith("error: INVALID_ARGUMENT: digit:")
