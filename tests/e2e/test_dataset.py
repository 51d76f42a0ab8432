"""``python -m client dataset`` end to end against a real server: shards that load
without genserve (.npz, and MNIST's IDX read by an independent reader), the manifest,
a kill and a rerun that keeps the good shards and remakes the rest byte for byte, and
shards made by separate processes that add up to the one-process dataset."""

import gzip
import json
import os
import signal
import subprocess
import sys

import idx2numpy
import numpy as np
import pytest

from helpers import ROOT, wait_until

ARGS = ("--balanced", "--seed", "7", "--chunk", "256", "--no-progress")


def dataset(server, out, *args, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "client", "--target", server.target, "dataset", "--out", str(out),
                             *args], capture_output=True, text=True, timeout=300, cwd=ROOT)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def manifest(out) -> dict:
    return json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="module")
def whole(server, tmp_path_factory):
    """A dataset of 3,000 balanced digits in 3 shards, made by one process."""
    out = tmp_path_factory.mktemp("whole")
    dataset(server, out, "--n", "3000", "--shards", "3", "--min-confidence", "0.5", *ARGS)
    return out


def test_shards_load_without_genserve_and_the_manifest_says_what_drew_them(whole):
    found = manifest(whole)
    plan = found["plan"]
    assert plan["model"] == "cgan_generator" and plan["seed"] == 7 and plan["min_confidence"] == 0.5
    assert len(plan["model_sha256"]) == 64 and plan["classifier"].startswith("digit_classifier ")
    assert found["counts"] == [300] * 10 and found["images"] == 3000
    assert [s["range"] for s in found["shards"]] == [[0, 1000], [1000, 2000], [2000, 3000]]
    for record in found["shards"]:
        name = f"shard-{record['shard']:05d}-of-00003"
        with np.load(whole / f"{name}.npz") as data:
            images, labels = data["images"], data["labels"]
        assert images.shape == (1000, 28, 28) and images.dtype == np.uint8 and labels.dtype == np.int64
        start = record["range"][0]
        assert np.array_equal(labels, np.arange(start, start + 1000) % 10)
        raw = whole / name / "MNIST" / "raw"
        with gzip.open(raw / "train-images-idx3-ubyte.gz") as f:
            assert np.array_equal(idx2numpy.convert_from_file(f), images)
        with gzip.open(raw / "train-labels-idx1-ubyte.gz") as f:
            assert np.array_equal(idx2numpy.convert_from_file(f), labels)
        assert set(record["files"]) == {f"{name}.npz", f"{name}/MNIST/raw/train-images-idx3-ubyte.gz",
                                        f"{name}/MNIST/raw/train-labels-idx1-ubyte.gz"}


def test_shards_made_by_separate_processes_add_up_to_the_one_process_dataset(server, whole, tmp_path):
    runs = [subprocess.Popen([sys.executable, "-m", "client", "--target", server.target, "dataset", "--out",
                              str(tmp_path), "--n", "3000", "--shards", "3", "--min-confidence", "0.5", *ARGS],
                             env=os.environ | {"JOB_COMPLETION_INDEX": str(index)}, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for index in (2, 0)]
    for run in runs:
        assert run.wait(300) == 0, run.stderr.read()
    assert not (tmp_path / "manifest.json").exists()  # shard 1 is not made yet
    dataset(server, tmp_path, "--n", "3000", "--shards", "3", "--min-confidence", "0.5", "--shard-index", "1", *ARGS)
    assert (tmp_path / "manifest.json").read_bytes() == (whole / "manifest.json").read_bytes()


def test_a_killed_run_resumes_keeping_the_shards_whose_sha256_checks(server, tmp_path):
    args = ("--n", "200000", "--shards", "40", *ARGS)
    run = subprocess.Popen([sys.executable, "-m", "client", "--target", server.target, "dataset", "--out",
                            str(tmp_path), *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_until(lambda: len(list(tmp_path.glob("shard-*.json"))) >= 2, timeout=120, what="two shards made")
    run.send_signal(signal.SIGKILL)
    run.wait(30)
    records = {path.name: json.loads(path.read_text()) for path in tmp_path.glob("shard-*.json")}
    assert 2 <= len(records) < 40 and not (tmp_path / "manifest.json").exists()
    # One finished shard damaged, another's file deleted: both are remade, the rest kept.
    damaged, deleted = sorted(records)[:2]
    npz = tmp_path / damaged.replace(".json", ".npz")
    npz.write_bytes(npz.read_bytes()[:-1] + bytes([npz.read_bytes()[-1] ^ 1]))
    (tmp_path / deleted.replace(".json", "") / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz").unlink()
    result = dataset(server, tmp_path, *args)
    kept = len(records) - 2
    assert f"{40 - kept} shard(s) made, {kept} kept" in result.stdout
    final = manifest(tmp_path)
    for record in final["shards"]:
        name = f"shard-{record['shard']:05d}-of-00040.json"
        if name in records:
            assert record["files"] == records[name]["files"]  # remade shards: the same sha256 as before
    assert final["counts"] == [20000] * 10


def test_bad_dataset_requests_say_what_is_wrong(server, tmp_path):
    result = dataset(server, tmp_path, "--n", "100", "--model", "gan", "--no-progress", check=False)
    assert result.returncode == 1 and "draws digits without labels" in result.stderr
    result = dataset(server, tmp_path, "--n", "100", "--shards", "2", "--shard-index", "2", *ARGS, check=False)
    assert result.returncode == 1 and "--shard-index: 2 is not a shard of 2" in result.stderr
    dataset(server, tmp_path, "--n", "100", "--shards", "2", *ARGS)
    result = dataset(server, tmp_path, "--n", "100", "--shards", "2", "--balanced", "--seed", "8", "--no-progress",
                     check=False)
    assert result.returncode == 1 and "made under other settings (seed 7 there, 8 now)" in result.stderr
