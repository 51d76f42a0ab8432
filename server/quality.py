"""Whether a generator draws digits, judged by the digit classifier served beside it.

The gate (``--quality-gate``): a new version of a generator is sampled at load, seeded,
and read by the classifier; a conditional one must draw the digit asked for at least
the gate's share of the time, an unconditional one must be read with a mean
confidence, and spread over the ten digits (the entropy of their shares over its
most, log 10), of at least the gate. The watch (``--quality-sample``): a share of the
images conditional generators serve is read off the request path into gauges per
model version.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from genserve.contract import DIGITS

from .metrics import Metrics
from .sampling import span

if TYPE_CHECKING:
    from .engine import Engine, LoadedModel

log = logging.getLogger(__name__)

GATE_PER_DIGIT = 200  # seeded samples per digit of a conditional generator at its gate
GATE_UNCONDITIONAL = 2000  # seeded samples of an unconditional one
GATE_SEED = 0
GATE_BATCH = 500  # rows per run of the gate's samples
WINDOW = 1000  # the latest sampled images each quality gauge is over
GENERATORS = {"sampler", "conditional_sampler", "decoder", "conditional_decoder"}


@dataclass(frozen=True)
class GateFigures:
    """What the classifier made of a generator's seeded samples."""
    samples: int
    agreement: float | None  # conditional: the share read as the digit asked for
    per_digit: tuple[float, ...]  # conditional: agreement per digit; otherwise the share of each digit
    confidence: float  # the classifier's mean probability of the digit it reads
    spread: float  # entropy of the digit shares / log 10: 1 when every digit is as common

    def describe(self) -> str:
        shares = " / ".join(f"{100 * p:.0f}" for p in self.per_digit)
        if self.agreement is not None:
            return (f"the classifier read {100 * self.agreement:.1f} % of {self.samples:,} seeded samples as the "
                    f"digit asked for (per digit 0-9, %: {shares})")
        return (f"the classifier's mean confidence {100 * self.confidence:.1f} %, spread over the digits "
                f"{self.spread:.2f} (share of each digit 0-9, %: {shares}) in {self.samples:,} seeded samples")

    def refusal(self, gate: float) -> str | None:
        """Why the gate refuses it, or None."""
        if self.agreement is not None:
            return None if self.agreement >= gate else f"agreement {self.agreement:.3f} is below the gate {gate:g}"
        if self.confidence < gate:
            return f"mean confidence {self.confidence:.3f} is below the gate {gate:g}"
        if self.spread < gate:
            return f"spread over the digits {self.spread:.3f} is below the gate {gate:g}"
        return None


def _probabilities(classifier: "LoadedModel", images: np.ndarray) -> np.ndarray:
    logits = classifier.session.run(None, classifier.feeds(images))[0].astype(np.float64)
    exp = np.exp(logits - logits.max(1, keepdims=True))
    return exp / exp.sum(1, keepdims=True)


def gate_figures(generator: "LoadedModel", classifier: "LoadedModel") -> GateFigures:
    """Seeded samples of ``generator`` (a version not yet served), run on its own session
    and read by ``classifier``'s: the same figures for the same two versions."""
    conditional = generator.role.startswith("conditional")
    count = GATE_PER_DIGIT * DIGITS if conditional else GATE_UNCONDITIONAL
    size = generator.contract.inputs[0].item_shape[0]
    latents = span(GATE_SEED, 0, count, size, generator.role.endswith("sampler"))
    wanted = np.arange(count, dtype=np.int64) % DIGITS
    read = []
    for start in range(0, count, GATE_BATCH):
        rows = latents[start:start + GATE_BATCH]
        if conditional:
            rows = generator.rows(rows, wanted[start:start + GATE_BATCH])
        images = generator.session.run(None, generator.feeds(rows))[0]
        read.append(_probabilities(classifier, images))
    probabilities = np.concatenate(read)
    digits = probabilities.argmax(1)
    shares = np.bincount(digits, minlength=DIGITS) / count
    spread = max(0.0, float(-(shares[shares > 0] * np.log(shares[shares > 0])).sum() / math.log(DIGITS)))
    confidence = float(probabilities.max(1).mean())
    if conditional:
        hits = digits == wanted
        per_digit = tuple(float(hits[wanted == d].mean()) for d in range(DIGITS))
        return GateFigures(count, float(hits.mean()), per_digit, confidence, spread)
    return GateFigures(count, None, tuple(float(s) for s in shares), confidence, spread)


class QualityWatch:
    """Reads a share of the images conditional generators serve, in the classifier's
    background lane, into rolling gauges per model version: agreement with the digit
    asked for, and the share of each digit read."""

    def __init__(self, engine: "Engine", share: float, metrics: Metrics):
        self.engine, self.share, self.metrics = engine, share, metrics
        self._windows: dict[tuple[str, int], deque] = {}  # (model, version) -> (asked, read) pairs
        self._tasks: set[asyncio.Task] = set()
        self._random = np.random.default_rng()

    def offer(self, model: "LoadedModel", floats: np.ndarray, digits: np.ndarray) -> None:
        """Called with every batch of images a conditional generator serves; takes each
        image with probability ``share``."""
        if model.role not in ("conditional_sampler", "conditional_decoder") or "digit_classifier" not in \
                self.engine.models:
            return
        taken = np.flatnonzero(self._random.random(len(digits)) < self.share)
        if not len(taken):
            return
        task = asyncio.get_running_loop().create_task(self._read(model, floats[taken], digits[taken]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self, model: "LoadedModel", floats: np.ndarray, asked: np.ndarray) -> None:
        classifier = self.engine.models.get("digit_classifier")
        if classifier is None:
            return
        try:
            probabilities = await self.engine.classify(classifier, floats, background=True)
        except Exception:  # a reading lost (the classifier reloading, the server stopping) is no error
            return
        key = (model.name, model.version.version)
        window = self._windows.setdefault(key, deque(maxlen=WINDOW))
        window.extend(zip(asked.tolist(), probabilities.argmax(1).tolist()))
        pairs = np.array(window)
        name, version = model.name, str(model.version.version)
        self.metrics.quality_sampled.labels(name, version).inc(len(asked))
        self.metrics.quality_agreement.labels(name, version).set(float((pairs[:, 0] == pairs[:, 1]).mean()))
        shares = np.bincount(pairs[:, 1], minlength=DIGITS) / len(pairs)
        for digit in range(DIGITS):
            self.metrics.quality_digit_share.labels(name, version, str(digit)).set(float(shares[digit]))

    async def close(self) -> None:
        """The readings still waiting, cancelled."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
