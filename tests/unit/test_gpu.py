"""The CUDA side without a GPU: provider options from the flags, and GPU metrics
through a stand-in NVML (the real one needs a driver), in a fresh registry."""

from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest

from server.gpu import CUDA, GpuMetrics, provider_options, watch_gpus


class FakeNvml:
    """The few functions of pynvml that GpuMetrics calls, for two devices."""

    def __init__(self, fail_init: bool = False):
        self.fail_init = fail_init
        self.devices = {0: (37, 2 * 2**30, 80 * 2**30), 1: (100, 70 * 2**30, 80 * 2**30)}

    def nvmlInit(self):
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlDeviceGetHandleByIndex(self, index):
        if index not in self.devices:
            raise RuntimeError("Invalid Argument")
        return index

    def nvmlDeviceGetUtilizationRates(self, handle):
        return SimpleNamespace(gpu=self.devices[handle][0], memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle):
        _, used, total = self.devices[handle]
        return SimpleNamespace(used=used, total=total, free=total - used)


def test_cuda_options_follow_the_flags():
    assert provider_options(CUDA, 1, 0, "next_power_of_two") == {"device_id": "1",
                                                                "arena_extend_strategy": "kNextPowerOfTwo"}
    assert provider_options(CUDA, 0, 4 * 2**30, "same_as_requested") == {
        "device_id": "0", "arena_extend_strategy": "kSameAsRequested", "gpu_mem_limit": str(4 * 2**30)}
    assert provider_options("CPUExecutionProvider", 1, 5, "same_as_requested") == {}


def samples(registry) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, s.labels["device"]): s.value
            for f in text_string_to_metric_families(generate_latest(registry).decode()) for s in f.samples}


def test_gpu_metrics_per_device_at_each_scrape():
    registry = CollectorRegistry()
    nvml = FakeNvml()
    assert watch_gpus(registry, [0, 1, 7], nvml) is not None  # device 7 is gone: skipped, not an error
    found = samples(registry)
    assert found[("genserve_gpu_utilization_ratio", "0")] == 0.37
    assert found[("genserve_gpu_memory_used_bytes", "1")] == 70 * 2**30
    assert found[("genserve_gpu_memory_total_bytes", "0")] == 80 * 2**30
    assert not any(device == "7" for _, device in found)
    nvml.devices[0] = (5, 3 * 2**30, 80 * 2**30)
    assert samples(registry)[("genserve_gpu_utilization_ratio", "0")] == 0.05


def test_no_nvml_no_gpu_metrics():
    registry = CollectorRegistry()
    assert watch_gpus(registry, [0], FakeNvml(fail_init=True)) is None
    assert "genserve_gpu" not in generate_latest(registry).decode()
    assert isinstance(GpuMetrics(FakeNvml(), [0]), GpuMetrics)


def test_a_bound_run_answers_as_a_plain_run(tiny_repository):
    import numpy as np
    import onnxruntime as ort

    from server.gpu import bound_run

    session = ort.InferenceSession(str(tiny_repository / "vae_encoder" / "1" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    images = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    plain = session.run(None, {"image": images})
    bound = bound_run(session, {"image": images}, ["z_mean", "z_log_var"])
    assert len(bound) == 2 and all(np.array_equal(a, b) for a, b in zip(plain, bound))
    z_log_var_first = bound_run(session, {"image": images}, ["z_log_var", "z_mean"])
    assert np.array_equal(z_log_var_first[0], plain[1])


def test_the_gpu_flags():
    import pytest

    from server.settings import parse

    settings = parse(["--cuda-device", "1", "--gpu-mem-limit", "4G", "--gpu-arena-extend-strategy",
                      "same_as_requested", "--providers", "tensorrt,cuda,cpu"])
    assert (settings.cuda_device, settings.gpu_mem_limit) == (1, 4 * 2**30)
    assert settings.providers == ("tensorrt", "cuda", "cpu")
    assert parse(["--gpu-mem-limit", "512MiB"]).gpu_mem_limit == 512 * 2**20
    with pytest.raises(SystemExit):
        parse(["--gpu-mem-limit", "lots"])
