"""The HTTP door, beside gRPC on the same event loop, service core, gate, tokens and
TLS: the Open Inference Protocol's REST API (with Triton's binary tensor data
extension), genserve.v1 as canonical protobuf JSON and as PNG, and the playground
page at ``/``. It translates HTTP <-> the core and nothing more.

A call's deadline is its ``X-Request-Timeout`` header (seconds), the Open Inference
Protocol's ``timeout`` parameter, or ``--http-timeout``; a caller that disconnects
cancels its call, and with it its queued work.
"""

from __future__ import annotations

import json
import logging
import math
import ssl
from importlib import resources
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

import numpy as np
from aiohttp import web
from google.protobuf import json_format

from genserve.png import decode_grid, encode_grid
from genserve.v1 import generative_pb2 as pb

from .calls import Call
from .errors import GenserveError, InvalidArgument, ModelNotFound, StartupError, TooLarge, quoted
from .gate import Gate
from .logs import call_id
from .security import bearer_problem, read_tokens
from .service import Answer, Endpoint, InferInput, Service, server_version
from .settings import Settings
from .tensors import images_from_pixels
from .tracing import Tracing
from .v1_messages import RPCS

log = logging.getLogger(__name__)

T = TypeVar("T")
BINARY_HEADER = "Inference-Header-Content-Length"  # Triton's binary tensor data extension
TIMEOUT_HEADER = "X-Request-Timeout"  # seconds
NUMPY = {"FP32": "<f4", "INT64": "<i8"}  # the protocol's datatypes genserve serves
MAX_SCALE = 16  # a PNG route's ``scale``: each pixel drawn up to 16 x 16
MAX_ERROR = 300  # characters of a parser's message that an answer repeats
# genserve.v1's RPCs by their HTTP names: /v1/sample, /v1/latent_grid, ...
METHODS = {m.name: m for m in pb.DESCRIPTOR.services_by_name["GenerativeService"].methods}
ROUTES = {"".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_"): name for name in METHODS}
PLAYGROUND = "playground.html"


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class HttpApi:
    def __init__(self, settings: Settings, service: Service, gate: Gate, tracing: Tracing | None = None):
        self.settings = settings
        self.tracing = tracing
        self.service = service
        self.gate = gate
        self.tokens = read_tokens(settings.auth_token_file) if settings.auth_token_file else None
        # Routes open without a token: the page and, unless --auth-health, the health routes.
        self.open_paths = {"/"} | (set() if settings.auth_health else {"/v2/health/live", "/v2/health/ready"})
        self.page = resources.files("server").joinpath(PLAYGROUND).read_text()

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_message_bytes,
                              middlewares=[self._errors, self._bearer_token])
        get, post = web.get, web.post
        models = "/v2/models/{name}"
        app.add_routes([
            get("/", self.playground),
            get("/v2", self.server_metadata), get("/v2/health/live", self.live), get("/v2/health/ready", self.ready),
            *(route for prefix in (models, models + "/versions/{version}") for route in (
                get(prefix, self.model_metadata), get(prefix + "/ready", self.model_ready),
                post(prefix + "/infer", self.infer))),
            get("/v1/sample.png", self.sample_png), get("/v1/grid.png", self.grid_png),
            get("/v1/interpolate.png", self.interpolate_png), post("/v1/denoise.png", self.denoise_png),
            post("/v1/{rpc}", self.v1_json),
        ])
        return app

    # -- the gate, tokens and errors

    async def _run(self, rpc: str, http: web.Request, work: Callable[[Call], Awaitable[T]]) -> T:
        """``work(call)`` through the gate, as the call ``rpc`` with this request's id and deadline."""
        call = Call(rpc, "http", None, call_id(http.headers.get("x-request-id")) if self.gate.request_ids else None,
                    http.remote or "")

        async def deadline_then_work() -> T:
            seconds = _timeout(http.headers.get(TIMEOUT_HEADER)) or self.settings.http_timeout
            if seconds:
                call.limit(seconds)
            return await work(call)

        if self.tracing is None:
            return await self.gate.run(call, deadline_then_work)
        route = http.match_info.route.resource.canonical if http.match_info.route.resource else http.path
        with self.tracing.http_span(f"{http.method} {route}", http.method, http.path, http.headers) as span:
            span.set_attribute("rpc.method", rpc)
            return await self.gate.run(call, deadline_then_work)

    @web.middleware
    async def _errors(self, request: web.Request, handler) -> web.StreamResponse:
        """A domain error as the protocol's JSON error with its HTTP status; aiohttp's own
        (404 route, 405 method, 413 body) as JSON too."""
        try:
            return await handler(request)
        except GenserveError as exc:
            return _error(exc.http_status, exc.reason)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            message = {413: f"request body: over the limit of {self.settings.max_message_bytes:,} bytes",
                       404: f"{request.path[:80]!r}: no such route"}.get(exc.status, exc.reason)
            return _error(exc.status, message)

    @web.middleware
    async def _bearer_token(self, request: web.Request, handler) -> web.StreamResponse:
        """``Authorization: Bearer <token>`` on every route but the page and, unless
        --auth-health, the health routes."""
        if self.tokens is None or request.path in self.open_paths:
            return await handler(request)
        problem = bearer_problem(request.headers.get("authorization"), self.tokens)
        if problem is None:
            return await handler(request)
        self.gate.metrics.unauthenticated.labels("http", problem).inc()
        return _error(401, f"{problem} bearer token; send the header 'Authorization: Bearer <token>' "
                           "with a token the server accepts")

    # -- the page

    async def playground(self, request: web.Request) -> web.Response:
        return web.Response(text=self.page, content_type="text/html")

    # -- the Open Inference Protocol over REST

    async def server_metadata(self, request: web.Request) -> web.Response:
        async def work(call: Call) -> dict:
            return {"name": "genserve", "version": server_version(), "extensions": ["binary_tensor_data"]}
        return web.json_response(await self._run("ServerMetadata", request, work))

    async def live(self, request: web.Request) -> web.Response:
        async def work(call: Call) -> bool:
            return True
        live = await self._run("ServerLive", request, work)
        return web.json_response({"live": live}, status=200 if live else 503)

    async def ready(self, request: web.Request) -> web.Response:
        async def work(call: Call) -> bool:
            return self.service.ready
        ready = await self._run("ServerReady", request, work)
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def model_metadata(self, request: web.Request) -> web.Response:
        name, version = request.match_info["name"], request.match_info.get("version", "")

        async def work(call: Call):
            return self.service.model_metadata(call, name, version)
        meta = await self._run("ModelMetadata", request, work)
        tensors = lambda specs: [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}  # noqa: E731
                                 for t in specs]
        return web.json_response({"name": meta.name, "versions": list(meta.versions), "platform": meta.platform,
                                  "inputs": tensors(meta.inputs), "outputs": tensors(meta.outputs)})

    async def model_ready(self, request: web.Request) -> web.Response:
        name, version = request.match_info["name"], request.match_info.get("version", "")

        async def work(call: Call) -> bool:
            return self.service.model_ready(name, version)
        ready = await self._run("ModelReady", request, work)
        return web.json_response({"ready": ready}, status=200 if ready else 400)

    async def infer(self, request: web.Request) -> web.Response:
        async def work(call: Call) -> tuple[Answer, dict, set[str]]:
            body = await _body(request, self.settings.max_message_bytes)
            header, binary = _split_binary(body, request.headers.get(BINARY_HEADER))
            parsed = _infer_body(header)
            inputs = _infer_inputs(parsed, binary)
            outputs, binary_outputs = _infer_outputs(parsed)
            answer = await self.service.infer(call, request.match_info["name"], request.match_info.get("version", ""),
                                              inputs, outputs, _id(parsed), _timeout_us(parsed))
            return answer, parsed, binary_outputs
        answer, parsed, binary_outputs = await self._run("ModelInfer", request, work)
        return _infer_response(answer, _id(parsed), binary_outputs)

    # -- genserve.v1 as JSON

    async def v1_json(self, request: web.Request) -> web.Response:
        name = ROUTES.get(request.match_info["rpc"])
        if name is None:
            raise ModelNotFound(f"{request.path[:80]!r}: no such call; genserve.v1's are "
                                f"{', '.join('/v1/' + route for route in ROUTES)}")
        message = json_format.symbol_database.Default().GetSymbol(METHODS[name].input_type.full_name)()

        async def work(call: Call):
            try:
                text = (await _body(request, self.settings.max_message_bytes)).decode("utf-8")
                json_format.Parse(text or "{}", message)
            except UnicodeDecodeError as exc:
                raise InvalidArgument(f"request body: not UTF-8 (byte {exc.start:,})") from None
            except json_format.ParseError as exc:
                raise InvalidArgument(f"request body: {str(exc)[:MAX_ERROR]}") from None
            return await RPCS[name](self.service, call, message)
        answer = await self._run(name, request, work)
        return web.Response(text=json_format.MessageToJson(answer, indent=None), content_type="application/json")

    # -- genserve.v1 as PNG

    async def sample_png(self, request: web.Request) -> web.Response:
        query = Query(request, ("n", "model", "seed", "digit", "version", "scale", "columns"))

        async def work(call: Call) -> bytes:
            answer = await self.service.sample(call, query.whole("n", 16, 2**32 - 1), query.text("model"),
                                               query.whole("seed"), query.whole("digit", high=2**32 - 1),
                                               version=query.whole("version", 0, 2**63 - 1))
            return _png(answer, query)
        return _png_response(await self._run("Sample", request, work))

    async def grid_png(self, request: web.Request) -> web.Response:
        query = Query(request, ("size", "span", "digit", "scale"))

        async def work(call: Call) -> bytes:
            size = query.whole("size", 15, 2**32 - 1)
            answer = await self.service.latent_grid(call, size, query.number("span"),
                                                    query.whole("digit", high=2**32 - 1))
            return _png(answer, query, columns=size)
        return _png_response(await self._run("LatentGrid", request, work))

    async def interpolate_png(self, request: web.Request) -> web.Response:
        query = Query(request, ("from_seed", "to_seed", "steps", "model", "digit", "scale"))

        async def work(call: Call) -> bytes:
            start, end = (Endpoint(seed=query.whole(name, required=True)) for name in ("from_seed", "to_seed"))
            steps = query.whole("steps", 8, 2**32 - 1)
            answer = await self.service.interpolate(call, start, end, steps, query.text("model"),
                                                    query.whole("digit", high=2**32 - 1))
            return _png(answer, query, columns=steps)
        return _png_response(await self._run("Interpolate", request, work))

    async def denoise_png(self, request: web.Request) -> web.Response:
        query = Query(request, ("scale",))

        async def work(call: Call) -> bytes:
            tiles, columns = _read_png(await _body(request, self.settings.max_message_bytes))
            images = images_from_pixels(tiles, "request body", self.settings.max_request_size)
            return _png(await self.service.denoise(call, images), query, columns=columns)
        return _png_response(await self._run("Denoise", request, work))


async def _body(request: web.Request, limit: int) -> bytes:
    """The request's body, within the message limit."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge(f"request body: over the limit of {limit:,} bytes") from None


class Query:
    """A PNG route's query parameters, each read as the type its call takes; a
    parameter the route does not take is refused by name."""

    def __init__(self, request: web.Request, known: tuple[str, ...]):
        unknown = [k for k in request.query if k not in known]
        if unknown:
            raise InvalidArgument(f"{quoted(unknown[0])}: not a parameter of {request.path}; use {', '.join(known)}")
        self.values = {k: request.query[k] for k in known if k in request.query}

    def text(self, name: str) -> str:
        return self.values.get(name, "")

    def whole(self, name: str, default: int | None = None, high: int = 2**64 - 1, required: bool = False
              ) -> int | None:
        """A whole number in [0, high]; ``default`` where absent."""
        text = self.values.get(name)
        if text is None:
            if required:
                raise InvalidArgument(f"{name}: required")
            return default
        if not (text.isascii() and text.isdigit() and int(text) <= high):
            raise InvalidArgument(f"query: {name} must be a whole number from 0 to {high}, got {quoted(text)}")
        return int(text)

    def number(self, name: str) -> float | None:
        text = self.values.get(name)
        if text is None:
            return None
        try:
            return float(text)
        except ValueError:
            raise InvalidArgument(f"query: {name} must be a number, got {quoted(text)}") from None


def _timeout(text: str | None) -> float | None:
    """The ``X-Request-Timeout`` header's seconds."""
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidArgument(f"{TIMEOUT_HEADER}: seconds, a number > 0, got {quoted(text)}")
    return seconds


def _split_binary(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON part of an infer request and the binary tensors after it."""
    if header_length is None:
        return body, b""
    if not header_length.isascii() or not header_length.isdigit() or int(header_length) > len(body):
        raise InvalidArgument(f"{BINARY_HEADER}: must be the JSON part's length in bytes, at most the body's "
                              f"{len(body):,}; got {header_length[:40]!r}")
    return body[:int(header_length)], body[int(header_length):]


def _infer_body(header: bytes) -> dict:
    try:
        body = json.loads(header)
    except ValueError as exc:
        raise InvalidArgument(f"request body: not JSON: {str(exc)[:MAX_ERROR]}") from None
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise InvalidArgument("request body: a JSON object with a list of inputs")
    return body


def _id(body: dict) -> str:
    return body["id"] if isinstance(body.get("id"), str) else ""


def _timeout_us(body: dict) -> int | None:
    parameters = body.get("parameters")
    timeout = parameters.get("timeout") if isinstance(parameters, dict) else None
    if timeout is None:
        return None
    if not isinstance(timeout, int) or isinstance(timeout, bool):
        raise InvalidArgument(f"parameters.timeout: microseconds, a whole number > 0, got {quoted(str(timeout))}")
    return timeout


def _infer_inputs(body: dict, binary: bytes) -> list[InferInput]:
    """The protocol's JSON (and binary) inputs as the core takes them."""
    inputs = []
    offset = 0
    for i, tensor in enumerate(body["inputs"]):
        if not isinstance(tensor, dict):
            raise InvalidArgument(f"inputs[{i}]: a JSON object with name, shape, datatype and data")
        shape = tensor.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise InvalidArgument(f"inputs[{i}].shape: a list of integers")
        datatype = str(tensor.get("datatype", ""))
        size = _binary_size(tensor)
        if size is not None:
            if size < 0 or offset + size > len(binary):
                raise InvalidArgument(f"inputs[{i}].parameters.binary_data_size: {size:,} bytes past the "
                                      f"{len(binary) - offset:,} left in the body")
            data: bytes | np.ndarray = binary[offset:offset + size]
            field = f"inputs[{i}].parameters.binary_data_size"
            offset += size
        else:
            data, field = _values(tensor.get("data"), datatype, f"inputs[{i}].data"), f"inputs[{i}].data"
        inputs.append(InferInput(str(tensor.get("name", "")), datatype,
                                 tuple(d for d in shape if -2**63 <= d < 2**63), data, field))
    if offset != len(binary):
        raise InvalidArgument(f"request body: {len(binary) - offset:,} bytes after the binary inputs")
    return inputs


def _infer_outputs(body: dict) -> tuple[list[str], set[str]]:
    """The outputs asked for, and those to send as binary ("*": all)."""
    wanted = body.get("outputs", [])
    binary_all = bool((body.get("parameters") or {}).get("binary_data_output", False))
    names, binary = [], set()
    for i, output in enumerate(wanted if isinstance(wanted, list) else []):
        if not isinstance(output, dict):
            raise InvalidArgument(f"outputs[{i}]: a JSON object with a name")
        names.append(str(output.get("name", "")))
        if (output.get("parameters") or {}).get("binary_data", binary_all):
            binary.add(names[-1])
    if not names and binary_all:
        binary = {"*"}
    return names, binary


def _binary_size(tensor: dict) -> int | None:
    size = (tensor.get("parameters") or {}).get("binary_data_size") if isinstance(tensor.get("parameters"), dict) \
        else None
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def _values(data: Any, datatype: str, field: str) -> np.ndarray:
    """A JSON tensor's values, flattened, in the datatype's numpy type (an unknown datatype:
    none, for the core to refuse by name)."""
    if datatype not in NUMPY:
        return np.zeros(0, np.float32)
    try:
        return np.asarray(data, NUMPY[datatype]).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        raise InvalidArgument(f"{field}: a list of {datatype} numbers") from None


def _infer_response(answer: Answer, request_id: str, binary_outputs: set[str]) -> web.Response:
    body: dict = {"model_name": answer.model, "model_version": str(answer.version), "outputs": []}
    if request_id:
        body["id"] = request_id
    blobs = []
    for name, array in answer.output:
        entry = {"name": name, "datatype": "FP32", "shape": list(array.shape)}
        if "*" in binary_outputs or name in binary_outputs:
            raw = array.astype("<f4", copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = array.reshape(-1).tolist()
        body["outputs"].append(entry)
    header = json.dumps(body).encode()
    if not blobs:
        return web.Response(body=header, content_type="application/json")
    return web.Response(body=header + b"".join(blobs), content_type="application/octet-stream",
                        headers={BINARY_HEADER: str(len(header))})


def _png(answer: Answer, query: Query, columns: int | None = None) -> bytes:
    scale = _small_int(query.values.get("scale", "1"), "scale", MAX_SCALE)
    if "columns" in query.values:
        columns = _small_int(query.values["columns"], "columns", 4096)
    return encode_grid(answer.output.pixels, columns, scale)


def _png_response(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="image/png")


def _small_int(text: str, name: str, high: int) -> int:
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= high):
        raise InvalidArgument(f"{name}: a whole number between 1 and {high}, got {text[:40]!r}")
    return int(text)


def _read_png(body: bytes) -> tuple[np.ndarray, int]:
    """A PNG grid of 28x28 digits -> (uint8 [N,28,28], columns)."""
    try:
        return decode_grid(body, "request body")
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None


def tls_context(cert: Path, key: Path, client_ca: Path | None) -> ssl.SSLContext:
    """The same certificate, key and client CA as the gRPC port's."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


async def start_http(api: HttpApi, reuse_port: bool = False) -> tuple[web.AppRunner, int]:
    """Listen for HTTP on the event loop already running gRPC; the runner and the port."""
    settings = api.settings
    host = settings.http_host or settings.host
    try:
        context = (tls_context(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
                   if settings.tls_cert is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"--tls-cert {settings.tls_cert}: HTTP cannot use it ({exc})") from None
    # handler_cancellation: a caller that disconnects cancels its handler, and so its queued work.
    runner = web.AppRunner(api.application(), access_log=None, handle_signals=False, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, settings.http_port, ssl_context=context, reuse_port=reuse_port or None)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise StartupError(f"cannot listen on {host}:{settings.http_port} for HTTP ({exc.strerror}); choose "
                           "another --http-port or --http-host, or --no-http") from None
    return runner, runner.addresses[0][1]
