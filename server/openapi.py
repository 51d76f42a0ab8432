"""The OpenAPI 3.1 document of the HTTP door, served at ``/openapi.json``: the Open
Inference Protocol's REST API with its repository and statistics extensions, health,
genserve.v1 as JSON (each request and response schema made from the protobuf
descriptors, in protobuf's JSON mapping), SampleStream as NDJSON, and the PNG routes."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from genserve.v1 import generative_pb2 as pb

SCHEMAS = "#/components/schemas/"
ERROR = {"description": "the call refused: the field and the limit named",
         "content": {"application/json": {"schema": {"$ref": SCHEMAS + "Error"}}}}
JSON = "application/json"


def _ref(name: str) -> dict:
    return {"$ref": SCHEMAS + name}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {JSON: {"schema": schema}}}


# -- genserve.v1's messages in protobuf's JSON mapping

_SCALARS: dict[int, dict] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number"}, FieldDescriptor.TYPE_FLOAT: {"type": "number"},
    FieldDescriptor.TYPE_INT32: {"type": "integer"}, FieldDescriptor.TYPE_UINT32: {"type": "integer", "minimum": 0},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"}, FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
    # 64-bit integers are strings in protobuf's JSON output, and either on input.
    FieldDescriptor.TYPE_INT64: {"type": ["string", "integer"]},
    FieldDescriptor.TYPE_UINT64: {"type": ["string", "integer"]},
}


def _field(field: FieldDescriptor, schemas: dict) -> dict:
    if field.message_type is not None:
        if field.message_type.full_name == "google.protobuf.Struct":
            schema: dict = {"type": "object"}
        else:
            schema = _ref(_message(field.message_type, schemas))
    elif field.enum_type is not None:
        schema = {"anyOf": [{"enum": [value.name for value in field.enum_type.values]}, {"type": "integer"}]}
    else:
        schema = dict(_SCALARS[field.type])
    return {"type": "array", "items": schema} if field.is_repeated else schema


def _message(descriptor: Descriptor, schemas: dict) -> str:
    """The component name of a message's schema, made (with those it refers to) once."""
    name = descriptor.full_name
    if name not in schemas:
        schemas[name] = {}  # a placeholder while its fields are made
        schemas[name] = {"type": "object", "additionalProperties": False,
                         "properties": {f.json_name: _field(f, schemas) for f in descriptor.fields}}
    return name


# -- the Open Inference Protocol's REST bodies

_DURATION = {"type": "object", "properties": {"count": {"type": "integer"}, "ns": {"type": "integer"}}}
_PARAMETERS = {"type": "object", "additionalProperties": {"type": ["boolean", "integer", "string"]}}
_TENSOR_META = {"type": "object", "properties": {"name": {"type": "string"}, "datatype": {"type": "string"},
                                                 "shape": {"type": "array", "items": {"type": "integer"}}}}
OIP_SCHEMAS: dict[str, dict] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "ServerMetadata": {"type": "object", "properties": {
        "name": {"type": "string"}, "version": {"type": "string"},
        "extensions": {"type": "array", "items": {"type": "string"}}}},
    "Live": {"type": "object", "properties": {"live": {"type": "boolean"}}},
    "Ready": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    "ModelMetadata": {"type": "object", "properties": {
        "name": {"type": "string"}, "versions": {"type": "array", "items": {"type": "string"}},
        "platform": {"type": "string"}, "inputs": {"type": "array", "items": _TENSOR_META},
        "outputs": {"type": "array", "items": _TENSOR_META}}},
    "InferenceRequest": {"type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"}, "parameters": _PARAMETERS,
        "inputs": {"type": "array", "items": {"type": "object", "required": ["name", "shape", "datatype"],
                                              "properties": {**_TENSOR_META["properties"], "parameters": _PARAMETERS,
                                                             "data": {"type": "array"}}}},
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "parameters": _PARAMETERS}}}}},
    "InferenceResponse": {"type": "object", "properties": {
        "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
        "parameters": _PARAMETERS,
        "outputs": {"type": "array", "items": {"type": "object", "properties": {
            **_TENSOR_META["properties"], "parameters": _PARAMETERS, "data": {"type": "array"}}}}}},
    "ModelStatistics": {"type": "object", "properties": {"model_stats": {"type": "array", "items": {
        "type": "object", "properties": {
            "name": {"type": "string"}, "version": {"type": "string"}, "last_inference": {"type": "integer"},
            "inference_count": {"type": "integer"}, "execution_count": {"type": "integer"},
            "inference_stats": {"type": "object", "additionalProperties": _DURATION},
            "batch_stats": {"type": "array", "items": {"type": "object", "properties": {
                "batch_size": {"type": "integer"}, "compute_input": _DURATION, "compute_infer": _DURATION,
                "compute_output": _DURATION}}}}}}}},
    "RepositoryIndex": {"type": "array", "items": {"type": "object", "properties": {
        "name": {"type": "string"}, "version": {"type": "string"},
        "state": {"enum": ["READY", "UNAVAILABLE"]}, "reason": {"type": "string"}}}},
    "RepositoryIndexRequest": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    "RepositoryModelRequest": {"type": "object", "properties": {"parameters": _PARAMETERS}},
}


def _path_parameters(path: str) -> list[dict]:
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in ("name", "version") if "{" + name + "}" in path]


def _query(names: tuple[str, ...]) -> list[dict]:
    kinds = {"model": {"type": "string"}, "span": {"type": "number"}}
    return [{"name": name, "in": "query", "required": name in ("from_seed", "to_seed"),
             "schema": kinds.get(name, {"type": "integer", "minimum": 0})} for name in names]


def document(version: str, rpcs: dict[str, str], png_queries: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """The OpenAPI document. ``rpcs``: genserve.v1's JSON routes (``/v1/<route>``) by
    their RPC's name; ``png_queries``: each PNG route's query parameters."""
    schemas: dict[str, dict] = dict(OIP_SCHEMAS)
    methods = {m.name: m for m in pb.DESCRIPTOR.services_by_name["GenerativeService"].methods}
    paths: dict[str, dict] = {}

    def add(path: str, method: str, operation: dict) -> None:
        operation.setdefault("responses", {})
        operation["responses"].setdefault("400", ERROR)
        if _path_parameters(path):
            operation["parameters"] = _path_parameters(path) + operation.get("parameters", [])
        paths.setdefault(path, {})[method] = operation

    add("/", "get", {"summary": "The playground page", "responses": {
        "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}})
    add("/openapi.json", "get", {"summary": "This document", "responses": {"200": _json({"type": "object"})}})
    add("/v2", "get", {"summary": "Server metadata, with the extensions served",
                       "responses": {"200": _json(_ref("ServerMetadata"))}})
    for path, what in (("/v2/health/live", "Live"), ("/v2/health/ready", "Ready")):
        add(path, "get", {"summary": f"Server {what.lower()}ness", "responses": {
            "200": _json(_ref(what)), "503": _json(_ref(what), "not " + what.lower())}})
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        add(prefix, "get", {"summary": "Model metadata", "responses": {
            "200": _json(_ref("ModelMetadata")), "404": ERROR}})
        add(prefix + "/ready", "get", {"summary": "Model readiness", "responses": {
            "200": _json(_ref("Ready")), "503": _json(_ref("Ready"), "not ready")}})
        add(prefix + "/infer", "post", {
            "summary": "Inference (JSON tensors, or Triton's binary tensor data extension)",
            "requestBody": {"required": True, "content": {
                JSON: {"schema": _ref("InferenceRequest")},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
            "responses": {"200": {"description": "OK", "content": {
                JSON: {"schema": _ref("InferenceResponse")},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}, "404": ERROR}})
    for path in ("/v2/models/stats", "/v2/models/{name}/stats", "/v2/models/{name}/versions/{version}/stats"):
        add(path, "get", {"summary": "Statistics per model version (the statistics extension)",
                          "responses": {"200": _json(_ref("ModelStatistics")), "404": ERROR}})
    add("/v2/repository/index", "post", {
        "summary": "The repository's models and their states (the model-repository extension)",
        "requestBody": {"content": {JSON: {"schema": _ref("RepositoryIndexRequest")}}},
        "responses": {"200": _json(_ref("RepositoryIndex"))}})
    for action, what in (("load", "Load a model; answers once it serves"),
                         ("unload", "Unload a model; running calls finish")):
        add(f"/v2/repository/models/{{name}}/{action}", "post", {
            "summary": what + " (--model-control explicit)",
            "requestBody": {"content": {JSON: {"schema": _ref("RepositoryModelRequest")}}},
            "responses": {"200": {"description": "OK"}, "404": ERROR}})
    for route, rpc in rpcs.items():
        method = methods[rpc]
        add(f"/v1/{route}", "post", {
            "summary": f"genserve.v1 {rpc}",
            "requestBody": {"required": True, "content": {
                JSON: {"schema": _ref(_message(method.input_type, schemas))}}},
            "responses": {"200": _json(_ref(_message(method.output_type, schemas)))}})
    stream = methods["SampleStream"]
    add("/v1/sample_stream", "post", {
        "summary": "genserve.v1 SampleStream as NDJSON: one SampleChunk a line",
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref(_message(stream.input_type, schemas))}}},
        "responses": {"200": {"description": "one genserve.v1.SampleChunk in protobuf's JSON mapping a line; an "
                                             "error once lines flow is a last line {\"error\", \"code\"}",
                              "content": {"application/x-ndjson": {
                                  "schema": _ref(_message(stream.output_type, schemas))}}}}})
    png = {"description": "a PNG grid of 28x28 digits; ETag and Cache-Control immutable when version-pinned",
           "headers": {"ETag": {"schema": {"type": "string"}}, "Cache-Control": {"schema": {"type": "string"}}},
           "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}
    for path, names in png_queries.items():
        if path == "/v1/denoise.png":
            add(path, "post", {"summary": "Denoise a PNG grid of digits", "parameters": _query(names),
                               "requestBody": {"required": True, "content": {
                                   "image/png": {"schema": {"type": "string", "format": "binary"}}}},
                               "responses": {"200": png, "413": ERROR}})
        else:
            add(path, "get", {"summary": f"{path.removeprefix('/v1/')}: digits as a PNG grid",
                              "parameters": _query(names),
                              "responses": {"200": png, "304": {"description": "If-None-Match held it"},
                                            "413": ERROR}})
    return {"openapi": "3.1.0",
            "info": {"title": "genserve", "version": version,
                     "description": "Generative models of handwritten digits: the Open Inference Protocol's REST "
                                    "API and genserve.v1 over HTTP. Errors are {\"error\": \"...\"} with the HTTP "
                                    "status of their gRPC code."},
            "paths": paths, "components": {"schemas": schemas}}
