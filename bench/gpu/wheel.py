"""onnxruntime-gpu onto a machine that cannot download it, in parts small enough to
carry one at a time, checked by sha256 when joined.

    python -m bench.gpu.wheel split onnxruntime_gpu-*.whl --out .whl --part-mib 30   # here
    python -m bench.gpu.wheel keep .whl /tmp/ort-parts          # there, once per carried part
    python -m bench.gpu.wheel join /tmp/ort-parts --out /tmp    # there: the wheel, checked

``split`` writes the parts and a manifest (the wheel's name, size, sha256 and each
part's sha256); ``keep`` copies whatever parts a call carried out of the working tree
(the next call's copy replaces the tree); ``join`` refuses a missing or damaged part.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

MANIFEST = "parts.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def split(wheel: Path, out: Path, part_bytes: int) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    with open(wheel, "rb") as f:
        for index, block in enumerate(iter(lambda: f.read(part_bytes), b"")):
            part = out / f"{wheel.name}.part{index:02d}"
            part.write_bytes(block)
            parts.append(part)
    manifest = {"wheel": wheel.name, "bytes": wheel.stat().st_size, "sha256": _sha256(wheel),
                "parts": {p.name: _sha256(p) for p in parts}}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return parts


def keep(carried: Path, store: Path) -> list[str]:
    store.mkdir(parents=True, exist_ok=True)
    kept = []
    for path in sorted(carried.iterdir()):
        if path.name == MANIFEST or ".part" in path.name:
            shutil.copy2(path, store / path.name)
            kept.append(path.name)
    return kept


def join(store: Path, out: Path) -> Path:
    manifest = json.loads((store / MANIFEST).read_text())
    missing = [name for name in manifest["parts"] if not (store / name).is_file()]
    if missing:
        raise SystemExit(f"{store}: missing parts {', '.join(missing)}; carry them first")
    damaged = [name for name, digest in manifest["parts"].items() if _sha256(store / name) != digest]
    if damaged:
        raise SystemExit(f"{store}: damaged parts {', '.join(damaged)} (sha256 differs); carry them again")
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / manifest["wheel"]
    with open(wheel, "wb") as f:
        for name in sorted(manifest["parts"]):
            f.write((store / name).read_bytes())
    if _sha256(wheel) != manifest["sha256"]:
        raise SystemExit(f"{wheel}: sha256 differs from the split wheel's")
    return wheel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu.wheel", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("split")
    p.add_argument("wheel", type=Path)
    p.add_argument("--out", type=Path, default=Path(".whl"))
    p.add_argument("--part-mib", type=int, default=30)
    p = sub.add_parser("keep")
    p.add_argument("carried", type=Path)
    p.add_argument("store", type=Path)
    p = sub.add_parser("join")
    p.add_argument("store", type=Path)
    p.add_argument("--out", type=Path, default=Path("/tmp"))
    args = parser.parse_args(argv)
    if args.command == "split":
        print("\n".join(str(p) for p in split(args.wheel, args.out, args.part_mib << 20)))
    elif args.command == "keep":
        print("kept", ", ".join(keep(args.carried, args.store)) or "nothing")
    else:
        print(join(args.store, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
