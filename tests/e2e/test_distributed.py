"""Training under torchrun: two Gloo processes on the CPU train every model for a few
steps with DistributedDataParallel; both ranks end with the same parameters and rank 0
alone writes the checkpoints, logs and the one export."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import ROOT, TINY_TRAIN
from trainer.distributed import World


def test_each_rank_takes_its_own_share_of_every_batch():
    batch = torch.arange(128)
    shards = [World(rank, 2).shard(batch) for rank in (0, 1)]
    assert [len(s) for s in shards] == [64, 64]
    assert set(shards[0].tolist()).isdisjoint(shards[1].tolist())
    assert sorted(torch.cat(shards).tolist()) == list(range(128))
    assert torch.equal(World().shard(batch), batch)  # one process: the whole batch


@pytest.mark.slow
def test_two_gloo_processes_stay_in_sync_and_export_once(tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    run_dir, repository = tmp_path / "runs", tmp_path / "models"
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "trainer", "export", "--profile", "quick",
         "--epochs", "1", "--train-len", str(2 * TINY_TRAIN), "--device", "cpu", "--no-progress",
         "--run-dir", str(run_dir), "--model-repository", str(repository), "--samples", "200"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    assert "rank 1 of 2 on cpu (gloo)" in log

    digests = re.findall(r"(\w+): rank (\d) of 2: parameters sha256 (\w+)", log)
    by_model: dict[str, dict[str, str]] = {}
    for model, rank, digest in digests:
        by_model.setdefault(model, {})[rank] = digest
    assert set(by_model) == {"vae", "gan", "dae", "classifier", "cvae", "cgan"}
    for model, ranks in by_model.items():
        assert ranks.keys() == {"0", "1"} and ranks["0"] == ranks["1"], (model, ranks)

    # One export: version 1 of each model and nothing else; one log line per epoch.
    versions = sorted(str(p.relative_to(repository)) for p in repository.glob("*/*") if p.is_dir())
    assert versions == ["cgan_generator/1", "cvae_decoder/1", "cvae_encoder/1", "dae/1", "digit_classifier/1",
                        "gan_generator/1", "vae_decoder/1", "vae_encoder/1"]
    for model in ("vae", "gan", "dae", "classifier", "cvae", "cgan"):
        assert len((run_dir / model / "metrics.jsonl").read_text().splitlines()) == 1
        assert (run_dir / model / "checkpoint.pt").exists()
