"""The benchmarks in their short modes, so that they cannot rot: each starts the real
server and prints its table."""

import subprocess
import sys

from conftest import ROOT


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


def test_memory_quick(tiny_repository):
    out = run_bench("bench.memory", "--requests", "1500", "--points", "1", "--model-repository",
                    str(tiny_repository))
    assert "| 1,000 |" in out and "| 1,500 |" in out and "RSS after 1,500 requests" in out


def test_soak_quick(tiny_repository):
    out = run_bench("bench.soak", "--requests", "900", "--windows", "3", "--model-repository", str(tiny_repository))
    rows = [line for line in out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split("|")[1].strip() for row in rows] == ["300", "600", "900"], out
    assert "errors: 0" in out and "server exit status 0" in out
