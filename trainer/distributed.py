"""Training on several processes under ``torchrun``: DistributedDataParallel, NCCL on
GPUs and Gloo on CPUs. Outside torchrun (no ``WORLD_SIZE``) everything here is a no-op
and training runs as one process.

Each step's batch of ``recipe.batch_size`` images is split evenly across the ranks and
DDP averages the gradients, so a run on N processes follows the same recipe (learning
rate, batch, epochs) as a run on one. Rank 0 alone evaluates and writes checkpoints,
logs, pictures and exports.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def shard(self, batch_indices: torch.Tensor) -> torch.Tensor:
        """This rank's share of one step's batch."""
        return batch_indices[self.rank::self.size]

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` under DistributedDataParallel when distributed, else as it is."""
        if not self.distributed:
            return module
        device_ids = [self.local_rank] if next(module.parameters()).is_cuda else None
        # No buffer to broadcast in these models; broadcasting would also make rank 0's
        # evaluation passes collective calls that the other ranks never join.
        return nn.parallel.DistributedDataParallel(module, device_ids=device_ids, broadcast_buffers=False)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


_world = World()


def world() -> World:
    return _world


def start(device: str) -> tuple[World, str]:
    """Join the process group that torchrun set up; returns the world and the device
    this rank trains on ("cuda:<local rank>" with NCCL, else as asked, with Gloo)."""
    global _world
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return _world, device
    if dist.is_initialized():
        return _world, device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if device == "cuda" and not use_cuda:
        raise RuntimeError("--device cuda: no CUDA device is available to torch")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    else:
        device = "cpu"
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    _world = World(rank, size, local_rank)
    log.info("rank %d of %d on %s (%s)", rank, size, device, dist.get_backend())
    return _world, device


def stop() -> None:
    global _world
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    _world = World()


def parameters_digest(modules: dict[str, nn.Module]) -> str:
    """sha256 of every parameter's bytes: equal on every rank while they stay in sync."""
    digest = hashlib.sha256()
    for name in sorted(modules):
        for tensor in modules[name].state_dict().values():
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
