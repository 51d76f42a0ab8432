"""HTTP beside gRPC, on the same event loop, engine, limits, tokens, TLS and metrics:
the Open Inference Protocol's REST API (with Triton's binary tensor data extension),
genserve.v1 as canonical protobuf JSON and as PNG, and the playground page at ``/``.

Every route builds the gRPC request message and calls the gRPC servicer's own method
through the same gate (``ErrorsAndMetrics.guard``), so that validation, limits,
errors and metrics are those of gRPC; only the wire format is HTTP's.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
from importlib import resources
from pathlib import Path
from typing import Any, Awaitable, Callable

import numpy as np
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message

from genserve.oip import inference_pb2 as oip
from genserve.png import decode_grid, encode_grid
from genserve.v1 import generative_pb2 as pb

from .errors import (AnswerTooLarge, DeadlineExceeded, FailedPrecondition, GenserveError, Internal, InvalidArgument,
                     ModelNotFound, NotReady, Overloaded, QueueFull, StartupError)
from .interceptors import ErrorsAndMetrics
from .logs import request_id
from .oip import InferenceServicer
from .security import read_tokens, valid_token
from .servicer import GenerativeServicer
from .settings import Settings
from .tracing import Tracing

log = logging.getLogger(__name__)

HTTP_STATUS = {InvalidArgument: 400, FailedPrecondition: 400, ModelNotFound: 404, AnswerTooLarge: 413,
               QueueFull: 429, NotReady: 503, Overloaded: 503, DeadlineExceeded: 504, Internal: 500}
BINARY_HEADER = "Inference-Header-Content-Length"  # Triton's binary tensor data extension
NUMPY = {"FP32": "<f4", "INT64": "<i8"}  # the protocol's datatypes genserve serves
MAX_SCALE = 16  # a PNG route's ``scale``: each pixel drawn up to 16 x 16
MAX_ERROR = 300  # characters of a parser's message that an answer repeats
METHODS = {re.sub(r"(?<!^)(?=[A-Z])", "_", m.name).lower(): m
           for m in pb.DESCRIPTOR.services_by_name["GenerativeService"].methods}
PLAYGROUND = "playground.html"


class _Context:
    """What the servicers ask of a gRPC call's context, for an HTTP request: no deadline."""

    @staticmethod
    def time_remaining() -> None:
        return None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class HttpApi:
    def __init__(self, settings: Settings, generative: GenerativeServicer, inference: InferenceServicer,
                 gate: ErrorsAndMetrics, tracing: Tracing | None = None):
        self.settings = settings
        self.tracing = tracing
        self.generative = generative
        self.inference = inference
        self.gate = gate
        self.tokens = read_tokens(settings.auth_token_file) if settings.auth_token_file else None
        self.context = _Context()
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

    async def _call(self, rpc: str, method: Callable[[Any, Any], Awaitable[Message]], request: Message,
                    http: web.Request) -> Message:
        if self.gate.request_ids:
            request_id.set(http.headers.get("x-request-id", "")[:128] or None)
        if self.tracing is None:
            return await self.gate.guard(rpc, "http", lambda: method(request, self.context))
        route = http.match_info.route.resource.canonical if http.match_info.route.resource else http.path
        with self.tracing.http_span(f"{http.method} {route}", http.method, http.path, http.headers) as span:
            span.set_attribute("rpc.method", rpc)
            return await self.gate.guard(rpc, "http", lambda: method(request, self.context))

    @web.middleware
    async def _errors(self, request: web.Request, handler) -> web.StreamResponse:
        """A domain error as the protocol's JSON error with its HTTP status; aiohttp's own
        (404 route, 405 method, 413 body) as JSON too."""
        try:
            return await handler(request)
        except GenserveError as exc:
            return _error(HTTP_STATUS[type(exc)], exc.reason)
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
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        problem = ("missing" if not scheme else "malformed" if scheme.lower() != "bearer" or not token
                   else None if valid_token(token.strip().encode(), self.tokens) else "invalid")
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
        answer = await self._call("ServerMetadata", self.inference.ServerMetadata, oip.ServerMetadataRequest(), request)
        return web.json_response(json_format.MessageToDict(answer, preserving_proto_field_name=True)
                                 | {"extensions": ["binary_tensor_data"]})

    async def live(self, request: web.Request) -> web.Response:
        answer = await self._call("ServerLive", self.inference.ServerLive, oip.ServerLiveRequest(), request)
        return web.json_response({"live": answer.live}, status=200 if answer.live else 503)

    async def ready(self, request: web.Request) -> web.Response:
        answer = await self._call("ServerReady", self.inference.ServerReady, oip.ServerReadyRequest(), request)
        return web.json_response({"ready": answer.ready}, status=200 if answer.ready else 503)

    async def model_metadata(self, request: web.Request) -> web.Response:
        message = oip.ModelMetadataRequest(name=request.match_info["name"],
                                           version=request.match_info.get("version", ""))
        answer = json_format.MessageToDict(await self._call("ModelMetadata", self.inference.ModelMetadata,
                                                            message, request), preserving_proto_field_name=True)
        for tensor in answer.get("inputs", []) + answer.get("outputs", []):
            tensor["shape"] = [int(d) for d in tensor["shape"]]  # int64s are JSON strings in proto3
        return web.json_response(answer)

    async def model_ready(self, request: web.Request) -> web.Response:
        message = oip.ModelReadyRequest(name=request.match_info["name"], version=request.match_info.get("version", ""))
        answer = await self._call("ModelReady", self.inference.ModelReady, message, request)
        return web.json_response({"ready": answer.ready}, status=200 if answer.ready else 400)

    async def infer(self, request: web.Request) -> web.Response:
        body = await request.read()
        header, binary = _split_binary(body, request.headers.get(BINARY_HEADER))
        message, binary_outputs = _infer_request(header, binary, request.match_info["name"],
                                                 request.match_info.get("version", ""))
        answer = await self._call("ModelInfer", self.inference.ModelInfer, message, request)
        return _infer_response(answer, binary_outputs)

    # -- genserve.v1 as JSON

    async def v1_json(self, request: web.Request) -> web.Response:
        method = METHODS.get(request.match_info["rpc"])
        if method is None:
            raise ModelNotFound(f"{request.path[:80]!r}: no such call; genserve.v1's are "
                                f"{', '.join('/v1/' + name for name in METHODS)}")
        message = json_format.symbol_database.Default().GetSymbol(method.input_type.full_name)()
        text = await request.text()
        try:
            json_format.Parse(text or "{}", message)
        except json_format.ParseError as exc:
            raise InvalidArgument(f"request body: {str(exc)[:MAX_ERROR]}") from None
        answer = await self._call(method.name, getattr(self.generative, method.name), message, request)
        return web.Response(text=json_format.MessageToJson(answer, indent=None), content_type="application/json")

    # -- genserve.v1 as PNG

    async def sample_png(self, request: web.Request) -> web.Response:
        query = _query(request, ("n", "model", "seed", "digit", "version", "scale", "columns"))
        message = _parse(pb.SampleRequest(), {k: v for k, v in query.items() if k not in ("scale", "columns")}
                         | {"n": query.get("n", "16")})
        answer = await self._call("Sample", self.generative.Sample, message, request)
        return _png(answer.images, query)

    async def grid_png(self, request: web.Request) -> web.Response:
        query = _query(request, ("size", "span", "digit", "scale"))
        message = _parse(pb.LatentGridRequest(), {k: v for k, v in query.items() if k != "scale"}
                         | {"size": query.get("size", "15")})
        answer = await self._call("LatentGrid", self.generative.LatentGrid, message, request)
        return _png(answer.images, query | {"columns": str(message.size)})

    async def interpolate_png(self, request: web.Request) -> web.Response:
        query = _query(request, ("from_seed", "to_seed", "steps", "model", "digit", "scale"))
        for name in ("from_seed", "to_seed"):
            if name not in query:
                raise InvalidArgument(f"{name}: required")
        fields = {"start": {"seed": query["from_seed"]}, "end": {"seed": query["to_seed"]},
                  "steps": query.get("steps", "8")} | {k: query[k] for k in ("model", "digit") if k in query}
        message = _parse(pb.InterpolateRequest(), fields)
        answer = await self._call("Interpolate", self.generative.Interpolate, message, request)
        return _png(answer.images, query | {"columns": str(message.steps)})

    async def denoise_png(self, request: web.Request) -> web.Response:
        query = _query(request, ("scale",))
        tiles, columns = _read_png(await request.read())
        message = pb.DenoiseRequest(images=pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=tiles.shape,
                                                     data=tiles.tobytes()))
        answer = await self._call("Denoise", self.generative.Denoise, message, request)
        return _png(answer.images, query | {"columns": str(columns)})


def _split_binary(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON part of an infer request and the binary tensors after it."""
    if header_length is None:
        return body, b""
    if not header_length.isascii() or not header_length.isdigit() or int(header_length) > len(body):
        raise InvalidArgument(f"{BINARY_HEADER}: must be the JSON part's length in bytes, at most the body's "
                              f"{len(body):,}; got {header_length[:40]!r}")
    return body[:int(header_length)], body[int(header_length):]


def _infer_request(header: bytes, binary: bytes, name: str, version: str) -> tuple[oip.ModelInferRequest, set[str]]:
    """The protocol's JSON (and binary) request as the gRPC message; and the outputs to send as binary."""
    try:
        body = json.loads(header)
    except ValueError as exc:
        raise InvalidArgument(f"request body: not JSON: {str(exc)[:MAX_ERROR]}") from None
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise InvalidArgument("request body: a JSON object with a list of inputs")
    message = oip.ModelInferRequest(model_name=name, model_version=version)
    if isinstance(body.get("id"), str):
        message.id = body["id"]
    inputs: list = body["inputs"]
    raw = bool(binary) or any(_binary_size(t) is not None for t in inputs if isinstance(t, dict))
    offset = 0
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise InvalidArgument(f"inputs[{i}]: a JSON object with name, shape, datatype and data")
        shape = tensor.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise InvalidArgument(f"inputs[{i}].shape: a list of integers")
        datatype = str(tensor.get("datatype", ""))
        entry = message.inputs.add(name=str(tensor.get("name", "")), datatype=datatype,
                                   shape=[d for d in shape if -2**63 <= d < 2**63])
        size = _binary_size(tensor)
        if size is not None:
            if size < 0 or offset + size > len(binary):
                raise InvalidArgument(f"inputs[{i}].parameters.binary_data_size: {size:,} bytes past the "
                                      f"{len(binary) - offset:,} left in the body")
            message.raw_input_contents.append(binary[offset:offset + size])
            offset += size
            continue
        values = _values(tensor.get("data"), datatype, f"inputs[{i}].data")
        if raw:  # the gRPC message takes raw bytes for every input or for none
            message.raw_input_contents.append(values.tobytes())
        elif datatype in NUMPY:
            getattr(entry.contents, "fp32_contents" if datatype == "FP32" else "int64_contents").extend(values)
    if offset != len(binary):
        raise InvalidArgument(f"request body: {len(binary) - offset:,} bytes after the binary inputs")
    wanted = body.get("outputs", [])
    binary_all = bool((body.get("parameters") or {}).get("binary_data_output", False))
    binary_outputs = set()
    for i, output in enumerate(wanted if isinstance(wanted, list) else []):
        if not isinstance(output, dict):
            raise InvalidArgument(f"outputs[{i}]: a JSON object with a name")
        message.outputs.add(name=str(output.get("name", "")))
        if (output.get("parameters") or {}).get("binary_data", binary_all):
            binary_outputs.add(str(output.get("name", "")))
    if not wanted and binary_all:
        binary_outputs = {"*"}
    return message, binary_outputs


def _binary_size(tensor: dict) -> int | None:
    size = (tensor.get("parameters") or {}).get("binary_data_size") if isinstance(tensor.get("parameters"), dict) \
        else None
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def _values(data: Any, datatype: str, field: str) -> np.ndarray:
    """A JSON tensor's values, flattened, in the datatype's numpy type (an unknown datatype:
    none, for the servicer to refuse by name)."""
    if datatype not in NUMPY:
        return np.zeros(0, np.float32)
    try:
        return np.asarray(data, NUMPY[datatype]).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        raise InvalidArgument(f"{field}: a list of {datatype} numbers") from None


def _infer_response(answer: oip.ModelInferResponse, binary_outputs: set[str]) -> web.Response:
    body: dict = {"model_name": answer.model_name, "model_version": answer.model_version, "outputs": []}
    if answer.id:
        body["id"] = answer.id
    blobs = []
    for output, raw in zip(answer.outputs, answer.raw_output_contents):
        entry = {"name": output.name, "datatype": output.datatype, "shape": list(output.shape)}
        if "*" in binary_outputs or output.name in binary_outputs:
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = np.frombuffer(raw, NUMPY[output.datatype]).tolist()
        body["outputs"].append(entry)
    header = json.dumps(body).encode()
    if not blobs:
        return web.Response(body=header, content_type="application/json")
    return web.Response(body=header + b"".join(blobs), content_type="application/octet-stream",
                        headers={BINARY_HEADER: str(len(header))})


def _query(request: web.Request, known: tuple[str, ...]) -> dict[str, str]:
    unknown = [k for k in request.query if k not in known]
    if unknown:
        raise InvalidArgument(f"{unknown[0][:40]!r}: not a parameter of {request.path}; use {', '.join(known)}")
    return {k: request.query[k] for k in known if k in request.query}


def _parse(message: Message, fields: dict) -> Message:
    """Query parameters into the request message, by protobuf's JSON mapping, so that the
    field names and checks are the message's own."""
    try:
        return json_format.ParseDict(fields, message)
    except json_format.ParseError as exc:
        raise InvalidArgument(f"query: {str(exc)[:MAX_ERROR]}") from None


def _png(images: pb.Tensor, query: dict[str, str]) -> web.Response:
    scale = _small_int(query.get("scale", "1"), "scale", MAX_SCALE)
    columns = _small_int(query["columns"], "columns", 4096) if "columns" in query else None
    pixels = np.frombuffer(images.data, np.uint8).reshape(tuple(images.shape))
    return web.Response(body=encode_grid(pixels, columns, scale), content_type="image/png")


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
    runner = web.AppRunner(api.application(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, settings.http_port, ssl_context=context, reuse_port=reuse_port or None)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise StartupError(f"cannot listen on {host}:{settings.http_port} for HTTP ({exc.strerror}); choose "
                           "another --http-port or --http-host, or --no-http") from None
    return runner, runner.addresses[0][1]
