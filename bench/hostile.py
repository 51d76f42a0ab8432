"""A hostile run against the real server: thousands of requests of every class of bad
input the server must survive, and a model repository tampered with under hot reload,
between legal calls. Then the checks: the server still SERVING, a fixed request's answer
byte-identical to before, no call answered UNKNOWN or INTERNAL (or CANCELLED), RSS
within 100 MB of its level after legal warm-up traffic, no metric series made from what
a caller sent, and SIGTERM obeyed within the grace period.

    python -m bench.hostile --rounds 20
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np

from genserve.cli import OneLineParser, positive_int
from genserve.oip import inference_pb2 as oip
from genserve.repository import sha256_file
from genserve.v1 import generative_pb2 as pb

from .processes import ROOT, ServerProcess

V1, OIP = "/genserve.v1.GenerativeService/", "/inference.GRPCInferenceService/"
TOKEN = "hostile-run-token-0123456789"
GRACE = 10.0
RSS_BOUND = 100 * 2**20
FORBIDDEN = {"UNKNOWN", "INTERNAL", "CANCELLED"}


def infer(name="vae_decoder", version="", shape=(1, 2), input_name="z", outputs=(), id=""):
    request = oip.ModelInferRequest(model_name=name, model_version=version, id=id)
    request.inputs.add(name=input_name, datatype="FP32", shape=list(shape))
    request.raw_input_contents.append(np.zeros(shape, "<f4").tobytes() if len(shape) <= 4 else b"\0" * 8)
    for output in outputs:
        request.outputs.add(name=output)
    return request


def hostile_requests(i: int) -> list[tuple[str, str, bytes, bool]]:
    """(class, method, bytes, with the token) for one round; ``i`` varies the names."""
    long = "x" * 100_000
    junk = [b"\xff\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", os.urandom(512)]
    many_outputs = infer()
    for _ in range(50_000):
        many_outputs.outputs.add(name="image")
    structure = pb.DenoiseRequest(images=pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=[1] * 3_000_000, data=b"\0"))
    cases = [
        ("1 structure", V1 + "Denoise", structure),
        ("1 structure", OIP + "ModelInfer", infer(shape=[1] * 1_000_000)),
        ("1 structure", OIP + "ModelInfer", many_outputs),
        ("2 long text", V1 + "Sample", pb.SampleRequest(n=1, model=long)),
        ("2 long text", OIP + "ModelInfer", infer(name=long)),
        ("2 long text", OIP + "ModelMetadata", oip.ModelMetadataRequest(name=long, version=long)),
        ("2 long text", OIP + "ModelInfer", infer(input_name=long)),
        *[("3 versions", OIP + method, request) for version in ("²", "٥", "５", "1" * 5000, "9223372036854775808")
          for method, request in (("ModelInfer", infer(version=version)),
                                  ("ModelMetadata", oip.ModelMetadataRequest(name="vae_decoder", version=version)),
                                  ("ModelReady", oip.ModelReadyRequest(name="vae_decoder", version=version)))],
        ("8 large answers", OIP + "ModelInfer", infer(shape=(1024, 2), id="i" * 100_000)),
        ("8 large answers", OIP + "ModelInfer", infer(name="vae_encoder", shape=(1024, 1, 28, 28), input_name="image",
                                                     outputs=("z_mean", "z_mean"))),
        *[("9 not a message", method, data) for method in (V1 + "Sample", V1 + "Decode", OIP + "ModelInfer")
          for data in junk],
    ]
    with_token = [(kind, method, r if isinstance(r, bytes) else r.SerializeToString(), True)
                  for kind, method, r in cases]
    made_up = [("4 made-up methods", f"/evil.Service{i}.{k}/M{k}", b"", False) for k in range(20)]
    return with_token + made_up


class Run:
    def __init__(self, target: str):
        self.target = target
        self.codes: collections.Counter = collections.Counter()
        self.by_class: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.metadata = (("authorization", f"Bearer {TOKEN}"),)

    async def call(self, channel, kind: str, method: str, payload: bytes, token: bool = True) -> bytes | None:
        try:
            answer = await channel.unary_unary(method)(payload, timeout=60, metadata=self.metadata if token else None)
            code = "OK"
        except grpc.aio.AioRpcError as error:
            answer, code = None, error.code().name
        self.codes[code] += 1
        self.by_class[kind][code] += 1
        return answer


async def fixed_answers(run: Run, channel) -> bytes:
    """The answers to a fixed set of legal requests, concatenated."""
    parts = []
    for method, request in ((V1 + "Sample", pb.SampleRequest(n=8, model="gan", seed=1)),
                            (V1 + "Sample", pb.SampleRequest(n=8, model="vae", seed=1)),
                            (V1 + "Decode", pb.DecodeRequest(z=pb.Tensor(dtype=pb.DATA_TYPE_FLOAT32, shape=[2, 2],
                                                                          data=np.zeros(4, "<f4").tobytes())))):
        answer = await run.call(channel, "legal", method, request.SerializeToString())
        parts.append(answer or b"")
    return b"".join(parts)


async def legal_load(run: Run, channel, rows: int) -> None:
    """The largest legal requests of every model, and small ones, 8 at once."""
    images = pb.Tensor(dtype=pb.DATA_TYPE_UINT8, shape=[rows, 28, 28], data=bytes(rows * 784))
    z = pb.Tensor(dtype=pb.DATA_TYPE_FLOAT32, shape=[rows, 2], data=np.zeros(rows * 2, "<f4").tobytes())
    float32 = pb.IMAGE_FORMAT_FLOAT32
    requests = [(V1 + "Sample", pb.SampleRequest(n=rows, model="gan", image_format=float32)),
                (V1 + "Sample", pb.SampleRequest(n=rows, model="vae", image_format=float32)),
                (V1 + "Denoise", pb.DenoiseRequest(images=images, image_format=float32)),
                (V1 + "Encode", pb.EncodeRequest(images=images)),
                (V1 + "Decode", pb.DecodeRequest(z=z, image_format=float32)),
                (V1 + "Sample", pb.SampleRequest(n=1, model="gan"))]
    for _ in range(4):
        await asyncio.gather(*(run.call(channel, "legal", m, r.SerializeToString()) for m, r in requests))


def tamper(repository: Path, step: int) -> None:
    """One tampering of the repository, by step: each a kind the watcher must refuse."""
    def version(model: str, number: str) -> Path:
        source = repository / model / "5"
        folder = repository / model / f".stage-{number}"
        shutil.copytree(source, folder)
        return folder

    model = ["dae", "vae_decoder", "gan_generator", "vae_encoder", "digit_classifier"][step % 5]
    number = str(100 + step)
    folder = version(model, number)
    kind = step % 7
    manifest = folder / "manifest.json"
    if kind == 0:
        manifest.write_text("[]")
    elif kind == 1:
        manifest.write_text("[" * 100_000)
    elif kind == 2:
        data = json.loads(manifest.read_text())
        data["metrics"] = "fast"
        manifest.write_text(json.dumps(data))
    elif kind == 3:
        manifest.unlink()
        os.mkfifo(manifest)
    elif kind == 4:
        manifest.unlink()
        manifest.symlink_to("/dev/zero")
    elif kind == 5:  # another model's file, with a manifest that matches it
        other = "gan_generator" if model != "gan_generator" else "dae"
        shutil.copy(repository / other / "5" / "model.onnx", folder / "model.onnx")
        data = json.loads(manifest.read_text())
        data["sha256"] = sha256_file(folder / "model.onnx")
        manifest.write_text(json.dumps(data))
    else:
        number = str(2**63 + step)  # a folder name outside int64
    folder.rename(repository / model / number)


def series(text: str) -> set[str]:
    return {line.split(" ")[0] for line in text.splitlines() if line.startswith("genserve_")}


async def attack(target: str, repository: Path, rounds: int, flood: int) -> tuple[Run, dict]:
    run = Run(target)
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    async with grpc.aio.insecure_channel(target, options) as channel:
        await legal_load(run, channel, 1024)
        figures = {"fixed": await fixed_answers(run, channel)}
        for i in range(rounds):
            tamper(repository, i)
            for kind, method, payload, token in hostile_requests(i):
                await run.call(channel, kind, method, payload, token)
            # 10: more calls at once on one connection than the server takes in.
            flooded = [run.call(channel, "10 flood", V1 + "Sample", pb.SampleRequest(n=1, seed=k).SerializeToString())
                       for k in range(flood)]
            await asyncio.gather(*flooded)
            if i % 5 == 4:
                await legal_load(run, channel, 64)
        figures["fixed_after"] = await fixed_answers(run, channel)
    return run, figures


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m bench.hostile", description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", type=Path, default=ROOT / "models")
    parser.add_argument("--rounds", type=positive_int, default=20)
    parser.add_argument("--flood", type=positive_int, default=2000, help="calls at once in each round")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="genserve-hostile-"))
    repository = work / "models"
    shutil.copytree(args.model_repository, repository)
    (work / "tokens").write_text(TOKEN + "\n")
    server = ServerProcess(repository, "--auth-token-file", str(work / "tokens"), "--poll-interval", "0.5",
                           "--grace-period", str(GRACE)).wait_ready_logged(120)
    try:
        async def warm():
            async with grpc.aio.insecure_channel(server.target) as channel:
                await legal_load(Run(server.target), channel, 1024)
        asyncio.run(warm())
        time.sleep(2)
        rss_warm = server.rss_bytes()
        before = series(server.scrape())
        started = time.monotonic()
        run, figures = asyncio.run(attack(server.target, repository, args.rounds, args.flood))
        seconds = time.monotonic() - started
        time.sleep(2)
        rss_after = server.rss_bytes()
        after = series(server.scrape())
        health = asyncio.run(_health(server.target))
    finally:
        stop_started = time.monotonic()
        code = server.stop(timeout=GRACE + 20)
        stop_seconds = time.monotonic() - stop_started
        shutil.rmtree(work, ignore_errors=True)
    made_by_callers = [s for s in after - before if "evil" in s or "xxxx" in s or "\\" in s]
    total = sum(run.codes.values())
    print(f"{total:,} calls in {seconds:.0f} s ({args.rounds} rounds, {args.rounds} repository tamperings)\n")
    print("| class | calls | answers |\n|---|---:|---|")
    for kind in sorted(run.by_class):
        counts = run.by_class[kind]
        print(f"| {kind} | {sum(counts.values()):,} | "
              f"{', '.join(f'{c} {n:,}' for c, n in sorted(counts.items()))} |")
    refused = sorted(line.split("refused ", 1)[1][:90] for line in server.log.splitlines() if "refused " in line)
    checks = {
        "health after the run": (health, health == "SERVING"),
        "fixed answers byte-identical": ("yes" if figures["fixed"] == figures["fixed_after"] else "NO",
                                         figures["fixed"] == figures["fixed_after"] and bool(figures["fixed"])),
        "calls answered UNKNOWN, INTERNAL or CANCELLED": (sum(run.codes[c] for c in FORBIDDEN),
                                                           not any(run.codes[c] for c in FORBIDDEN)),
        "RSS after warm-up -> after the run": (f"{rss_warm / 2**20:.0f} -> {rss_after / 2**20:.0f} MiB "
                                               f"({(rss_after - rss_warm) / 2**20:+.0f})",
                                               rss_after - rss_warm <= RSS_BOUND),
        "metric series before -> after": (f"{len(before)} -> {len(after)}, {len(made_by_callers)} from callers' text",
                                          not made_by_callers),
        "repository versions refused": (len(refused), len(refused) >= args.rounds * 6 // 7),
        "SIGTERM to exit": (f"{stop_seconds:.1f} s, status {code} (grace {GRACE:g} s)",
                            code == 0 and stop_seconds <= GRACE),
        "tracebacks in the log": (server.log.count("Traceback"), "Traceback" not in server.log),
    }
    print("\n| check | figure | |\n|---|---|---|")
    for name, (figure, ok) in checks.items():
        print(f"| {name} | {figure} | {'met' if ok else 'NOT met'} |")
    return 0 if all(ok for _, ok in checks.values()) else 1


async def _health(target: str) -> str:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(target) as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


if __name__ == "__main__":
    sys.exit(main())
