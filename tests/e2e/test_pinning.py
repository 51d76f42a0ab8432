"""The real server pins each model instance's thread to a core of its own, unless told
not to (read from /proc)."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import server.settings
from client import GenerativeClient
from helpers import ROOT, ServerProcess, needs_two_cores
from server.settings import allowed_cores


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
