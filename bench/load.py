"""A closed-loop load generator: ``concurrency`` callers on one event loop, each
sending its next request as soon as the last one is answered, until ``requests``
have been sent. Latency percentiles are of the whole call as the caller sees it."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import numpy as np

from genserve.cli import OneLineParser, positive_int

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(limit: int = 64 << 20) -> bool:
    """Let this process's malloc keep freed memory for reuse instead of handing it back
    to the kernel. By default glibc trims the free top of its heap beyond twice the
    largest block freed so far, so the large buffers of each big answer land in fresh
    pages, and the page faults take CPU from the server being measured on the same cores.
    Only for the load generator's own process: a client library has no business setting
    its caller's malloc. False where there is no glibc (the allocator stays as it is)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        return bool(libc.mallopt(_M_TRIM_THRESHOLD, limit) and libc.mallopt(_M_MMAP_THRESHOLD, limit // 4))
    except (OSError, AttributeError):
        return False


@dataclass
class Result:
    requests: int
    seconds: float
    latencies: np.ndarray  # seconds, one per request
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @classmethod
    def combine(cls, parts: list["Result"]) -> "Result":
        """One result of several runs of the same calls, as if they had run back to back."""
        return cls(sum(p.requests for p in parts), sum(p.seconds for p in parts),
                   np.concatenate([p.latencies for p in parts]), sum(p.errors for p in parts))

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if len(self.latencies) else float("nan")


async def drive(call: Callable[[int], Awaitable[object]], requests: int, concurrency: int) -> Result:
    latencies: list[float] = []
    errors = 0
    next_index = 0

    async def caller():
        nonlocal next_index, errors
        while next_index < requests:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            try:
                await call(index)
            except Exception:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(min(concurrency, requests))))
    return Result(requests, time.perf_counter() - started, np.array(latencies), errors)


def load_parser(prog: str, doc: str, requests: int) -> argparse.ArgumentParser:
    """The flags every load benchmark takes: the repository to serve, how many requests,
    how many callers at once."""
    from .processes import ROOT

    parser = OneLineParser(prog=prog, description=doc.splitlines()[0])
    parser.add_argument("--model-repository", default=str(ROOT / "models"))
    parser.add_argument("--requests", type=positive_int, default=requests)
    parser.add_argument("--concurrency", type=positive_int, default=64)
    return parser
