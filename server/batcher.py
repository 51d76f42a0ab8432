"""Dynamic batching, as Triton does it: concurrent requests for one model are merged
into one onnxruntime run of up to ``max_batch`` rows and split back per request. Rows
never influence each other: a request gets the same bytes alone or in a batch.

Short runs happen on the event loop itself; longer ones go to ``instances`` threads
(Triton's instance count), one core each, and a long batch that finds the model idle is
split across them. Under load, batches of short runs are *gathered*: held while
requests keep arriving, for at most ``max_gather``, and only while that pays.
docs/serving.md describes the policy; docs/performance.md measures it.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Sequence

import numpy as np

from .errors import DeadlineExceeded, QueueFull
from .gathering import Gathering
from .metrics import Metrics
from .tracing import Tracing, now_ns

log = logging.getLogger(__name__)

# A run function: the outputs for rows; with ``derived``, also what it derives from them
# (an image model's uint8 pixels), which a batch asks for when any of its requests does.
RunFn = Callable[[np.ndarray, bool], list[np.ndarray]]
# A run expected to take less than this runs on the event loop (the model's one-thread
# session, ``run_short``): a thread hand-off costs more than a batch-1 run.
INLINE_BELOW = 2e-3  # seconds
# A batch of many requests may run on the loop for longer, per request it holds, up to
# INLINE_MAX: taking in and answering such a batch costs the loop more than the run.
INLINE_PER_REQUEST = 80e-6  # seconds
INLINE_MAX = 5e-3  # seconds
# One batch waits behind each running one, so that a finished instance starts the next
# at once instead of waiting for the event loop to hand it over.
IN_FLIGHT_PER_INSTANCE = 2
SPLIT_ABOVE = 1e-3  # seconds: a batch expected to run longer is split across idle instances
# The least a part of a split batch may be expected to run: shorter parts lose more to
# fixed costs than the split gains. By time, not rows, since models' rows differ in cost.
MIN_PART_SECONDS = 0.5e-3
# A stream's rows run in slices expected to take about this long: the most a stream
# delays an ordinary call that arrives while it runs.
BACKGROUND_SLICE = 2e-3  # seconds
BACKGROUND_FIRST_ROWS = 32  # a slice's rows before the model's speed is known
QUIET_AFTER = 0.5  # seconds without an ordinary call after which streams take every instance
BACKGROUND_REST = 1.0  # while ordinary calls come, a stream rests this times its slice's run after it


class Run(NamedTuple):
    """One measured model run: its outputs, its duration, and its start on the spans' clock."""
    outputs: list[np.ndarray]
    seconds: float
    started_ns: int

    @property
    def ended_ns(self) -> int:
        return self.started_ns + round(self.seconds * 1e9)


@dataclass
class _Item:
    rows: np.ndarray
    future: asyncio.Future
    deadline: float | None  # time.monotonic() after which nobody waits for the answer
    derived: bool = True  # its caller wants the run's derived outputs
    trace: object = None  # the caller's trace context, where traces are on
    queued: float = field(default_factory=time.monotonic)
    queued_ns: int = 0  # the same moment on the spans' clock, where traces are on


class Batcher:
    def __init__(self, name: str, run: RunFn, *, max_batch: int, max_delay: float, max_queue: int,
                 metrics: Metrics, run_short: RunFn | None = None,
                 max_gather: float = 0.0, instances: int = 1, cores: Sequence[frozenset[int]] | None = None,
                 tracing: Tracing | None = None, on_queued: Callable[[float], None] | None = None):
        self.name = name
        self._tracing = tracing
        self._run = run
        self._run_short = run_short or run
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.max_queue = max_queue
        self.max_gather = max_gather
        self.instances = instances
        # A pool per model, one thread per instance: a model's queue never waits behind
        # another model's runs. With ``cores``, each thread keeps to cores of its own, so
        # that two runs never share a core while another sits idle.
        self._executor = ThreadPoolExecutor(max_workers=instances, thread_name_prefix=f"{name}-run",
                                            initializer=_pinning(name, cores) if cores else None)
        # This model's series, looked up once: a label lookup per request costs more than the observation.
        self._queue_seconds = metrics.queue_seconds.labels(name)
        self._queue_depth = metrics.queue_depth.labels(name)
        self._queue_rejections = metrics.queue_rejections.labels(name)
        self._on_queued = on_queued or (lambda seconds: None)  # each request's time in the queue
        self._queue: collections.deque[_Item] = collections.deque()
        self._background: collections.deque[_Item] = collections.deque()  # streams' slices
        self._background_in_flight = 0  # of _in_flight, the streams' slices
        self._last_ordinary = -math.inf  # time.monotonic() of the latest ordinary request
        self._background_resume = 0.0  # time.monotonic() before which no stream slice starts
        self._queued_rows = 0
        self._wake: asyncio.Event | None = None
        self._full: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._seconds_per_row: float | None = None  # moving average, for the inline decision
        self._busy = False  # a run is in progress on the event loop
        self._in_flight = 0  # parts of batches handed to threads, running or waiting for one
        self._handed_back: asyncio.Event | None = None  # set when a part finishes
        self._runs: set[asyncio.Task] = set()  # referenced until done, as asyncio asks
        self._policy = Gathering(max_gather, max_queue)
        self._arrived: asyncio.Future | None = None  # what a gather waits on
        self._enough = 0  # queued requests at which a gather ends at once

    async def infer(self, rows: np.ndarray, deadline: float | None = None, derived: bool = True
                    ) -> list[np.ndarray]:
        """The model's outputs for ``rows`` (with ``derived``, the derived ones after them; without,
        they may still come when the run shares a batch with a call that wants them); a
        request over ``max_batch`` rows runs in chunks."""
        self._last_ordinary = time.monotonic()
        gather = self._wants_to_gather()
        if not gather and self._can_run_now(len(rows)):
            # Idle, nothing queued, no delay asked for and a short run: the batch would be
            # this request alone, so skip the hand-over to the batching task and back.
            self._queue_seconds.observe(0.0)
            self._on_queued(0.0)
            run = self._run_inline(rows, derived)
            if self._tracing is not None:
                self._tracing.record(self._tracing.current(), self.name, run.started_ns, run.started_ns,
                                     run.ended_ns, len(rows), 1, 1)
            return run.outputs
        chunks = [rows[i:i + self.max_batch] for i in range(0, len(rows), self.max_batch)]
        # The bound counts waiting chunks; a request is admitted whole while there is room,
        # so that a request of more chunks than the bound is not refused forever.
        if len(self._queue) >= self.max_queue:
            self._queue_rejections.inc()
            raise QueueFull(f"{self.name}: the queue holds its maximum of {self.max_queue} requests; "
                            "retry later or add replicas")
        self._start()
        loop = asyncio.get_running_loop()
        futures = []
        trace = self._tracing.current() if self._tracing is not None else None
        for chunk in chunks:
            item = _Item(chunk, loop.create_future(), deadline, derived, trace)
            if trace is not None:
                item.queued_ns = now_ns()
            self._queue.append(item)
            self._queued_rows += len(chunk)
            futures.append(item.future)
        self._queue_depth.set(len(self._queue))
        self._wake.set()
        if (self._arrived is not None and not self._arrived.done()
                and (len(self._queue) >= self._enough or self._queued_rows >= self.max_batch)):
            self._arrived.set_result(True)
        if self._queued_rows >= self.max_batch:
            self._full.set()
        if len(futures) == 1:
            return await futures[0]
        parts = await asyncio.gather(*futures)
        return [np.concatenate(outputs) for outputs in zip(*parts)]

    async def infer_background(self, rows: np.ndarray, deadline: float | None = None, derived: bool = True
                               ) -> list[np.ndarray]:
        """``infer`` for a stream's rows, at a lower priority: a slice runs only while no
        ordinary request is queued, always on an instance's thread, and while ordinary calls
        come (within QUIET_AFTER) slices last about BACKGROUND_SLICE and leave one instance
        free, so that an ordinary call waits behind one slice at most; while none come, the
        rows run in one slice per instance."""
        if self._quiet():
            size = -(-len(rows) // self.instances)
        else:
            size = BACKGROUND_FIRST_ROWS if self._seconds_per_row is None else max(
                1, int(BACKGROUND_SLICE / self._seconds_per_row))
        parts = await asyncio.gather(*(self._enqueue_background(rows[i:i + size], deadline, derived)
                                       for i in range(0, len(rows), size)))
        return parts[0] if len(parts) == 1 else [np.concatenate(outputs) for outputs in zip(*parts)]

    def _background_slots(self) -> int:
        """Stream slices that may run at once: every instance while no ordinary call has
        come for QUIET_AFTER, else all but one."""
        if self.instances == 1 or self._quiet():
            return self.instances
        return self.instances - 1

    def _quiet(self) -> bool:
        """No ordinary call for QUIET_AFTER."""
        return time.monotonic() - self._last_ordinary > QUIET_AFTER

    async def _enqueue_background(self, rows: np.ndarray, deadline: float | None, derived: bool
                                  ) -> list[np.ndarray]:
        self._start()
        item = _Item(rows, asyncio.get_running_loop().create_future(), deadline, derived)
        self._background.append(item)
        self._wake.set()
        return await item.future

    def _start(self) -> None:
        if self._worker is None:
            self._wake, self._full, self._handed_back = asyncio.Event(), asyncio.Event(), asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._serve(), name=f"batcher-{self.name}")

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing running."""
        return not self._queue and not self._background and not self._busy and not self._in_flight

    async def close(self) -> None:
        tasks = [task for task in (self._worker, *self._runs) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._executor.shutdown(wait=False)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            while self._in_flight >= self.instances * IN_FLIGHT_PER_INSTANCE:
                self._handed_back.clear()
                await self._handed_back.wait()
            if self.max_delay > 0 and self._queue and self._queued_rows < self.max_batch:
                wait = self._queue[0].queued + self.max_delay - time.monotonic()
                if wait > 0:
                    try:
                        await asyncio.wait_for(self._full.wait(), wait)
                    except asyncio.TimeoutError:
                        pass
            elif self._policy.pending and self._queue and self._queued_rows < self.max_batch:
                await self._gather(loop)
            self._policy.probing = False
            batch = self._take()
            room = (self._background_in_flight < self._background_slots()
                    and time.monotonic() >= self._background_resume)
            background = not batch and not self._queue and bool(self._background) and room
            if background:
                batch = self._take_background()
            if not self._queue and not (self._background and room):
                self._wake.clear()  # a slice's end wakes the loop for the next
            if self._queued_rows < self.max_batch:
                self._full.clear()
            self._queue_depth.set(len(self._queue))
            if not batch:
                continue
            rows = batch[0].rows if len(batch) == 1 else np.concatenate([item.rows for item in batch])
            derived = any(item.derived for item in batch)
            if not background and self._is_small(len(rows), len(batch)) and not self._ordinary_in_flight:
                try:
                    run = self._run_inline(rows, derived)
                except Exception as exc:  # a failed run fails its callers, never the batcher
                    _fail(batch, exc)
                    continue
                if self._tracing is not None:
                    self._trace(batch, len(rows), run.started_ns, run.ended_ns, 1)
                _answer(batch, run.outputs)
            else:
                parts = 1 if background else self._parts(len(rows))
                self._in_flight += parts
                self._background_in_flight += background
                task = loop.create_task(self._run_parts(loop, batch, rows, parts, derived, background))
                self._runs.add(task)
                task.add_done_callback(self._runs.discard)

    def _parts(self, rows: int) -> int:
        """How many instances a batch runs on: all of them when it finds the model idle
        and is long enough to gain, otherwise one."""
        if (self._in_flight or self.instances == 1 or self._seconds_per_row is None
                or self._seconds_per_row * rows < SPLIT_ABOVE):
            return 1
        return max(1, min(self.instances, rows, int(self._seconds_per_row * rows / MIN_PART_SECONDS)))

    async def _run_parts(self, loop: asyncio.AbstractEventLoop, batch: list[_Item], rows: np.ndarray,
                         parts: int, derived: bool, background: bool = False) -> None:
        started = time.monotonic()
        try:
            await self._run_split(loop, batch, rows, parts, derived)
        finally:
            if background:
                self._background_in_flight -= 1
                # While ordinary calls come, a stream rests as long as its slice ran: it takes
                # at most half of the instances it may use, and the cores stay free for them.
                rest = 0.0 if self._quiet() else BACKGROUND_REST * (time.monotonic() - started)
                self._background_resume = time.monotonic() + rest
                if self._background:
                    loop.call_later(rest, self._wake.set) if rest else self._wake.set()

    async def _run_split(self, loop: asyncio.AbstractEventLoop, batch: list[_Item], rows: np.ndarray,
                         parts: int, derived: bool) -> None:
        step = -(-len(rows) // parts)
        # A split batch found the model idle; its first part runs on the event loop itself,
        # no longer than an inline run may, so that it waits for no thread to wake.
        here = parts > 1 and self._seconds_per_row * step < INLINE_MAX
        pending = [loop.run_in_executor(self._executor, self._measured_run, rows[i:i + step], derived)
                   for i in range(step if here else 0, len(rows), step)]
        for part in pending:
            part.add_done_callback(self._hand_back)
        first = []
        if here:
            try:
                first.append(self._measured_run(rows[:step], derived))
            except Exception as exc:
                first.append(exc)
            self._hand_back(None)
        results = first + await asyncio.gather(*pending, return_exceptions=True)
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:  # a failed run fails its callers, never the batcher
            _fail(batch, failed)
            return
        for part, run in zip(range(0, len(rows), step), results):
            self._learn(rows[part:part + step], run.seconds)
        self._note_done()
        outputs = results[0].outputs if parts == 1 else [np.concatenate(p) for p in zip(*(r.outputs for r in results))]
        if self._tracing is not None:
            self._trace(batch, len(rows), min(r.started_ns for r in results), max(r.ended_ns for r in results),
                        parts)
        _answer(batch, outputs)

    def _hand_back(self, _: asyncio.Future | None) -> None:
        self._in_flight -= 1
        self._handed_back.set()

    def _measured_run(self, rows: np.ndarray, derived: bool, short: bool = False) -> Run:
        """A run (``short``: on the one-thread session) with its own duration and start (on
        the spans' clock): for a thread's run, the time until the event loop hears of it
        would count the loop's other work too."""
        started_ns, started = now_ns(), time.perf_counter()
        outputs = (self._run_short if short else self._run)(rows, derived)
        return Run(outputs, time.perf_counter() - started, started_ns)

    def _trace(self, batch: list[_Item], rows: int, started_ns: int, ended_ns: int, parts: int) -> None:
        for item in batch:
            if item.trace is not None:
                self._tracing.record(item.trace, self.name, item.queued_ns, started_ns, ended_ns, rows, len(batch),
                                     parts)

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hold the queued batch while requests keep arriving (the policy is Gathering's)."""
        policy = self._policy
        until = self._queue[0].queued + self.max_gather
        gap = policy.first_gap()
        last_look = now = time.monotonic()
        # Arrivals wake the gather only once it has enough; otherwise it looks at the queue
        # when each wait of one gap ends, sparing small requests a task step each.
        usual = self._enough = policy.cap(len(self._queue), now)
        waited = False
        while self._queued_rows < self.max_batch and len(self._queue) < usual:
            now = time.monotonic()
            timeout = min(gap, until - now)
            if timeout <= 0:
                break
            waited = True
            queued, busy_since = len(self._queue), time.thread_time()
            self._arrived = loop.create_future()
            timer = loop.call_later(timeout, _settle, self._arrived)
            try:
                await self._arrived
            finally:
                timer.cancel()
                self._arrived = None
            if len(self._queue) == queued:
                if policy.idle_wait(time.thread_time() - busy_since, time.monotonic() - now):
                    break
                continue
            now = time.monotonic()
            gap = policy.arrived(len(self._queue) - queued, now - last_look)
            last_look = now
        if waited:  # one whose time had passed while it queued behind a run says nothing of arrivals
            policy.ended(len(self._queue))

    def _wants_to_gather(self) -> bool:
        """Whether a request arriving now starts a gather: only at an idle model with nothing
        queued, when gathering is on and no fixed delay replaces it, as the policy decides."""
        if self.max_gather <= 0 or self.max_delay > 0 or self._busy or self._in_flight or self._queue:
            return False
        return self._policy.should_start(time.monotonic(), time.thread_time())

    def _is_small(self, rows: int, requests: int = 1) -> bool:
        """Whether a batch runs on the event loop rather than in an instance's thread."""
        limit = min(INLINE_MAX, max(INLINE_BELOW, requests * INLINE_PER_REQUEST))
        return self._seconds_per_row is not None and self._seconds_per_row * rows < limit

    @property
    def _ordinary_in_flight(self) -> int:
        """Parts of ordinary batches handed to threads: a stream's slices do not hold back
        an ordinary call's run on the event loop."""
        return self._in_flight - self._background_in_flight

    def _can_run_now(self, rows: int) -> bool:
        return (self.max_delay == 0 and not self._busy and not self._ordinary_in_flight and not self._queue
                and rows <= self.max_batch and self._is_small(rows))

    def _run_inline(self, rows: np.ndarray, derived: bool) -> Run:
        """A run on the event loop itself, for runs shorter than a thread hand-over."""
        self._busy = True
        try:
            run = self._measured_run(rows, derived, short=True)
        finally:
            self._busy = False
        self._learn(rows, run.seconds)
        self._note_done()
        return run

    def _note_done(self) -> None:
        """A run has ended; called on the event loop's thread."""
        self._policy.run_done(time.monotonic(), time.thread_time())

    def _learn(self, rows: np.ndarray, seconds: float) -> None:
        per_row = seconds / len(rows)
        self._seconds_per_row = per_row if self._seconds_per_row is None else (
            0.9 * self._seconds_per_row + 0.1 * per_row)

    def _take_background(self) -> list[_Item]:
        """The next stream slice still awaited, alone."""
        while self._background:
            item = self._background.popleft()
            if item.future.done():  # its stream ended
                continue
            now = time.monotonic()
            if item.deadline is not None and now >= item.deadline:
                item.future.set_exception(DeadlineExceeded(f"{self.name}: the stream's deadline passed"))
                continue
            self._queue_seconds.observe(now - item.queued)
            self._on_queued(now - item.queued)
            return [item]
        return []

    def _take(self) -> list[_Item]:
        """The next batch: queued requests in order up to ``max_batch`` rows, leaving out
        those whose caller went away or whose deadline passed."""
        batch: list[_Item] = []
        rows = 0
        now = time.monotonic()
        while self._queue and rows + len(self._queue[0].rows) <= self.max_batch:
            item = self._queue.popleft()
            self._queued_rows -= len(item.rows)
            if item.future.done():  # cancelled while queued
                continue
            if item.deadline is not None and now >= item.deadline:
                item.future.set_exception(DeadlineExceeded(
                    f"{self.name}: the deadline passed after {now - item.queued:.3f} s in the queue"))
                continue
            self._queue_seconds.observe(now - item.queued)
            self._on_queued(now - item.queued)
            batch.append(item)
            rows += len(item.rows)
        return batch


def _answer(batch: list[_Item], outputs: list[np.ndarray]) -> None:
    """Each caller its own rows of the batch's outputs."""
    start = 0
    for item in batch:
        stop = start + len(item.rows)
        if not item.future.done():
            item.future.set_result([out[start:stop] for out in outputs])
        start = stop


def _fail(batch: list[_Item], exc: Exception) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(exc)


def _pinning(name: str, cores: Sequence[frozenset[int]]) -> Callable[[], None]:
    """An initializer for the instances' threads: each new thread takes the next
    instance's cores (the pool starts its threads one at a time)."""
    instance = itertools.count()

    def pin() -> None:
        chosen = cores[next(instance) % len(cores)]
        try:
            os.sched_setaffinity(0, chosen)  # 0: the calling thread
        except OSError as exc:  # a core taken away since start; an unpinned thread still serves
            log.warning("%s: cannot pin an instance's thread to cores %s: %s", name, sorted(chosen), exc)

    return pin


def _settle(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(False)
