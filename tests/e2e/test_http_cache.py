"""Cacheable PNG answers: a version-pinned GET whose answer cannot change gets a strong
ETag and Cache-Control immutable, and If-None-Match a 304 before any model runs; any
other answer says no-store."""

import urllib.error
import urllib.request

IMMUTABLE = "public, max-age=31536000, immutable"


def get(server, path, etag=None):
    headers = {"If-None-Match": etag} if etag else {}
    request = urllib.request.Request(f"http://127.0.0.1:{server.http_port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def rows_run(server, model):
    return server.metric("genserve_batch_size_sum", model=model)


def answers(server, rpc, model):
    return server.metric("genserve_requests_total", rpc=rpc, code="OK", protocol="http", model=model)


def test_a_pinned_seeded_picture_is_cached_for_good_and_revalidated_without_a_run(server):
    for path, rpc, model in (("/v1/sample.png?n=4&seed=3&version=1", "Sample", "gan_generator"),
                             ("/v1/sample.png?n=4&seed=3&version=1&digit=2", "Sample", "cgan_generator"),
                             ("/v1/grid.png?size=3&version=1", "LatentGrid", "vae_decoder"),
                             ("/v1/interpolate.png?from_seed=1&to_seed=2&steps=3&version=1", "Interpolate",
                              "vae_decoder")):
        status, headers, body = get(server, path)
        etag = headers["ETag"]
        assert status == 200 and body.startswith(b"\x89PNG") and headers["Cache-Control"] == IMMUTABLE
        assert etag.startswith('"') and not etag.startswith("W/"), etag
        again = get(server, path)
        assert again[1]["ETag"] == etag and again[2] == body  # the same bytes: a strong tag
        before, answered = rows_run(server, model), answers(server, rpc, model)
        status, headers, body = get(server, path, etag)
        assert status == 304 and body == b"" and headers["ETag"] == etag, path
        assert rows_run(server, model) == before  # answered without running the model
        assert answers(server, rpc, model) == answered + 1  # and counted as that model's answer
        assert get(server, path, '"another"')[0] == 200


def test_answers_that_can_change_say_no_store(server):
    sampled = {get(server, path)[1]["ETag"] for path in ("/v1/sample.png?n=4&seed=3&version=1",
                                                          "/v1/sample.png?n=5&seed=3&version=1")}
    assert len(sampled) == 2  # another query, another tag
    for path in ("/v1/sample.png?n=4", "/v1/sample.png?n=4&seed=3", "/v1/sample.png?n=4&version=1",
                 "/v1/grid.png?size=3"):
        status, headers, _ = get(server, path)
        assert status == 200 and headers["Cache-Control"] == "no-store" and "ETag" not in headers, path
    status, headers, _ = get(server, "/v1/sample.png?n=4&seed=3&version=9")
    assert status == 404 and "version" in _.decode()
