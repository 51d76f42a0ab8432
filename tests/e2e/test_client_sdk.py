"""The client SDK as its users see it: results that say what ran, one deadline over all
attempts, a per-call timeout, and a GenserveError subclass per status code, from a real
server, from a stand-in server that misbehaves on purpose, and from local validation."""

import threading
from concurrent import futures

import grpc
import numpy as np
import pytest

import client as sdk
from client import GenerativeClient, GenserveError, Result
from client.errors import BY_CODE
from genserve.v1 import generative_pb2 as pb
from genserve.v1 import generative_pb2_grpc as pb_grpc


def test_results_say_what_ran_and_an_unseeded_sample_can_be_repeated(client: GenerativeClient):
    drawn = client.sample_digits(n=3, return_info=True)
    assert isinstance(drawn, Result) and drawn.model == "gan_generator" and drawn.version == 1
    assert isinstance(drawn.seed, int)
    again = client.sample_digits(n=3, seed=drawn.seed)
    assert np.array_equal(again, drawn.output)
    vae = client.sample_digits(n=2, model="vae", seed=5, return_info=True)
    assert (vae.model, vae.seed) == ("vae_decoder", 5)
    encoded = client.encode(again, seed=9, return_info=True)
    assert encoded.model == "vae_encoder" and encoded.seed == 9 and len(encoded.output) == 2
    assert client.decode(encoded.output[0], return_info=True).model == "vae_decoder"
    assert client.denoise(again, return_info=True).model == "dae"


def test_every_failure_is_a_subclass_per_code(client: GenerativeClient):
    with pytest.raises(sdk.NotFound) as error:
        client.sample_digits(n=1, model="nope")
    assert error.value.code == grpc.StatusCode.NOT_FOUND and "nope" in error.value.message
    with pytest.raises(sdk.InvalidArgument) as error:
        client.sample_digits(n=5000)
    assert "n: must be between 1 and 600" in error.value.message
    with pytest.raises(sdk.DeadlineExceeded):
        client.sample_digits(n=600, timeout=1e-4)
    with GenerativeClient("127.0.0.1:1", retries=0) as nobody, pytest.raises(sdk.Unavailable):
        nobody.list_models()
    assert all(issubclass(kind, GenserveError) and kind.CODE == code for code, kind in BY_CODE.items())


@pytest.mark.parametrize("call", [
    lambda c: c.sample_digits(n=-1), lambda c: c.sample_digits(n=1, seed=-5), lambda c: c.decode(["a", "b"]),
    lambda c: c.denoise(np.zeros((2, 3, 4, 5, 6))), lambda c: c.encode(np.array(["x"])),
])
def test_local_validation_raises_invalid_argument_before_sending(call):
    with GenerativeClient("127.0.0.1:1", retries=0) as offline:  # nothing listens: nothing may be sent
        with pytest.raises(sdk.InvalidArgument):
            call(offline)


def test_bad_client_settings_are_invalid_argument():
    with pytest.raises(sdk.InvalidArgument, match="token is empty"):
        GenerativeClient("127.0.0.1:1", token=" ")
    with pytest.raises(sdk.InvalidArgument, match="go together"):
        GenerativeClient("127.0.0.1:1", client_cert=b"x")
    with pytest.raises(sdk.InvalidArgument, match="options: each must be a"):
        GenerativeClient("127.0.0.1:1", options=[("grpc.keepalive_time_ms",)])


def test_channel_options_pass_through_and_override_the_clients_own(server):
    with GenerativeClient(server.target, retries=0, options=[("grpc.max_receive_message_length", 1000)]) as small:
        with pytest.raises(sdk.ResourceExhausted):
            small.sample_digits(n=16, seed=1)  # 12 KiB of pixels
    with GenerativeClient(server.target, retries=0, options=[("grpc.primary_user_agent", "digits-app/1")]) as other:
        assert other.sample_digits(n=16, seed=1).shape == (16, 28, 28)


class Flaky(pb_grpc.GenerativeServiceServicer):
    """Answers Sample with UNAVAILABLE ``failures`` times, then for real; or never, with
    ``hang``. Counts the attempts."""

    def __init__(self, failures: int = 0, hang: bool = False):
        self.failures, self.hang, self.attempts = failures, hang, 0
        self.release = threading.Event()

    def Sample(self, request, context):
        self.attempts += 1
        if self.hang:
            self.release.wait(30)
        if self.attempts <= self.failures:
            context.abort(grpc.StatusCode.UNAVAILABLE, "starting up")
        images = pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=[request.n, 28, 28], data=bytes(784 * request.n))
        return pb.ImagesResponse(images=images, model=pb.ModelRef(name="gan_generator", version=1), seed=7)


@pytest.fixture
def stand_in():
    servers = []

    def start(servicer):
        server = grpc.server(futures.ThreadPoolExecutor(4))
        pb_grpc.add_GenerativeServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append((server, servicer))
        return f"127.0.0.1:{port}"

    yield start
    for server, servicer in servers:
        servicer.release.set()
        server.stop(0)


def test_unavailable_is_retried_within_the_calls_deadline(stand_in):
    flaky = Flaky(failures=2)
    with GenerativeClient(stand_in(flaky), retries=3, timeout=30) as c:
        assert c.sample_digits(n=2, return_info=True).seed == 7
    assert flaky.attempts == 3

    down = Flaky(failures=10**9)  # never recovers: the deadline, not the retry count, ends the call
    with GenerativeClient(stand_in(down), retries=1000, timeout=1.5) as c:
        with pytest.raises((sdk.Unavailable, sdk.DeadlineExceeded)):
            c.sample_digits(n=1)
    assert 2 <= down.attempts < 100


def test_a_per_call_timeout_overrides_the_clients_and_covers_the_call(stand_in):
    hung = Flaky(hang=True)
    with GenerativeClient(stand_in(hung), retries=5, timeout=30) as c:
        with pytest.raises(sdk.DeadlineExceeded):
            c.sample_digits(n=1, timeout=0.5)
    assert hung.attempts == 1  # a passed deadline is not retried
