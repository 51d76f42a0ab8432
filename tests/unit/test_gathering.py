"""The gathering policy on its own, driven by given clocks: when a gather starts, how
long it waits, when it stops paying and how the tries back off."""

import pytest

from server.gathering import (BUSY_TO_PROBE, MISSES_TO_STOP, PROBE_FIRST, PROBE_MAX, UNCAPPED_EVERY, Gathering)


def busy_loop(policy: Gathering, now: float) -> None:
    """A run ended a second before ``now`` and the loop has been busy since."""
    policy.run_done(now - 1.0, 0.0)


def test_a_try_needs_a_busy_loop_and_its_interval():
    policy = Gathering(max_gather=5e-3, max_queue=1024)
    policy.run_done(10.0, 0.0)
    assert not policy.should_start(11.0, cpu=0.1)  # the loop idled: a lone caller, nothing to gather
    assert policy.should_start(11.0, cpu=BUSY_TO_PROBE * 1.0) and policy.probing and policy.pending
    assert not policy.should_start(11.0 + PROBE_FIRST / 2, cpu=5.0)  # too soon after the last try


def test_tries_that_none_join_back_off_to_the_maximum():
    policy = Gathering(max_gather=5e-3, max_queue=1024)
    now, intervals = 100.0, []
    for _ in range(10):
        busy_loop(policy, now)
        start = now
        while not policy.should_start(now, cpu=now):
            now += 0.01
        intervals.append(round(now - start, 2))
        policy.ended(queued=1)
        policy.probing = False
    assert intervals[1] == pytest.approx(2 * PROBE_FIRST, abs=0.011)
    assert max(intervals) == pytest.approx(PROBE_MAX, abs=0.011) and intervals[-1] == intervals[-2]


def test_gathering_pays_until_enough_gathers_go_unjoined():
    policy = Gathering(max_gather=5e-3, max_queue=1024)
    policy.ended(queued=4)
    assert policy.gathering and policy.should_start(0.0, cpu=0.0)  # no try needed while it pays
    for _ in range(MISSES_TO_STOP - 1):
        policy.ended(queued=1)
        assert policy.gathering
    policy.ended(queued=1)
    assert not policy.gathering


def test_the_cap_is_the_usual_size_but_now_and_then_none():
    policy = Gathering(max_gather=5e-3, max_queue=1024)
    assert policy.cap(queued=1, now=0.0) == 1024  # nothing learnt yet
    for size in (3, 5, 4):
        policy.ended(queued=size)
    assert policy.cap(queued=1, now=UNCAPPED_EVERY / 2) == 5
    assert policy.cap(queued=1, now=UNCAPPED_EVERY * 2) == 1024  # once in a while uncapped
    assert policy.cap(queued=5, now=UNCAPPED_EVERY * 2.1) == 1024  # the usual size reached: look past it


def test_the_wait_follows_the_arrivals_within_the_maximum():
    policy = Gathering(max_gather=4e-3, max_queue=1024)
    assert policy.first_gap() == 1e-3  # a quarter of the maximum before any arrival
    assert policy.arrived(count=2, seconds=400e-6) == pytest.approx(400e-6)  # twice the 200 us gap
    assert policy.first_gap() == pytest.approx(400e-6)
    assert policy.arrived(count=1, seconds=1.0) == 4e-3  # never past the maximum
    assert policy.idle_wait(cpu_spent=0.1e-3, seconds=1e-3) and not policy.idle_wait(cpu_spent=0.9e-3, seconds=1e-3)
