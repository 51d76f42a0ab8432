import json

import numpy as np
import pytest
from helpers import run_cli

from trainer.data import add_salt
from trainer.metrics import frechet_distance, inception_score, median3, psnr


def test_frechet_distance():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 8))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    # Shifted mean by 2 on every axis: squared distance 8 * 4 = 32.
    assert frechet_distance(a, a + 2) == pytest.approx(32, rel=1e-6)
    # N(0, I) vs N(0, 4I) in 8-d: 8 * (1 + 4 - 2 * 2) = 8.
    assert frechet_distance(rng.standard_normal((20000, 8)), 2 * rng.standard_normal((20000, 8))) == \
        pytest.approx(8, rel=0.05)


def test_inception_score_bounds():
    confident_even = np.eye(10)[np.arange(1000) % 10]
    assert inception_score(confident_even) == pytest.approx(10, rel=1e-6)
    assert inception_score(np.full((100, 10), 0.1)) == pytest.approx(1)
    assert inception_score(np.eye(10)[np.zeros(100, int)]) == pytest.approx(1)


def test_median_filter_removes_isolated_salt_and_psnr():
    clean = np.zeros((4, 1, 28, 28), np.float32)
    clean[:, :, 10:18, 10:18] = 1
    noisy = add_salt(clean, 0.05, np.random.default_rng(0))
    assert psnr(median3(noisy), clean) > psnr(noisy, clean) + 5
    assert psnr(clean + 0.1, clean) == pytest.approx(20, abs=1e-4)


@pytest.mark.slow
def test_evaluate_cli_reports_every_figure(tiny_repository, tmp_path):
    out = tmp_path / "evaluation.json"
    result = run_cli("evaluate", "--model-repository", str(tiny_repository), "--samples", "300", "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report == json.loads(result.stdout)
    vae = report["vae"]
    assert vae["test_neg_elbo"] == pytest.approx(vae["test_bce"] + vae["test_kl"])
    assert vae["test_images"] == 10_000 and vae["samples"]["samples"] == 300
    gan = report["gan"]
    assert len(gan["digit_share"]) == 10 and sum(gan["digit_share"]) == pytest.approx(1, abs=1e-3)
    assert gan["frechet_distance_real_floor"] < gan["frechet_distance"]
    assert set(report["dae"]) == {"salt_5", "salt_10", "salt_20", "salt_30"}
    assert set(report["dae"]["salt_10"]) == {"psnr_noisy", "psnr_median3", "psnr_denoised"}
    assert 0 <= report["classifier"]["test_accuracy"] <= 1
