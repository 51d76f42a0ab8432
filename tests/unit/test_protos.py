"""The generated gRPC code is exactly what protoc makes of the .proto files."""

import importlib.util
import subprocess
import sys

from helpers import ROOT


def test_generated_code_matches_a_fresh_generation(tmp_path):
    spec = importlib.util.spec_from_file_location("generate", ROOT / "protos" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    generate.generate(tmp_path)
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert fresh, "protoc generated nothing"
    for relative in fresh:
        committed = ROOT / relative
        assert committed.exists(), f"{relative} is generated but not committed"
        assert committed.read_bytes() == (tmp_path / relative).read_bytes(), \
            f"{relative} differs from a fresh generation: run python protos/generate.py"


def _imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return {name.split(".")[0] for name in out.stdout.split()}


def test_the_server_needs_no_torch_and_no_trainer():
    modules = _imported_after("import server.app")
    assert not modules & {"torch", "trainer", "client"}, modules & {"torch", "trainer", "client"}


def test_the_client_needs_neither_onnxruntime_nor_torch_nor_the_server():
    modules = _imported_after("import client, client.__main__, client.pictures")
    assert not modules & {"torch", "onnxruntime", "server", "trainer"}
