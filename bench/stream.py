"""Digits at volume: images/s through SampleStream (gRPC, and NDJSON over HTTP) beside
in-process onnxruntime at the same batch and unary Sample of 1,024 images, and unary
latency while a long stream runs.

    python -m bench.stream              # 3 runs of every cell, then the latency phase (a few minutes)
    python -m bench.stream --quick      # a few chunks each, for CI

Throughput is of images received and decoded into numpy by a caller in this process
(uint8 [N,28,28]); in-process onnxruntime runs the model alone, on every core, with
no noise drawn and no pixels made. Target: the gRPC stream >= 0.9 x in-process for the
GAN at chunk 1,024. The latency phase: one caller makes unary Sample calls (the GAN,
n=1) with the server idle, then while another process reads a 1,000,000-image stream;
target: p99 within 2x of idle.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from genserve.cli import OneLineParser, positive_int

from .processes import ROOT, commit, start_server, stop_and_report

MODELS = {"gan": ("gan_generator", None), "cgan": ("cgan_generator", 3)}
CHUNKS = (256, 1024)


def grpc_stream(target: str, model: str, digit: int | None, chunk: int, n: int) -> float:
    """Images/s of one SampleStream over gRPC, decoded by the client SDK."""
    from client import GenerativeClient

    with GenerativeClient(target) as client:
        started = time.perf_counter()
        count = sum(len(c.images) for c in client.stream_digits(n, model, 1, digit=digit, chunk=chunk))
        return count / (time.perf_counter() - started)


def ndjson_stream(port: int, model: str, digit: int | None, chunk: int, n: int) -> float:
    """Images/s of one SampleStream as NDJSON, each line parsed and its images decoded."""
    body = {"n": n, "model": model, "seed": "1", "chunk": chunk} | ({} if digit is None else {"digit": digit})
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/sample_stream", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    started, count = time.perf_counter(), 0
    with urllib.request.urlopen(request, timeout=600) as response:
        for line in response:
            images = json.loads(line)["images"]
            count += len(np.frombuffer(base64.b64decode(images["data"]), np.uint8).reshape(-1, 28, 28))
    return count / (time.perf_counter() - started)


def unary(target: str, model: str, digit: int | None, n: int, total: int) -> float:
    """Images/s of back-to-back unary Sample calls of ``n`` images."""
    from client import GenerativeClient

    with GenerativeClient(target, timeout=120) as client:
        started, count = time.perf_counter(), 0
        while count < total:
            count += len(client.sample_digits(n, model, seed=count, digit=digit))
        return count / (time.perf_counter() - started)


def in_process(repository: Path, name: str, batch: int, total: int) -> float:
    """Images/s of the model alone in onnxruntime (its default threads: every core)."""
    import onnxruntime as ort

    path = max((repository / name).iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else -1) / "model.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {}
    for node in session.get_inputs():
        shape = (batch, *node.shape[1:])
        feeds[node.name] = (np.zeros(shape, np.int64) if "int64" in node.type
                            else np.random.default_rng(0).standard_normal(shape, dtype=np.float32))
    session.run(None, feeds)
    started, count = time.perf_counter(), 0
    while count < total:
        session.run(None, feeds)
        count += batch
    return count / (time.perf_counter() - started)


def latencies(target: str, calls: int) -> np.ndarray:
    from client import GenerativeClient

    with GenerativeClient(target, timeout=60, retries=0) as client:
        seconds = []
        for i in range(calls):
            started = time.perf_counter()
            client.sample_digits(n=1, seed=i)
            seconds.append(time.perf_counter() - started)
        return np.array(seconds)


def _spread(values: list[float]) -> str:
    return f"{np.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m bench.stream", description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", type=Path, default=ROOT / "models")
    parser.add_argument("--images", type=positive_int, default=200_000, help="images per measurement (default: 200000)")
    parser.add_argument("--runs", type=positive_int, default=3, help="measurements of each cell (default: 3)")
    parser.add_argument("--calls", type=positive_int, default=600, help="unary calls per latency phase (default: 600)")
    parser.add_argument("--drain", nargs=2, metavar=("TARGET", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--latency-only", action="store_true", help="only the unary latency phase")
    parser.add_argument("--quick", action="store_true", help="a few chunks each: checks that it runs")
    args = parser.parse_args(argv)
    if args.drain:  # the latency phase's stream reader, in a process of its own
        target, n = args.drain
        grpc_stream(target, "gan", None, 1024, int(n))
        return 0
    images, runs, calls = (3000, 1, 20) if args.quick else (args.images, args.runs, args.calls)
    server = start_server(str(args.model_repository))
    print(f"at {commit()} on {dt.date.today()}, {images:,} images a measurement, {runs} runs: images/s, median "
          "(min-max)", flush=True)
    try:
        print("| model | chunk | gRPC stream | NDJSON stream | unary Sample n=1,024 | in-process onnxruntime "
              "| gRPC / in-process |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for model, (name, digit) in ({} if args.latency_only else MODELS).items():
            for chunk in CHUNKS:
                cells: dict[str, list[float]] = {"grpc": [], "ndjson": [], "unary": [], "onnx": []}
                for _ in range(runs):  # interleaved, so that the cores' drift falls on every column alike
                    cells["grpc"].append(grpc_stream(server.target, model, digit, chunk, images))
                    cells["ndjson"].append(ndjson_stream(server.http_port, model, digit, chunk, images))
                    cells["unary"].append(unary(server.target, model, digit, 1024, images))
                    cells["onnx"].append(in_process(args.model_repository, name, chunk, images))
                ratios = [g / o for g, o in zip(cells["grpc"], cells["onnx"])]
                target = " (target >= 0.9)" if model == "gan" and chunk == 1024 else ""
                print(f"| {model} | {chunk:,} | {_spread(cells['grpc'])} | {_spread(cells['ndjson'])} | "
                      f"{_spread(cells['unary'])} | {_spread(cells['onnx'])} | {np.median(ratios):.2f} "
                      f"({min(ratios):.2f}-{max(ratios):.2f}){target} |", flush=True)

        latencies(server.target, 50)  # warm
        idle = latencies(server.target, calls)
        reader = subprocess.Popen([sys.executable, "-m", "bench.stream", "--drain", server.target,
                                   str(20_000 if args.quick else 1_000_000)], cwd=ROOT)
        time.sleep(1.0)  # the stream under way
        try:
            during = latencies(server.target, calls)
        finally:
            reader.kill()
            reader.wait()
        ratio = float(np.percentile(during, 99) / np.percentile(idle, 99))
        print(f"\nUnary Sample (GAN, n=1), {calls} calls, one caller: idle p50/p99 {np.median(idle) * 1e3:.2f}/"
              f"{np.percentile(idle, 99) * 1e3:.2f} ms; during a 1,000,000-image stream "
              f"{np.median(during) * 1e3:.2f}/{np.percentile(during, 99) * 1e3:.2f} ms: p99 {ratio:.2f} x idle "
              f"(target <= 2: {'met' if ratio <= 2 else 'NOT met'})")
    finally:
        failed = stop_and_report(server)
    return failed


if __name__ == "__main__":
    sys.exit(main())
