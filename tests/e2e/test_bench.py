"""The benchmarks in their short modes, so that they cannot rot: each starts the real
server and prints its table."""

import platform
import subprocess
import sys

import pytest
from helpers import ROOT


def run_bench(module: str, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_throughput_quick(tiny_repository):
    out = run_bench("bench.throughput", "--quick", "--model-repository", str(tiny_repository))
    rows = [line for line in out.splitlines() if line.startswith("| Sample gan") or line.startswith("| Denoise")]
    assert len(rows) == 8, out  # 2 RPCs x n in (1, 16) x concurrency in (1, 8)
    assert "Sample gan n=1 c=1: p50" in out and "after idle gaps" in out and ", 0 errors" in out


def test_http_quick(tiny_repository):
    out = run_bench("bench.http", "--quick", "--model-repository", str(tiny_repository))
    rows = [line for line in out.splitlines() if line.startswith("| vae_decoder") or line.startswith("| gan_generator")]
    assert len(rows) == 8 and "server exit status 0" in out, out  # 2 models x batch (1, 64) x callers (1, 16)


def test_oip_quick(tiny_repository):
    out = run_bench("bench.oip", "--quick", "--model-repository", str(tiny_repository))
    rows = [line for line in out.splitlines() if line.startswith("| vae_decoder") or line.startswith("| gan_generator")]
    assert len(rows) == 4 and "server exit status [0, 0]" in out and "; 0 errors" in out, out  # 2 models x 2 tables
    assert "- gan_generator, run 1: p99" in out, out


def test_http_abuse_quick(tiny_repository):
    out = run_bench("bench.http_abuse", "--quick", "--model-repository", str(tiny_repository))
    rows = [line for line in out.splitlines() if line.startswith("| ") and "ms" not in line and "---" not in line]
    assert len(rows) == 10, out  # idle, 7 kinds of abuse and 2 of heavy work
    assert "RSS before the abort storm" in out and "server exit status 0, 0 tracebacks" in out, out


def test_stream_quick(tiny_repository):
    out = run_bench("bench.stream", "--quick", "--model-repository", str(tiny_repository))
    rows = [line for line in out.splitlines() if line.startswith("| gan |") or line.startswith("| cgan |")]
    assert len(rows) == 4, out  # 2 models x chunk (256, 1,024)
    assert "during a 1,000,000-image stream" in out and "server exit status 0, 0 tracebacks" in out, out


def test_memory_quick(tiny_repository):
    out = run_bench("bench.memory", "--requests", "1500", "--points", "1", "--burst", "10", "--rows", "64",
                    "--model-repository", str(tiny_repository))
    assert "| 1,000 |" in out and "| 1,500 |" in out and "RSS after 1,500 requests" in out
    assert "after 10 requests of 64 images" in out and "2 s later" in out


def test_soak_quick(tiny_repository):
    out = run_bench("bench.soak", "--requests", "900", "--windows", "3", "--model-repository", str(tiny_repository))
    rows = [line for line in out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split("|")[1].strip() for row in rows] == ["300", "600", "900"], out
    assert "errors: 0" in out and "server exit status 0" in out


def minor_faults_of_answers(keep: bool) -> int:
    """Page faults of a process that makes and drops the buffers of 200 answers of 200 KB."""
    code = f"""
import resource
from bench.load import keep_freed_memory
if {keep}:
    assert keep_freed_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    parts = [bytes(bytearray(200_704)) for _ in range(3)]
    del parts
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_load_generator_reuses_freed_memory():
    default, kept = minor_faults_of_answers(False), minor_faults_of_answers(True)
    assert default > 1000  # glibc hands the buffers back and faults them in again
    assert kept < default / 20, (default, kept)


def test_the_gpu_scripts_run_on_the_cpu(tiny_repository, tmp_path):
    out = run_bench("bench.gpu.check", "--providers", "cpu", "--model-repository", str(tiny_repository))
    assert "every check passed" in out and "| gan_generator v1 |" in out, out
    out = run_bench("bench.gpu.throughput", "--providers", "cpu", "--quick", "--model-repository",
                    str(tiny_repository))
    assert out.count("| gan_generator |") == 2 and "batch 1, one caller: p50" in out and "0 errors" in out, out
    wheel = tmp_path / "onnxruntime_gpu-0-cp312-none-any.whl"
    wheel.write_bytes(bytes(range(256)) * 9000)
    run_bench("bench.gpu.wheel", "split", str(wheel), "--out", str(tmp_path / "carried"), "--part-mib", "1")
    run_bench("bench.gpu.wheel", "keep", str(tmp_path / "carried"), str(tmp_path / "store"))
    joined = run_bench("bench.gpu.wheel", "join", str(tmp_path / "store"), "--out", str(tmp_path / "out")).strip()
    assert open(joined, "rb").read() == wheel.read_bytes()
    part = next((tmp_path / "store").glob("*.part01"))
    part.write_bytes(b"damaged")
    result = subprocess.run([sys.executable, "-m", "bench.gpu.wheel", "join", str(tmp_path / "store")],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0 and "damaged parts" in result.stderr
