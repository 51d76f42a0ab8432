"""The HTTP door against hostile requests and connections, class by class, through a
real server: work bounded before any model runs (pictures, answers), picture bombs,
connections without limits, bodies outside the gate, malformed input (always a JSON
4xx, counted), strict Open Inference Protocol JSON, caller text kept short, and
requests from other sites. Raw sockets where a client library would not misbehave."""

import gzip
import json
import socket
import struct
import time
import zlib

import pytest

from helpers import served, wait_until

INFER = "/v2/models/vae_decoder/infer"
ROW = {"inputs": [{"name": "z", "shape": [1, 2], "datatype": "FP32", "data": [0.5, -1.0]}]}


def exchange(port: int, raw: bytes, timeout: float = 30) -> tuple[int, dict, bytes]:
    """One raw HTTP/1.1 request: (status, headers, body); the server closes or answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", 0))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return int(lines[0].split()[1]) if lines[0] else 0, headers, body


def request(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> bytes:
    headers = {"Host": "127.0.0.1", "Content-Length": str(len(body)), **(headers or {})}
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"{method} {path} HTTP/1.1\r\n{head}Connection: close\r\n\r\n".encode("utf-8") + body


def call(server, method, path, body=b"", headers=None):
    status, head, data = exchange(server.http_port, request(method, path, body, headers))
    return status, head, data


def json_error(server, method, path, body=b"", headers=None) -> tuple[int, str]:
    status, head, data = call(server, method, path, body, headers)
    assert head.get("content-type", "").startswith("application/json"), (status, data[:200])
    return status, json.loads(data)["error"]


def rows_run(server, model):
    return server.metric("genserve_batch_size_sum", model=model)


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` within ``seconds`` (what it sends first is read)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
        return True
    except (socket.timeout, TimeoutError):
        return False
    except ConnectionResetError:
        return True


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` greyscale pixels and whose data is one row."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1)))
            + chunk(b"IEND", b""))


# 1: work proportional to the query, bounded before any model runs


@pytest.mark.parametrize("path", ["/v1/sample.png?n=1&columns=4096&scale=16", "/v1/grid.png?size=64&scale=16",
                                  "/v1/interpolate.png?from_seed=1&to_seed=2&steps=512&scale=16"])
def test_a_picture_over_the_bound_is_refused_before_any_run(server, path):
    before = {m: rows_run(server, m) for m in ("gan_generator", "vae_decoder")}
    status, error = json_error(server, "GET", path)
    assert status == 413 and "picture:" in error and "over the limit of 16,777,216" in error
    assert {m: rows_run(server, m) for m in before} == before


def test_scale_and_columns_are_checked_before_any_run(server):
    before = rows_run(server, "gan_generator")
    for query, fragment in (("scale=0", "scale: a whole number between 1 and 16"), ("columns=0", "columns"),
                            ("n=", "query n: a whole number between 0 and"),
                            ("scale=99999999999999999999999", "scale")):
        status, error = json_error(server, "GET", f"/v1/sample.png?{query}")
        assert status == 400 and fragment in error, error
    assert rows_run(server, "gan_generator") == before
    assert server.metric("genserve_requests_total", rpc="Sample", code="OK", protocol="http", model="") == 0


def test_an_answer_over_the_message_limit_is_refused_before_the_run(server, client):
    from client import ResourceExhausted

    before = rows_run(server, "vae_decoder")
    status, error = json_error(server, "POST", "/v1/latent_grid", b'{"size": 64, "imageFormat": "IMAGE_FORMAT_FLOAT32"}',
                               {"Content-Type": "application/json"})
    assert status == 413 and "the answer would be" in error
    with pytest.raises(ResourceExhausted, match="the answer would be"):
        client.latent_grid(64, as_float=True)
    assert rows_run(server, "vae_decoder") == before


# 2: picture bombs


def test_a_picture_bomb_is_refused_from_its_header(server):
    before = server.rss_bytes()
    for size, status in ((13_356, 400), (4_200, 400)):
        got, error = json_error(server, "POST", "/v1/denoise.png", png_header(size, size), {"Content-Type": "image/png"})
        assert got == status and "over the limit of 16,777,216 pixels" in error
    assert server.rss_bytes() < before + 50 * 2**20


# 4: connections without limits


@pytest.fixture(scope="module")
def tight(tiny_repository):
    with served(tiny_repository, "--http-idle-timeout", "0.5", "--http-body-timeout", "0.5",
                "--http-max-connections", "16") as server:
        yield server


@pytest.mark.parametrize("sent", [b"", b"GET /v2 HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"GET /v2 HT"],
                         ids=["never-used", "unfinished-headers", "unfinished-request-line"])
def test_an_idle_or_unfinished_connection_is_closed(tight, sent):
    with socket.create_connection(("127.0.0.1", tight.http_port)) as sock:
        sock.sendall(sent)
        assert closed_within(sock, 10)


def test_a_slowloris_connection_is_closed(tight):
    with socket.create_connection(("127.0.0.1", tight.http_port)) as sock:
        started = time.monotonic()
        try:
            for byte in b"GET /v2 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert closed_within(sock, 10) and time.monotonic() - started < 12


def first_answer(server, raw: bytes) -> tuple[bytes, bool]:
    """What the server first answers ``raw`` with, and whether it then closes the connection."""
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        sock.sendall(raw)
        return sock.recv(65536), closed_within(sock, 10)


POST_INFER = b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


def test_a_body_that_never_ends_gets_408_and_a_closed_connection(tight):
    answer, closed = first_answer(tight, POST_INFER + b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"inp\r\n")
    assert answer.startswith(b"HTTP/1.1 408") and b"not all there within" in answer and closed


def test_a_claimed_body_over_the_limit_is_refused_unread(tight):
    answer, closed = first_answer(tight, POST_INFER + b"Content-Length: 1000000000000\r\n\r\nhello")
    assert answer.startswith(b"HTTP/1.1 413") and b"1,000,000,000,000 bytes" in answer and closed
    answer, _ = first_answer(tight, POST_INFER + b"Expect: 100-continue\r\nContent-Length: 50000000\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413") and b"100 Continue" not in answer


def test_connections_over_the_cap_get_503_and_grpc_still_serves(tiny_repository):
    from client import GenerativeClient

    with served(tiny_repository, "--http-max-connections", "8", "--http-idle-timeout", "30") as server:
        held = [socket.create_connection(("127.0.0.1", server.http_port)) for _ in range(8)]
        try:
            wait_until(lambda: call_refused(server), what="a connection over the cap refused")
            assert server.metric("genserve_http_connections_refused_total") >= 1
            with GenerativeClient(server.target, timeout=10) as client:
                assert client.sample_digits(n=2).shape == (2, 28, 28)
        finally:
            for sock in held:
                sock.close()
        wait_until(lambda: call(server, "GET", "/v2/health/ready")[0] == 200, what="HTTP serving again")


def call_refused(server) -> bool:
    status, _, body = call(server, "GET", "/v2/health/ready")
    return status == 503 and b"maximum of HTTP connections" in body


def test_the_metrics_port_holds_no_more_than_its_cap_of_connections(server):
    from server.metrics_http import MAX_CONNECTIONS

    def threads() -> int:
        status = open(f"/proc/{server.proc.pid}/status").read()
        return int(status.split("Threads:")[1].split()[0])

    before = threads()
    held = [socket.create_connection(("127.0.0.1", server.metrics_port)) for _ in range(3 * MAX_CONNECTIONS)]
    try:
        wait_until(lambda: threads() >= before + MAX_CONNECTIONS // 2, what="connections taken in")
        assert threads() <= before + MAX_CONNECTIONS + 2
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: "genserve_ready 1.0" in server.scrape(), what="metrics served again")


# 5: bodies inside the gate; aborted uploads free what they held


def test_aborted_uploads_give_their_memory_back_and_log_no_traceback(tiny_repository):
    with served(tiny_repository, "--max-concurrent-requests", "4") as server:
        body = b"[" + b"0.5," * 700_000
        head = request("POST", INFER, b"", {"Content-Type": "application/json", "Content-Length": str(2 * len(body))})
        post(server, INFER, ROW)
        baseline = server.rss_bytes()
        for _ in range(3):
            sockets = []
            for _ in range(40):
                sock = socket.create_connection(("127.0.0.1", server.http_port))
                sockets.append(sock)
                try:
                    sock.sendall(head.replace(b"Connection: close\r\n", b"") + body)
                except (ConnectionResetError, BrokenPipeError):
                    pass  # beyond the gate's 4 calls at once: refused (503) and closed unread
            for sock in sockets:
                sock.close()
            wait_until(lambda: server.metric("genserve_requests_in_flight") == 0, what="the aborted calls ended")
        assert post(server, INFER, ROW)[0] == 200
        wait_until(lambda: server.rss_bytes() < 1.1 * baseline, timeout=30, what="RSS within 10 % of its level")
        assert "Traceback" not in server.log and " ERROR " not in server.log


def post(server, path, payload, headers=None):
    status, head, data = call(server, "POST", path, json.dumps(payload).encode(),
                              {"Content-Type": "application/json", **(headers or {})})
    return status, json.loads(data)


# 6: malformed input is a JSON 4xx, counted; 7: strict OIP JSON; 8: caller text kept short


def _oip(inputs=None, **extra):
    return json.dumps({"inputs": inputs if inputs is not None else ROW["inputs"], **extra}).encode()


MALFORMED = [
    ("non-utf8", "POST", "/v1/sample", b'{"n": "\xff\xfe"}', {"Content-Type": "application/json"}, 400, "not UTF-8"),
    ("latin-1", "POST", "/v1/sample", b'{"n": 2}', {"Content-Type": "application/json; charset=latin-1"}, 415,
     "Content-Type"),
    ("exotic-charset", "POST", INFER, _oip(), {"Content-Type": "application/json; charset=x-klingon"}, 415,
     "Content-Type"),
    ("deep-json", "POST", INFER, b"[" * 100_000 + b"]" * 100_000, {"Content-Type": "application/json"}, 400,
     "nested too deeply"),
    ("deep-v1-json", "POST", "/v1/sample", b"[" * 100_000 + b"]" * 100_000, {"Content-Type": "application/json"},
     400, "nested too deeply"),
    ("surrogate-name", "POST", INFER, _oip([{"name": "\ud800", "shape": [1, 2], "datatype": "FP32", "data": [0, 0]}]),
     {}, 400, "inputs[0].name"),
    ("surrogate-id", "POST", INFER, _oip(id="\udfff"), {}, 200, None),
    ("surrogate-datatype", "POST", INFER, _oip([{"name": "z", "shape": [1, 2], "datatype": "\ud800", "data": [0]}]),
     {}, 400, "inputs[0].datatype"),
    ("surrogate-model", "POST", "/v2/models/%ED%A0%80/infer", _oip(), {}, 404, "unknown model"),
    ("list-parameters", "POST", INFER, _oip(parameters=[1]), {}, 400, "parameters: a JSON object"),
    ("string-input-parameters", "POST", INFER,
     _oip([{"name": "z", "shape": [1, 2], "datatype": "FP32", "data": [0, 0], "parameters": "x"}]), {}, 400,
     "inputs[0].parameters"),
    ("long-header-length", "POST", INFER, _oip(), {"Inference-Header-Content-Length": "9" * 5000}, 400,
     "Inference-Header-Content-Length"),
    ("corrupt-gzip", "POST", INFER, b"not gzip at all", {"Content-Encoding": "gzip", "Content-Type": "application/json"},
     400, "request body: cannot be read"),
    ("corrupt-brotli", "POST", INFER, b"\xff\xfe not brotli", {"Content-Encoding": "br"}, 400,
     "request body: cannot be read"),
    ("shape-beyond-int64", "POST", INFER, _oip([{"name": "z", "shape": [2**64, 2], "datatype": "FP32", "data": [0]}]),
     {}, 400, "within int64"),
    ("int64-fraction", "POST", "/v2/models/cgan_generator/infer",
     _oip([{"name": "noise", "shape": [1, 100], "datatype": "FP32", "data": [0] * 100},
           {"name": "digit", "shape": [1], "datatype": "INT64", "data": [3.7]}]), {}, 400, "INT64 takes JSON integers"),
    ("int64-string", "POST", "/v2/models/cgan_generator/infer",
     _oip([{"name": "noise", "shape": [1, 100], "datatype": "FP32", "data": [0] * 100},
           {"name": "digit", "shape": [1], "datatype": "INT64", "data": ["3"]}]), {}, 400, "INT64 takes"),
    ("int64-boolean", "POST", "/v2/models/cgan_generator/infer",
     _oip([{"name": "noise", "shape": [1, 100], "datatype": "FP32", "data": [0] * 100},
           {"name": "digit", "shape": [1], "datatype": "INT64", "data": [True]}]), {}, 400, "INT64 takes"),
    ("fp32-strings", "POST", INFER, _oip([{"name": "z", "shape": [1, 2], "datatype": "FP32", "data": ["0", "1"]}]),
     {}, 400, "FP32 takes JSON numbers"),
    ("fp32-booleans", "POST", INFER, _oip([{"name": "z", "shape": [1, 2], "datatype": "FP32", "data": [0.5, False]}]),
     {}, 400, "FP32 takes JSON numbers"),
    ("duplicate-data", "POST", INFER,
     b'{"inputs": [{"name": "z", "shape": [1, 2], "datatype": "FP32", "data": [0, 0], "data": [1, 1]}]}', {}, 400,
     "the key 'data' twice"),
    ("arabic-version", "POST", "/v1/sample", '{"n": 1, "version": "٥"}'.encode(), {"Content-Type": "application/json"},
     400, "ASCII digits"),
    ("fullwidth-n", "POST", "/v1/sample", '{"n": "５"}'.encode(), {"Content-Type": "application/json"}, 400,
     "ASCII digits"),
]


@pytest.mark.parametrize("method, path, body, headers, status, fragment", [c[1:] for c in MALFORMED],
                         ids=[c[0] for c in MALFORMED])
def test_malformed_input_is_a_json_4xx_and_counted(server, method, path, body, headers, status, fragment):
    before = sum_http_requests(server)
    headers = {"Content-Type": "application/json", **headers} if method == "POST" else headers
    got, head, data = call(server, method, path, body, headers)
    assert got == status, data[:300]
    answer = json.loads(data)
    if fragment is not None:
        assert fragment in answer["error"] and len(answer["error"]) < 400, answer
    wait_until(lambda: sum_http_requests(server) == before + 1, what="the request counted")
    assert "Traceback" not in server.log and "Server got itself in trouble" not in data.decode("latin-1")


def sum_http_requests(server) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(s.value for f in text_string_to_metric_families(server.scrape()) for s in f.samples
               if s.name == "genserve_requests_total" and s.labels.get("protocol") == "http")


def test_caller_text_in_errors_stays_short(server):
    status, error = json_error(server, "POST", "/v1/sample", json.dumps({"n": "x" * 255}).encode(),
                               {"Content-Type": "application/json"})
    assert status == 400 and "x" * 41 not in error


def test_a_gzip_body_is_read(server):
    status, _, data = call(server, "POST", INFER, gzip.compress(_oip()),
                           {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert status == 200 and json.loads(data)["outputs"][0]["shape"] == [1, 1, 28, 28]


# 9: requests from other sites


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_bodies_a_browser_sends_cross_site_are_refused(server, content_type):
    for path, body in (("/v1/sample", b'{"n": 1}'), (INFER, _oip())):
        status, error = json_error(server, "POST", path, body, {"Content-Type": content_type})
        assert status == 415 and "Content-Type" in error


@pytest.mark.parametrize("headers, status", [
    ({"Host": "evil.example"}, 403), ({"Host": "evil.example:8000"}, 403),
    ({"Origin": "http://evil.example"}, 403), ({"Origin": "null"}, 403),
    ({"Host": "localhost:8000", "Origin": "http://localhost:8000"}, 200), ({"Host": "[::1]:8000"}, 200),
    ({"Host": "10.1.2.3"}, 200),
])
def test_hosts_and_origins(server, headers, status):
    got, _, _ = call(server, "POST", "/v1/sample", b'{"n": 1}', {"Content-Type": "application/json", **headers})
    assert got == status


def test_allowed_hosts_name_more(tiny_repository):
    with served(tiny_repository, "--http-allowed-hosts", "genserve,*.svc.cluster.local") as server:
        for host, status in (("genserve:8000", 200), ("genserve.default.svc.cluster.local", 200),
                             ("genserve.example", 403)):
            assert call(server, "GET", "/v2/health/ready", headers={"Host": host})[0] == status, host


def test_answers_carry_the_headers_browsers_act_on(server):
    status, headers, _ = call(server, "GET", "/")
    assert status == 200 and "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["server"] == "genserve"
    status, headers, _ = call(server, "GET", "/v1/sample.png?n=1")
    assert headers["x-content-type-options"] == "nosniff" and "aiohttp" not in headers["server"]


def test_a_cpu_only_start_warns_of_nothing(server):
    assert "CUDAExecutionProvider are not available" in server.log
    assert " WARNING " not in server.log


def test_a_scaled_grid_reads_back_as_the_digits_it_shows(server, tmp_path):
    import subprocess
    import sys

    from helpers import ROOT

    def cli(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "client", "--target", server.target, *args], cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    cli("sample", "--n", "16", "--seed", "1", "--scale", "4", "--out", str(tmp_path / "digits.png"))
    assert len(cli("classify", str(tmp_path / "digits.png")).splitlines()) == 1 + 16  # a header and 16 digits
    status, _, body = call(server, "POST", "/v1/denoise.png?scale=2", (tmp_path / "digits.png").read_bytes(),
                           {"Content-Type": "image/png"})
    assert status == 200
    (tmp_path / "clean.png").write_bytes(body)
    assert len(cli("classify", str(tmp_path / "clean.png")).splitlines()) == 1 + 16


def test_a_non_ascii_authorization_header_is_401(tiny_repository, tmp_path):
    (tmp_path / "tokens").write_text("s3cret-token-0123456789abcdef\n")
    with served(tiny_repository, "--auth-token-file", str(tmp_path / "tokens")) as server:
        status, _, body = exchange(server.http_port, request("GET", "/v2/models/dae",
                                                             headers={"Authorization": "Bearer tökén"}))
        assert status == 401 and "invalid bearer token" in json.loads(body)["error"]
        raw = request("GET", "/v2/models/dae").replace(b"Host:", b"Authorization: Bearer \xff\xfe\r\nHost:")
        status, _, body = exchange(server.http_port, raw)
        assert status == 401 and "bearer token" in json.loads(body)["error"]
        assert "Traceback" not in server.log
