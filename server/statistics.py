"""Per model version, what the Open Inference Protocol's statistics extension reports,
counted as Triton counts it: requests that succeeded and failed with their total time,
the time they queued, each run's input preparation, inference and output extraction,
runs by batch size, the rows inferred and the time of the last inference."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.ns += round(seconds * 1e9)


@dataclass
class BatchStatistics:
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


class ModelStatistics:
    """One model version's counts; updated from the event loop and the instances'
    threads, so every update holds the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.inference_count = 0  # rows of the requests that succeeded: each item of a batch counts
        self.execution_count = 0  # model runs
        self.last_inference_ms = 0  # milliseconds since the epoch; 0: never
        self.success, self.fail, self.queue = Duration(), Duration(), Duration()
        self.compute_input, self.compute_infer, self.compute_output = Duration(), Duration(), Duration()
        self.batches: dict[int, BatchStatistics] = {}

    def request(self, ok: bool, seconds: float, rows: int) -> None:
        with self._lock:
            if ok:
                self.success.add(seconds)
                self.inference_count += rows
                self.last_inference_ms = time.time_ns() // 1_000_000
            else:
                self.fail.add(seconds)

    def queued(self, seconds: float) -> None:
        with self._lock:
            self.queue.add(seconds)

    def executed(self, rows: int, inputs: float, infer: float, outputs: float) -> None:
        with self._lock:
            self.execution_count += 1
            batch = self.batches.get(rows)
            if batch is None:
                batch = self.batches[rows] = BatchStatistics()
            for total, part, seconds in ((self.compute_input, batch.compute_input, inputs),
                                         (self.compute_infer, batch.compute_infer, infer),
                                         (self.compute_output, batch.compute_output, outputs)):
                total.add(seconds)
                part.add(seconds)

    def snapshot(self) -> dict:
        """Triton's ModelStatistics fields (without name and version), as plain values."""
        def d(duration: Duration) -> dict:
            return {"count": duration.count, "ns": duration.ns}
        with self._lock:
            return {
                "last_inference": self.last_inference_ms, "inference_count": self.inference_count,
                "execution_count": self.execution_count,
                "inference_stats": {"success": d(self.success), "fail": d(self.fail), "queue": d(self.queue),
                                    "compute_input": d(self.compute_input), "compute_infer": d(self.compute_infer),
                                    "compute_output": d(self.compute_output),
                                    "cache_hit": d(Duration()), "cache_miss": d(Duration())},
                "batch_stats": [{"batch_size": size, "compute_input": d(b.compute_input),
                                 "compute_infer": d(b.compute_infer), "compute_output": d(b.compute_output)}
                                for size, b in sorted(self.batches.items())],
            }
