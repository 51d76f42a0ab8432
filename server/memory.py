"""Hands the heap's free memory back to the kernel once the server sits idle after
work. glibc keeps what large batches freed (its mmap threshold grows with the largest
block freed, so later large blocks come from the heap, and each thread's arena keeps
its own), so without this a burst of the largest requests would set RSS for good."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from typing import Callable

log = logging.getLogger(__name__)

IDLE_CHECK = 1.0  # seconds between looks at whether the server has gone idle after work


def _malloc_trim() -> Callable[[], None] | None:
    """glibc's malloc_trim(0), or None where the C library has none."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


async def trim_when_idle(calls: Callable[[], int], busy: Callable[[], bool], interval: float = IDLE_CHECK) -> None:
    """Forever: once no call is running and some ran since the last trim, trim the heap
    (in a thread: it walks every arena). ``calls`` counts the calls so far."""
    trim = _malloc_trim()
    if trim is None:
        log.info("no malloc_trim in this C library: freed memory stays with the process")
        return
    trimmed_at = calls()
    while True:
        await asyncio.sleep(interval)
        seen = calls()
        if seen != trimmed_at and not busy():
            trimmed_at = seen
            await asyncio.to_thread(trim)
