"""Quality figures of a model repository, measured on the exported ONNX files in
onnxruntime: what is served is what is measured.

numpy and onnxruntime only; torch is not needed here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from genserve.repository import newest_versions

from .data import DEFAULT_DATA_DIR, add_salt, load_split, to_unit
from .metrics import frechet_distance, inception_score, median3, psnr, softmax

SALT_LEVELS = (0.05, 0.10, 0.20, 0.30)
CHUNK = 1000
DIGITS = 10
# The report's sections, and the models each needs; the digit classifier judges them all.
SECTIONS = {"vae": ("vae_encoder", "vae_decoder"), "gan": ("gan_generator",), "dae": ("dae",),
            "cvae": ("cvae_encoder", "cvae_decoder"), "cgan": ("cgan_generator",)}


class OnnxModel:
    def __init__(self, path: Path):
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Run in chunks, so 10,000 images never form one huge batch."""
        n = len(next(iter(inputs.values())))
        parts = [self.session.run(None, {k: v[i:i + CHUNK] for k, v in inputs.items()})
                 for i in range(0, n, CHUNK)]
        return {name: np.concatenate([p[j] for p in parts]) for j, name in enumerate(self.output_names)}


class GeneratorJudge:
    """Scores generated images with the digit classifier against real ones."""

    def __init__(self, classifier: OnnxModel, test_images: np.ndarray, train_images: np.ndarray):
        self.classifier = classifier
        test = classifier(image=test_images)
        self.test_features = test["features"]
        self.floor = frechet_distance(classifier(image=train_images)["features"], self.test_features)
        self.real_is = inception_score(softmax(test["logits"]))

    def judge(self, images: np.ndarray, digits: np.ndarray | None = None) -> dict:
        """Frechet distance, Inception-Score analogue and the share of each digit; with
        ``digits`` (what each image was asked to show), the classifier's agreement too."""
        out = self.classifier(image=images)
        probs = softmax(out["logits"])
        predicted = probs.argmax(1)
        share = np.bincount(predicted, minlength=10) / len(images)
        agreement = {}
        if digits is not None:
            hits = predicted == digits
            agreement = {"digit_agreement": float(hits.mean()),
                         "digit_agreement_per_digit": [round(float(hits[digits == d].mean()), 4)
                                                       for d in range(DIGITS)]}
        return {**agreement,
            "frechet_distance": frechet_distance(out["features"], self.test_features),
            "frechet_distance_real_floor": self.floor,
            "inception_score": inception_score(probs),
            "inception_score_real_test": self.real_is,
            "digit_share": [round(float(s), 4) for s in share],
            "digit_share_min": float(share.min()),
            "digit_share_max": float(share.max()),
            "samples": len(images),
        }


def evaluate_vae_elbo(encoder: OnnxModel, decoder: OnnxModel, images: np.ndarray,
                      rng: np.random.Generator, digits: np.ndarray | None = None) -> dict:
    """Negative ELBO in nats per test image: BCE summed over pixels plus KL, with one
    reparameterised sample of z per image (the training estimator). A conditional VAE
    is given each image's true digit."""
    given = {} if digits is None else {"digit": digits.astype(np.int64)}
    enc = encoder(image=images, **given)
    mean, log_var = enc["z_mean"], enc["z_log_var"]
    z = (mean + np.exp(0.5 * log_var) * rng.standard_normal(mean.shape)).astype(np.float32)
    p = np.clip(decoder(z=z, **given)["image"], 1e-7, 1 - 1e-7).astype(np.float64)
    x = images.astype(np.float64)
    bce = -(x * np.log(p) + (1 - x) * np.log1p(-p)).reshape(len(x), -1).sum(1)
    kl = -0.5 * (1 + log_var - mean ** 2 - np.exp(log_var)).sum(1)
    return {"test_neg_elbo": float((bce + kl).mean()), "test_bce": float(bce.mean()),
            "test_kl": float(kl.mean()), "test_images": len(images)}


def evaluate_dae(dae: OnnxModel, clean: np.ndarray, rng: np.random.Generator) -> dict:
    out = {}
    for level in SALT_LEVELS:
        noisy = add_salt(clean, level, rng)
        out[f"salt_{round(level * 100)}"] = {
            "psnr_noisy": psnr(noisy, clean),
            "psnr_median3": psnr(median3(noisy), clean),
            "psnr_denoised": psnr(dae(noisy=noisy)["image"], clean),
        }
    return out


def evaluate_models(paths: dict[str, Path], data_dir: Path = DEFAULT_DATA_DIR, samples: int = 10_000,
                    seed: int = 0) -> dict:
    """Evaluate whichever of the known models ``paths`` holds; the digit classifier,
    which judges the others, must be among them."""
    if "digit_classifier" not in paths:
        raise ValueError("cannot evaluate without the model digit_classifier, which judges the others")
    sections = [s for s, needs in SECTIONS.items() if all(m in paths for m in needs)]
    evaluated = ["digit_classifier", *(m for s in sections for m in SECTIONS[s])]
    models = {name: OnnxModel(paths[name]) for name in evaluated}
    test, train = load_split(data_dir, "test"), load_split(data_dir, "train")
    test_images = to_unit(test.images)
    rng = np.random.default_rng(seed)
    real_train = to_unit(train.images[rng.choice(len(train.images), min(10_000, len(train.images)), replace=False)])

    predicted = softmax(models["digit_classifier"](image=test_images)["logits"]).argmax(1)
    report: dict = {"classifier": {"test_accuracy": float((predicted == test.labels).mean())}}
    judge = GeneratorJudge(models["digit_classifier"], test_images, real_train)

    # Each section draws from its own stream, so adding a model leaves the others' figures as they were.
    streams = {s: np.random.default_rng([seed, i]) for i, s in enumerate(SECTIONS)}
    # The conditional models draw samples // 10 images of each digit.
    digits = np.repeat(np.arange(DIGITS, dtype=np.int64), max(1, samples // DIGITS))
    if "vae" in sections:
        report["vae"] = evaluate_vae_elbo(models["vae_encoder"], models["vae_decoder"], test_images, rng)
        prior = rng.standard_normal((samples, 2)).astype(np.float32)
        report["vae"]["samples"] = judge.judge(models["vae_decoder"](z=prior)["image"])
    if "gan" in sections:
        noise = rng.standard_normal((samples, 100)).astype(np.float32)
        report["gan"] = judge.judge(models["gan_generator"](noise=noise)["image"])
    if "dae" in sections:
        report["dae"] = evaluate_dae(models["dae"], test_images, rng)
    if "cvae" in sections:
        r = streams["cvae"]
        report["cvae"] = evaluate_vae_elbo(models["cvae_encoder"], models["cvae_decoder"], test_images, r,
                                           digits=test.labels)
        prior = r.standard_normal((len(digits), 2)).astype(np.float32)
        report["cvae"]["samples"] = judge.judge(models["cvae_decoder"](z=prior, digit=digits)["image"], digits)
    if "cgan" in sections:
        noise = streams["cgan"].standard_normal((len(digits), 100)).astype(np.float32)
        report["cgan"] = judge.judge(models["cgan_generator"](noise=noise, digit=digits)["image"], digits)
    report["data_sha256"] = {"test": test.sha256, "train": train.sha256}
    report["models"] = {name: str(paths[name]) for name in evaluated}
    return report


def evaluate_repository(repository: Path, data_dir: Path = DEFAULT_DATA_DIR, samples: int = 10_000,
                        seed: int = 0) -> dict:
    versions = newest_versions(repository)
    return evaluate_models({name: v.path for name, v in versions.items()}, data_dir, samples, seed)
