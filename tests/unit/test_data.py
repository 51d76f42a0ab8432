import gzip
import hashlib

import numpy as np
import pytest
from helpers import write_idx

from trainer.data import DEFAULT_DATA_DIR, DataError, add_salt, load_split, read_idx

# From data/mnist/README.md: the uncompressed files' SHA-256.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


@pytest.mark.parametrize("name", sorted(MNIST_SHA256))
def test_bundled_mnist_is_the_published_files(name):
    data = gzip.decompress((DEFAULT_DATA_DIR / f"{name}.gz").read_bytes())
    assert hashlib.sha256(data).hexdigest() == MNIST_SHA256[name]


def test_bundled_mnist_loads_with_known_figures():
    train, test = load_split(split="train"), load_split(split="test")
    assert train.images.shape == (60000, 28, 28) and test.images.shape == (10000, 28, 28)
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert (train.images / 255).mean() == pytest.approx(0.1307, abs=1e-4)
    assert (test.images / 255).std() == pytest.approx(0.3105, abs=1e-4)


@pytest.mark.parametrize("compress", [True, False])
def test_reads_gzip_and_raw_idx(make_idx_dir, compress):
    split = load_split(make_idx_dir(n_train=10, n_test=5, compress=compress), "test")
    assert split.images.shape == (5, 28, 28) and split.labels.shape == (5,)


def test_bad_magic_names_the_file(tmp_path):
    path = write_idx(tmp_path / "x.gz", np.zeros((2, 28, 28)), 0x801)
    with pytest.raises(DataError, match=r"x\.gz: bad magic number 0x00000801, expected 0x00000803"):
        read_idx(path, 0x803, (28, 28))


def test_truncated_file(tmp_path):
    path = tmp_path / "short"
    write_idx(path, np.zeros((3, 28, 28)), 0x803, compress=False)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"short: truncated: .* header \(3, 28, 28\) needs 2368"):
        read_idx(path, 0x803, (28, 28))


def test_truncated_header(tmp_path):
    path = tmp_path / "tiny"
    path.write_bytes(b"\x00\x00\x08")
    with pytest.raises(DataError, match="tiny: truncated: 3 bytes"):
        read_idx(path, 0x803, (28, 28))


def test_trailing_bytes(tmp_path):
    path = tmp_path / "long"
    write_idx(path, np.zeros((1, 28, 28)), 0x803, compress=False)
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DataError, match="long: trailing bytes"):
        read_idx(path, 0x803, (28, 28))


def test_wrong_image_shape(tmp_path):
    path = write_idx(tmp_path / "big.gz", np.zeros((1, 32, 32)), 0x803)
    with pytest.raises(DataError, match=r"items of shape \(32, 32\), expected \(28, 28\)"):
        read_idx(path, 0x803, (28, 28))


def test_label_count_must_match_image_count(make_idx_dir):
    folder = make_idx_dir(n_train=10, n_test=5)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(4), 0x801)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: 4 labels for 5 images"):
        load_split(folder, "test")


def test_corrupt_gzip_names_the_file(make_idx_dir):
    folder = make_idx_dir()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: cannot read"):
        load_split(folder, "train")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte\\[.gz\\]: no such file"):
        load_split(tmp_path, "train")


def test_salt_sets_the_requested_share_to_white():
    images = np.zeros((200, 1, 28, 28), np.float32)
    noisy = add_salt(images, np.linspace(0, 0.4, 200), np.random.default_rng(0))
    shares = (noisy == 1).reshape(200, -1).mean(1)
    assert shares[0] == 0
    assert np.abs(shares - np.linspace(0, 0.4, 200)).max() < 0.07
    assert set(np.unique(noisy)) <= {0.0, 1.0}
