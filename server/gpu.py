"""The CUDA side of serving: onnxruntime's CUDA provider options from the server's
flags, and GPU metrics (utilisation, memory used and total, per device) read through
NVML (``nvidia-ml-py``, the serve-gpu extra), exported only while a model runs on CUDA."""

from __future__ import annotations

import logging
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

ARENA_STRATEGIES = ("next_power_of_two", "same_as_requested")  # onnxruntime's kNextPowerOfTwo, kSameAsRequested
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"


def provider_options(provider: str, device: int, memory_limit: int, arena_strategy: str) -> dict[str, str]:
    """onnxruntime's options for ``provider`` (empty for the CPU's): the device, and for
    CUDA the memory limit (0: none) and how its arena grows."""
    if provider == CUDA:
        options = {"device_id": str(device),
                   "arena_extend_strategy": {"next_power_of_two": "kNextPowerOfTwo",
                                             "same_as_requested": "kSameAsRequested"}[arena_strategy]}
        if memory_limit:
            options["gpu_mem_limit"] = str(memory_limit)
        return options
    if provider == TENSORRT:
        return {"device_id": str(device)}
    return {}


def bound_run(session: Any, feeds: dict[str, np.ndarray], outputs: Sequence[str]) -> list[np.ndarray]:
    """One run through onnxruntime's IO binding: each input copied to the session's device
    once, each output written to host memory once, in ``outputs``' order."""
    binding = session.io_binding()
    for name, array in feeds.items():
        binding.bind_cpu_input(name, np.ascontiguousarray(array))
    for name in outputs:
        binding.bind_output(name, "cpu")
    session.run_with_iobinding(binding)
    return [value.numpy() for value in binding.get_outputs()]


class GpuMetrics(Collector):
    """Per device: utilisation (0-1 over NVML's last sample period), memory used and total,
    read at each scrape. ``nvml``: the pynvml module, or a stand-in with its functions."""

    def __init__(self, nvml: Any, devices: Iterable[int]):
        self.nvml = nvml
        self.devices = tuple(devices)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        utilization = GaugeMetricFamily("genserve_gpu_utilization_ratio",
                                        "Share of the last sample period in which the GPU ran a kernel.", labels=["device"])
        used = GaugeMetricFamily("genserve_gpu_memory_used_bytes", "GPU memory in use (all processes).",
                                 labels=["device"])
        total = GaugeMetricFamily("genserve_gpu_memory_total_bytes", "GPU memory in all.", labels=["device"])
        for device in self.devices:
            try:
                handle = self.nvml.nvmlDeviceGetHandleByIndex(device)
                rates = self.nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = self.nvml.nvmlDeviceGetMemoryInfo(handle)
            except Exception as exc:  # NVML's own error types; a device gone must not fail the scrape
                log.debug("NVML cannot read device %d: %s", device, exc)
                continue
            label = [str(device)]
            utilization.add_metric(label, rates.gpu / 100)
            used.add_metric(label, memory.used)
            total.add_metric(label, memory.total)
        yield from (utilization, used, total)


def watch_gpus(registry: CollectorRegistry, devices: Iterable[int], nvml: Any = None) -> GpuMetrics | None:
    """Register GPU metrics for ``devices``; None (and an INFO line saying why) where NVML
    cannot be had: nvidia-ml-py not installed, or no driver."""
    if nvml is None:
        try:
            import pynvml as nvml  # nvidia-ml-py
        except ImportError:
            log.info("GPU metrics off: nvidia-ml-py is not installed (pip install 'genserve[serve-gpu]')")
            return None
    try:
        nvml.nvmlInit()
    except Exception as exc:
        log.info("GPU metrics off: NVML cannot start (%s)", exc)
        return None
    collector = GpuMetrics(nvml, devices)
    registry.register(collector)
    return collector
