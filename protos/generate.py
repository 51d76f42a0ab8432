"""Regenerate the Python gRPC code from the .proto files:

    python protos/generate.py [OUT_DIR]    # default: the repository root

The generated modules are committed; tests/test_protos.py checks that they match
a fresh generation, so they are never edited by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

PROTOS = Path(__file__).resolve().parent
ROOT = PROTOS.parent


def generate(out: Path = ROOT) -> list[Path]:
    sources = sorted(PROTOS.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto
    args = ["protoc", f"-I{PROTOS}", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}",
            f"--grpc_python_out={out}", *map(str, sources)]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {', '.join(map(str, sources))}")
    return sources


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
