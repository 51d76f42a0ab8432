"""The GPU table: for each of the lecture's models, images/s at batch 1, 64, 1,024 and
4,096 through genserve (the Open Inference Protocol's ModelInfer over unary gRPC, on a
server with --providers cuda,cpu), beside in-process onnxruntime-gpu (with and without
IO binding, and as a CUDA graph where onnxruntime captures one), torch eager on the same
GPU (the same architecture), and the transport's
ceiling (an echo server moving the same bytes); and batch-1 latency with one caller.

    python -m bench.gpu.throughput [--callers 4] [--requests 200]
    python -m bench.gpu.throughput --providers cpu --quick    # the same code on the CPU

Target: genserve at n = 1,024 >= 0.8 x the lower of in-process onnxruntime-gpu and the
transport's ceiling.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort

from genserve.cli import OneLineParser, positive_int
from genserve.oip import inference_pb2 as oip
from genserve.repository import newest_versions
from server.settings import PROVIDER_NAMES

from .. import echo
from ..load import Result, drive
from ..processes import ROOT, start_echo, start_server

# model: (input, item shape, output item shape)
MODELS = {"vae_encoder": ("image", (1, 28, 28), (2,)), "vae_decoder": ("z", (2,), (1, 28, 28)),
          "gan_generator": ("noise", (100,), (1, 28, 28)), "dae": ("noisy", (1, 28, 28), (1, 28, 28))}
BATCHES = (1, 64, 1024, 4096)
INFER = "/inference.GRPCInferenceService/ModelInfer"


def rows(model: str, n: int) -> np.ndarray:
    _, item, _ = MODELS[model]
    rng = np.random.default_rng(n)
    return (rng.random((n, *item), dtype=np.float32) if item[0] == 1
            else rng.standard_normal((n, *item), dtype=np.float32))


def infer_request(model: str, array: np.ndarray) -> bytes:
    request = oip.ModelInferRequest(model_name=model)
    request.inputs.add(name=MODELS[model][0], datatype="FP32", shape=array.shape)
    request.raw_input_contents.append(array.tobytes())
    return request.SerializeToString()


async def served(target: str, payload: bytes, requests: int, callers: int) -> Result:
    options = [("grpc.max_receive_message_length", 256 << 20), ("grpc.max_send_message_length", 256 << 20)]
    async with grpc.aio.insecure_channel(target, options) as channel:
        call = channel.unary_unary(INFER)
        await drive(lambda i: call(payload, timeout=600), callers, callers)  # warm-up
        return await drive(lambda i: call(payload, timeout=600), requests, callers)


def in_process(path: Path, provider: str, model: str, array: np.ndarray, runs: int, binding: bool) -> float:
    """Images/s of one session on ``provider``; with IO binding, the input copied to the
    device once and the output left there."""
    session = ort.InferenceSession(str(path), providers=[provider])
    name = MODELS[model][0]
    if not binding:
        session.run(None, {name: array})
        started = time.perf_counter()
        for _ in range(runs):
            session.run(None, {name: array})
        return runs * len(array) / (time.perf_counter() - started)
    device = "cuda" if provider == "CUDAExecutionProvider" else "cpu"
    bound = session.io_binding()
    bound.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, device, 0))
    for output in session.get_outputs():
        bound.bind_output(output.name, device)
    session.run_with_iobinding(bound)
    bound.synchronize_outputs()
    started = time.perf_counter()
    for _ in range(runs):
        session.run_with_iobinding(bound)
    bound.synchronize_outputs()
    return runs * len(array) / (time.perf_counter() - started)


def in_process_graph(path: Path, model: str, array: np.ndarray, runs: int) -> float | None:
    """Images/s of a CUDA graph of the session at this batch (inputs and outputs at fixed
    device addresses, as CUDA graphs need them); None where onnxruntime cannot capture one."""
    try:
        session = ort.InferenceSession(str(path), providers=[("CUDAExecutionProvider", {"enable_cuda_graph": "1"})])
        binding = session.io_binding()
        binding.bind_ortvalue_input(MODELS[model][0], ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0))
        for node in session.get_outputs():
            shape = [len(array), *node.shape[1:]]
            binding.bind_ortvalue_output(node.name, ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32,
                                                                                             "cuda", 0))
        session.run_with_iobinding(binding)  # captures the graph
        started = time.perf_counter()
        for _ in range(runs):
            session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return runs * len(array) / (time.perf_counter() - started)
    except Exception as exc:  # onnxruntime's errors where a graph cannot be captured for this model
        print(f"  ({model} at batch {len(array)}: no CUDA graph: {str(exc)[:120]})", file=sys.stderr)
        return None


def torch_eager(model: str, array: np.ndarray, runs: int, device: str) -> float | None:
    """Images/s of the same architecture in torch (random weights: speed only); None
    without torch."""
    try:
        import torch

        from trainer import models
    except ImportError:
        return None
    module = {"vae_encoder": lambda: models.VAEEncoder(), "vae_decoder": lambda: models.VAEDecoder(),
              "gan_generator": lambda: models.UnitIntervalGenerator(models.Generator()),
              "dae": lambda: models.DenoisingAutoencoder()}[model]().to(device).eval()
    if device == "cuda" and not torch.cuda.is_available():
        return None
    tensor = torch.from_numpy(array).to(device)
    with torch.inference_mode():
        module(tensor)
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(runs):
            module(tensor)
        if device == "cuda":
            torch.cuda.synchronize()
    return runs * len(array) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m bench.gpu.throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", type=Path, default=ROOT / "models")
    parser.add_argument("--providers", choices=sorted(PROVIDER_NAMES), default="cuda")
    parser.add_argument("--requests", type=positive_int, default=200, help="requests per cell (default: 200)")
    parser.add_argument("--callers", type=positive_int, default=4, help="concurrent callers (default: 4)")
    parser.add_argument("--workers", type=positive_int, default=1, help="server processes (--workers)")
    parser.add_argument("--quick", action="store_true", help="batches 1 and 64, a few requests: checks that it runs")
    args = parser.parse_args(argv)
    provider = PROVIDER_NAMES[args.providers]
    batches = BATCHES[:2] if args.quick else BATCHES
    requests = 8 if args.quick else args.requests
    largest = str(max(batches))
    server = start_server(args.model_repository, "--providers", f"{args.providers},cpu", "--workers", str(args.workers),
                          "--max-request-size", largest, "--max-sample-n", largest, "--max-batch-size", largest)
    echo_server = start_echo()
    versions = newest_versions(args.model_repository)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    device = ort.get_device()
    try:
        import torch

        if provider == "CUDAExecutionProvider" and torch.cuda.is_available():
            device = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    print(f"{device}, {provider}, at {commit} on {dt.date.today()}; {args.callers} callers, {args.workers} "
          f"server worker(s), {requests} requests a cell")
    print("| model | batch | genserve images/s | in-process | in-process, IO binding | in-process, CUDA graph | "
          "torch eager | echo images/s | x min(in-process, echo) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    errors = 0
    try:
        for model in MODELS:
            for n in batches:
                array = rows(model, n)
                payload = infer_request(model, array)
                answer = n * int(np.prod(MODELS[model][2])) * 4 + 256
                result = asyncio.run(served(server.target, payload, requests, args.callers))
                echoed = asyncio.run(_echo(echo_server.target, echo.request_of(len(payload), answer), requests,
                                           args.callers))
                errors += result.errors + echoed.errors
                runs = max(3, requests // 4)
                plain = in_process(versions[model].path, provider, model, array, runs, binding=False)
                bound = in_process(versions[model].path, provider, model, array, runs, binding=True)
                eager = torch_eager(model, array, runs, "cuda" if provider == "CUDAExecutionProvider" else "cpu")
                graph = (in_process_graph(versions[model].path, model, array, runs)
                         if provider == "CUDAExecutionProvider" else None)
                images = result.rps * n
                ceiling = min(plain, bound, echoed.rps * n)
                print(f"| {model} | {n:,} | {images:,.0f} | {plain:,.0f} | {bound:,.0f} | "
                      f"{'-' if graph is None else f'{graph:,.0f}'} | {'-' if eager is None else f'{eager:,.0f}'} | "
                      f"{echoed.rps * n:,.0f} | {images / ceiling:.2f} |", flush=True)
                if n == 1:
                    lone = asyncio.run(served(server.target, payload, requests, 1))
                    print(f"|  | batch 1, one caller: p50 {lone.percentile(50) * 1e3:.2f} ms, "
                          f"p99 {lone.percentile(99) * 1e3:.2f} ms |  |  |  |  |  |  |  |")
    finally:
        code = server.stop()
        echo_server.stop()
    print(f"\nserver exit status {code}; {errors} errors")
    return 1 if code or errors else 0


async def _echo(target: str, payload: bytes, requests: int, callers: int) -> Result:
    options = [("grpc.max_receive_message_length", 256 << 20), ("grpc.max_send_message_length", 256 << 20)]
    async with grpc.aio.insecure_channel(target, options) as channel:
        call = channel.unary_unary(echo.METHOD)
        await drive(lambda i: call(payload, timeout=600), callers, callers)
        return await drive(lambda i: call(payload, timeout=600), requests, callers)


if __name__ == "__main__":
    sys.exit(main())
