"""Throughput and latency of the server against its limits, in one run.

For every RPC (Sample gan, Sample vae, Decode, Encode, Denoise), request size n and
concurrency: requests/s, images/s and latency percentiles through the asyncio client;
beside each, the two limits it is compared with: in-process onnxruntime on the same
model and batch (images/s), and a gRPC echo server moving the same bytes (requests/s).

    python -m bench.throughput                      # the full table (a few minutes)
    python -m bench.throughput --quick              # a few hundred requests, for CI
    git worktree add /tmp/genserve-before <commit>
    python -m bench.throughput --baseline /tmp/genserve-before   # beside that version, in the same slices
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort

from client import AsyncGenerativeClient, _calls
from genserve.codec import to_tensor
from genserve.repository import newest_versions
from genserve.v1 import generative_pb2 as pb
from server.settings import Settings, available_cores

from . import echo
from .load import Result, drive, keep_freed_memory
from .processes import ROOT, ServerProcess, start_echo, start_server

RPCS = {  # name: (model in the repository, shape of one input row)
    "Sample gan": ("gan_generator", (100,)),
    "Sample vae": ("vae_decoder", (2,)),
    "Decode": ("vae_decoder", (2,)),
    "Encode": ("vae_encoder", (1, 28, 28)),
    "Denoise": ("dae", (1, 28, 28)),
}


# Each cell takes its parts (the server, the echo server, the in-process limit) in turn,
# in this many slices, so that this machine's drift from one second to the next hits
# them alike instead of whichever ran in a slow moment.
SLICES = 4


@dataclass
class Cell:
    rpc: str
    n: int
    concurrency: int
    served: Result
    echo: Result
    ort_images_per_s: float
    ort_seconds: float
    unbatched: Result | None = None  # the server with --max-batch-size 1, where measured
    paced_seconds: float | None = None  # the in-process run after idle gaps as long as the callers', where measured
    before: Result | None = None  # the baseline version's server, where one was given


def payloads(rpc: str, n: int, seed: int = 0):
    """(request bytes, response bytes, the call's arguments) for one request."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    z = rng.standard_normal((n, 2), dtype=np.float32)
    uint8_images = pb.ImagesResponse(images=to_tensor(np.zeros((n, 28, 28), np.uint8)),
                                     model=pb.ModelRef(name="gan_generator", version=1), seed=2**62)
    if rpc.startswith("Sample"):
        request = _calls.sample_request(n, rpc.split()[1], 2**62, False)
        return request.ByteSize(), uint8_images.ByteSize(), None
    if rpc == "Decode":
        return _calls.decode_request(z, False).ByteSize(), uint8_images.ByteSize(), z
    if rpc == "Denoise":
        return _calls.denoise_request(images, False).ByteSize(), uint8_images.ByteSize(), images
    latents = to_tensor(np.zeros((n, 2), np.float32))
    response = pb.EncodeResponse(z_mean=latents, z_log_var=latents, z=latents,
                                 model=pb.ModelRef(name="vae_encoder", version=1))
    return _calls.encode_request(images, 2**62).ByteSize(), response.ByteSize(), images


class InProcess:
    """Runs of onnxruntime at batch n, one at a time on ``threads`` intra-op threads, with
    the server's other session options, warmed up."""

    def __init__(self, repository: str, model: str, row_shape: tuple[int, ...], n: int, threads: int):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = newest_versions(Path(repository))[model].path  # the version the server serves
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.feed = {self.session.get_inputs()[0].name:
                     np.random.default_rng(0).random((n, *row_shape), dtype=np.float32)}
        for _ in range(3):
            self.session.run(None, self.feed)

    def mean_seconds(self, runs: int) -> float:
        # A mean over as many runs as the served cell has requests, taken just before it:
        # the served figure is a mean over seconds too, and this machine's speed drifts.
        started = time.perf_counter()
        for _ in range(runs):
            self.session.run(None, self.feed)
        return (time.perf_counter() - started) / runs

    def paced_seconds(self, runs: int, gap: float) -> float:
        """The median run when each follows ``gap`` seconds of idling, as a lone caller's
        runs do in the server: on this machine a core that idled runs slower than one in
        a loop of runs."""
        seconds = []
        for _ in range(runs):
            time.sleep(gap)
            started = time.perf_counter()
            self.session.run(None, self.feed)
            seconds.append(time.perf_counter() - started)
        return float(np.median(seconds))


def server_call(client: AsyncGenerativeClient, rpc: str, n: int, arg):
    """The call the load generator makes: request i of ``rpc`` at size n through the client."""
    if rpc.startswith("Sample"):
        sampler = rpc.split()[1]
        return lambda i: client.sample_digits(n=n, model=sampler, seed=i)
    if rpc == "Decode":
        return lambda i: client.decode(arg)
    if rpc == "Encode":
        return lambda i: client.encode(arg, seed=i)
    return lambda i: client.denoise(arg)


async def measure_cell(targets: list[str], echo_target: str, rpc: str, n: int, arg, payload: bytes,
                       limit: InProcess, requests: int, concurrency: int) -> tuple[list[Result], Result, float]:
    """``requests`` requests to each server in ``targets`` and to the echo server, and as
    many in-process runs, taken in turn in slices (SLICES). Returns the servers' results,
    the echo server's, and the in-process mean seconds per run."""
    options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    async with contextlib.AsyncExitStack() as stack:
        calls = []
        for target in targets:
            client = await stack.enter_async_context(AsyncGenerativeClient(target, retries=0, timeout=120))
            calls.append(server_call(client, rpc, n, arg))
        channel = await stack.enter_async_context(grpc.aio.insecure_channel(echo_target, options))
        method = channel.unary_unary(echo.METHOD)
        calls.append(lambda i: method(payload, timeout=120))
        for call in calls:
            await drive(call, max(concurrency, requests // 10), concurrency)  # warm-up
        slices = max(1, min(SLICES, requests // max(2 * concurrency, 32)))
        results: list[list[Result]] = [[] for _ in calls]
        ort_seconds = 0.0
        for s in range(slices):
            count = requests // slices + (s < requests % slices)
            parts = list(range(len(calls) + 1))  # the last one: in process
            for part in parts[s % len(parts):] + parts[:s % len(parts)]:
                if part == len(calls):
                    ort_seconds += limit.mean_seconds(count) * count
                else:
                    results[part].append(await drive(calls[part], count, concurrency))
    merged = [Result.combine(r) for r in results]
    return merged[:-1], merged[-1], ort_seconds / requests


def requests_for(n: int, base: int, concurrency: int) -> int:
    # A slice of a closed loop ends with its callers draining one by one; slices must be
    # long enough for that tail not to count, so large requests get at least 500.
    return max(2 * concurrency, base * 64 // max(n, 64))


def row(cell: Cell) -> str:
    s, e = cell.served, cell.echo
    images = s.rps * cell.n
    return (f"| {cell.rpc} | {cell.n} | {cell.concurrency} | {s.rps:,.0f} | {images:,.0f} | "
            f"{s.percentile(50) * 1e3:.2f} | {s.percentile(90) * 1e3:.2f} | {s.percentile(99) * 1e3:.2f} | "
            f"{e.rps:,.0f} | {s.rps / e.rps:.2f} | {cell.ort_images_per_s:,.0f} | "
            f"{images / cell.ort_images_per_s:.2f} |"
            + (f" {cell.before.rps:,.0f} | {s.rps / cell.before.rps:.2f} | {cell.before.percentile(50) * 1e3:.2f} |"
               if cell.before else ""))


HEADER = ("| RPC | n | concurrency | requests/s | images/s | p50 ms | p90 ms | p99 ms | echo requests/s | "
          "x echo | onnxruntime images/s | x onnxruntime |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
BEFORE_HEADER = " before requests/s | x before | before p50 ms |"  # columns added with --baseline


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {available_cores()} cores, Python {platform.python_version()}, "
            f"onnxruntime {ort.__version__}, grpcio {grpc.__version__}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", default=str(ROOT / "models"))
    parser.add_argument("--requests", type=int, default=2000,
                        help="requests per cell at n <= 64; fewer for larger n (default: 2000)")
    parser.add_argument("--n", type=int, nargs="+", default=[1, 16, 256])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--rpcs", nargs="+", default=list(RPCS), choices=list(RPCS), metavar="RPC")
    parser.add_argument("--quick", action="store_true", help="a few hundred requests in all: checks that it runs")
    parser.add_argument("--server-args", default="", help="extra flags for python -m server")
    parser.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                        help="also a server from this checkout of genserve (an earlier version), in the same slices")
    parser.add_argument("--limit-threads", type=int, default=available_cores(),
                        help="onnxruntime intra-op threads of the in-process limit, which makes one run at a "
                             "time (default: every core)")
    args = parser.parse_args(argv)
    if args.baseline and not (args.baseline / "server" / "__main__.py").is_file():
        parser.error(f"--baseline: {args.baseline} is not a checkout of genserve (no server/__main__.py)")
    if args.quick:
        args.requests, args.n, args.concurrency, args.rpcs = 40, [1, 16], [1, 8], ["Sample gan", "Denoise"]

    print(f"machine: {machine()}", flush=True)
    # The load generator shares the cores with the server it measures: the less CPU it
    # spends per answer, the more of the server this measures (see keep_freed_memory).
    kept = keep_freed_memory()
    print(f"load generator: {'malloc keeps freed memory' if kept else 'default malloc'}", flush=True)
    server_args = args.server_args.split()
    defaults = Settings()
    print(f"server: {' '.join(server_args) or 'default settings'} (by default {defaults.model_instances} "
          f"instances of {defaults.threads_per_run} onnxruntime thread per model); in-process limit: one run at "
          f"a time on {args.limit_threads} onnxruntime threads", flush=True)
    servers = [start_server(args.model_repository, *server_args)]
    # Batching's gain: against the same server with batching switched off, in the same slices.
    if not args.quick and "Sample gan" in args.rpcs and 1 in args.n and 64 in args.concurrency:
        servers.append(start_server(args.model_repository, "--max-batch-size", "1", *server_args))
    baseline = (ServerProcess(args.model_repository, *server_args, cwd=args.baseline).wait_ready_logged(120)
                if args.baseline else None)
    echo_server = start_echo()
    cells: list[Cell] = []
    try:
        title, rule = HEADER.split("\n")
        print(f"{title}{BEFORE_HEADER}\n{rule}---:|---:|---:|" if baseline else HEADER, flush=True)
        for rpc in args.rpcs:
            model, row_shape = RPCS[rpc]
            for n in args.n:
                limit = InProcess(args.model_repository, model, row_shape, n, threads=args.limit_threads)
                request_bytes, response_bytes, arg = payloads(rpc, n)
                payload = echo.request_of(request_bytes, response_bytes)
                for concurrency in args.concurrency:
                    count = requests_for(n, args.requests, concurrency)
                    with_unbatched = len(servers) > 1 and (rpc, n, concurrency) == ("Sample gan", 1, 64)
                    targets = [s.target for s in servers[:2 if with_unbatched else 1]]
                    targets += [baseline.target] if baseline else []
                    served, echoed, ort_seconds = asyncio.run(measure_cell(
                        targets, echo_server.target, rpc, n, arg, payload, limit, count, concurrency))
                    if any(r.errors for r in served) or echoed.errors:
                        print(f"{rpc} n={n} c={concurrency}: {[r.errors for r in served]} errors, "
                              f"echo {echoed.errors}", file=sys.stderr)
                    cell = Cell(rpc, n, concurrency, served[0], echoed, n / ort_seconds, ort_seconds,
                                unbatched=served[1] if with_unbatched else None,
                                before=served[-1] if baseline else None)
                    if (rpc, n, concurrency) == ("Sample gan", 1, 1):  # the latency target's cell
                        gap = max(0.0, 1 / served[0].rps - ort_seconds)
                        cell.paced_seconds = limit.paced_seconds(min(count, 1000), gap)
                    cells.append(cell)
                    print(row(cell), flush=True)
        print_targets(cells)
    finally:
        for server in servers + ([baseline] if baseline else []):
            server.stop()
        echo_server.stop()
    errors = sum(c.served.errors + c.echo.errors + (c.unbatched.errors if c.unbatched else 0) for c in cells)
    print(f"\n{sum(c.served.requests for c in cells):,} requests to genserve, {errors} errors")
    return 1 if errors else 0


def print_targets(cells: list[Cell]) -> None:
    def find(rpc, n, c):
        return next((x for x in cells if (x.rpc, x.n, x.concurrency) == (rpc, n, c)), None)

    print("\nTargets (ratios from this run):")
    for rpc in ("Sample gan", "Sample vae"):
        for c in (1, 8, 64):
            cell = find(rpc, 256, c)
            if cell:
                ratio = cell.served.rps * 256 / cell.ort_images_per_s
                # One caller waits out the transport as well as the run: a server that added
                # nothing to the echo server's round trip and the in-process run gets this far.
                most = (f"; a lone caller's most, the in-process run plus the echo round trip: "
                        f"{cell.ort_seconds / (cell.ort_seconds + 1 / cell.echo.rps):.2f}" if c == 1 else "")
                print(f"- {rpc} n=256 c={c}: images/s = {ratio:.2f} x in-process onnxruntime at batch 256 "
                      f"(target >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'}{most})")
    cell = find("Sample gan", 1, 64)
    if cell:
        ratio = cell.served.rps / cell.echo.rps
        print(f"- Sample gan n=1 c=64: requests/s = {ratio:.2f} x echo at c=64 "
              f"(target >= 0.7: {'met' if ratio >= 0.7 else 'NOT met'})")
        unbatched = cell.unbatched
        if unbatched:
            gain = cell.served.rps / unbatched.rps
            print(f"- Sample gan n=1 c=64: {gain:.2f} x the same server with --max-batch-size 1 "
                  f"({cell.served.rps:,.0f} vs {unbatched.rps:,.0f} requests/s; batch-1 model time "
                  f"{1e3 / find('Sample gan', 1, 64).ort_images_per_s:.3f} ms, so the model "
                  f"{'is' if 1 / cell.ort_images_per_s > 1 / cell.echo.rps else 'is not'} what limits the "
                  "unbatched server)")
    cell = find("Sample gan", 1, 1)
    if cell:
        bound = cell.echo.percentile(50) + cell.ort_seconds + 0.3e-3
        p50 = cell.served.percentile(50)
        print(f"- Sample gan n=1 c=1: p50 {p50 * 1e3:.3f} ms vs echo p50 {cell.echo.percentile(50) * 1e3:.3f} ms "
              f"+ model {cell.ort_seconds * 1e3:.3f} ms + 0.3 ms = {bound * 1e3:.3f} ms "
              f"({'met' if p50 <= bound else 'NOT met'}; the model's run alone, after idle gaps as long as "
              f"the caller's: {cell.paced_seconds * 1e3:.3f} ms)")


if __name__ == "__main__":
    sys.exit(main())
