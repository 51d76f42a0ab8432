"""Concurrent model instances in the batcher: batches run on as many threads at once as
there are instances and no more, a long batch that finds the model idle is split across
them, and a failed part fails only its own callers. The model here is a function that
takes a known time, so that the schedule can be read off; the real models' bytes under
splitting are checked in test_batching.py."""

import asyncio
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

import server.settings
from client import GenerativeClient
from conftest import ROOT, ServerProcess
from server.batcher import Batcher
from server.metrics import Metrics
from server.settings import Settings, allowed_cores, available_cores

needs_two_cores = pytest.mark.skipif(not sys.platform.startswith("linux") or len(allowed_cores() or []) < 2,
                                     reason="pinning needs Linux and two cores")


class SlowModel:
    """Doubles its rows after ``seconds_per_row`` each; records what ran and how many at once."""

    def __init__(self, seconds_per_row: float, fail_on: int | None = None):
        self.seconds_per_row = seconds_per_row
        self.fail_on = fail_on
        self.runs: list[int] = []
        self.running = self.most_at_once = 0
        self.on_loop: list[bool] = []  # per run: whether it ran on the event loop's thread
        self._lock = threading.Lock()

    def __call__(self, rows: np.ndarray) -> list[np.ndarray]:
        with self._lock:
            self.runs.append(len(rows))
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
    model = SlowModel(1e-6)  # 64 rows in well under a millisecond: a split would cost more

    async def calls(batcher):
        for _ in range(3):
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


def test_instances_default_to_the_cores_shared_among_workers_and_threads():
    cores = available_cores()
    assert Settings().threads_per_run == 1
    assert Settings().model_instances == cores
    assert Settings(workers=cores).model_instances == 1
    assert Settings(intra_op_threads=cores).model_instances == 1
    assert Settings(instances=3, workers=cores).model_instances == 3


def test_a_model_never_waits_behind_another_models_runs():
    slow, quick = SlowModel(1e-3), SlowModel(0.05e-3)  # 64 rows: 64 ms against 3.2 ms, both on threads

    async def main():
        metrics = Metrics(CollectorRegistry())
        batchers = [Batcher(name, model, max_batch=64, max_delay=0, max_queue=64, metrics=metrics, instances=1)
                    for name, model in (("slow", slow), ("quick", quick))]
        try:
            backlog = [asyncio.create_task(batchers[0].infer(rows(64, 100 * i))) for i in range(4)]
            await asyncio.sleep(0.01)  # the slow model's runs have started
            started = time.perf_counter()
            (out,) = await batchers[1].infer(rows(64))
            waited = time.perf_counter() - started
            await asyncio.gather(*backlog)
            return out, waited
        finally:
            for batcher in batchers:
                await batcher.close()

    out, waited = asyncio.run(main())
    assert np.array_equal(out, rows(64) * 2)
    # Behind the slow model's four runs it would wait about 250 ms; on its own threads
    # it waits for none of them.
    assert waited < 0.1, f"waited {waited * 1e3:.0f} ms"


class AffinityModel(SlowModel):
    """Also records the cores each run's thread was allowed."""

    def __init__(self, seconds_per_row: float):
        super().__init__(seconds_per_row)
        self.affinities: list[tuple[bool, frozenset[int]]] = []  # (on the event loop, cores)

    def __call__(self, rows: np.ndarray) -> list[np.ndarray]:
        self.affinities.append((threading.current_thread() is threading.main_thread(),
                                frozenset(os.sched_getaffinity(0))))
        return super().__call__(rows)


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


def test_instance_cores_give_every_instance_and_worker_cores_of_their_own(monkeypatch):
    monkeypatch.setattr(server.settings, "allowed_cores", lambda: list(range(8)))
    monkeypatch.setattr(server.settings, "cpu_quota", lambda: None)
    single = [{c} for c in range(8)]
    assert Settings().instance_cores() == single
    assert Settings(workers=2).instance_cores(0) == single[:4]
    assert Settings(workers=2).instance_cores(1) == single[4:]
    assert Settings(workers=2, intra_op_threads=2).instance_cores(1) == [{4, 5}, {6, 7}]
    assert Settings(instances=3).instance_cores() == single[:3]
    # Not where the instances of all workers do not fit the cores, nor when switched off.
    assert Settings(instances=6, workers=2).instance_cores(0) is None
    assert Settings(intra_op_threads=16, instances=1).instance_cores() is None
    assert Settings(pin_instances=False).instance_cores() is None


def test_pinning_can_be_switched_off_by_flag_or_variable(monkeypatch):
    assert server.settings.parse([]).pin_instances
    assert not server.settings.parse(["--no-pin-instances"]).pin_instances
    monkeypatch.setenv("GENSERVE_PIN_INSTANCES", "off")
    assert not server.settings.parse([]).pin_instances
    assert server.settings.parse(["--pin-instances"]).pin_instances
    monkeypatch.setenv("GENSERVE_PIN_INSTANCES", "sometimes")
    with pytest.raises(SystemExit):
        server.settings.parse([])


def pinned_threads(pid: int) -> list[str]:
    """The cores of each of the process's threads that keeps to fewer than the process may use."""
    lists = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                lists[task.name] = line.split()[1]
    return sorted(allowed for tid, allowed in lists.items() if allowed != lists[str(pid)])


@needs_two_cores
@pytest.mark.parametrize("flags", [(), ("--no-pin-instances",)], ids=["default", "switched-off"])
def test_the_server_pins_its_instance_threads_by_default(flags):
    quota = server.settings.cpu_quota()
    if quota is not None and quota < len(allowed_cores()):
        pytest.skip("under a CPU limit below the cores the server does not pin")
    # The default models: a batch of 256 GAN rows takes milliseconds and goes to the instances.
    served = ServerProcess(ROOT / "models", "--instances", "2", *flags).wait_ready()
    try:
        with GenerativeClient(served.target) as client, ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda seed: client.sample_digits(n=256, seed=seed), range(24)))
        pinned = pinned_threads(served.proc.pid)
    finally:
        served.stop()
    first, second = allowed_cores()[:2]
    if flags:
        assert pinned == [] and "pinned" not in served.log
    else:
        assert pinned == sorted([str(first), str(second)]), pinned
        assert f"pinned to cores {first} | {second}" in served.log


def test_a_containers_cpu_limit_is_read_from_its_cgroup(tmp_path):
    def quota_of(cgroup_line: str, files: dict[str, str]) -> float | None:
        for name, text in files.items():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(text)
        (tmp_path / "cgroup").write_text(cgroup_line)
        return server.settings.cpu_quota(tmp_path / "cgroup", tmp_path)

    assert quota_of("0::/pod\n", {"pod/cpu.max": "150000 100000\n"}) == 1.5  # cgroup v2
    assert quota_of("0::/pod\n", {"pod/cpu.max": "max 100000\n"}) is None
    assert quota_of("4:cpu,cpuacct:/job\n0::/\n", {"cpu,cpuacct/job/cpu.cfs_quota_us": "200000\n",
                                                   "cpu,cpuacct/job/cpu.cfs_period_us": "100000\n"}) == 2.0  # v1
    assert quota_of("4:cpu,cpuacct:/free\n", {"cpu,cpuacct/free/cpu.cfs_quota_us": "-1\n",
                                              "cpu,cpuacct/free/cpu.cfs_period_us": "100000\n"}) is None
    assert quota_of("0::/gone\n", {}) is None  # unreadable: no limit known


def test_under_a_cpu_limit_below_the_cores_instances_follow_the_limit_unpinned(monkeypatch):
    monkeypatch.setattr(server.settings, "allowed_cores", lambda: list(range(8)))
    monkeypatch.setattr(server.settings, "cpu_quota", lambda: 2.0)  # a pod limited to 2 CPUs on 8
    assert Settings().instance_cores() is None
    assert Settings().model_instances == 2  # as many runs at once as the limit's CPUs, not the node's cores
    monkeypatch.setattr(server.settings, "cpu_quota", lambda: 0.5)
    assert Settings().model_instances == 1
    monkeypatch.setattr(server.settings, "cpu_quota", lambda: 8.0)
    assert Settings().instance_cores() == [{c} for c in range(8)]


def test_a_cpu_limit_set_above_the_processs_own_cgroup_counts_too(tmp_path):
    (tmp_path / "kubepods" / "pod1" / "app").mkdir(parents=True)
    (tmp_path / "kubepods" / "pod1" / "cpu.max").write_text("100000 100000\n")  # the pod's limit
    (tmp_path / "kubepods" / "pod1" / "app" / "cpu.max").write_text("max 100000\n")
    (tmp_path / "cgroup").write_text("0::/kubepods/pod1/app\n")
    assert server.settings.cpu_quota(tmp_path / "cgroup", tmp_path) == 1.0
