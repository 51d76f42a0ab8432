"""When a model's batcher holds a batch back to gather more requests, under load
(docs/serving.md, "Gathering under load"): the policy's state and its decisions. It
reads no clock itself: the batcher passes the time (``time.monotonic()``) and the
event loop's CPU time (``time.thread_time()``), so that tests can drive it."""

from __future__ import annotations

import collections

GAP_FACTOR = 2.0  # a gather ends when no request arrived for this many usual gaps
# A gather's wait in which the event loop was busy for less than this share of the time
# was an idle gap, with no request on its way; a busier one was spent answering the
# last batch, with arrivals behind it.
IDLE_WAIT_BUSY = 0.5
RECENT_GATHERS = 16  # gathers whose sizes say how many requests usually come
# A gather is capped at the largest recent one (a fixed set of callers has then all
# arrived); once in this many seconds one goes uncapped, since only a gather that does
# not stop at the cap can notice more callers.
UNCAPPED_EVERY = 0.1
MISSES_TO_STOP = 3  # gathers in a row that no request joins before gathering stops
# While gathering does not pay, a request is held now and then to see whether others
# join it: PROBE_FIRST seconds after the last try at first, each try that none joins
# doubling the wait up to PROBE_MAX, so that a lone caller is held once every few seconds.
PROBE_FIRST = 0.1
PROBE_MAX = 3.2
# A try needs the event loop to have been busy for at least this share of the time since
# the last run ended: a lone caller's next request finds it idle, and could only wait.
BUSY_TO_PROBE = 0.5


class Gathering:
    def __init__(self, max_gather: float, max_queue: int):
        self.max_gather = max_gather  # seconds a batch may be held at most
        self.max_queue = max_queue
        self.gathering = False  # gathers have been joined by other requests
        self.probing = False  # a request was queued to try gathering again
        self._misses = 0  # gathers in a row that no request joined
        self._recent_sizes: collections.deque[int] = collections.deque(maxlen=RECENT_GATHERS)
        self._last_probe = 0.0
        self._probe_every = PROBE_FIRST  # seconds from one try to the next
        self._done_at = 0.0  # when the last run ended
        self._done_cpu = 0.0  # the event loop's CPU time then
        self._last_uncapped = 0.0  # when a gather last went uncapped
        self._arrival_gap: float | None = None  # moving average of seconds between arrivals

    @property
    def pending(self) -> bool:
        """Whether the next batch is gathered."""
        return self.gathering or self.probing

    def run_done(self, now: float, cpu: float) -> None:
        """A run ended at ``now``, with the event loop's CPU time at ``cpu``."""
        self._done_at, self._done_cpu = now, cpu

    def should_start(self, now: float, cpu: float) -> bool:
        """Whether a request reaching the idle model, with nothing queued, starts a gather:
        while gathering pays, and now and then while it does not (a try)."""
        if self.gathering:
            return True
        if now - self._last_probe < self._probe_every:
            return False
        if cpu - self._done_cpu < BUSY_TO_PROBE * (now - self._done_at):
            return False
        self._last_probe, self.probing = now, True
        return True

    def first_gap(self) -> float:
        """How long a gather first waits for the next arrival."""
        return self.max_gather / 4 if self._arrival_gap is None else GAP_FACTOR * self._arrival_gap

    def cap(self, queued: int, now: float) -> int:
        """Queued requests at which a gather ends at once."""
        usual = max(self._recent_sizes, default=self.max_queue)
        if queued >= usual or now - self._last_uncapped >= UNCAPPED_EVERY:
            usual, self._last_uncapped = self.max_queue, now
        return usual

    @staticmethod
    def idle_wait(cpu_spent: float, seconds: float) -> bool:
        """Whether a wait in which no request arrived was an idle gap (see IDLE_WAIT_BUSY)."""
        return cpu_spent < IDLE_WAIT_BUSY * seconds

    def arrived(self, count: int, seconds: float) -> float:
        """``count`` requests arrived over ``seconds``: learns the gap between arrivals and
        answers how long to wait for the next."""
        between = seconds / count
        self._arrival_gap = between if self._arrival_gap is None else 0.8 * self._arrival_gap + 0.2 * between
        return min(GAP_FACTOR * self._arrival_gap, self.max_gather)

    def ended(self, queued: int) -> None:
        """A gather that waited ended with ``queued`` requests: it paid if others joined."""
        if queued > 1:
            self._recent_sizes.append(queued)
            self.gathering, self._misses, self._probe_every = True, 0, PROBE_FIRST
            return
        if not self.gathering:
            self._probe_every = min(PROBE_MAX, 2 * self._probe_every)
        self._misses += 1
        self.gathering = self.gathering and self._misses < MISSES_TO_STOP
