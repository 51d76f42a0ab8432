"""The model repository on disk: ``<repo>/<model>/<version>/model.onnx`` beside its
``manifest.json``. The trainer writes it, the server reads it; versions are positive
integers and only ever added.

Everything here treats the repository as untrusted input: only regular files are read,
each within a size cap and without blocking on special files, and a manifest must be a
JSON object of the expected shape before anything reads a field of it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

MAX_VERSION = 2**63 - 1  # versions travel as int64
MAX_MANIFEST_BYTES = 1 << 20
MAX_MODEL_BYTES = 2 << 30  # onnx's protobuf cannot hold more
MAX_MANIFEST_DEPTH = 32  # nesting of JSON values in a manifest

_VERSION = re.compile(r"[1-9][0-9]{0,18}")  # ASCII digits only: str.isdigit accepts "²" and "٥"


class RepositoryError(Exception):
    """The repository is missing or inconsistent, or a file fails its check."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    path: Path  # the model.onnx file
    manifest: dict


def parse_version(text: str) -> int | None:
    """A version number from its spelling (a folder name, a protocol field): ASCII digits,
    no leading zero, within int64; None for anything else."""
    if not _VERSION.fullmatch(text):
        return None
    value = int(text)
    return value if value <= MAX_VERSION else None


def _open_regular(path: Path, limit: int) -> tuple[int, int]:
    """An open descriptor and the size of ``path``, which must be a regular file of at most
    ``limit`` bytes. Opened without blocking, so that a FIFO cannot hang the caller."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise RepositoryError(f"{path}: cannot open it ({exc.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise RepositoryError(f"{path}: not a regular file")
    if info.st_size > limit:
        os.close(fd)
        raise RepositoryError(f"{path}: {info.st_size:,} bytes, over the limit of {limit:,}")
    return fd, info.st_size


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (see _open_regular)."""
    fd, _ = _open_regular(path, limit)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:  # it grew while being read
        raise RepositoryError(f"{path}: over the limit of {limit:,} bytes")
    return data


def sha256_file(path: Path, limit: int = MAX_MODEL_BYTES) -> str:
    fd, _ = _open_regular(Path(path), limit)
    h = hashlib.sha256()
    read = 0
    with os.fdopen(fd, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            read += len(block)
            if read > limit:
                raise RepositoryError(f"{path}: over the limit of {limit:,} bytes")
            h.update(block)
    return h.hexdigest()


def _depth(value) -> int:
    """How deeply JSON values nest, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_MANIFEST_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _tensor_problem(spec) -> str | None:
    if not isinstance(spec, dict):
        return "is not an object"
    if not isinstance(spec.get("name"), str) or not isinstance(spec.get("dtype"), str):
        return "needs a string name and dtype"
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(d == "N" or (type(d) is int and d >= 0) for d in shape):
        return "needs a shape of sizes and \"N\""
    if not isinstance(spec.get("description", ""), str):
        return "has a description that is not a string"
    return None


def check_manifest(manifest, where: Path) -> dict:
    """``manifest`` if it has the shape readers rely on; otherwise a RepositoryError."""
    if not isinstance(manifest, dict):
        raise RepositoryError(f"{where}: a manifest is a JSON object, not {type(manifest).__name__}")
    if _depth(manifest) > MAX_MANIFEST_DEPTH:
        raise RepositoryError(f"{where}: nested deeper than {MAX_MANIFEST_DEPTH} levels")
    if not isinstance(manifest.get("sha256"), str):
        raise RepositoryError(f"{where}: sha256 must be a string")
    if not isinstance(manifest.get("metrics", {}), dict):
        raise RepositoryError(f"{where}: metrics must be an object")
    for kind in ("inputs", "outputs"):
        specs = manifest.get(kind, [])
        if not isinstance(specs, list):
            raise RepositoryError(f"{where}: {kind} must be a list")
        for i, spec in enumerate(specs):
            problem = _tensor_problem(spec)
            if problem:
                raise RepositoryError(f"{where}: {kind}[{i}] {problem}")
    return manifest


def read_version(folder: Path) -> ModelVersion:
    """One version folder, its manifest read and checked and its file's sha256 checked."""
    folder = Path(folder)
    number = parse_version(folder.name)
    if number is None:
        raise RepositoryError(f"{folder}: a version folder's name is a positive integer within int64")
    manifest_path, model_path = folder / "manifest.json", folder / "model.onnx"
    try:
        text = read_regular(manifest_path, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        raise RepositoryError(f"{manifest_path}: missing manifest") from None
    try:
        manifest = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RepositoryError(f"{manifest_path}: unreadable manifest: {str(exc)[:200]}") from None
    check_manifest(manifest, manifest_path)
    try:
        actual = sha256_file(model_path)
    except FileNotFoundError:
        raise RepositoryError(f"{model_path}: missing model file") from None
    expected = manifest["sha256"]
    if actual != expected:
        raise RepositoryError(f"{model_path}: sha256 {actual} does not match the manifest's {expected[:64]}; "
                              "refusing to load a changed or corrupt model")
    return ModelVersion(folder.parent.name, number, model_path, manifest)


def _versions(model_dir: Path) -> list[int]:
    found = []
    for entry in model_dir.iterdir():
        number = parse_version(entry.name)
        if number is not None and entry.is_dir():
            found.append(number)
    return found


def next_version(model_dir: Path) -> int:
    model_dir = Path(model_dir)
    return max(_versions(model_dir) if model_dir.is_dir() else [], default=0) + 1


def version_folders(repository: Path) -> dict[str, dict[int, Path]]:
    """Every version folder of every model, by name and number, unchecked."""
    repository = Path(repository)
    if not repository.is_dir():
        raise RepositoryError(f"{repository}: no such model repository")
    found = {}
    for model_dir in sorted(p for p in repository.iterdir() if p.is_dir() and not p.name.startswith(".")):
        versions = _versions(model_dir)
        if versions:
            found[model_dir.name] = {number: model_dir / str(number) for number in sorted(versions)}
    return found


def newest_folders(repository: Path) -> dict[str, Path]:
    """The newest version folder of every model, by name, unchecked."""
    return {name: folders[max(folders)] for name, folders in version_folders(repository).items()}


def newest_versions(repository: Path) -> dict[str, ModelVersion]:
    """The newest version of every model, each checked against its manifest."""
    return {name: read_version(folder) for name, folder in newest_folders(repository).items()}
