"""Concurrent model instances in the batcher, in process: batches run on as many threads
at once as there are instances and no more, a long batch that finds the model idle is
split across them, a failed part fails only its own callers, and each instance's thread
keeps to its cores. The model is a function that takes a known time, so that the
schedule can be read off; the real models' bytes are checked in e2e/test_batching.py."""

import asyncio
import os
import threading
import time

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from helpers import needs_two_cores
from server.batcher import Batcher
from server.metrics import Metrics
from server.settings import allowed_cores


class SlowModel:
    """Doubles its rows after ``seconds_per_row`` each; records what ran and how many at once."""

    def __init__(self, seconds_per_row: float, fail_on: int | None = None):
        self.seconds_per_row = seconds_per_row
        self.fail_on = fail_on
        self.runs: list[int] = []
        self.running = self.most_at_once = 0
        self.on_loop: list[bool] = []  # per run: whether it ran on the event loop's thread
        self.derived: list[bool] = []  # per run: whether it was asked for its derived outputs
        self._lock = threading.Lock()

    def __call__(self, rows: np.ndarray, derived: bool = True) -> list[np.ndarray]:
        with self._lock:
            self.runs.append(len(rows))
            self.derived.append(derived)
            self.on_loop.append(threading.current_thread() is threading.main_thread())
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(self.seconds_per_row * len(rows))
            if self.fail_on is not None and self.fail_on in rows:
                raise RuntimeError("this part failed")
            return [rows * 2]
        finally:
            with self._lock:
                self.running -= 1


def run_with(model: SlowModel, instances: int, calls):
    async def main():
        batcher = Batcher("slow", model, max_batch=64, max_delay=0, max_queue=64,
                          metrics=Metrics(CollectorRegistry()), instances=instances)
        try:
            return await calls(batcher), batcher
        finally:
            await batcher.close()
    return asyncio.run(main())


def rows(n: int, first: int = 0) -> np.ndarray:
    return np.arange(first, first + n, dtype=np.float32)[:, None]


def test_batches_run_on_as_many_instances_at_once_and_no_more():
    model = SlowModel(0.2e-3)  # 13 ms for a full batch: far above the inline limit

    async def calls(batcher):
        return await asyncio.gather(*(batcher.infer(rows(64, 100 * i)) for i in range(8)))

    results, batcher = run_with(model, 2, calls)
    assert model.most_at_once == 2, model.runs
    for i, (out,) in enumerate(results):
        assert np.array_equal(out, rows(64, 100 * i) * 2), f"caller {i}"
    assert batcher.idle


def test_one_instance_runs_one_batch_at_a_time():
    model = SlowModel(0.2e-3)

    async def calls(batcher):
        return await asyncio.gather(*(batcher.infer(rows(64, 100 * i)) for i in range(4)))

    run_with(model, 1, calls)
    assert model.most_at_once == 1


def test_a_long_batch_that_finds_the_model_idle_is_split_across_the_instances():
    model = SlowModel(0.1e-3)

    async def calls(batcher):
        await batcher.infer(rows(64))  # the batcher learns how long a row takes
        model.runs.clear()
        model.on_loop.clear()
        return await batcher.infer(rows(64, 1000))

    (out,), _ = run_with(model, 2, calls)
    assert sorted(model.runs) == [32, 32]
    assert sorted(model.on_loop) == [False, True]  # one part in a thread, the first on the event loop
    assert np.array_equal(out, rows(64, 1000) * 2)  # the parts are put back in order


def test_a_few_slow_rows_are_split_too():
    model = SlowModel(1e-3)  # 8 rows: 8 ms, like a VAE decoder's 16 rows

    async def calls(batcher):
        await batcher.infer(rows(8))
        model.runs.clear()
        return await batcher.infer(rows(8, 1000))

    (out,), _ = run_with(model, 2, calls)
    assert model.runs == [4, 4]
    assert np.array_equal(out, rows(8, 1000) * 2)


def test_a_short_batch_is_not_split():
    model = SlowModel(0.0)  # 64 rows in well under a millisecond: a split would cost more

    async def calls(batcher):
        for _ in range(30):  # enough runs that one preempted by a busy machine is forgotten
            await batcher.infer(rows(64))
        model.runs.clear()
        return await batcher.infer(rows(64))

    run_with(model, 2, calls)
    assert model.runs == [64]


def test_a_batch_of_many_requests_runs_on_the_event_loop_where_a_lone_one_of_its_length_does_not():
    model = SlowModel(50e-6)  # 50 rows: 2.5 ms, over INLINE_BELOW and under 50 x INLINE_PER_REQUEST

    async def main():
        # A queue delay lines the requests up into one batch.
        batcher = Batcher("slow", model, max_batch=64, max_delay=0.05, max_queue=64,
                          metrics=Metrics(CollectorRegistry()), instances=1)
        try:
            await batcher.infer(rows(50))  # the batcher learns how long a row takes
            many = await asyncio.gather(*(batcher.infer(rows(1, i)) for i in range(50)))
            await batcher.infer(rows(50))
            return many
        finally:
            await batcher.close()

    many = asyncio.run(main())
    assert model.runs[1:] == [50, 50]
    assert model.on_loop[1:] == [True, False]  # fifty requests on the loop; one of 50 rows in a thread
    assert [out[0][0, 0] for out in many] == [2 * i for i in range(50)]


def test_a_run_derives_its_extra_outputs_only_when_a_request_in_it_wants_them():
    model = SlowModel(10e-6)

    async def main():
        # A queue delay lines concurrent requests up into one batch.
        batcher = Batcher("slow", model, max_batch=64, max_delay=0.02, max_queue=64,
                          metrics=Metrics(CollectorRegistry()), instances=1)
        try:
            await batcher.infer(rows(2), derived=False)
            await asyncio.gather(batcher.infer(rows(1), derived=False), batcher.infer(rows(1, 5), derived=False))
            await asyncio.gather(batcher.infer(rows(1), derived=False), batcher.infer(rows(1, 5)))
        finally:
            await batcher.close()

    asyncio.run(main())
    assert model.runs == [2, 2, 2]
    assert model.derived == [False, False, True]


def test_a_failed_part_fails_its_callers_and_the_batcher_serves_on():
    model = SlowModel(0.1e-3, fail_on=1040)

    async def calls(batcher):
        await batcher.infer(rows(64))
        with pytest.raises(RuntimeError, match="this part failed"):
            await batcher.infer(rows(64, 1000))  # its second half holds 1040
        return await batcher.infer(rows(64, 2000))

    (out,), batcher = run_with(model, 2, calls)
    assert np.array_equal(out, rows(64, 2000) * 2)
    assert batcher.idle


def test_a_model_never_waits_behind_another_models_runs():
    slow, quick = SlowModel(1e-3), SlowModel(0.05e-3)  # 64 rows: 64 ms against 3.2 ms, both on threads

    async def main():
        metrics = Metrics(CollectorRegistry())
        batchers = [Batcher(name, model, max_batch=64, max_delay=0, max_queue=64, metrics=metrics, instances=1)
                    for name, model in (("slow", slow), ("quick", quick))]
        try:
            backlog = [asyncio.create_task(batchers[0].infer(rows(64, 100 * i))) for i in range(4)]
            while not slow.runs:  # the slow model's first run has started
                await asyncio.sleep(0.001)
            (out,) = await batchers[1].infer(rows(64))
            done_before = sum(task.done() for task in backlog)
            await asyncio.gather(*backlog)
            return out, done_before
        finally:
            for batcher in batchers:
                await batcher.close()

    out, done_before = asyncio.run(main())
    assert np.array_equal(out, rows(64) * 2)
    # Behind the slow model's runs, the quick one would be answered only after all four.
    assert done_before < 4, "the quick model waited for the slow model's backlog"


class AffinityModel(SlowModel):
    """Also records the cores each run's thread was allowed."""

    def __init__(self, seconds_per_row: float):
        super().__init__(seconds_per_row)
        self.affinities: list[tuple[bool, frozenset[int]]] = []  # (on the event loop, cores)

    def __call__(self, rows: np.ndarray, derived: bool = True) -> list[np.ndarray]:
        self.affinities.append((threading.current_thread() is threading.main_thread(),
                                frozenset(os.sched_getaffinity(0))))
        return super().__call__(rows, derived)


@needs_two_cores
def test_each_instance_thread_keeps_to_its_own_cores_and_the_event_loop_to_all():
    first, second = allowed_cores()[:2]
    cores = [frozenset({first}), frozenset({second})]
    model = AffinityModel(0.2e-3)

    async def main():
        batcher = Batcher("slow", model, max_batch=64, max_delay=0, max_queue=64,
                          metrics=Metrics(CollectorRegistry()), instances=2, cores=cores)
        try:
            await batcher.infer(rows(64))  # learns the row time
            await batcher.infer(rows(16))  # finds the model idle: split, its first part on the loop
            return await asyncio.gather(*(batcher.infer(rows(64, 100 * i)) for i in range(8)))
        finally:
            await batcher.close()

    results = asyncio.run(main())
    for i, (out,) in enumerate(results):
        assert np.array_equal(out, rows(64, 100 * i) * 2), f"caller {i}"
    in_threads = {allowed for on_loop, allowed in model.affinities if not on_loop}
    on_loop = {allowed for on_loop, allowed in model.affinities if on_loop}
    assert in_threads == set(cores), model.affinities  # both instances ran, each on its own core
    assert on_loop == {frozenset(allowed_cores())}  # the event loop is not pinned


@needs_two_cores
def test_without_cores_the_instance_threads_are_left_to_the_os():
    model = AffinityModel(0.2e-3)

    async def calls(batcher):
        return await asyncio.gather(*(batcher.infer(rows(64, 100 * i)) for i in range(4)))

    run_with(model, 2, calls)
    assert {allowed for _, allowed in model.affinities} == {frozenset(allowed_cores())}


def spin(seconds: float) -> None:
    """Keeps this thread busy on the CPU, as work on the event loop does."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


def gathering_batcher(model: SlowModel, metrics: Metrics) -> Batcher:
    return Batcher("slow", model, max_batch=64, max_delay=0, max_queue=64, metrics=metrics,
                   max_gather=5e-3, instances=1)


def test_a_lone_caller_with_idle_gaps_is_never_held_to_gather():
    model, registry = SlowModel(0.1e-3), CollectorRegistry()

    def queued_seconds():
        return registry.get_sample_value("genserve_queue_duration_seconds_sum", {"model": "slow"})

    async def main():
        batcher = gathering_batcher(model, Metrics(registry))
        try:
            await batcher.infer(rows(1))  # the batcher learns the row time
            before = queued_seconds()
            for i in range(40):  # 0.6 s: several probe periods
                await asyncio.sleep(0.015)  # the round trip to the caller, with the event loop idle
                await batcher.infer(rows(1, i))
            return before
        finally:
            await batcher.close()

    before = asyncio.run(main())
    assert model.runs == [1] * 41
    # Every call ran at once: none waited in the queue for others that were not coming.
    assert queued_seconds() == before


def test_a_lone_caller_on_a_busy_event_loop_is_held_more_and_more_rarely():
    model, registry = SlowModel(0.1e-3), CollectorRegistry()

    def held() -> float:  # calls that waited in the queue: one that runs at once waits 0
        def sample(name, **labels):
            return registry.get_sample_value(f"genserve_queue_duration_seconds_{name}", {"model": "slow", **labels})
        return sample("count") - sample("bucket", le="0.0005")

    async def main():
        batcher = gathering_batcher(model, Metrics(registry))
        times = []
        try:
            await batcher.infer(rows(1))  # the batcher learns the row time
            started, seen = time.monotonic(), held()
            while time.monotonic() - started < 1.6:
                spin(1e-3)  # the round trip, with the event loop busy (gRPC's own work)
                await batcher.infer(rows(1))
                if held() > seen:
                    seen = held()
                    times.append(time.monotonic() - started)
        finally:
            await batcher.close()
        return times

    times = asyncio.run(main())
    # Tries at 0, 0.1, 0.3, 0.7 and 1.5 s: each that none joins doubles the wait for the next,
    # where a fixed period would have held 16 calls.
    assert 1 <= len(times) <= 5, times
    assert all(later - earlier > 0.15 for earlier, later in zip(times[1:], times[2:])), times


def test_callers_that_keep_the_event_loop_busy_are_gathered():
    model = SlowModel(0.1e-3)

    async def main():
        batcher = gathering_batcher(model, Metrics(CollectorRegistry()))

        async def caller(first):
            for i in range(40):
                await batcher.infer(rows(1, first + i))
                time.sleep(0.2e-3)  # answering on the event loop's own time

        try:
            await asyncio.gather(*(caller(100 * c) for c in range(8)))
        finally:
            await batcher.close()

    asyncio.run(main())
    assert max(model.runs) > 1, model.runs
