"""The training loop shared by every model: epochs, progress bar, JSON-lines log,
atomic checkpoints and resume."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import checkpoints, distributed, pictures
from .data import DEFAULT_DATA_DIR, load_split, to_unit
from .interrupts import InterruptAtStep
from .recipes import Recipe
from .tasks import TASKS, Task, make_scheduler

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
METRICS_LOG = "metrics.jsonl"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA device is available to torch")
    return torch.device(name)


def build_task(model: str, recipe: Recipe, device: torch.device) -> Task:
    task = TASKS[model](recipe)
    for module in task.modules.values():
        module.to(device)
        if task.conv and device.type == "cpu":
            module.to(memory_format=torch.channels_last)
    return task


def _restore(task: Task, state: dict, schedulers: dict) -> None:
    for name, module in task.modules.items():
        module.load_state_dict(state["modules"][name])
    for name, opt in task.optimizers.items():
        opt.load_state_dict(state["optimizers"][name])
    for name, sched in schedulers.items():
        sched.load_state_dict(state["schedulers"][name])


def _write_log(path: Path, history: list[dict]) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in history))


def train(model: str, recipe: Recipe, run_dir: Path, *, data_dir: Path = DEFAULT_DATA_DIR,
          device: str = "auto", seed: int = 0, resume: bool = False, progress: bool = True) -> Path:
    """Train one model; returns the path of its final checkpoint.

    A checkpoint is written at the end of every epoch. On KeyboardInterrupt the
    last one written stays as it was. Under torchrun (trainer/distributed.py) every
    rank trains on its share of each batch and rank 0 alone writes.
    """
    world = distributed.world()
    dev = resolve_device(device)
    out = Path(run_dir) / model
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = out / CHECKPOINT, out / METRICS_LOG

    train_split, test_split = load_split(data_dir, "train"), load_split(data_dir, "test")
    n = len(train_split.images) if recipe.train_len is None else min(recipe.train_len, len(train_split.images))
    images = torch.from_numpy(to_unit(train_split.images[:n])).to(dev)
    labels = torch.from_numpy(train_split.labels[:n].astype(np.int64)).to(dev)
    steps_per_epoch = max(1, n // recipe.batch_size)  # full batches only, as the loss is a batch mean
    if recipe.batch_size % world.size:
        raise ValueError(f"batch size {recipe.batch_size} does not split evenly across {world.size} processes")

    torch.manual_seed(seed)
    task = build_task(model, recipe, dev)
    task.steps_per_epoch = steps_per_epoch
    schedulers = {name: make_scheduler(opt, recipe, recipe.epochs * steps_per_epoch)
                  for name, opt in task.optimizers.items()}
    start_epoch, history = 1, []
    if resume and ckpt_path.exists():
        state = checkpoints.load(ckpt_path)
        if state["recipe"] != asdict(recipe):
            raise ValueError(f"{ckpt_path}: was trained with {state['recipe']}, not {asdict(recipe)}; "
                             "resume with the same settings or start a new --run-dir")
        _restore(task, state, schedulers)
        start_epoch, history = state["epoch"] + 1, state["history"]
        if world.is_main:
            _write_log(log_path, history)  # the log may hold epochs after the checkpoint's
        log.info("%s: resuming after epoch %d from %s", model, state["epoch"], ckpt_path)
    elif log_path.exists() and world.is_main:
        log_path.unlink()
    task.distribute(world.wrap)  # after a resume's restore: DDP starts from rank 0's weights

    # Under torchrun every rank must stop at the same step, or the others wait in a collective:
    # there Ctrl-C interrupts each rank where it lands, as Python does by default.
    with InterruptAtStep(enabled=not world.distributed) as interrupt:
        for epoch in range(start_epoch, recipe.epochs + 1):
            # Seeded per epoch so a resumed run draws the same batches and noise.
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).to(dev)
            # Each rank draws its own noise; rank 0 (and a single process) as before.
            torch.manual_seed(seed * 100_003 + epoch + 1_000_003 * world.rank)
            task.train(True)
            sums: dict[str, float] = {}
            started = time.perf_counter()
            bar = tqdm(range(steps_per_epoch), desc=f"{model} {epoch}/{recipe.epochs}",
                       disable=not progress or not world.is_main, leave=False, unit="batch")
            for i in bar:
                idx = world.shard(order[i * recipe.batch_size:(i + 1) * recipe.batch_size])
                batch = images[idx]
                if task.conv and dev.type == "cpu":
                    batch = batch.contiguous(memory_format=torch.channels_last)
                interrupt.check()
                metrics = task.step(batch, labels[idx])
                for sched in schedulers.values():
                    sched.step()
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + v
                if i % 20 == 0:
                    bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items()})
            if not world.is_main:
                continue
            # Training metrics are rank 0's share of the batches; test metrics are on every test image.
            record = {"epoch": epoch, **{k: v / steps_per_epoch for k, v in sums.items()},
                      **task.test_metrics(test_split, dev),
                      "lr": next(iter(schedulers.values())).get_last_lr()[0],
                      "seconds": round(time.perf_counter() - started, 2)}
            history.append(record)
            interrupt.check()
            checkpoints.save_atomic({
                "model": model, "recipe": asdict(recipe), "epoch": epoch, "seed": seed,
                "train_images": n, "data_sha256": train_split.sha256, "metrics": record, "history": history,
                "modules": {k: m.state_dict() for k, m in task.modules.items()},
                "optimizers": {k: o.state_dict() for k, o in task.optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
            }, ckpt_path)
            with log_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
            summary = " ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "epoch")
            log.info("%s epoch %d/%d: %s", model, epoch, recipe.epochs, summary)
        interrupt.check()  # a Ctrl-C during the last epoch's checkpoint or log line
    if world.distributed:
        log.info("%s: rank %d of %d: parameters sha256 %s", model, world.rank, world.size,
                 distributed.parameters_digest(task.modules))
        world.barrier()  # the other ranks wait for rank 0's last checkpoint
    if world.is_main:
        write_pictures(task, out, test_split)
    return ckpt_path


def write_pictures(task: Task, out: Path, test_split) -> list[Path]:
    paths = task.pictures(out, test_split)
    if (out / METRICS_LOG).exists():
        paths.append(pictures.loss_curves(out / METRICS_LOG, out / "loss_curves.png", f"{task.name} training"))
    for path in paths:
        log.info("%s: wrote %s", task.name, path)
    return paths


def load_trained(run_dir: Path, model: str) -> tuple[Task, dict]:
    """The task of a finished (or interrupted) run, its modules in eval mode on the CPU,
    and the checkpoint it came from."""
    state = checkpoints.load(Path(run_dir) / model / CHECKPOINT)
    task = build_task(model, Recipe(**state["recipe"]), torch.device("cpu"))
    for name, module in task.modules.items():
        module.load_state_dict(state["modules"][name])
        module.to(memory_format=torch.contiguous_format)
    task.train(False)
    return task, state
