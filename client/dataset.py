"""Labelled synthetic datasets from a genserve server (``python -m client dataset``):
shards of ``SampleStream``'s images that load without genserve, as ``.npz`` (``images``
uint8 [N,28,28], ``labels`` int64 [N]) and as MNIST's gzipped IDX files, with a
manifest that says what drew them. Each shard is regenerable alone, byte for byte, so
shards can be made by separate processes or machines, and a rerun keeps the shards
whose sha256 still checks.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from ._calls import DigitChunk

FORMATS = ("npz", "idx")
MANIFEST = "manifest.json"
DIGITS = 10
IMAGES_MAGIC, LABELS_MAGIC = 0x803, 0x801  # MNIST's IDX headers: uint8 3-d and 1-d
IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # a fixed time in the .npz, so that its bytes depend on the data alone


@dataclass(frozen=True)
class Plan:
    """What a dataset is: the same plan gives the same bytes in every shard."""
    n: int
    shards: int
    seed: int
    model: str  # the repository model that draws, e.g. "cgan_generator"
    version: int
    model_sha256: str
    balanced: bool = False
    digit: int | None = None
    truncation: float | None = None
    min_confidence: float | None = None
    classifier: str | None = None  # "name version sha256" of the classifier min_confidence used
    formats: tuple[str, ...] = FORMATS

    def bounds(self, shard: int) -> tuple[int, int]:
        """The image indices [start, stop) of ``shard``: as even as whole images allow."""
        return self.n * shard // self.shards, self.n * (shard + 1) // self.shards

    def name(self, shard: int) -> str:
        return f"shard-{shard:05d}-of-{self.shards:05d}"

    def settings(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


class DatasetError(ValueError):
    """A dataset folder that cannot be written or resumed as asked."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write(path: Path, data: bytes) -> None:
    """``data`` at ``path``, whole or not at all: a kill leaves the old file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def npz_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """``np.savez_compressed``'s format with fixed member times, so equal data gives equal bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, array in (("images", images), ("labels", labels)):
            member = zipfile.ZipInfo(f"{key}.npy", ZIP_TIME)
            member.compress_type = zipfile.ZIP_DEFLATED
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            archive.writestr(member, buffer.getvalue())
    return out.getvalue()


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """MNIST's IDX format (big-endian header, uint8 data), gzipped with no time stamp."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def shard_files(plan: Plan, shard: int) -> dict[str, Callable[[np.ndarray, np.ndarray], bytes]]:
    """The files of one shard, relative to the dataset folder, and how each is written.
    IDX files sit where a torchvision-style MNIST reader looks: ``<shard>/MNIST/raw/``."""
    name = plan.name(shard)
    files: dict[str, Callable[[np.ndarray, np.ndarray], bytes]] = {}
    if "npz" in plan.formats:
        files[f"{name}.npz"] = npz_bytes
    if "idx" in plan.formats:
        raw = f"{name}/MNIST/raw"
        files[f"{raw}/{IDX_FILES[0]}"] = lambda images, labels: idx_bytes(images, IMAGES_MAGIC)
        files[f"{raw}/{IDX_FILES[1]}"] = lambda images, labels: idx_bytes(labels, LABELS_MAGIC)
    return files


def _record_path(out: Path, plan: Plan, shard: int) -> Path:
    return out / f"{plan.name(shard)}.json"


def finished(out: Path, plan: Plan, shard: int) -> dict[str, Any] | None:
    """The shard's record if it was made under this plan and every file's sha256 checks."""
    path = _record_path(out, plan, shard)
    if not path.is_file():
        return None
    try:
        record: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("plan") != plan.settings():
        raise DatasetError(f"{path}: made under other settings ({_difference(record.get('plan'), plan)}); "
                           "use another --out folder, or delete this one")
    for relative, digest in record["files"].items():
        file = out / relative
        if not file.is_file() or sha256(file) != digest:
            return None
    return record


def _difference(old: Any, plan: Plan) -> str:
    if not isinstance(old, dict):
        return "no settings recorded"
    new = plan.settings()
    keys = [key for key in new if old.get(key) != new[key]]
    return ", ".join(f"{key} {old.get(key)!r} there, {new[key]!r} now" for key in keys) or "unknown"


def write_shard(out: Path, plan: Plan, shard: int, chunks: Iterable[DigitChunk],
                progress: Callable[[int], object] = lambda images: None) -> dict[str, Any]:
    """Shard ``shard`` from the stream's chunks of its images, then its record (last, so
    that a shard with a record is a whole one)."""
    start, stop = plan.bounds(shard)
    images = np.empty((stop - start, 28, 28), np.uint8)
    labels = np.empty(stop - start, np.int64)
    redrawn = unmet = 0
    filled = 0
    for chunk in chunks:
        if chunk.digits is None:
            raise DatasetError(f"{plan.model} draws unlabelled digits; ask for --balanced, --digit or "
                               "--min-confidence, which labels them")
        at = chunk.first_index - start
        images[at:at + len(chunk.images)] = chunk.images
        labels[at:at + len(chunk.images)] = chunk.digits
        filled += len(chunk.images)
        redrawn, unmet = redrawn + chunk.redrawn, unmet + chunk.unmet
        progress(len(chunk.images))
    if filled != stop - start:
        raise DatasetError(f"{plan.name(shard)}: the stream gave {filled:,} images of {stop - start:,}")
    files = {}
    for relative, make in shard_files(plan, shard).items():
        _write(out / relative, make(images, labels))
        files[relative] = sha256(out / relative)
    record = {"shard": shard, "range": [start, stop], "counts": np.bincount(labels, minlength=DIGITS).tolist(),
              "redrawn": redrawn, "unmet": unmet, "files": files, "plan": plan.settings()}
    _write(_record_path(out, plan, shard), json.dumps(record, indent=1).encode())
    return record


def write_manifest(out: Path, plan: Plan) -> Path | None:
    """``manifest.json`` once every shard has its record (whichever process finishes last
    writes it; the bytes are the same whoever does). None while shards are missing."""
    records = []
    for shard in range(plan.shards):
        path = _record_path(out, plan, shard)
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        records.append({key: value for key, value in record.items() if key != "plan"})
    counts = np.sum([r["counts"] for r in records], axis=0).tolist()
    manifest = {"plan": plan.settings(), "images": plan.n, "counts": counts,
                "redrawn": sum(r["redrawn"] for r in records), "unmet": sum(r["unmet"] for r in records),
                "shards": records}
    path = out / MANIFEST
    _write(path, json.dumps(manifest, indent=1).encode())
    return path


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as data:
        return data["images"], data["labels"]


def pending(out: Path, plan: Plan, shards: Sequence[int]) -> Iterator[int]:
    """The shards of ``shards`` not yet finished under ``plan``."""
    return (shard for shard in shards if finished(out, plan, shard) is None)


def plan_for(client: Any, n: int, shards: int, seed: int, model: str = "gan", balanced: bool = False,
             digit: int | None = None, truncation: float | None = None, min_confidence: float | None = None,
             version: int = 0, formats: Sequence[str] = FORMATS) -> Plan:
    """The plan of a dataset on the server behind ``client``: its model version (the newest
    unless pinned) and that version's sha256, found by drawing the dataset's first image."""
    if not 1 <= shards <= n:
        raise DatasetError(f"--shards: must be between 1 and --n ({n:,}), got {shards:,}")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise DatasetError(f"--format: {', '.join(unknown) or 'none given'}; use {', '.join(FORMATS)} or both")
    first = next(iter(client.stream_digits(1, model, seed, digit=digit, balanced=balanced, chunk=1,
                                           truncation=truncation, min_confidence=min_confidence, version=version)))
    if first.digits is None:
        raise DatasetError(f"{first.model} draws digits without labels; ask for --balanced or --digit (its "
                           "conditional twin), or --min-confidence (the classifier's reading)")
    served = {(m.name, m.version): m for m in client.list_models()}
    classifier = None
    if min_confidence is not None:
        newest = max((m for m in served.values() if m.name == "digit_classifier"), key=lambda m: m.version)
        classifier = f"{newest.name} {newest.version} {newest.sha256}"
    return Plan(n, shards, seed, first.model, first.version, served[first.model, first.version].sha256, balanced,
                digit, truncation, min_confidence, classifier, tuple(f for f in FORMATS if f in formats))


def make(client: Any, out: Path, plan: Plan, shards: Sequence[int], chunk: int = 1024, progress: bool = True
         ) -> tuple[list[int], list[int], Path | None]:
    """Makes the shards of ``shards`` that are not finished under ``plan`` (a finished one's
    files all check against its record), then the manifest if every shard is there.
    Returns (shards kept, shards made, the manifest's path or None)."""
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    todo = list(pending(out, plan, shards))
    kept = [shard for shard in shards if shard not in todo]
    total = sum(plan.bounds(shard)[1] - plan.bounds(shard)[0] for shard in todo)
    with tqdm(total=total, unit="img", unit_scale=True, desc="digits", disable=not progress or None) as bar:
        for shard in todo:
            start, stop = plan.bounds(shard)
            chunks = client.stream_digits(stop, _family(plan), plan.seed, digit=plan.digit, balanced=plan.balanced,
                                          chunk=chunk, start_index=start, truncation=plan.truncation,
                                          min_confidence=plan.min_confidence, version=plan.version)
            write_shard(out, plan, shard, chunks, bar.update)
    return kept, todo, write_manifest(out, plan)


def _family(plan: Plan) -> str:
    """The genserve.v1 model name of ``plan.model``: "cgan_generator" -> "cgan"."""
    return plan.model.split("_")[0]
