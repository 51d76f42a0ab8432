"""The Open Inference Protocol over HTTP beside gRPC: Triton's own clients
(``tritonclient.http.aio`` and ``tritonclient.grpc.aio``) against one server, on the
same model, batch and number of callers, side by side.

    python -m bench.http                  # the table, three runs (a few minutes)
    python -m bench.http --quick          # a few hundred requests, for CI

Each cell runs the two protocols in alternating slices, so that this machine's drift
hits them alike; the HTTP/gRPC ratio of each run is reported with its spread.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import numpy as np

from .load import Result, drive, keep_freed_memory, load_parser
from .processes import commit, start_server

MODELS = {"vae_decoder": ("z", 2), "gan_generator": ("noise", 100)}
SLICES = 4


async def measure(http_target: str, grpc_target: str, model: str, batch: int, callers: int,
                  requests: int) -> tuple[Result, Result]:
    """(HTTP, gRPC) results of ``requests`` ModelInfer calls each."""
    import tritonclient.grpc.aio as triton_grpc
    import tritonclient.http.aio as triton_http

    name, width = MODELS[model]
    rows = np.random.default_rng(0).standard_normal((batch, width), dtype=np.float32)

    def inputs(module):
        tensor = module.InferInput(name, [batch, width], "FP32")
        tensor.set_data_from_numpy(rows)
        return [tensor]

    http = triton_http.InferenceServerClient(http_target, conn_limit=callers)
    grpc = triton_grpc.InferenceServerClient(grpc_target)
    http_inputs, grpc_inputs = inputs(triton_http), inputs(triton_grpc)
    parts: dict[str, list[Result]] = {"http": [], "grpc": []}
    try:
        await http.infer(model, http_inputs)  # connections up before the clock runs
        await grpc.infer(model, grpc_inputs)
        per_slice = max(1, requests // SLICES)
        for _ in range(SLICES):
            parts["http"].append(await drive(lambda i: http.infer(model, http_inputs), per_slice, callers))
            parts["grpc"].append(await drive(lambda i: grpc.infer(model, grpc_inputs), per_slice, callers))
    finally:
        await http.close()
        await grpc.close()
    return Result.combine(parts["http"]), Result.combine(parts["grpc"])


def main(argv: list[str] | None = None) -> int:
    parser = load_parser("python -m bench.http", __doc__, requests=2000)
    parser.add_argument("--runs", type=int, default=3, help="runs of the whole table (default: 3)")
    parser.add_argument("--quick", action="store_true", help="a few hundred requests in all: checks that it runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.runs = 40, 1
    keep_freed_memory()
    cells = [(model, batch, callers) for model in MODELS for batch in (1, 64) for callers in (1, 16)]
    server = start_server(args.model_repository)
    ratios: dict[tuple, list[float]] = {cell: [] for cell in cells}
    last: dict[tuple, tuple[Result, Result]] = {}
    try:
        for _ in range(args.runs):
            for cell in cells:
                requests = args.requests if cell[1] == 1 else max(args.requests // 4, 8)
                http, grpc = asyncio.run(measure(f"127.0.0.1:{server.http_port}", server.target, *cell, requests))
                if http.errors or grpc.errors:
                    raise SystemExit(f"{cell}: {http.errors} HTTP and {grpc.errors} gRPC errors")
                ratios[cell].append(http.rps / grpc.rps)
                last[cell] = http, grpc
    finally:
        status = server.stop()
    print(f"{dt.date.today()}, commit {commit()}, {args.runs} run(s); "
          f"latencies of the last run; server exit status {status}\n")
    print("| model | batch | callers | gRPC req/s | HTTP req/s | HTTP / gRPC (runs: min-max) "
          "| gRPC p50 / p99 ms | HTTP p50 / p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for cell in cells:
        http, grpc = last[cell]
        spread = ratios[cell]
        print(f"| {cell[0]} | {cell[1]} | {cell[2]} | {grpc.rps:,.0f} | {http.rps:,.0f} "
              f"| {np.median(spread):.2f} ({min(spread):.2f}-{max(spread):.2f}) "
              f"| {grpc.percentile(50) * 1e3:.2f} / {grpc.percentile(99) * 1e3:.2f} "
              f"| {http.percentile(50) * 1e3:.2f} / {http.percentile(99) * 1e3:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
