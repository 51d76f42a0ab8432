"""The model repository on disk: ``<repo>/<model>/<version>/model.onnx`` beside its
``manifest.json``. The trainer writes it, the server reads it; versions are positive
integers and only ever added."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path



class RepositoryError(Exception):
    """The repository is missing or inconsistent, or a file fails its check."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason

VERSION = re.compile(r"[1-9]\d*")


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    path: Path  # the model.onnx file
    manifest: dict


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_version(folder: Path) -> ModelVersion:
    """One version folder, its manifest read and its file's sha256 checked."""
    manifest_path, model_path = folder / "manifest.json", folder / "model.onnx"
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise RepositoryError(f"{manifest_path}: missing manifest") from None
    except (OSError, ValueError) as exc:
        raise RepositoryError(f"{manifest_path}: unreadable manifest: {exc}") from None
    if not model_path.is_file():
        raise RepositoryError(f"{model_path}: missing model file")
    expected, actual = manifest.get("sha256"), sha256_file(model_path)
    if actual != expected:
        raise RepositoryError(f"{model_path}: sha256 {actual} does not match the manifest's {expected}; "
                              "refusing to load a changed or corrupt model")
    return ModelVersion(folder.parent.name, int(folder.name), model_path, manifest)


def next_version(model_dir: Path) -> int:
    versions = [int(p.name) for p in Path(model_dir).glob("*") if VERSION.fullmatch(p.name)]
    return max(versions, default=0) + 1


def newest_folders(repository: Path) -> dict[str, Path]:
    """The newest version folder of every model, by name, unchecked."""
    repository = Path(repository)
    if not repository.is_dir():
        raise RepositoryError(f"{repository}: no such model repository")
    found = {}
    for model_dir in sorted(p for p in repository.iterdir() if p.is_dir() and not p.name.startswith(".")):
        versions = [int(v.name) for v in model_dir.iterdir() if v.is_dir() and VERSION.fullmatch(v.name)]
        if versions:
            found[model_dir.name] = model_dir / str(max(versions))
    return found


def newest_versions(repository: Path) -> dict[str, ModelVersion]:
    """The newest version of every model, each checked against its manifest."""
    return {name: read_version(folder) for name, folder in newest_folders(repository).items()}
