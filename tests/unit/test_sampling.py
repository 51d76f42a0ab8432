"""The keys of Sample's and SampleStream's latents: image i is the same values however
it is asked for, block 0 is numpy's default_rng stream, truncation bounds the GAN's
noise and scales the VAE's."""

import numpy as np
import pytest

from server.errors import InvalidArgument
from server.sampling import BLOCK, Controls, latents, span


def test_block_zero_is_default_rngs_stream():
    assert np.array_equal(span(7, 0, 300, 100, True),
                          np.random.default_rng(7).standard_normal((300, 100), dtype=np.float32))


@pytest.mark.parametrize("truncation", [None, 0.5, 2.0])
def test_image_i_does_not_depend_on_how_it_is_asked_for(truncation):
    whole = span(3, 0, 3 * BLOCK + 5, 100, True, truncation)
    for start, count in ((0, 1), (5, 700), (BLOCK - 3, 9), (2 * BLOCK, BLOCK + 5), (3 * BLOCK + 4, 1)):
        assert np.array_equal(span(3, start, count, 100, True, truncation), whole[start:start + count])
    picked = np.array([3 * BLOCK + 1, 17, BLOCK + 2, 17])
    assert np.array_equal(latents(3, picked, 100, True, truncation), whole[picked])


def test_truncation_keeps_the_noise_within_bounds_and_the_rest_untouched():
    plain, truncated = span(1, 0, 2000, 100, True), span(1, 0, 2000, 100, True, 0.7)
    assert np.abs(truncated).max() <= np.float32(0.7)
    within = np.abs(plain) <= np.float32(0.7)
    assert np.array_equal(truncated[within], plain[within])  # only components beyond it are redrawn
    assert np.allclose(span(1, 0, 50, 2, False, 0.5), 0.5 * span(1, 0, 50, 2, False))  # the VAE's: scaled


def test_redraws_are_other_values_of_the_same_seed():
    first, second = latents(4, np.arange(10), 100, True), latents(4, np.arange(10), 100, True, draw=1)
    assert not np.array_equal(first, second)
    assert np.array_equal(second, latents(4, np.arange(10), 100, True, draw=1))
    assert not np.array_equal(latents(5, np.arange(10), 100, True), first)


@pytest.mark.parametrize("fields, message", [
    ({"truncation": 0.0}, "truncation: must be between 0.05 and 10, got 0"),
    ({"truncation": float("nan")}, "truncation: must be between 0.05 and 10"),
    ({"truncation": 11.0}, "truncation: must be between 0.05 and 10, got 11"),
    ({"min_confidence": 0.0}, "min_confidence: must lie strictly between 0 and 1, got 0"),
    ({"min_confidence": 1.0}, "min_confidence: must lie strictly between 0 and 1, got 1"),
])
def test_bad_controls_name_their_field(fields, message):
    with pytest.raises(InvalidArgument, match=message):
        Controls(**fields)
