"""genserve.contract: each role's tensors, the contract a manifest declares, and the
well-formed inputs the trainer's parity check and the server's warm-up draw from it."""

import numpy as np
import pytest

from genserve.contract import CONTRACTS, ROLES, ContractError, declared_contract, random_input
from genserve.latents import grid, lerp, slerp


def manifest(name: str, **changes) -> dict:
    contract = CONTRACTS[name]
    return {"role": contract.role, "inputs": [t.as_dict() for t in contract.inputs],
            "outputs": [t.as_dict() for t in contract.outputs], **changes}


def test_every_role_has_one_contract():
    assert sorted(ROLES) == ["classifier", "conditional_decoder", "conditional_encoder", "conditional_sampler",
                             "decoder", "denoiser", "encoder", "sampler"]
    assert [(t.name, t.dtype, t.shape) for t in ROLES["conditional_sampler"].inputs] == [
        ("noise", "float32", ("N", 100)), ("digit", "int64", ("N",))]


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_a_manifest_declares_its_role(name):
    assert declared_contract(name, manifest(name)).role == CONTRACTS[name].role
    # Another name may serve in a role: the role, not the name, says what genserve.v1 does with it.
    assert declared_contract("my_" + name, manifest(name)).name == "my_" + name


def test_a_manifest_without_a_role_takes_its_known_name_or_none():
    assert declared_contract("gan_generator", {}) is CONTRACTS["gan_generator"]
    assert declared_contract("some_other_model", {}) is None


def test_a_manifest_breaking_its_role_is_refused():
    with pytest.raises(ContractError, match="role 'painter' is not one genserve knows"):
        declared_contract("x", manifest("dae", role="painter"))
    wrong = manifest("cgan_generator")
    wrong["inputs"][1]["dtype"] = "float32"
    with pytest.raises(ContractError, match=r"inputs must be noise float32 \[N,100\], digit int64 \[N\]"):
        declared_contract("cgan_generator", wrong)
    with pytest.raises(ContractError, match="outputs must be"):
        declared_contract("vae_decoder", manifest("vae_decoder", outputs="image"))


def test_random_inputs_keep_the_contract():
    rng = np.random.default_rng(0)
    digit = random_input(CONTRACTS["cgan_generator"].inputs[1], 500, rng)
    assert digit.dtype == np.int64 and digit.shape == (500,) and set(digit) == set(range(10))
    image = random_input(CONTRACTS["dae"].inputs[0], 3, rng)
    assert image.dtype == np.float32 and image.shape == (3, 1, 28, 28) and 0 <= image.min() <= image.max() <= 1
    assert random_input(CONTRACTS["vae_decoder"].inputs[0], 4, rng).shape == (4, 2)


def test_interpolations_include_both_ends_exactly():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(100, dtype=np.float32), rng.standard_normal(100, dtype=np.float32)
    for path in (lerp(a, b, 9), slerp(a, b, 9)):
        assert path.dtype == np.float32 and path.shape == (9, 100)
        assert np.array_equal(path[0], a) and np.array_equal(path[-1], b)
    # On the great circle the norm stays between the ends'; on the line it sags in the middle.
    norms = np.linalg.norm(slerp(a, b, 9), axis=1)
    assert norms.min() >= min(np.linalg.norm(a), np.linalg.norm(b)) - 1e-4
    assert np.linalg.norm(lerp(a, b, 9)[4]) < norms[4] - 1
    assert np.array_equal(slerp(a, a, 3), lerp(a, a, 3))  # parallel: the line
    assert np.array_equal(slerp(np.zeros(2, np.float32), a[:2], 3), lerp(np.zeros(2, np.float32), a[:2], 3))


def test_the_grid_runs_z1_across_and_z2_down():
    z = grid(3, 1.5).reshape(3, 3, 2)
    assert z[0, 0].tolist() == [-1.5, -1.5] and z[0, 2].tolist() == [1.5, -1.5]
    assert z[2, 0].tolist() == [-1.5, 1.5] and z[1, 1].tolist() == [0, 0]
