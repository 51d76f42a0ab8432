"""The Classification Accuracy Score (Ravuri and Vinyals, 2019) of a served conditional
generator: draw a balanced labelled dataset through a genserve server, train the
project's digit classifier recipe on it alone, and test that classifier on the real
MNIST test set, beside the same recipe trained on real data.

``python -m trainer cas --model cgan|cvae [--target HOST:PORT] [--min-confidence 0.9]``
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from client import GenerativeClient
from client.dataset import IMAGES_MAGIC, LABELS_MAGIC, idx_bytes

from .checkpoints import load as load_checkpoint
from .data import DEFAULT_DATA_DIR, SPLIT_FILES, _find
from .pictures import save_grid
from .recipes import recipe_for
from .train import train

log = logging.getLogger(__name__)
FAMILIES = {"cgan": "gan", "cvae": "vae"}


def draw(target: str, model: str, n: int, seed: int, min_confidence: float | None, progress: bool
         ) -> tuple[np.ndarray, np.ndarray, dict]:
    """``n`` balanced digits (image i shows digit i mod 10) and what drew them."""
    from tqdm import tqdm

    images, labels = np.empty((n, 28, 28), np.uint8), np.empty(n, np.int64)
    drawn: dict = {"redrawn": 0, "unmet": 0}
    with GenerativeClient(target) as client, tqdm(total=n, unit="img", unit_scale=True, desc=f"{model} digits",
                                                  disable=not progress or None) as bar:
        for chunk in client.stream_digits(n, FAMILIES[model], seed, balanced=True,
                                          min_confidence=min_confidence):
            rows = slice(chunk.first_index, chunk.first_index + len(chunk.images))
            images[rows], labels[rows] = chunk.images, chunk.digits
            drawn.update(model=chunk.model, version=chunk.version)
            drawn["redrawn"] += chunk.redrawn
            drawn["unmet"] += chunk.unmet
            bar.update(len(chunk.images))
    return images, labels, drawn


def _data_dir(folder: Path, images: np.ndarray, labels: np.ndarray, real: Path) -> Path:
    """A folder the trainer reads: these images as the training split, the real test split."""
    folder.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = SPLIT_FILES["train"]
    (folder / f"{train_images}.gz").write_bytes(idx_bytes(images, IMAGES_MAGIC))
    (folder / f"{train_labels}.gz").write_bytes(idx_bytes(labels, LABELS_MAGIC))
    for stem in SPLIT_FILES["test"]:
        source = _find(real, stem)
        shutil.copyfile(source, folder / source.name)
    return folder


def _accuracy(run_dir: Path, data_dir: Path, profile: str, epochs: int | None, seed: int, progress: bool) -> float:
    recipe = recipe_for(profile, "classifier", epochs=epochs)
    checkpoint = train("classifier", recipe, run_dir, data_dir=data_dir, seed=seed, progress=progress)
    return float(load_checkpoint(checkpoint)["metrics"]["test_accuracy"])


def score(target: str, model: str, run_dir: Path, n: int = 60_000, seed: int = 0,
          min_confidence: tuple[float | None, ...] = (None, 0.9), profile: str = "full", epochs: int | None = None,
          data_dir: Path = DEFAULT_DATA_DIR, progress: bool = True) -> dict:
    """CAS of ``model`` ("cgan" or "cvae") for each ``min_confidence`` (None: no
    redraws), as accuracies in [0, 1]."""
    report: dict = {"model": model, "synthetic": []}
    for least in min_confidence:
        name = "plain" if least is None else f"min_confidence-{least:g}"
        images, labels, drawn = draw(target, model, n, seed, least, progress)
        folder = _data_dir(run_dir / f"{model}-{name}" / "data", images, labels, data_dir)
        save_grid(images[:100], run_dir / f"{model}-{name}" / "first_100.png", ncol=10)
        accuracy = _accuracy(run_dir / f"{model}-{name}", folder, profile, epochs, seed, progress)
        log.info("%s %s: CAS %.2f %%", model, name, 100 * accuracy)
        report["synthetic"].append({"min_confidence": least, "cas": accuracy, **drawn})
    return report


def real_accuracy(run_dir: Path, profile: str = "full", epochs: int | None = None, seed: int = 0,
                  data_dir: Path = DEFAULT_DATA_DIR, progress: bool = True) -> float:
    """The same recipe trained on the real training set: what CAS is measured against."""
    accuracy = _accuracy(run_dir / "real", data_dir, profile, epochs, seed, progress)
    log.info("real training images: accuracy %.2f %%", 100 * accuracy)
    return accuracy
