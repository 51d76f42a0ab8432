"""Export trained checkpoints to the ONNX model repository.

Layout: ``<repository>/<model>/<version>/model.onnx`` beside ``manifest.json``.
Each export adds a version; none is ever overwritten. A model whose onnxruntime
output differs from PyTorch's by more than ``TOLERANCE`` is not written.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import torch
from torch import nn

from genserve.contract import CONTRACTS, ModelContract, TensorSpec, random_input
from genserve.repository import newest_versions, next_version, sha256_file

from .data import DEFAULT_DATA_DIR
from .evaluate import OnnxModel, evaluate_models
from .models import UnitIntervalGenerator, count_parameters
from .train import load_trained

log = logging.getLogger(__name__)
# torch configures this logger on import; it reports every optimisation pass and ops of
# torchvision, which genserve does not use.
logging.getLogger("torch.onnx").setLevel(logging.ERROR)

TOLERANCE = 1e-5
PARITY_BATCHES = (1, 64)


class ExportError(Exception):
    """A model could not be exported, or failed its checks."""


class _Classifier(nn.Module):
    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, image):
        features = self.classifier.features(image)
        return self.classifier.head(features), features


@dataclass(frozen=True)
class ModelSpec:
    """How one model of the repository is exported: from which training run, built how,
    and to which contract (genserve.contract, which the server checks too)."""
    name: str
    run: str  # the training run (``--model``) it comes from
    build: Callable[[dict[str, nn.Module]], nn.Module]
    metrics: str  # section of the evaluation report that belongs in its manifest

    @property
    def contract(self) -> ModelContract:
        return CONTRACTS[self.name]

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.contract.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.contract.outputs

    def random_inputs(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {spec.name: random_input(spec, n, rng) for spec in self.inputs}


SPECS = (
    ModelSpec("vae_encoder", "vae", lambda m: m["encoder"], "vae"),
    ModelSpec("vae_decoder", "vae", lambda m: m["decoder"], "vae"),
    ModelSpec("gan_generator", "gan", lambda m: UnitIntervalGenerator(m["generator_ema"]), "gan"),
    ModelSpec("dae", "dae", lambda m: m["dae"], "dae"),
    ModelSpec("digit_classifier", "classifier", lambda m: _Classifier(m["classifier"]), "classifier"),
    ModelSpec("cvae_encoder", "cvae", lambda m: m["encoder"], "cvae"),
    ModelSpec("cvae_decoder", "cvae", lambda m: m["decoder"], "cvae"),
    ModelSpec("cgan_generator", "cgan", lambda m: UnitIntervalGenerator(m["generator_ema"]), "cgan"),
)


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], capture_output=True, text=True,
                             timeout=10, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def export_onnx(module: nn.Module, spec: ModelSpec, path: Path) -> None:
    module.eval()
    example = tuple(torch.from_numpy(v) for v in spec.random_inputs(2, np.random.default_rng(0)).values())
    batch = torch.export.Dim("N")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module, example, input_names=[t.name for t in spec.inputs],
            output_names=[t.name for t in spec.outputs],
            dynamic_shapes={t.name: {0: batch} for t in spec.inputs}, dynamo=True,
            external_data=False, verbose=False)
    program.save(str(path))
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def check_parity(module: nn.Module, spec: ModelSpec, path: Path) -> float:
    """Largest |onnxruntime - PyTorch| over every output at each parity batch size."""
    session = OnnxModel(path)
    worst = 0.0
    for n in PARITY_BATCHES:
        inputs = spec.random_inputs(n, np.random.default_rng(n))
        with torch.no_grad():
            expected = module(*(torch.from_numpy(v) for v in inputs.values()))
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = session(**inputs)
        for out, ref in zip(spec.outputs, expected):
            if got[out.name].shape != tuple(ref.shape):
                raise ExportError(f"{spec.name}: output {out.name} has shape {got[out.name].shape} "
                                  f"in onnxruntime, {tuple(ref.shape)} in PyTorch at batch {n}")
            worst = max(worst, float(np.abs(got[out.name] - ref.numpy()).max()))
    if worst > TOLERANCE:
        raise ExportError(f"{spec.name}: onnxruntime differs from PyTorch by {worst:.3g} > {TOLERANCE}; not written")
    return worst


def export_repository(run_dir: Path, repository: Path, data_dir: Path = DEFAULT_DATA_DIR,
                      samples: int = 10_000, runs: tuple[str, ...] | None = None) -> list[Path]:
    """Export the models of a training run's ``runs`` (default: all) as new versions; returns
    the new version folders. They are evaluated beside the newest versions of the repository's
    other models, which evaluation.json then describes too."""
    specs = [spec for spec in SPECS if runs is None or spec.run in runs]
    if not specs:
        raise ExportError(f"no model to export from the runs {', '.join(runs or ())}")
    repository = Path(repository)
    repository.mkdir(parents=True, exist_ok=True)
    staged: dict[str, Path] = {}
    states: dict[str, dict] = {}
    trained: dict[str, dict[str, nn.Module]] = {}
    parity: dict[str, float] = {}
    built: dict[str, nn.Module] = {}
    try:
        for spec in specs:
            if spec.run not in states:
                task, states[spec.run] = load_trained(run_dir, spec.run)
                trained[spec.run] = task.modules
            module = built[spec.name] = spec.build(trained[spec.run])
            stage = repository / spec.name / f".staging-{uuid.uuid4().hex[:8]}"
            stage.mkdir(parents=True)
            staged[spec.name] = stage
            export_onnx(module, spec, stage / "model.onnx")
            parity[spec.name] = check_parity(module, spec, stage / "model.onnx")
            log.info("%s: exported, onnxruntime within %.2g of PyTorch", spec.name, parity[spec.name])

        log.info("evaluating the exported models")
        others = {name: v.path for name, v in newest_versions(repository).items() if name not in staged}
        report = evaluate_models({**others, **{name: stage / "model.onnx" for name, stage in staged.items()}},
                                 data_dir, samples=samples)
        commit, created = _commit(), dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        written = []
        for spec in specs:
            stage, state = staged[spec.name], states[spec.run]
            model_dir = repository / spec.name
            version = next_version(model_dir)
            manifest = {
                "name": spec.name, "version": version, "role": spec.contract.role, "file": "model.onnx",
                "sha256": sha256_file(stage / "model.onnx"), "bytes": (stage / "model.onnx").stat().st_size,
                "created": created, "commit": commit,
                "opset": next(o.version for o in onnx.load(str(stage / "model.onnx")).opset_import if o.domain == ""),
                "parameters": count_parameters(built[spec.name]),
                "inputs": [t.as_dict() for t in spec.inputs],
                "outputs": [t.as_dict() for t in spec.outputs],
                "training": {"run": spec.run, "recipe": state["recipe"], "epochs_trained": state["epoch"],
                             "seed": state["seed"], "train_images": state["train_images"],
                             "final_epoch_metrics": state["metrics"]},
                "data_sha256": state["data_sha256"],
                "parity_max_abs_diff": parity[spec.name],
                "metrics": report[spec.metrics],
            }
            (stage / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            final = model_dir / str(version)
            os.rename(stage, final)  # fails rather than replace an existing version
            written.append(final)
            del staged[spec.name]
            report["models"][spec.name] = str(final / "model.onnx")  # not the staging folder it was evaluated in
        (repository / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
        return written
    finally:
        for stage in staged.values():
            shutil.rmtree(stage, ignore_errors=True)
