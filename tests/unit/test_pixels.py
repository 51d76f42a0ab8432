"""The one float-to-pixel rule and the tiling of digits that the server, the client
and the trainer share."""

import numpy as np

from genserve.pixels import tile, to_pixels


def test_pixels_are_rint_of_clipped_floats_times_255():
    values = np.array([-1.0, 0.0, 0.5 / 255, 1.5 / 255, 0.5, 254.5 / 255, 1.0, 2.0, np.float32(0.999)], np.float32)
    images = np.resize(values, (2, 1, 28, 28)).astype(np.float32)
    expected = np.rint(np.clip(images.astype(np.float64).reshape(-1, 28, 28), 0, 1) * 255).astype(np.uint8)
    got = to_pixels(images)
    assert got.dtype == np.uint8 and got.shape == (2, 28, 28)
    # float32 arithmetic may round a value that sits exactly on .5 the other way; nothing else differs
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    assert np.array_equal(to_pixels(np.zeros((3, 28, 28), np.float32)), np.zeros((3, 28, 28), np.uint8))
    assert np.array_equal(to_pixels(np.ones((1, 1, 28, 28), np.float32)), np.full((1, 28, 28), 255, np.uint8))


def test_uint8_images_pass_through():
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    assert to_pixels(images) is not None and np.array_equal(to_pixels(images[:, None]), images)


def test_tiles_are_laid_row_major_with_padding():
    digits = np.stack([np.full((28, 28), v, np.uint8) for v in (10, 20, 30)])
    canvas = tile(digits, ncol=2, pad=2, background=64)
    assert canvas.shape == (2 * 30 + 2, 2 * 30 + 2)
    assert canvas[2, 2] == 10 and canvas[2, 32] == 20 and canvas[32, 2] == 30
    assert canvas[0, 0] == 64 and canvas[32, 32] == 64  # border, and the empty fourth place
    assert tile(digits).shape == (56, 56)  # a square by default, edge to edge
