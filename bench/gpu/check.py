"""CUDA against the CPU, for every model of a repository: the same inputs through
onnxruntime's CUDA provider and its CPU provider give outputs within 1e-4 (images'
pixels within 1 of 255); then a real server with ``--providers cuda,cpu`` serves every
model on CUDA (ListModels and genserve_model_info say so) and answers as the CPU does.

    python -m bench.gpu.check [--model-repository models] [--providers cuda]

Exit status 0 only when every check passes; ``--providers cpu`` runs the same checks
CPU against CPU, on a machine without a GPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from genserve.cli import OneLineParser
from genserve.contract import CONTRACTS, ONNX_TYPES, random_input
from genserve.pixels import to_pixels
from genserve.repository import newest_versions
from server.settings import PROVIDER_NAMES

from ..processes import ROOT, start_server

ROWS = 64
TOLERANCE = 1e-4


def feeds(session: ort.InferenceSession, name: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    contract = CONTRACTS.get(name)
    if contract is not None:
        return {spec.name: random_input(spec, ROWS, rng) for spec in contract.inputs}
    return {node.name: (np.zeros((ROWS, *node.shape[1:]), np.int64) if node.type == ONNX_TYPES["int64"]
                        else rng.standard_normal((ROWS, *node.shape[1:]), dtype=np.float32))
            for node in session.get_inputs()}


def compare(repository: Path, provider: str) -> list[str]:
    """Each model's largest difference against the CPU; the failures' lines."""
    failures = []
    print(f"| model | max abs difference ({provider} vs CPU) | pixels differing by more than 1 |")
    print("|---|---:|---:|")
    for name, version in sorted(newest_versions(repository).items()):
        device = ort.InferenceSession(str(version.path), providers=[provider])
        cpu = ort.InferenceSession(str(version.path), providers=["CPUExecutionProvider"])
        if device.get_providers()[0] != provider:
            failures.append(f"{name}: {provider} did not load (got {device.get_providers()})")
            continue
        inputs = feeds(cpu, name, np.random.default_rng(0))
        worst, pixels = 0.0, 0
        for got, want, node in zip(device.run(None, inputs), cpu.run(None, inputs), cpu.get_outputs()):
            worst = max(worst, float(np.abs(got - want).max()))
            if node.name == "image":
                pixels += int((np.abs(to_pixels(got).astype(int) - to_pixels(want).astype(int)) > 1).sum())
        print(f"| {name} v{version.version} | {worst:.2e} | {pixels} |", flush=True)
        if worst > TOLERANCE or pixels:
            failures.append(f"{name}: outputs differ by {worst:.2e} (tolerance {TOLERANCE:g}), {pixels} pixels by > 1")
    return failures


def serve(repository: Path, provider: str) -> list[str]:
    """A server asked for ``provider`` first: every model on it, and its answers as the CPU's."""
    from client import GenerativeClient

    short = {v: k for k, v in PROVIDER_NAMES.items()}[provider]
    server = start_server(repository, "--providers", f"{short},cpu")
    failures = []
    try:
        with GenerativeClient(server.target, timeout=120) as client:
            models = client.list_models()
            off = [m.name for m in models if m.execution_provider != provider]
            if off:
                failures.append(f"served on another provider: {', '.join(off)}")
            served, latents = client.sample_digits(n=ROWS, seed=1, as_float=True, return_latents=True)
        metric = server.metric("genserve_model_info", model="gan_generator", provider=provider)
        if metric != 1:
            failures.append(f"genserve_model_info does not report gan_generator on {provider}")
        path = newest_versions(repository)["gan_generator"].path
        cpu = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        want = cpu.run(None, {"noise": latents})[0].reshape(ROWS, 28, 28)
        worst = float(np.abs(served - want).max())
        print(f"\nserver with --providers {short},cpu: {len(models)} model versions, "
              f"{len(models) - len(off)} on {provider}; Sample n={ROWS} against the CPU: max abs difference "
              f"{worst:.2e}")
        if worst > TOLERANCE:
            failures.append(f"Sample through the server differs from the CPU by {worst:.2e}")
    finally:
        server.stop()
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m bench.gpu.check", description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", type=Path, default=ROOT / "models")
    parser.add_argument("--providers", choices=sorted(PROVIDER_NAMES), default="cuda",
                        help="the provider checked against the CPU's (default: cuda)")
    args = parser.parse_args(argv)
    provider = PROVIDER_NAMES[args.providers]
    if provider not in ort.get_available_providers():
        print(f"{provider} is not in this onnxruntime ({', '.join(ort.get_available_providers())}): "
              "install onnxruntime-gpu (bench/gpu/run.sh)", file=sys.stderr)
        return 2
    failures = compare(args.model_repository, provider) + serve(args.model_repository, provider)
    print("\n" + ("\n".join(f"FAILED: {f}" for f in failures) if failures else "every check passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
