"""``python -m trainer cas`` end to end on tiny settings: digits drawn through a real
server, the classifier recipe trained on them alone and tested on real test images."""

import json
import subprocess
import sys

from helpers import ROOT


def test_cas_trains_on_served_digits_and_scores_on_real_ones(server, make_idx_dir, tmp_path):
    data = make_idx_dir(n_train=64, n_test=32)
    out = tmp_path / "cas.json"
    result = subprocess.run([sys.executable, "-m", "trainer", "cas", "--model", "cgan", "--target", server.target,
                             "--n", "200", "--profile", "quick", "--epochs", "1", "--min-confidence", "0.5",
                             "--data-dir", str(data), "--run-dir", str(tmp_path / "runs"), "--out", str(out),
                             "--no-progress"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    (model,) = report["models"]
    assert [s["min_confidence"] for s in model["synthetic"]] == [None, 0.5]
    assert all(0 <= s["cas"] <= 1 and s["model"] == "cgan_generator" for s in model["synthetic"])
    assert model["synthetic"][1]["redrawn"] > 0  # tiny models: the classifier refuses many
    assert 0 <= report["real"] <= 1
    drawn = tmp_path / "runs" / "cgan-plain" / "data"
    assert (drawn / "train-images-idx3-ubyte.gz").stat().st_size > 0
    assert (drawn / "t10k-images-idx3-ubyte.gz").read_bytes() == (data / "t10k-images-idx3-ubyte.gz").read_bytes()


def test_cas_without_a_server_says_so(tmp_path):
    result = subprocess.run([sys.executable, "-m", "trainer", "cas", "--model", "cvae", "--target", "127.0.0.1:1",
                             "--n", "10", "--no-real", "--run-dir", str(tmp_path)], capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    assert result.returncode == 1 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
