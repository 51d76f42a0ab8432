"""TLS, mutual TLS and bearer tokens against the real server process, with throwaway
certificates: who gets in, who does not, with which code, and that no secret is logged."""

import re

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from client import GenerativeClient, GenserveError
from genserve.v1 import generative_pb2
from helpers import ROOT, ServerProcess
from pki import make_pki

TOKEN = "s3cret-token-0123456789abcdef"
ROTATED = "rotated-token-fedcba9876543210"
WRONG = "wrong-token-00000000000000000000"


def _rpcs() -> list[str]:
    """Every method of both APIs. The OIP's are read from its .proto: its Python module
    shares the protobuf package name with tritonclient's, which this process loads."""
    service = generative_pb2.DESCRIPTOR.services_by_name["GenerativeService"]
    ours = [f"/{service.full_name}/{m.name}" for m in service.methods]
    proto = (ROOT / "protos" / "genserve" / "oip" / "inference.proto").read_text()
    oip = [f"/inference.GRPCInferenceService/{name}" for name in re.findall(r"^\s*rpc\s+(\w+)\s*\(", proto, re.M)]
    assert len(ours) == 11 and len(oip) == 10
    return ours + oip


def _streaming() -> set[str]:
    """The server-streaming methods (the OIP's .proto has none)."""
    service = generative_pb2.DESCRIPTOR.services_by_name["GenerativeService"]
    return {f"/{service.full_name}/{m.name}" for m in service.methods if m.server_streaming}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def token_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("secrets") / "tokens"
    path.write_text(f"# one token per line\n{TOKEN}\n\n{ROTATED}\n")
    return path


def _credentials(pki, client=None, ca=None):
    return grpc.ssl_channel_credentials((ca or pki.ca).read_bytes(),
                                        client.key.read_bytes() if client else None,
                                        client.cert.read_bytes() if client else None)


@pytest.fixture(scope="module")
def tls_server(tiny_repository, pki, token_file):
    """TLS and tokens; health open, as by default. DEBUG logs, so that a leak would show."""
    server = ServerProcess(tiny_repository, "--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key),
                           "--auth-token-file", str(token_file), "--log-level", "DEBUG")
    server.wait_ready(credentials=_credentials(pki))
    yield server
    assert server.stop() == 0, server.log


@pytest.fixture(scope="module")
def mtls_server(tiny_repository, pki, token_file):
    """Mutual TLS, tokens, and the health service behind the token too."""
    server = ServerProcess(tiny_repository, "--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key),
                           "--tls-client-ca", str(pki.ca), "--auth-token-file", str(token_file), "--auth-health",
                           "--log-level", "DEBUG")
    server.wait_ready_logged()
    yield server
    assert server.stop() == 0, server.log


def _code(target, credentials, method, token=None) -> grpc.StatusCode:
    """The status of one call with an empty request; OK included."""
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    with grpc.secure_channel(target, credentials) as channel:
        try:
            if method in _streaming():
                list(channel.unary_stream(method)(b"", timeout=10, metadata=metadata))
            else:
                channel.unary_unary(method)(b"", timeout=10, metadata=metadata)
            return grpc.StatusCode.OK
        except grpc.RpcError as error:
            return error.code()


def test_tls_with_a_token_serves_the_client(tls_server, pki):
    with GenerativeClient(tls_server.target, ca_cert=pki.ca, token=TOKEN, retries=0) as client:
        digits = client.sample_digits(n=4, seed=3)
        assert digits.shape == (4, 28, 28) and digits.dtype == np.uint8
        assert {"vae_encoder", "vae_decoder", "gan_generator", "dae"} <= {m.name for m in client.list_models()}
    with GenerativeClient(tls_server.target, ca_cert=pki.ca.read_bytes(), token=ROTATED, retries=0) as client:
        assert np.array_equal(client.sample_digits(n=4, seed=3), digits)  # the second token in the file


def test_without_the_ca_or_in_plaintext_the_client_cannot_connect(tls_server, pki):
    for options in ({}, {"ca_cert": pki.rogue_ca}):  # plaintext; a CA that did not sign the server
        with GenerativeClient(tls_server.target, token=TOKEN, retries=0, timeout=5, **options) as client:
            with pytest.raises(GenserveError) as error:
                client.sample_digits(n=1)
            assert error.value.code == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("token", [None, WRONG, TOKEN[:-1], TOKEN + "x", ""])
def test_every_rpc_of_both_apis_needs_a_valid_token(tls_server, pki, token):
    credentials = _credentials(pki)
    for method in _rpcs():
        assert _code(tls_server.target, credentials, method, token) == grpc.StatusCode.UNAUTHENTICATED, method
    # The same calls with the token get past the gate: what is left is the empty request's fault, if any.
    for method in _rpcs():
        assert _code(tls_server.target, credentials, method, TOKEN) != grpc.StatusCode.UNAUTHENTICATED, method


def test_reflection_needs_the_token_too(tls_server, pki):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    def services(token):
        metadata = (("authorization", f"Bearer {token}"),) if token else None
        with grpc.secure_channel(tls_server.target, _credentials(pki)) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            answer = next(iter(stub.ServerReflectionInfo(iter([request]), metadata=metadata, timeout=10)))
            return {s.name for s in answer.list_services_response.service}

    assert "genserve.v1.GenerativeService" in services(TOKEN)
    with pytest.raises(grpc.RpcError) as error:
        services(None)
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_health_stays_open_by_default(tls_server, pki):
    assert _code(tls_server.target, _credentials(pki), "/grpc.health.v1.Health/Check") == grpc.StatusCode.OK


def test_the_client_reports_unauthenticated_with_the_servers_words(tls_server, pki):
    with GenerativeClient(tls_server.target, ca_cert=pki.ca, token=WRONG, retries=3) as client:
        with pytest.raises(GenserveError) as error:
            client.decode(np.zeros((1, 2), np.float32))
    assert error.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert "Decode: invalid bearer token" in error.value.message and WRONG not in error.value.message


def test_triton_client_over_tls_with_a_token(tls_server, pki):
    settings = dict(ssl=True, root_certificates=str(pki.ca))
    with triton.InferenceServerClient(tls_server.target, **settings) as client:
        headers = {"authorization": f"Bearer {TOKEN}"}
        assert client.is_model_ready("gan_generator", headers=headers)
        tensor = triton.InferInput("noise", [2, 100], "FP32")
        tensor.set_data_from_numpy(np.zeros((2, 100), np.float32))
        result = client.infer("gan_generator", [tensor], headers=headers)
        assert result.as_numpy("image").shape == (2, 1, 28, 28)
        with pytest.raises(InferenceServerException) as error:
            client.infer("gan_generator", [tensor], headers={"authorization": f"Bearer {WRONG}"})
        assert error.value.status() == "StatusCode.UNAUTHENTICATED"


def test_refusals_are_counted(tls_server, pki):
    for token in (None, WRONG):
        _code(tls_server.target, _credentials(pki), "/genserve.v1.GenerativeService/ListModels", token)
    assert tls_server.metric("genserve_unauthenticated_requests_total", rpc="ListModels", reason="missing") >= 1
    assert tls_server.metric("genserve_unauthenticated_requests_total", rpc="ListModels", reason="invalid") >= 1


def test_mutual_tls_needs_a_client_certificate_from_the_ca(mtls_server, pki):
    with GenerativeClient(mtls_server.target, ca_cert=pki.ca, client_cert=pki.client.cert,
                          client_key=pki.client.key, token=TOKEN, retries=0) as client:
        assert client.health() == "SERVING"
        assert client.sample_digits(n=2, model="vae", seed=1).shape == (2, 28, 28)
    refused = ({"ca_cert": pki.ca},  # no certificate
               {"ca_cert": pki.ca, "client_cert": pki.rogue_client.cert, "client_key": pki.rogue_client.key})
    for options in refused:
        with GenerativeClient(mtls_server.target, token=TOKEN, retries=0, timeout=5, **options) as client:
            with pytest.raises(GenserveError) as error:
                client.sample_digits(n=1)
            assert error.value.code == grpc.StatusCode.UNAVAILABLE


def test_auth_health_puts_the_health_service_behind_the_token(mtls_server, pki):
    credentials = _credentials(pki, client=pki.client)
    check = "/grpc.health.v1.Health/Check"
    assert _code(mtls_server.target, credentials, check) == grpc.StatusCode.UNAUTHENTICATED
    assert _code(mtls_server.target, credentials, check, TOKEN) == grpc.StatusCode.OK


def test_no_token_or_key_appears_in_logs_or_metrics(tls_server, mtls_server, pki):
    secrets = [TOKEN, ROTATED, WRONG, TOKEN[:-1]]
    for key in (pki.server.key, pki.client.key):
        body = key.read_text().splitlines()
        secrets += [line for line in body if line and not line.startswith("-----")]
    for server in (tls_server, mtls_server):
        text = server.log + server.scrape()
        assert "bearer tokens: required" in server.log
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"secrets in the log or metrics: {len(leaked)}"


@pytest.mark.parametrize("args, message", [
    (["--tls-cert", "x.crt"], "--tls-cert and --tls-key go together"),
    (["--tls-client-ca", "ca.crt"], "--tls-client-ca needs --tls-cert and --tls-key"),
    (["--auth-health"], "--auth-health needs --auth-token-file"),
])
def test_incomplete_security_flags_are_refused(tiny_repository, args, message):
    server = ServerProcess(tiny_repository, *args)
    assert server.wait_exit(30) == 2
    assert message in server.log


def test_unreadable_or_bad_secret_files_are_refused_by_name(tiny_repository, tmp_path, pki):
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    short = tmp_path / "short"
    short.write_text("qz7tiny\n")
    cases = [
        (["--auth-token-file", str(tmp_path / "missing")], f"--auth-token-file {tmp_path / 'missing'}: cannot read it"),
        (["--auth-token-file", str(empty)], f"--auth-token-file {empty}: no token in it"),
        (["--auth-token-file", str(short)], "every token must be at least 16 characters"),
        (["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.cert)],
         f"--tls-key {pki.server.cert}: not a PEM private key"),
    ]
    for args, message in cases:
        server = ServerProcess(tiny_repository, *args)
        assert server.wait_exit(60) == 1, server.log
        assert message in server.log and "Traceback" not in server.log
        assert "qz7tiny" not in server.log


def test_made_up_methods_create_no_metric_series(tls_server, pki):
    """Every label value comes from a closed set: a refused call to a method the server
    does not have counts as "unknown", whatever its name."""
    from prometheus_client.parser import text_string_to_metric_families

    def refusals() -> dict[tuple[str, str], float]:
        family = next(f for f in text_string_to_metric_families(tls_server.scrape())
                      if f.name == "genserve_unauthenticated_requests")
        return {(s.labels["rpc"], s.labels["reason"]): s.value for s in family.samples if s.name.endswith("_total")}

    before = refusals()
    with grpc.secure_channel(tls_server.target, _credentials(pki)) as channel:
        for i in range(300):
            with pytest.raises(grpc.RpcError) as error:
                channel.unary_unary(f"/evil.Service{i}/{'M' * i}")(b"", timeout=10)
            assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED  # no such method, token or not
    after = refusals()
    assert after[("unknown", "missing")] - before.get(("unknown", "missing"), 0) == 300
    known = {method.rsplit("/", 1)[1] for method in _rpcs()} | {"ServerReflectionInfo", "Check", "List", "Watch"}
    assert {rpc for rpc, _ in after} <= known | {"unknown"}


def _https(server, path, context, token=None):
    """(status, JSON body) of one HTTPS call."""
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"https://localhost:{server.http_port}{path}",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_https_with_the_same_certificate_and_token(tls_server, pki):
    import ssl
    import urllib.error

    trusting = ssl.create_default_context(cafile=str(pki.ca))
    assert _https(tls_server, "/v2/health/ready", trusting)[0] == 200  # health open, as over gRPC
    status, body = _https(tls_server, "/v2/models/dae", trusting)
    assert status == 401 and "missing bearer token" in body["error"]
    assert _https(tls_server, "/v2/models/dae", trusting, TOKEN)[0] == 200
    with pytest.raises(urllib.error.URLError):  # a client that does not trust the CA
        _https(tls_server, "/v2/health/ready", ssl.create_default_context(cafile=str(pki.rogue_ca)))


def test_https_with_mutual_tls_needs_a_client_certificate(mtls_server, pki):
    import ssl
    import urllib.error

    anonymous = ssl.create_default_context(cafile=str(pki.ca))
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        _https(mtls_server, "/v2/health/ready", anonymous)
    known = ssl.create_default_context(cafile=str(pki.ca))
    known.load_cert_chain(pki.client.cert, pki.client.key)
    status, body = _https(mtls_server, "/v2/health/ready", known)  # --auth-health: health needs the token too
    assert status == 401
    assert _https(mtls_server, "/v2/health/ready", known, TOKEN)[0] == 200
