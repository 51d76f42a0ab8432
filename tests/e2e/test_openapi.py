"""The OpenAPI document at /openapi.json: a valid OpenAPI 3.1 document
(openapi-spec-validator), every route the HTTP door registers in it, and every path in
it served by a real server."""

import json
import urllib.error
import urllib.request

from openapi_spec_validator import validate

from server.http import ROUTES, HttpApi
from server.settings import parse


def fetch(server, path, method="GET", body=None):
    request = urllib.request.Request(f"http://127.0.0.1:{server.http_port}{path}", method=method, data=body,
                                     headers={"Content-Type": "application/json"} if body is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_the_document_is_valid_openapi_3_1(server):
    status, body = fetch(server, "/openapi.json")
    document = json.loads(body)
    assert status == 200 and document["openapi"] == "3.1.0"
    validate(document)
    sample = document["components"]["schemas"]["genserve.v1.SampleRequest"]["properties"]
    assert {"n", "model", "seed", "minConfidence", "truncation"} <= set(sample)  # from the descriptors


def test_every_registered_route_is_documented_and_every_documented_path_is_served(server):
    document = json.loads(fetch(server, "/openapi.json")[1])
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    registered = set()
    for route in HttpApi(parse([]), None, None).application().router.routes():
        if route.method == "HEAD":
            continue
        path = route.resource.canonical
        paths = [f"/v1/{name}" for name in ROUTES] if path == "/v1/{rpc}" else [path]
        registered |= {(p, route.method) for p in paths}
    assert registered == documented, (registered - documented, documented - registered)

    for path, method in sorted(documented):
        concrete = path.replace("{name}", "vae_decoder").replace("{version}", "1")
        status, body = fetch(server, concrete, method, b"{}" if method == "POST" else None)
        assert status not in (404, 405) or b"no such route" not in body and b"not a method" not in body, \
            (path, method, status, body[:200])
