"""The HTTP door, beside gRPC on the same event loop, service core, gate, tokens and
TLS: the Open Inference Protocol's REST API (with Triton's binary tensor data
extension), genserve.v1 as canonical protobuf JSON and as PNG, and the playground
page at ``/``. It translates HTTP <-> the core and nothing more.

A call's deadline is its ``X-Request-Timeout`` header (seconds), the Open Inference
Protocol's ``timeout`` parameter, or ``--http-timeout`` (not for SampleStream's NDJSON,
which runs as long as it takes unless the header says otherwise); a caller that disconnects
cancels its call, and with it its queued work. Bodies are read within the gate and their
limits; pictures are bounded before any model runs, and encoded, decoded and large JSON
answers written in threads, never on the event loop gRPC shares.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import resource
import ssl
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

import numpy as np
from aiohttp import web
from google.protobuf import json_format

from genserve.pixels import TILE
from genserve.png import MAX_SCALE, decode_grid, encode_grid
from genserve.v1 import generative_pb2 as pb

from .calls import Call
from .errors import GenserveError, InvalidArgument, ModelNotFound, StartupError, TooLarge, quoted
from .gate import Gate
from .http_guard import Hosts, Listener, security_headers
from .http_wire import (BINARY_HEADER, TIMEOUT_HEADER, Query, ascii_numbers, infer_inputs, infer_outputs,
                        infer_request, infer_response, infer_timeout_us, json_values, load_json, media_type,
                        read_body, split_binary, timeout_header)
from .logs import call_id
from .openapi import document
from .security import bearer_problem, read_tokens
from .service import Endpoint, Service, server_version
from .settings import Settings
from .tensors import images_from_pixels
from .tracing import Tracing
from .v1_messages import RPCS, open_stream, sample_chunk

log = logging.getLogger(__name__)

T = TypeVar("T")
# genserve.v1's RPCs by their HTTP names: /v1/sample, /v1/latent_grid, ...
METHODS = {m.name: m for m in pb.DESCRIPTOR.services_by_name["GenerativeService"].methods}
ROUTES = {"".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_"): name for name in METHODS
          if name in RPCS}
NDJSON = "application/x-ndjson"
PLAYGROUND = "playground.html"
MAX_PICTURE_PIXELS = 4096 * 4096  # a PNG route's picture, in or out
MAX_COLUMNS = 4096
OFF_LOOP_BYTES = 64 * 1024  # answers larger than this are written in a thread
OFF_LOOP_VALUES = 16 * 1024  # likewise, JSON numbers
IMMUTABLE = "public, max-age=31536000, immutable"  # an answer that cannot change
# Each PNG route's query parameters.
PNG_QUERIES = {"/v1/sample.png": ("n", "model", "seed", "digit", "version", "scale", "columns"),
               "/v1/grid.png": ("size", "span", "digit", "version", "scale"),
               "/v1/interpolate.png": ("from_seed", "to_seed", "steps", "model", "digit", "version", "scale"),
               "/v1/denoise.png": ("scale",)}
# Of the Open Inference Protocol's extensions, those this door serves (Triton's names).
EXTENSIONS = ["binary_tensor_data", "model_repository", "statistics"]
BODIES_AT_ONCE = 4
JSON_TYPES = ("application/json",)
INFER_TYPES = ("application/json", "application/octet-stream")
PNG_TYPES = ("image/png", "application/octet-stream")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _rpc(name: str):
    """The method a route counts its refusals under, before its call is made."""
    def mark(handler):
        handler.rpc = name
        return handler
    return mark


class HttpApi:
    def __init__(self, settings: Settings, service: Service, gate: Gate, tracing: Tracing | None = None):
        self.settings = settings
        self.tracing = tracing
        self.service = service
        self.gate = gate
        self.tokens = read_tokens(settings.auth_token_file) if settings.auth_token_file else None
        self.hosts = Hosts(settings.http_allowed_hosts)
        # Routes open without a token: the page and, unless --auth-health, the health routes.
        self.open_paths = {"/", "/openapi.json"} | (set() if settings.auth_health else
                                                    {"/v2/health/live", "/v2/health/ready"})
        self.page = resources.files("server").joinpath(PLAYGROUND).read_text()
        self.described = json.dumps(document(server_version(), ROUTES, PNG_QUERIES))
        # Pictures and large JSON answers are made here, not on the event loop.
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="http-encode")
        # Bodies read at once: the others wait with their connections paused, unread, so that a
        # flood of uploads (aborted or not) moves no more bytes through the event loop than this.
        self.reading = asyncio.Semaphore(BODIES_AT_ONCE)

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_message_bytes,
                              middlewares=[self._errors, self._origin, self._bearer_token])
        app.on_response_prepare.append(security_headers)
        get, models = web.get, "/v2/models/{name}"

        def post(path: str, handler):
            return web.post(path, handler, expect_handler=self._expect)

        app.add_routes([
            get("/", self.playground), get("/openapi.json", self.openapi),
            get("/v2", self.server_metadata), get("/v2/health/live", self.live), get("/v2/health/ready", self.ready),
            get("/v2/models/stats", self.statistics), get(models + "/stats", self.statistics),
            get(models + "/versions/{version}/stats", self.statistics),
            post("/v2/repository/index", self.repository_index),
            post("/v2/repository/models/{name}/load", self.load_model),
            post("/v2/repository/models/{name}/unload", self.unload_model),
            *(route for prefix in (models, models + "/versions/{version}") for route in (
                get(prefix, self.model_metadata), get(prefix + "/ready", self.model_ready),
                post(prefix + "/infer", self.infer))),
            get("/v1/sample.png", self.sample_png), get("/v1/grid.png", self.grid_png),
            get("/v1/interpolate.png", self.interpolate_png), post("/v1/denoise.png", self.denoise_png),
            post("/v1/sample_stream", self.sample_stream), post("/v1/{rpc}", self.v1_json),
        ])
        return app

    # -- the gate, tokens, origins and errors

    async def _run(self, rpc: str, http: web.Request, work: Callable[[Call], Awaitable[T]],
                   default_timeout: bool = True) -> T:
        """``work(call)`` through the gate, as the call ``rpc`` with this request's id and
        deadline (``default_timeout``: --http-timeout where the request sets none)."""
        http["counted"] = True
        call = Call(rpc, "http", None, call_id(http.headers.get("x-request-id")) if self.gate.request_ids else None,
                    http.remote or "")

        async def deadline_then_work() -> T:
            seconds = timeout_header(http.headers.get(TIMEOUT_HEADER)) or (
                self.settings.http_timeout if default_timeout else None)
            if seconds:
                call.limit(seconds)
            return await work(call)

        if self.tracing is None:
            return await self.gate.run(call, deadline_then_work)
        route = http.match_info.route.resource.canonical if http.match_info.route.resource else http.path
        with self.tracing.http_span(f"{http.method} {route}", http.method, http.path, http.headers) as span:
            span.set_attribute("rpc.method", rpc)
            return await self.gate.run(call, deadline_then_work)

    def _count(self, request: web.Request, code: str) -> None:
        """A request refused before its call was made, counted under its route's method."""
        if not request.get("counted"):
            request["counted"] = True
            self.gate.count(Call(getattr(request.match_info.handler, "rpc", "unknown"), "http"), code)

    @web.middleware
    async def _errors(self, request: web.Request, handler) -> web.StreamResponse:
        """A domain error as the protocol's JSON error with its HTTP status; aiohttp's own
        (404 route, 405 method) as JSON too; anything else a logged 500. Every refusal is
        counted."""
        try:
            return await handler(request)
        except GenserveError as exc:
            self._count(request, exc.code)
            return _error(exc.http_status, exc.reason)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            self._count(request, {404: "NOT_FOUND", 405: "UNIMPLEMENTED"}.get(exc.status, "INVALID_ARGUMENT"))
            message = {404: f"{quoted(request.path)}: no such route",
                       405: f"{request.method} {quoted(request.path)}: not a method of this route"}
            return _error(exc.status, message.get(exc.status, exc.reason))
        except Exception:
            log.exception("HTTP %s %s failed", request.method, request.path[:80])
            self._count(request, "INTERNAL")
            return _error(500, "internal error; the server logged the details")

    @web.middleware
    async def _origin(self, request: web.Request, handler) -> web.StreamResponse:
        """Only the hosts the server answers to, and no web page of another origin."""
        self.hosts.check(request)
        return await handler(request)

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
        request["counted"] = True  # as over gRPC: counted as a refusal of its own
        return _error(401, f"{problem} bearer token; send the header 'Authorization: Bearer <token>' "
                           "with a token the server accepts")

    async def _expect(self, request: web.Request) -> web.StreamResponse | None:
        """``Expect: 100-continue``: a body over the limit is refused before it is sent."""
        if request.headers.get("Expect", "").lower() != "100-continue":
            raise web.HTTPExpectationFailed(text=f"Expect {quoted(request.headers.get('Expect', ''))}: "
                                                 "only 100-continue")
        limit = self.settings.max_message_bytes
        if request.content_length is not None and request.content_length > limit:
            self._count(request, TooLarge.code)
            return _error(TooLarge.http_status, f"request body: {request.content_length:,} bytes, over the limit "
                                                f"of {limit:,}")
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return None

    async def _body(self, request: web.Request, types: tuple[str, ...] = (), absent_ok: bool = True) -> bytes:
        """The body, of one of ``types`` (none: checked by the caller)."""
        if types:
            media_type(request, types, absent_ok)
        async with self.reading:
            return await read_body(request, self.settings.max_message_bytes, self.settings.http_body_timeout)

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- the page

    async def playground(self, request: web.Request) -> web.Response:
        return web.Response(text=self.page, content_type="text/html")

    async def openapi(self, request: web.Request) -> web.Response:
        """The OpenAPI 3.1 document of every route (server/openapi.py)."""
        return web.Response(text=self.described, content_type="application/json")

    # -- the Open Inference Protocol over REST

    @_rpc("ServerMetadata")
    async def server_metadata(self, request: web.Request) -> web.Response:
        async def work(call: Call) -> dict:
            return {"name": "genserve", "version": server_version(), "extensions": EXTENSIONS}
        return web.json_response(await self._run("ServerMetadata", request, work))

    @_rpc("ServerLive")
    async def live(self, request: web.Request) -> web.Response:
        async def work(call: Call) -> bool:
            return True
        live = await self._run("ServerLive", request, work)
        return web.json_response({"live": live}, status=200 if live else 503)

    @_rpc("ServerReady")
    async def ready(self, request: web.Request) -> web.Response:
        async def work(call: Call) -> bool:
            return self.service.ready
        ready = await self._run("ServerReady", request, work)
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    @_rpc("ModelMetadata")
    async def model_metadata(self, request: web.Request) -> web.Response:
        name, version = request.match_info["name"], request.match_info.get("version", "")

        async def work(call: Call):
            return self.service.model_metadata(call, name, version)
        meta = await self._run("ModelMetadata", request, work)
        tensors = lambda specs: [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}  # noqa: E731
                                 for t in specs]
        return web.json_response({"name": meta.name, "versions": list(meta.versions), "platform": meta.platform,
                                  "inputs": tensors(meta.inputs), "outputs": tensors(meta.outputs)})

    @_rpc("ModelStatistics")
    async def statistics(self, request: web.Request) -> web.Response:
        name, version = request.match_info.get("name", ""), request.match_info.get("version", "")

        async def work(call: Call) -> list:
            return self.service.statistics(call, name, version)
        found = await self._run("ModelStatistics", request, work)
        return web.json_response({"model_stats": [{"name": n, "version": str(v), **figures}
                                                  for n, v, figures in found]})

    async def _parameters(self, request: web.Request, allowed: tuple[str, ...]) -> dict:
        """A repository request's JSON body (may be empty): its ``parameters``, of ``allowed``."""
        raw = await self._body(request, JSON_TYPES, absent_ok=True)
        body = load_json(raw) if raw.strip() else {}
        if not isinstance(body, dict):
            raise InvalidArgument("request body: a JSON object")
        unknown = sorted(set(body) - {"parameters", "ready"})
        if unknown:
            raise InvalidArgument(f"request body: unknown key {quoted(unknown[0])}")
        parameters = body.get("parameters", {})
        if not isinstance(parameters, dict):
            raise InvalidArgument("parameters: a JSON object")
        other = sorted(set(parameters) - set(allowed))
        if other:
            raise InvalidArgument(f"parameters: genserve loads models as the repository holds them; "
                                  f"{quoted(other[0])} is not taken" + (f" (only {', '.join(allowed)})"
                                                                         if allowed else ""))
        ready = body.get("ready", False)
        if not isinstance(ready, bool):
            raise InvalidArgument("ready: true or false")
        return {"ready": ready}

    @_rpc("RepositoryIndex")
    async def repository_index(self, request: web.Request) -> web.Response:
        async def work(call: Call) -> list:
            ready = (await self._parameters(request, ()))["ready"]
            return await self.service.repository_index(call, ready)
        entries = await self._run("RepositoryIndex", request, work)
        return web.json_response([{"name": e.name, "version": e.version, "state": e.state, "reason": e.reason}
                                  for e in entries])

    @_rpc("RepositoryModelLoad")
    async def load_model(self, request: web.Request) -> web.Response:
        async def work(call: Call) -> None:
            await self._parameters(request, ())
            await self.service.load_model(call, request.match_info["name"])
        await self._run("RepositoryModelLoad", request, work)
        return web.Response(status=200)

    @_rpc("RepositoryModelUnload")
    async def unload_model(self, request: web.Request) -> web.Response:
        async def work(call: Call) -> None:
            await self._parameters(request, ("unload_dependents",))
            await self.service.unload_model(call, request.match_info["name"])
        await self._run("RepositoryModelUnload", request, work)
        return web.Response(status=200)

    @_rpc("ModelReady")
    async def model_ready(self, request: web.Request) -> web.Response:
        name, version = request.match_info["name"], request.match_info.get("version", "")

        async def work(call: Call) -> bool:
            return self.service.model_ready(name, version)
        ready = await self._run("ModelReady", request, work)
        return web.json_response({"ready": ready}, status=200 if ready else 400)

    @_rpc("ModelInfer")
    async def infer(self, request: web.Request) -> web.Response:
        async def work(call: Call) -> web.Response:
            body = await self._body(request)
            header, binary = split_binary(body, request.headers.get(BINARY_HEADER))
            media_type(request, INFER_TYPES, absent_ok=True)  # tritonclient.http sends none
            parsed = infer_request(header)
            inputs = infer_inputs(parsed, binary, booleans=b"true" in header or b"false" in header)
            outputs, binary_outputs = infer_outputs(parsed)
            request_id = parsed.get("id", "")
            answer = await self.service.infer(call, request.match_info["name"], request.match_info.get("version", ""),
                                              inputs, outputs, request_id, infer_timeout_us(parsed))
            args = (answer, request_id, binary_outputs)
            written = (await self._off_loop(infer_response, *args) if json_values(answer, binary_outputs)
                       > OFF_LOOP_VALUES else infer_response(*args))
            text, content_type, headers = written
            return web.Response(body=text, content_type=content_type, headers=headers)
        return await self._run("ModelInfer", request, work)

    # -- genserve.v1 as JSON

    async def v1_json(self, request: web.Request) -> web.Response:
        name = ROUTES.get(request.match_info["rpc"])
        if name is None:
            raise ModelNotFound(f"{quoted(request.path)}: no such call; genserve.v1's are "
                                f"{', '.join('/v1/' + route for route in ROUTES)}")
        async def work(call: Call) -> web.Response:
            message = await self._message(request, name)
            answer = await RPCS[name](self.service, call, message)
            write = lambda: json_format.MessageToJson(answer, indent=None)  # noqa: E731
            text = await self._off_loop(write) if answer.ByteSize() > OFF_LOOP_BYTES else write()
            return web.Response(text=text, content_type="application/json")
        return await self._run(name, request, work)

    async def _message(self, request: web.Request, name: str):
        """The body: the RPC's request message in protobuf's JSON mapping."""
        message = json_format.symbol_database.Default().GetSymbol(METHODS[name].input_type.full_name)()
        body = load_json(await self._body(request, JSON_TYPES, absent_ok=False) or b"{}")
        ascii_numbers(body)
        try:
            json_format.ParseDict(body, message)
        except json_format.ParseError as exc:
            text = str(exc)
            raise InvalidArgument(f"request body: {text if len(text) <= 100 else text[:100] + '...'}") from None
        return message

    @_rpc("SampleStream")
    async def sample_stream(self, request: web.Request) -> web.StreamResponse:
        """SampleStream as NDJSON: each line one SampleChunk in protobuf's JSON mapping. An
        error once lines are flowing ends the stream with a line ``{"error": ..., "code": ...}``;
        a caller that closes the connection stops the chunks not yet run."""
        response = web.StreamResponse(headers={"Content-Type": NDJSON})

        async def work(call: Call) -> web.StreamResponse:
            message = await self._message(request, "SampleStream")
            stream = open_stream(self.service, call, message)
            fmt = message.image_format
            await response.prepare(request)
            try:
                async for answer in stream.chunks():
                    chunk = sample_chunk(answer, fmt)
                    write = lambda: json_format.MessageToJson(  # noqa: E731
                        chunk, indent=None, always_print_fields_with_no_presence=True)
                    text = await self._off_loop(write) if chunk.ByteSize() > OFF_LOOP_BYTES else write()
                    await response.write(text.encode() + b"\n")
            except GenserveError as exc:
                await response.write(json.dumps({"error": exc.reason, "code": exc.code}).encode() + b"\n")
                raise
            await response.write_eof()
            return response

        try:
            return await self._run("SampleStream", request, work, default_timeout=False)
        except GenserveError:
            if response.prepared:  # the error is the stream's last line
                return response
            raise

    # -- genserve.v1 as PNG

    def _picture(self, digits: int, columns: int | None, scale: int) -> None:
        """Refuses a picture over MAX_PICTURE_PIXELS before any model runs."""
        across = columns or max(1, math.ceil(math.sqrt(digits)))
        width, height = across * TILE * scale, math.ceil(digits / across) * TILE * scale
        if width * height > MAX_PICTURE_PIXELS:
            raise TooLarge(f"picture: {width:,}x{height:,} pixels, over the limit of {MAX_PICTURE_PIXELS:,}; ask "
                           "for fewer digits or columns, or a smaller scale")

    def _etag(self, request: web.Request, query: Query, call: Call, family: str, default: str,
               conditional: bool, version: int | None) -> str | None:
        """A strong ETag for an answer that cannot change: a version-pinned call whose other
        inputs are all in its query (the caller checks the seed), keyed by the query and the
        pinned model's sha256; None for any other."""
        if not version:
            return None
        model = self.service.answering_model(call, family, default, conditional, version)
        key = "\n".join([request.path, *sorted(f"{k}={v}" for k, v in query.values.items()), model.name,
                         str(model.version.version), model.version.manifest["sha256"], server_version()])
        return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'

    async def _png(self, images: np.ndarray, columns: int | None, scale: int, etag: str | None = None
                   ) -> web.Response:
        """The picture, cacheable for good with an ETag, else ``no-store``."""
        headers = {"ETag": etag, "Cache-Control": IMMUTABLE} if etag else {"Cache-Control": "no-store"}
        return web.Response(body=await self._off_loop(encode_grid, images, columns, scale), content_type="image/png",
                            headers=headers)

    @staticmethod
    def _not_modified(request: web.Request, etag: str | None) -> web.Response | None:
        """304 where the caller already holds this answer (``If-None-Match``), before any run."""
        if etag is None:
            return None
        held = {tag.strip().removeprefix("W/") for tag in request.headers.get("If-None-Match", "").split(",")}
        if etag in held:
            return web.Response(status=304, headers={"ETag": etag, "Cache-Control": IMMUTABLE})
        return None

    @_rpc("Sample")
    async def sample_png(self, request: web.Request) -> web.Response:
        async def work(call: Call) -> web.Response:
            query = Query(request, PNG_QUERIES["/v1/sample.png"])
            n, scale = query.whole("n", 16, 2**32 - 1), _scale(query)
            columns = query.whole("columns", None, MAX_COLUMNS, low=1)
            seed, digit, version = query.whole("seed"), query.whole("digit", high=2**32 - 1), query.whole(
                "version", 0, 2**63 - 1)
            if 1 <= n <= self.settings.max_sample_n:  # otherwise the core says what n must be
                self._picture(n, columns, scale)
            etag = None if seed is None else self._etag(request, query, call, query.text("model"), "gan",
                                                        digit is not None, version)
            cached = self._not_modified(request, etag)
            if cached is not None:
                return cached
            answer = await self.service.sample(call, n, query.text("model"), seed, digit, version=version)
            return await self._png(answer.output.pixels, columns, scale, etag)
        return await self._run("Sample", request, work)

    @_rpc("LatentGrid")
    async def grid_png(self, request: web.Request) -> web.Response:
        async def work(call: Call) -> web.Response:
            query = Query(request, PNG_QUERIES["/v1/grid.png"])
            size, scale = query.whole("size", 15, 2**32 - 1), _scale(query)
            digit, version = query.whole("digit", high=2**32 - 1), query.whole("version", 0, 2**63 - 1)
            if size <= 64:
                self._picture(size * size, size, scale)
            etag = self._etag(request, query, call, "vae", "vae", digit is not None, version)
            cached = self._not_modified(request, etag)
            if cached is not None:
                return cached
            answer = await self.service.latent_grid(call, size, query.number("span"), digit, version)
            return await self._png(answer.output.pixels, size, scale, etag)
        return await self._run("LatentGrid", request, work)

    @_rpc("Interpolate")
    async def interpolate_png(self, request: web.Request) -> web.Response:
        async def work(call: Call) -> web.Response:
            query = Query(request, PNG_QUERIES["/v1/interpolate.png"])
            start, end = (Endpoint(seed=query.whole(name, required=True)) for name in ("from_seed", "to_seed"))
            steps, scale = query.whole("steps", 8, 2**32 - 1), _scale(query)
            digit, version = query.whole("digit", high=2**32 - 1), query.whole("version", 0, 2**63 - 1)
            if steps <= self.settings.max_request_size:
                self._picture(steps, steps, scale)
            etag = self._etag(request, query, call, query.text("model"), "vae", digit is not None, version)
            cached = self._not_modified(request, etag)
            if cached is not None:
                return cached
            answer = await self.service.interpolate(call, start, end, steps, query.text("model"), digit, version)
            return await self._png(answer.output.pixels, steps, scale, etag)
        return await self._run("Interpolate", request, work)

    @_rpc("Denoise")
    async def denoise_png(self, request: web.Request) -> web.Response:
        async def work(call: Call) -> web.Response:
            scale = _scale(Query(request, PNG_QUERIES["/v1/denoise.png"]))
            body = await self._body(request, PNG_TYPES, absent_ok=True)
            tiles, columns = await self._off_loop(_read_png, body)
            images = images_from_pixels(tiles, "request body", self.settings.max_request_size)
            self._picture(len(tiles), columns, scale)
            answer = await self.service.denoise(call, images)
            return await self._png(answer.output.pixels, columns, scale)
        return await self._run("Denoise", request, work)


def _scale(query: Query) -> int:
    return query.whole("scale", 1, MAX_SCALE, low=1)


def _read_png(body: bytes) -> tuple[np.ndarray, int]:
    """A PNG grid of 28x28 digits -> (uint8 [N,28,28], columns), its size checked from its
    header before it is decoded."""
    try:
        return decode_grid(body, "request body", MAX_PICTURE_PIXELS)
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


async def start_http(api: HttpApi, reuse_port: bool = False) -> tuple[Listener, int]:
    """Listen for HTTP on the event loop already running gRPC; the listener and its port."""
    settings = api.settings
    host = settings.http_host or settings.host
    try:
        context = (tls_context(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
                   if settings.tls_cert is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"--tls-cert {settings.tls_cert}: HTTP cannot use it ({exc})") from None
    # handler_cancellation: a caller that disconnects cancels its handler, and so its queued work.
    # keepalive_timeout: aiohttp closes a connection whose next request head is not all there by then.
    # lingering_time 0: a body left unread (refused, broken, too slow) is not drained; the connection closes.
    runner = web.AppRunner(api.application(), access_log=None, handle_signals=False, handler_cancellation=True,
                           keepalive_timeout=settings.http_idle_timeout, lingering_time=0)
    await runner.setup()
    listener = Listener(runner, settings.http_max_connections, api.gate.metrics.http_connections_refused.inc)
    try:
        port = await listener.start(host, settings.http_port, context, reuse_port)
    except OSError as exc:
        await runner.cleanup()
        raise StartupError(f"cannot listen on {host}:{settings.http_port} for HTTP ({exc.strerror}); choose "
                           "another --http-port or --http-host, or --no-http") from None
    return listener, port


def raise_open_files_limit() -> None:
    """The soft limit on open files up to the hard one: the file descriptors of HTTP's
    connections (at most --http-max-connections) must leave gRPC room."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))
        except (ValueError, OSError):
            pass
