"""Sustained mixed load: every RPC of both APIs (Encode, Decode, Sample gan and vae,
Denoise, ListModels, and the Open Inference Protocol's ModelInfer and ModelMetadata),
sizes 1 to 256 (log-uniform), at concurrency 64, for a fixed number of requests.
Prints errors, latency percentiles and server RSS per window, so drift shows.

    python -m bench.soak --requests 200000
"""

from __future__ import annotations

import asyncio
import math
import sys
import time

import grpc
import numpy as np

from client import AsyncGenerativeClient, GenserveError
from genserve.oip import inference_pb2 as oip
from genserve.oip import inference_pb2_grpc as oip_grpc

from .load import drive, load_parser
from .processes import start_server

OPERATIONS = ("Sample gan", "Sample vae", "Decode", "Encode", "Denoise", "ListModels", "OIP ModelInfer dae",
              "OIP ModelInfer gan", "OIP ModelMetadata")
MAX_N = 256


def size(rng: np.random.Generator) -> int:
    return int(min(MAX_N, math.floor(math.exp(rng.uniform(0, math.log(MAX_N + 1))))))


class Traffic:
    """One mixed request per index, the same for the same index."""

    def __init__(self, client: AsyncGenerativeClient, channel: grpc.aio.Channel):
        self.client = client
        self.oip = oip_grpc.GRPCInferenceServiceStub(channel)
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, (MAX_N, 28, 28), dtype=np.uint8)
        self.latents = rng.standard_normal((MAX_N, 2), dtype=np.float32)
        self.noise = rng.standard_normal((MAX_N, 100), dtype=np.float32)
        self.errors: dict[str, int] = {}

    async def __call__(self, index: int) -> None:
        rng = np.random.default_rng(index)
        operation = OPERATIONS[int(rng.integers(len(OPERATIONS)))]
        n = size(rng)
        try:
            await self._run(operation, n, index)
        except (GenserveError, grpc.RpcError) as exc:
            code = exc.code.name if isinstance(exc, GenserveError) else exc.code().name
            self.errors[f"{operation}: {code}"] = self.errors.get(f"{operation}: {code}", 0) + 1
            raise

    async def _run(self, operation: str, n: int, seed: int) -> None:
        c = self.client
        if operation == "Sample gan":
            await c.sample_digits(n=n, model="gan", seed=seed)
        elif operation == "Sample vae":
            await c.sample_digits(n=n, model="vae", seed=seed)
        elif operation == "Decode":
            await c.decode(self.latents[:n])
        elif operation == "Encode":
            await c.encode(self.images[:n], seed=seed)
        elif operation == "Denoise":
            await c.denoise(self.images[:n])
        elif operation == "ListModels":
            await c.list_models()
        elif operation == "OIP ModelMetadata":
            await self.oip.ModelMetadata(oip.ModelMetadataRequest(name="vae_decoder"), timeout=60)
        else:
            name, input_name, rows = (("dae", "noisy", self.images[:n, None].astype(np.float32) / 255)
                                      if operation.endswith("dae") else ("gan_generator", "noise", self.noise[:n]))
            request = oip.ModelInferRequest(model_name=name, raw_input_contents=[rows.tobytes()])
            request.inputs.add(name=input_name, datatype="FP32", shape=rows.shape)
            await self.oip.ModelInfer(request, timeout=60)


async def soak(target: str, total: int, concurrency: int, windows: int, rss) -> tuple[list[dict], dict]:
    options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    rows = []
    async with AsyncGenerativeClient(target, retries=0, timeout=60) as client, \
            grpc.aio.insecure_channel(target, options) as channel:
        traffic = Traffic(client, channel)
        started, done = time.perf_counter(), 0
        marks = sorted({round(total * k / windows) for k in range(1, windows + 1)})
        for mark in marks:
            offset = done
            result = await drive(lambda i: traffic(offset + i), mark - done, concurrency)
            done = mark
            rows.append({"requests": done, "seconds": time.perf_counter() - started, "rps": result.rps,
                         "p50": result.percentile(50), "p90": result.percentile(90),
                         "p99": result.percentile(99), "errors": result.errors, "rss": rss()})
            r = rows[-1]
            print(f"| {done:,} | {r['seconds']:.0f} | {r['rps']:.0f} | {r['p50'] * 1e3:.2f} | {r['p90'] * 1e3:.2f} "
                  f"| {r['p99'] * 1e3:.2f} | {r['errors']} | {r['rss'] / 2**20:.1f} |", flush=True)
    return rows, traffic.errors


def main(argv: list[str] | None = None) -> int:
    parser = load_parser("python -m bench.soak", __doc__, requests=200_000)
    parser.add_argument("--windows", type=int, default=10, help="report rows (default: 10)")
    args = parser.parse_args(argv)
    if args.requests < args.windows or args.windows < 2:
        parser.error("--requests must be at least --windows, and --windows at least 2")
    server = start_server(args.model_repository)
    try:
        print(f"{args.requests:,} mixed requests ({', '.join(OPERATIONS)}), n = 1..{MAX_N} log-uniform, "
              f"concurrency {args.concurrency}\n")
        print("| requests | s | req/s | p50 ms | p90 ms | p99 ms | errors | server RSS MiB |\n"
              "|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
        rows, errors = asyncio.run(soak(server.target, args.requests, args.concurrency, args.windows,
                                        server.rss_bytes))
    finally:
        server.stop()
    total_errors = sum(r["errors"] for r in rows)
    growth = rows[-1]["rss"] / rows[0]["rss"] - 1
    print(f"\nerrors: {total_errors}" + (f" ({errors})" if errors else ""))
    print(f"RSS at the end is {growth:+.1%} against after the first window "
          f"(target: within 10 %: {'met' if abs(growth) <= 0.10 else 'NOT met'})")
    print(f"server exit status {server.proc.returncode}")
    return 1 if total_errors or server.proc.returncode != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
