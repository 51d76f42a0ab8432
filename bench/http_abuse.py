"""gRPC's latency while the HTTP door is abused, class by class, and the server's memory
after a storm of aborted uploads: HTTP must not starve gRPC.

    python -m bench.http_abuse              # every class, 600 gRPC calls in each (a few minutes)
    python -m bench.http_abuse --quick      # a few calls each, for CI

One caller makes Sample calls (the GAN, n=1) over gRPC, first with HTTP idle, then
during each kind of hostile HTTP, which runs from threads of this process against the
same server: pictures over the bound, picture bombs, bodies over the limit, malformed
requests, a flood of idle connections past the cap, slowloris connections, and
uploads aborted half-way. Target: gRPC p99 within 2x of idle during each, and RSS after
the abort storm within 10 % of before it. Legitimate heavy HTTP work (the largest
pictures and JSON answers) is measured beside them for comparison: it shares the two
cores, and the GAN's queue, with the gRPC caller by design.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import struct
import sys
import threading
import time
import zlib
from contextlib import ExitStack
from typing import Callable

import numpy as np

from genserve.cli import OneLineParser, positive_int

from .processes import ROOT, commit, start_server, stop_and_report


def png_header(size: int) -> bytes:
    """A tiny PNG whose header claims size x size pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def exchange(port: int, raw: bytes, read: bool = True) -> bytes:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(raw)
            if not read:
                return b""
            data = b""
            while chunk := sock.recv(1 << 16):
                data += chunk
            return data
    except OSError:
        return b""


def http(method: str, path: str, body: bytes = b"", content_type: str = "application/json") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


def over_bound(port: int, stop: threading.Event) -> None:
    while not stop.is_set():
        exchange(port, http("GET", "/v1/sample.png?n=1&columns=4096&scale=16"))  # 1,835,008 x 448 pixels
        exchange(port, http("GET", "/v1/grid.png?size=64&scale=16"))


def largest_pictures(port: int, stop: threading.Event) -> None:
    while not stop.is_set():
        exchange(port, http("GET", "/v1/sample.png?n=1024&scale=4"))  # 3,584 x 3,584: the largest allowed


def over_limit(port: int, stop: threading.Event) -> None:
    while not stop.is_set():
        exchange(port, (b"POST /v2/models/vae_decoder/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Content-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\nhello"))


def malformed(port: int, stop: threading.Event) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    while not stop.is_set():
        exchange(port, http("POST", "/v2/models/vae_decoder/infer", deep))
        exchange(port, http("POST", "/v1/sample", b'{"n": "\xff"}'))
        exchange(port, http("POST", "/v1/sample", b'{"n": 1}', "text/plain"))


def bombs(port: int, stop: threading.Event) -> None:
    bomb = png_header(13_356)
    while not stop.is_set():
        exchange(port, http("POST", "/v1/denoise.png", bomb, "image/png"))


def big_json(port: int, stop: threading.Event) -> None:
    body = json.dumps({"n": 1024, "seed": 1, "imageFormat": "IMAGE_FORMAT_FLOAT32"}).encode()
    while not stop.is_set():
        exchange(port, http("POST", "/v1/sample", body))


def idle_flood(port: int, stop: threading.Event, count: int = 1200) -> None:
    held = []
    with ExitStack() as stack:
        for _ in range(count):
            try:
                held.append(stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5)))
            except OSError:
                break
        stop.wait()


def slowloris(port: int, stop: threading.Event, count: int = 200) -> None:
    with ExitStack() as stack:
        socks = []
        for _ in range(count):
            try:
                sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
                sock.sendall(b"GET /v2 HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                socks.append(sock)
            except OSError:
                break
        while not stop.wait(0.5):
            for sock in list(socks):
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    socks.remove(sock)


def aborted_uploads(port: int, stop: threading.Event, rounds: int = 1 << 30) -> None:
    body = b"[" + b"0.5," * 800_000  # 3.2 MB of a never-finished JSON body
    head = (f"POST /v2/models/vae_decoder/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {2 * len(body)}\r\n\r\n").encode()
    for _ in range(rounds):
        if stop.is_set():
            return
        socks = []
        for _ in range(100):
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                socks.append(sock)
                sock.sendall(head + body)
            except OSError:
                pass
        for sock in socks:
            sock.close()


# Hostile HTTP, each class of the issues found: gRPC must not notice it (target: p99 within 2x of idle).
ABUSES: dict[str, Callable[[int, threading.Event], None]] = {
    "pictures over the bound": over_bound, "picture bombs": bombs, "bodies over the limit": over_limit,
    "malformed requests": malformed, "1,200 idle connections": idle_flood,
    "200 slowloris connections": slowloris, "aborted uploads": aborted_uploads}
# Legitimate heavy HTTP work, for comparison: it shares the cores (and the GAN's queue) with gRPC.
HEAVY: dict[str, Callable[[int, threading.Event], None]] = {
    "largest pictures (n=1,024, scale 4)": largest_pictures, "largest JSON answers (n=1,024 float32)": big_json}


def grpc_latencies(client, calls: int) -> np.ndarray:
    seconds = []
    for i in range(calls):
        started = time.perf_counter()
        client.sample_digits(n=1, seed=i)
        seconds.append(time.perf_counter() - started)
    return np.array(seconds)


def under(client, port: int, abuse: Callable[[int, threading.Event], None], calls: int, threads: int) -> np.ndarray:
    """gRPC latencies while ``abuse`` runs from ``threads`` threads."""
    stop = threading.Event()
    running = [threading.Thread(target=abuse, args=(port, stop), daemon=True) for _ in range(threads)]
    for thread in running:
        thread.start()
    time.sleep(1.0)  # the abuse under way
    try:
        return grpc_latencies(client, calls)
    finally:
        stop.set()
        for thread in running:
            thread.join(60)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m bench.http_abuse", description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", default=str(ROOT / "models"))
    parser.add_argument("--calls", type=positive_int, default=600, help="gRPC calls per phase (default: 600)")
    parser.add_argument("--quick", action="store_true", help="a few calls per phase: checks that it runs")
    args = parser.parse_args(argv)
    calls = 20 if args.quick else args.calls
    from client import GenerativeClient

    server = start_server(args.model_repository)
    print(f"at {commit()} on {dt.date.today()}, {calls} gRPC Sample calls (GAN, n=1) per phase, one caller", flush=True)
    try:
        with GenerativeClient(server.target, timeout=60, retries=0) as client:
            grpc_latencies(client, 50)  # warm
            idle = grpc_latencies(client, calls)
            idle_p99 = float(np.percentile(idle, 99))
            print("| HTTP load | gRPC p50 ms | gRPC p99 ms | p99 / idle p99 (target <= 2) |")
            print("|---|---:|---:|---:|")
            print(f"| none (idle) | {np.median(idle) * 1e3:.2f} | {idle_p99 * 1e3:.2f} | 1.00 |", flush=True)
            for table, abuses in (("hostile", ABUSES), ("heavy", HEAVY)):
                if table == "heavy":
                    print("\nLegitimate heavy HTTP work, which shares the cores and the GAN's queue with gRPC:")
                for name, abuse in abuses.items():
                    during = under(client, server.http_port, abuse, calls, threads=1 if "connections" in name else 2)
                    ratio = float(np.percentile(during, 99)) / idle_p99
                    met = "" if table == "heavy" or ratio <= 2 else " (NOT met)"
                    print(f"| {name} | {np.median(during) * 1e3:.2f} | {np.percentile(during, 99) * 1e3:.2f} | "
                          f"{ratio:.2f}{met} |", flush=True)
            before = server.rss_bytes()
            aborted_uploads(server.http_port, threading.Event(), rounds=2 if args.quick else 10)
            client.sample_digits(n=1)
            after = before
            for _ in range(30):  # the server trims its heap once idle
                time.sleep(1)
                after = server.rss_bytes()
                if after <= 1.1 * before:
                    break
            print(f"\nRSS before the abort storm {before / 2**20:.1f} MiB, after {after / 2**20:.1f} MiB "
                  f"({100 * (after / before - 1):+.1f} %; target within 10 %: "
                  f"{'met' if after <= 1.1 * before else 'NOT met'})")
    finally:
        failed = stop_and_report(server)
    return failed


if __name__ == "__main__":
    sys.exit(main())
