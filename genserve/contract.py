"""The tensor contract of every model genserve knows: its role, and the names, dtypes,
shapes and value ranges of its inputs and outputs. The trainer exports to it and
writes it into each manifest; the server checks every version against it (and its
warm-up outputs against the ranges) before serving it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BATCH = "N"  # the dynamic batch axis, first in every shape
IMAGE = (BATCH, 1, 28, 28)
NOISE_DIM = 100  # the GAN's input, as in the lecture
LATENT_DIM = 2  # the VAE's latent, as in the lecture: small enough to draw
DIGITS = 10  # the classes of MNIST, 0-9: what a conditional model's digit input names
UNIT_IMAGE = "pixels in [0, 1], 1 = white ink"

# onnxruntime's names of the dtypes in use.
ONNX_TYPES = {"float32": "tensor(float)", "int64": "tensor(int64)"}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # BATCH first, then fixed sizes
    description: str
    dtype: str = "float32"
    low: float = -math.inf  # the values a well-formed tensor holds
    high: float = math.inf

    @property
    def item_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[1:])

    def as_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "description": self.description}


@dataclass(frozen=True)
class ModelContract:
    name: str
    role: str  # what genserve.v1 does with it: sampler, encoder, decoder, denoiser, classifier
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def _image(description: str = UNIT_IMAGE, name: str = "image") -> TensorSpec:
    return TensorSpec(name, IMAGE, description, low=0.0, high=1.0)


def _digit(description: str = "the digit to draw, 0-9") -> TensorSpec:
    return TensorSpec("digit", (BATCH,), description, dtype="int64", low=0, high=DIGITS - 1)


CONTRACTS: dict[str, ModelContract] = {c.name: c for c in (
    ModelContract("vae_encoder", "encoder", (_image(),),
                  (TensorSpec("z_mean", (BATCH, LATENT_DIM), "mean of q(z|x)"),
                   TensorSpec("z_log_var", (BATCH, LATENT_DIM), "log variance of q(z|x)"))),
    ModelContract("vae_decoder", "decoder",
                  (TensorSpec("z", (BATCH, LATENT_DIM), "latent point; the prior is N(0, I)"),),
                  (_image(),)),
    ModelContract("gan_generator", "sampler",
                  (TensorSpec("noise", (BATCH, NOISE_DIM), "standard normal noise"),),
                  (_image(UNIT_IMAGE + " (the generator's tanh mapped in the graph)"),)),
    ModelContract("dae", "denoiser", (_image(UNIT_IMAGE + ", with salt noise", "noisy"),),
                  (_image(UNIT_IMAGE + ", denoised"),)),
    ModelContract("cgan_generator", "conditional_sampler",
                  (TensorSpec("noise", (BATCH, NOISE_DIM), "standard normal noise"), _digit()),
                  (_image(UNIT_IMAGE + " (the generator's tanh mapped in the graph)"),)),
    ModelContract("cvae_encoder", "conditional_encoder", (_image(), _digit("the digit the image shows")),
                  (TensorSpec("z_mean", (BATCH, LATENT_DIM), "mean of q(z|x, digit): the handwriting's style"),
                   TensorSpec("z_log_var", (BATCH, LATENT_DIM), "log variance of q(z|x, digit)"))),
    ModelContract("cvae_decoder", "conditional_decoder",
                  (TensorSpec("z", (BATCH, LATENT_DIM), "style point; the prior is N(0, I)"), _digit()),
                  (_image(),)),
    ModelContract("digit_classifier", "classifier", (_image(),),
                  (TensorSpec("logits", (BATCH, 10), "unnormalised digit scores"),
                   TensorSpec("features", (BATCH, 128), "penultimate features, for Frechet distances"))),
)}


# Each role's contract: what a model must take and give for genserve.v1 to use it that way.
ROLES: dict[str, ModelContract] = {c.role: c for c in CONTRACTS.values()}


class ContractError(ValueError):
    """A manifest's role or tensors break the contract of its role."""


def declared_contract(name: str, manifest: dict) -> ModelContract | None:
    """The contract a version's manifest declares: its role's, whose tensors the manifest
    must list as they are. A manifest without a role takes its model name's contract when
    genserve knows the name; None: no role, a model for the Open Inference Protocol alone."""
    role = manifest.get("role")
    if role is None:
        return CONTRACTS.get(name)
    if not isinstance(role, str) or role not in ROLES:
        raise ContractError(f"role {role!r} is not one genserve knows; use one of {', '.join(sorted(ROLES))}")
    template = ROLES[role]
    for kind, specs in (("inputs", template.inputs), ("outputs", template.outputs)):
        declared = manifest.get(kind)
        wanted = [s.as_dict() for s in specs]
        strip = lambda tensors: [{k: t.get(k) for k in ("name", "dtype", "shape")} for t in tensors]  # noqa: E731
        if not isinstance(declared, list) or not all(isinstance(t, dict) for t in declared) \
                or strip(declared) != strip(wanted):
            spell = ", ".join(f"{t['name']} {t['dtype']} [{','.join(map(str, t['shape']))}]" for t in wanted)
            raise ContractError(f"{kind} must be {spell} for the role {role}")
    return ModelContract(name, role, template.inputs, template.outputs)


def random_input(spec: TensorSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows of well-formed values for ``spec``: pixels uniform in [0, 1], digits
    uniform over 0-9, noise and latents standard normal."""
    shape = (n, *spec.item_shape)
    if spec.dtype == "int64":
        return rng.integers(int(spec.low), int(spec.high) + 1, shape, dtype=np.int64)
    if spec.high == 1.0:
        return rng.random(shape, dtype=np.float32)
    return rng.standard_normal(shape, dtype=np.float32)


def mismatch(contract: ModelContract, inputs: list, outputs: list) -> str | None:
    """Why a model's inputs and outputs (onnxruntime's NodeArg: name, type, shape) break
    ``contract``, or None when they keep it."""
    def spell(nodes) -> str:
        return ", ".join(f"{n.name} {n.type} {list(n.shape)}" for n in nodes)

    for kind, specs, nodes in (("inputs", contract.inputs, inputs), ("outputs", contract.outputs, outputs)):
        if [n.name for n in nodes] != [s.name for s in specs]:
            return f"{kind} must be {', '.join(s.name for s in specs)}; it has {spell(nodes) or 'none'}"
        for spec, node in zip(specs, nodes):
            shape = list(node.shape)
            if (node.type != ONNX_TYPES[spec.dtype] or len(shape) != len(spec.shape)
                    or isinstance(shape[0], int) or tuple(shape[1:]) != spec.item_shape):
                return (f"{kind[:-1]} {spec.name} must be {spec.dtype} [{','.join(map(str, spec.shape))}]; "
                        f"it is {node.type} {shape}")
    return None
