"""The Open Inference Protocol's ModelInfer over gRPC, as a Triton user calls it
(``tritonclient.grpc.aio``), at batch 1: one caller's latency against its limits (a
gRPC echo server moving the same bytes, and the in-process onnxruntime run), and 16
callers' requests/s against a server that answers ModelInfer without running anything
(the protocol's ceiling here) and, optionally, a checkout of an earlier version. The
lone caller has a server of its own, as it would: the crowd leaves gathering behind it.

    python -m bench.oip                                  # three runs (a few minutes)
    git worktree add /tmp/genserve-before <commit>
    python -m bench.oip --baseline /tmp/genserve-before  # the same, beside that version
    python -m bench.oip --quick                          # a few hundred requests, for CI

Each run takes its parts (genserve, the echo server, the in-process runs, the
baseline) in turn, in slices, so that this machine's drift hits them alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from genserve.cli import OneLineParser, positive_int

from . import echo
from .load import Result, drive, keep_freed_memory
from .processes import ROOT, ServerProcess, commit, start_echo
from .throughput import InProcess, machine

MODELS = {"vae_decoder": ("z", (2,), "image", (1, 28, 28)),
          "gan_generator": ("noise", (100,), "image", (1, 28, 28))}
SLICES = 4
MANY = 16  # callers of the throughput comparison
SLACK = 0.3e-3  # seconds a lone call may spend in the server beyond the echo round trip and the run
# A lone caller's runs each follow about this long idle (its round trip): on this machine a
# core that idled runs a model slower than one in a loop of runs.
LONE_GAP = 1e-3


@dataclass
class Run:
    model: str
    lone: Result  # one caller, batch 1
    echo: Result  # the echo server, one caller, the same bytes
    canned: Result  # one caller, ModelInfer answered without a model (same client)
    bare: Result  # one caller, the echo server running the model inline
    run_seconds: float  # the in-process run at batch 1, back to back, mean
    paced_seconds: float  # the same, each run after LONE_GAP idle, median
    many: Result  # MANY callers
    ceiling: Result  # MANY callers, ModelInfer answered without a model
    before: Result | None  # MANY callers against the baseline, where there is one

    @property
    def bound(self) -> float:
        """The p50 target: the echo round trip, the run at a lone caller's pace, the slack."""
        return self.echo.percentile(50) + self.paced_seconds + SLACK

    @property
    def bound_back_to_back(self) -> float:
        return self.echo.percentile(50) + self.run_seconds + SLACK


def sizes(model: str) -> tuple[int, int]:
    """The bytes of a batch-1 ModelInfer request and of its answer, as Triton's client sends them."""
    from tritonclient.grpc import service_pb2 as pb

    name, item, output, out_item = MODELS[model]
    request = pb.ModelInferRequest(model_name=model, raw_input_contents=[bytes(4 * int(np.prod(item)))])
    request.inputs.add(name=name, datatype="FP32", shape=[1, *item])
    answer = pb.ModelInferResponse(model_name=model, model_version="1",
                                   raw_output_contents=[bytes(4 * int(np.prod(out_item)))])
    answer.outputs.add(name=output, datatype="FP32", shape=[1, *out_item])
    return request.ByteSize(), answer.ByteSize()


@dataclass
class Targets:
    lone: str  # genserve, for the one-caller parts: a lone caller has the server to itself
    many: str  # genserve, for the MANY callers
    echo: str  # the echo server: raw echo, and ModelInfer answered without a model
    bare: str  # the echo server running the models inline
    before: str | None  # the baseline version, for the MANY callers


async def measure(model: str, targets: Targets, limit: InProcess, requests: int) -> Run:
    import tritonclient.grpc.aio as triton

    name, item, _, _ = MODELS[model]
    tensor = triton.InferInput(name, [1, *item], "FP32")
    tensor.set_data_from_numpy(np.random.default_rng(0).standard_normal((1, *item), dtype=np.float32))
    payload = echo.request_of(*sizes(model))
    async with contextlib.AsyncExitStack() as stack:
        def client(target: str):
            made = triton.InferenceServerClient(target)
            stack.push_async_callback(made.close)
            return made

        lone, many, canned, bare = (client(t) for t in (targets.lone, targets.many, targets.echo, targets.bare))
        channel = await stack.enter_async_context(grpc.aio.insecure_channel(targets.echo))
        method = channel.unary_unary(echo.METHOD)
        calls = {"lone": lambda i: lone.infer(model, [tensor]), "echo": lambda i: method(payload, timeout=60),
                 "canned": lambda i: canned.infer(model, [tensor]), "bare": lambda i: bare.infer(model, [tensor])}
        crowds = {"many": lambda i: many.infer(model, [tensor]), "ceiling": calls["canned"]}
        if targets.before:
            before = client(targets.before)
            crowds["before"] = lambda i: before.infer(model, [tensor])
        # Connections up and everything warm before the clock runs.
        for call in calls.values():
            await drive(call, 200, 1)
        for call in crowds.values():
            await drive(call, 200, MANY)
        parts: dict[str, list[Result]] = {key: [] for key in (*calls, *crowds)}
        run_seconds = paced_seconds = 0.0
        per_slice = max(1, requests // SLICES)
        for s in range(SLICES):
            # The one-caller parts and the in-process runs, in turns that rotate per slice.
            order = ["lone", "echo", "canned", "bare", "run", "paced"]
            for part in order[s % len(order):] + order[:s % len(order)]:
                if part == "run":
                    run_seconds += limit.mean_seconds(per_slice) / SLICES
                elif part == "paced":
                    paced_seconds += limit.paced_seconds(per_slice, LONE_GAP) / SLICES
                else:
                    parts[part].append(await drive(calls[part], per_slice, 1))
            keys = list(crowds) if s % 2 == 0 else list(reversed(crowds))
            for key in keys:
                parts[key].append(await drive(crowds[key], per_slice * 2, MANY))
    results = {key: Result.combine(value) for key, value in parts.items()}
    return Run(model, results["lone"], results["echo"], results["canned"], results["bare"], run_seconds,
               paced_seconds, results["many"], results["ceiling"], results.get("before"))


def spread(values: list[float], digits: int = 2) -> str:
    return f"{np.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m bench.oip", description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", default=str(ROOT / "models"))
    parser.add_argument("--requests", type=positive_int, default=1500, help="per part and run (default: 1500)")
    parser.add_argument("--runs", type=positive_int, default=3)
    parser.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                        help="a checkout of another genserve version, served beside this one for the 16 callers")
    parser.add_argument("--server-args", default="", help="extra flags for python -m server, both versions")
    parser.add_argument("--quick", action="store_true", help="a few hundred requests in all: checks that it runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.runs = 40, 1
    if args.baseline and not (args.baseline / "server" / "__main__.py").is_file():
        parser.error(f"--baseline: {args.baseline} is not a checkout of genserve (no server/__main__.py)")

    print(f"machine: {machine()}", flush=True)
    kept = keep_freed_memory()
    print(f"load generator: tritonclient.grpc.aio, {'malloc keeps freed memory' if kept else 'default malloc'}",
          flush=True)
    server_args = args.server_args.split()
    lone, many = (ServerProcess(args.model_repository, *server_args).wait_ready_logged(120) for _ in range(2))
    servers = [lone, many]
    if args.baseline:
        servers.append(ServerProcess(args.model_repository, *server_args, cwd=args.baseline).wait_ready_logged(120))
    echoes = [start_echo(), start_echo("--model-repository", args.model_repository)]
    targets = Targets(lone.target, many.target, echoes[0].target, echoes[1].target,
                      servers[2].target if args.baseline else None)
    runs: dict[str, list[Run]] = {model: [] for model in MODELS}
    try:
        limits = {model: InProcess(args.model_repository, model, MODELS[model][1], 1, threads=1) for model in MODELS}
        for number in range(args.runs):
            for model in MODELS:
                run = asyncio.run(measure(model, targets, limits[model], args.requests))
                runs[model].append(run)
                print(f"run {number + 1} {model}: p50 {run.lone.percentile(50) * 1e3:.3f} ms, "
                      f"p99 {run.lone.percentile(99) * 1e3:.3f} ms, echo p50 {run.echo.percentile(50) * 1e3:.3f} ms, "
                      f"bare p50 {run.bare.percentile(50) * 1e3:.3f} ms, run {run.run_seconds * 1e3:.3f} ms "
                      f"(paced {run.paced_seconds * 1e3:.3f}); {MANY} callers {run.many.rps:,.0f}/s, "
                      f"ceiling {run.ceiling.rps:,.0f}/s"
                      + (f", baseline {run.before.rps:,.0f}/s" if run.before else ""), flush=True)
    finally:
        codes = [server.stop() for server in servers]
        for process in echoes:
            process.stop()
    errors = sum(r.lone.errors + r.echo.errors + r.canned.errors + r.bare.errors + r.many.errors + r.ceiling.errors
                 + (r.before.errors if r.before else 0) for model_runs in runs.values() for r in model_runs)
    print(f"\n{dt.date.today()}, commit {commit()}, {args.runs} run(s) of {args.requests:,} "
          f"requests per part; medians of the runs (min-max); server exit status {codes}; {errors} errors\n")
    report(runs, bool(args.baseline))
    return 1 if errors or any(codes) else 0


def report(runs: dict[str, list[Run]], baseline: bool) -> None:
    print("One caller, batch 1 (ms):\n")
    print("| model | p50 | p99 | echo p50 | no-model ModelInfer p50 | bare ModelInfer p50 | bare p99 "
          f"| run, back to back | run, paced | bound: echo + paced run + {SLACK * 1e3:.1f} |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model, model_runs in runs.items():
        ms = lambda f: spread([f(r) * 1e3 for r in model_runs], 3)  # noqa: E731
        print(f"| {model} | {ms(lambda r: r.lone.percentile(50))} | {ms(lambda r: r.lone.percentile(99))} "
              f"| {ms(lambda r: r.echo.percentile(50))} | {ms(lambda r: r.canned.percentile(50))} "
              f"| {ms(lambda r: r.bare.percentile(50))} | {ms(lambda r: r.bare.percentile(99))} "
              f"| {ms(lambda r: r.run_seconds)} "
              f"| {ms(lambda r: r.paced_seconds)} | {ms(lambda r: r.bound)} |")
    print(f"\n{MANY} callers, batch 1 (requests/s):\n")
    print("| model | genserve | no-model ModelInfer | share of it |" + (" before | x before |" if baseline else ""))
    print("|---|---|---|---|" + ("---|---|" if baseline else ""))
    for model, model_runs in runs.items():
        line = (f"| {model} | {spread([r.many.rps for r in model_runs], 0)} "
                f"| {spread([r.ceiling.rps for r in model_runs], 0)} "
                f"| {spread([r.many.rps / r.ceiling.rps for r in model_runs])} |")
        if baseline:
            line += (f" {spread([r.before.rps for r in model_runs], 0)} "
                     f"| {spread([r.many.rps / r.before.rps for r in model_runs])} |")
        print(line)
    print("\nTargets, per run:")
    for model, model_runs in runs.items():
        for i, r in enumerate(model_runs, 1):
            p50, p99 = r.lone.percentile(50), r.lone.percentile(99)
            verdicts = [f"p99 {p99 * 1e3:.3f} ms <= 2.0 ms: {'met' if p99 <= 2e-3 else 'NOT met'}",
                        f"p50 {p50 * 1e3:.3f} ms <= {r.bound * 1e3:.3f} ms: {'met' if p50 <= r.bound else 'NOT met'} "
                        f"({'met' if p50 <= r.bound_back_to_back else 'NOT met'} with the back-to-back run, "
                        f"{r.bound_back_to_back * 1e3:.3f} ms)"]
            if r.before:
                ratio = r.many.rps / r.before.rps
                verdicts.append(f"{MANY} callers {ratio:.2f} x before >= 1.3: {'met' if ratio >= 1.3 else 'NOT met'}")
            print(f"- {model}, run {i}: " + "; ".join(verdicts))




if __name__ == "__main__":
    sys.exit(main())
