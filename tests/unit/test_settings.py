"""Server settings that follow the machine: model instances per core and worker,
pinning, and a container's CPU limit read from its cgroup."""

import pytest

import server.settings
from server.settings import Settings, available_cores


def test_instances_default_to_the_cores_shared_among_workers_and_threads():
    cores = available_cores()
    assert Settings().threads_per_run == 1
    assert Settings().model_instances == cores
    assert Settings(workers=cores).model_instances == 1
    assert Settings(intra_op_threads=cores).model_instances == 1
    assert Settings(instances=3, workers=cores).model_instances == 3


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


def test_http_port_host_and_switch_by_flag_or_variable(monkeypatch):
    default = server.settings.parse([])
    assert default.http and default.http_port == 8000 and default.http_host is None
    assert not server.settings.parse(["--no-http"]).http
    assert server.settings.parse(["--http-port", "0", "--http-host", "127.0.0.1"]).http_port == 0
    monkeypatch.setenv("GENSERVE_HTTP_PORT", "8080")
    monkeypatch.setenv("GENSERVE_HTTP_HOST", "::1")
    monkeypatch.setenv("GENSERVE_HTTP", "off")
    settings = server.settings.parse([])
    assert (settings.http, settings.http_port, settings.http_host) == (False, 8080, "::1")
    with pytest.raises(SystemExit):
        server.settings.parse(["--http-port", "70000"])
