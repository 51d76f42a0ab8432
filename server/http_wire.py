"""HTTP's wire formats, read strictly: request bodies (within their size, time and media
type), JSON (UTF-8, each key once, bounded nesting), the Open Inference Protocol's JSON
and binary tensors, and the PNG routes' query parameters. Every refusal is a domain
error naming the field."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import numpy as np
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from .errors import BodyTimeout, Cancelled, InvalidArgument, TooLarge, UnsupportedMediaType, quoted
from .service import Answer, InferInput

BINARY_HEADER = "Inference-Header-Content-Length"  # Triton's binary tensor data extension
TIMEOUT_HEADER = "X-Request-Timeout"  # seconds
NUMPY = {"FP32": "<f4", "INT64": "<i8"}  # the protocol's datatypes genserve serves
KINDS = {"FP32": "iuf", "INT64": "i"}  # numpy's kinds of the JSON values each datatype takes
DRAINED = 4  # a body over the limit by at most this factor is read and dropped before the refusal
MAX_ERROR = 100  # characters of a parser's message an answer repeats (caller text within it)
INT64 = (-2**63, 2**63)


def media_type(request: web.Request, allowed: tuple[str, ...], absent_ok: bool) -> None:
    """The body's Content-Type must be one of ``allowed`` (or absent, where ``absent_ok``),
    and any charset UTF-8: a web page of another site can send text/plain or a form
    without asking the server first, but not these."""
    given = request.headers.get("Content-Type")
    if given is None and absent_ok:
        return
    charset = (request.charset or "utf-8").lower().replace("_", "-")
    if request.content_type not in allowed or charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"Content-Type {quoted(given or '')}: send {' or '.join(allowed)}"
                                   + (" (UTF-8)" if "application/json" in allowed else ""))


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """The request's body: refused before it is read when its Content-Length is over
    ``limit``, and when it is not all there within ``timeout`` seconds."""
    length = request.content_length
    if length is not None and length > limit:
        if length <= DRAINED * limit:  # read and dropped, so that the caller gets to read the refusal
            await _discard(request, timeout)
        raise TooLarge(f"request body: {length:,} bytes, over the limit of {limit:,}")
    try:
        return await asyncio.wait_for(request.read(), timeout)
    except asyncio.TimeoutError:
        raise BodyTimeout(f"request body: not all there within {timeout:g} s") from None
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge(f"request body: over the limit of {limit:,} bytes") from None
    except (HttpProcessingError, RequestPayloadError) as exc:  # its Content-Encoding or chunking is broken
        raise InvalidArgument(f"request body: cannot be read ({_short(str(exc.args[0] if exc.args else exc))})"
                              ) from None
    except ConnectionError:
        raise Cancelled("request body: the caller went away before sending all of it") from None


async def _discard(request: web.Request, timeout: float) -> None:
    try:
        await asyncio.wait_for(_drain(request), timeout)
    except (asyncio.TimeoutError, ConnectionError, HttpProcessingError, RequestPayloadError):
        pass  # refused all the same; the connection closes


async def _drain(request: web.Request) -> None:
    async for _ in request.content.iter_chunked(1 << 16):
        pass


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR else text[:MAX_ERROR] + "..."


def load_json(data: bytes, where: str = "request body") -> Any:
    """UTF-8 JSON, each key once per object."""
    def unique(pairs: list[tuple[str, Any]]) -> dict:
        result: dict = {}
        for key, value in pairs:
            if key in result:
                raise InvalidArgument(f"{where}: the key {quoted(key)} twice in one object")
            result[key] = value
        return result

    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=unique)
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"{where}: not UTF-8 (byte {exc.start:,})") from None
    except RecursionError:
        raise InvalidArgument(f"{where}: JSON nested too deeply") from None
    except ValueError as exc:
        raise InvalidArgument(f"{where}: not JSON: {_short(str(exc))}") from None


def ascii_numbers(value: Any, where: str = "request body") -> None:
    """Refuses digits other than ASCII's where protobuf's JSON reader would take them as
    numbers ("٥" as 5)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and not item.isascii() and item.strip().lstrip("+-").isdigit():
            raise InvalidArgument(f"{where}: {quoted(item)} is not a number in ASCII digits")


def timeout_header(text: str | None) -> float | None:
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


# -- the Open Inference Protocol


def split_binary(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON part of an infer request and the binary tensors after it."""
    if header_length is None:
        return body, b""
    if not (header_length.isascii() and header_length.isdigit() and len(header_length) <= 19
            and int(header_length) <= len(body)):
        raise InvalidArgument(f"{BINARY_HEADER}: must be the JSON part's length in bytes, at most the body's "
                              f"{len(body):,}; got {quoted(header_length)}")
    return body[:int(header_length)], body[int(header_length):]


def parameters(value: dict, where: str) -> dict:
    """An object's ``parameters``: a JSON object, or absent."""
    found = value.get("parameters", {})
    if not isinstance(found, dict):
        raise InvalidArgument(f"{where}parameters: a JSON object")
    return found


def infer_request(header: bytes) -> dict:
    body = load_json(header)
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise InvalidArgument("request body: a JSON object with a list of inputs")
    parameters(body, "")
    if "id" in body and not isinstance(body["id"], str):
        raise InvalidArgument("id: a string")
    return body


def infer_timeout_us(body: dict) -> int | None:
    timeout = parameters(body, "").get("timeout")
    if timeout is None:
        return None
    if not isinstance(timeout, int) or isinstance(timeout, bool):
        raise InvalidArgument(f"parameters.timeout: microseconds, a whole number > 0, got {quoted(str(timeout))}")
    return timeout


def infer_inputs(body: dict, binary: bytes, booleans: bool) -> list[InferInput]:
    """The protocol's JSON (and binary) inputs as the core takes them. ``booleans``: the
    JSON holds true or false somewhere, so values are looked at one by one for them."""
    inputs = []
    offset = 0
    for i, tensor in enumerate(body["inputs"]):
        if not isinstance(tensor, dict):
            raise InvalidArgument(f"inputs[{i}]: a JSON object with name, shape, datatype and data")
        shape = tensor.get("shape")
        if not isinstance(shape, list) or not all(type(d) is int and INT64[0] <= d < INT64[1] for d in shape):
            raise InvalidArgument(f"inputs[{i}].shape: a list of integers within int64")
        name, datatype = tensor.get("name", ""), tensor.get("datatype", "")
        if not isinstance(name, str) or not isinstance(datatype, str):
            raise InvalidArgument(f"inputs[{i}]: name and datatype are strings")
        size = parameters(tensor, f"inputs[{i}].").get("binary_data_size")
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise InvalidArgument(f"inputs[{i}].parameters.binary_data_size: {quoted(str(size))} bytes; the "
                                      f"body has {len(binary) - offset:,} left after the JSON")
            data: bytes | np.ndarray = binary[offset:offset + size]
            field = f"inputs[{i}].parameters.binary_data_size"
            offset += size
        else:
            field = f"inputs[{i}].data"
            data = values(tensor.get("data"), datatype, field, booleans)
        inputs.append(InferInput(name, datatype, tuple(shape), data, field))
    if offset != len(binary):
        raise InvalidArgument(f"request body: {len(binary) - offset:,} bytes after the binary inputs")
    return inputs


def values(data: Any, datatype: str, field: str, booleans: bool) -> np.ndarray:
    """A JSON tensor's values (nested lists or flat), flattened, in the datatype's type:
    INT64 takes JSON integers only, FP32 numbers only; neither strings nor booleans. An
    unknown datatype gives none, for the core to refuse by name."""
    if datatype not in NUMPY:
        return np.zeros(0, np.float32)
    kind = "integers" if datatype == "INT64" else "numbers"
    if not isinstance(data, list):
        raise InvalidArgument(f"{field}: a list of JSON {kind} for {datatype}")
    try:
        array = np.asarray(data)
    except ValueError:
        raise InvalidArgument(f"{field}: nested lists of uneven lengths") from None
    if array.size and (array.dtype.kind not in KINDS[datatype] or (booleans and _has_bool(data))):
        raise InvalidArgument(f"{field}: {datatype} takes JSON {kind} (within its range), not strings, booleans"
                              + (" or fractions" if datatype == "INT64" else ""))
    with np.errstate(over="ignore"):  # beyond float32: infinite, which the core refuses by name
        return array.astype(NUMPY[datatype]).reshape(-1)


def _has_bool(data: list) -> bool:
    stack: list = [data]
    while stack:
        items = stack.pop()
        for item in items:
            if type(item) is bool:
                return True
            if isinstance(item, list):
                stack.append(item)
    return False


def infer_outputs(body: dict) -> tuple[list[str], set[str]]:
    """The outputs asked for, and those to send as binary ("*": all)."""
    wanted = body.get("outputs", [])
    if not isinstance(wanted, list):
        raise InvalidArgument("outputs: a list of objects with a name")
    binary_all = parameters(body, "").get("binary_data_output", False) is True
    names, binary = [], set()
    for i, output in enumerate(wanted):
        if not isinstance(output, dict) or not isinstance(output.get("name", ""), str):
            raise InvalidArgument(f"outputs[{i}]: a JSON object with a name")
        names.append(output.get("name", ""))
        if parameters(output, f"outputs[{i}].").get("binary_data", binary_all) is True:
            binary.add(names[-1])
    if not names and binary_all:
        binary = {"*"}
    return names, binary


def infer_response(answer: Answer, request_id: str, binary_outputs: set[str]) -> tuple[bytes, str, dict]:
    """The answer's body, content type and headers."""
    body: dict = {"model_name": answer.model, "model_version": str(answer.version), "outputs": []}
    if request_id:
        body["id"] = request_id
    blobs = []
    for name, array in answer.output:
        entry: dict = {"name": name, "datatype": "FP32", "shape": list(array.shape)}
        if "*" in binary_outputs or name in binary_outputs:
            raw = array.astype("<f4", copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = array.reshape(-1).tolist()
        body["outputs"].append(entry)
    header = json.dumps(body).encode()
    if not blobs:
        return header, "application/json", {}
    return header + b"".join(blobs), "application/octet-stream", {BINARY_HEADER: str(len(header))}


def json_values(answer: Answer, binary_outputs: set[str]) -> int:
    """How many values an infer answer writes as JSON text."""
    if "*" in binary_outputs:
        return 0
    return sum(array.size for name, array in answer.output if name not in binary_outputs)


# -- the PNG routes' queries


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

    def whole(self, name: str, default: int | None = None, high: int = 2**64 - 1, low: int = 0,
              required: bool = False) -> int | None:
        """A whole number in [low, high]; ``default`` where absent."""
        text = self.values.get(name)
        if text is None:
            if required:
                raise InvalidArgument(f"{name}: required")
            return default
        if not (text.isascii() and text.isdigit() and len(text) <= 20 and low <= int(text) <= high):
            raise InvalidArgument(f"query {name}: a whole number between {low} and {high}, got {quoted(text)}")
        return int(text)

    def number(self, name: str) -> float | None:
        text = self.values.get(name)
        if text is None:
            return None
        try:
            return float(text)
        except ValueError:
            raise InvalidArgument(f"query: {name} must be a number, got {quoted(text)}") from None
