import pytest
from helpers import run_cli


def _assert_one_line_error(result, *fragments):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    # Progress lines may come before it; the error itself is one line, the last.
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.mark.parametrize("command", ["train", "export", "evaluate"])
def test_help(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0 and "usage:" in result.stdout


def test_unknown_model():
    _assert_one_line_error(run_cli("train", "--model", "unet"), "invalid choice: 'unet'")


def test_negative_epochs():
    _assert_one_line_error(run_cli("train", "--epochs", "-3"), "--epochs", "must be a positive integer, got -3")


def test_missing_data_dir(tmp_path):
    _assert_one_line_error(run_cli("train", "--model", "vae", "--data-dir", str(tmp_path / "nope"),
                                   "--run-dir", str(tmp_path)), "nope/train-images-idx3-ubyte[.gz]: no such file")


def test_corrupt_data_file(make_idx_dir, tmp_path):
    folder = make_idx_dir()
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    _assert_one_line_error(run_cli("train", "--model", "vae", "--data-dir", str(folder), "--run-dir",
                                   str(tmp_path / "run")), "train-labels-idx1-ubyte.gz: cannot read")


def test_missing_model_repository(tmp_path):
    _assert_one_line_error(run_cli("evaluate", "--model-repository", str(tmp_path / "none")),
                           "none: no such model repository")


def test_export_without_checkpoints(tmp_path):
    _assert_one_line_error(run_cli("export", "--from-checkpoints", str(tmp_path), "--model-repository",
                                   str(tmp_path / "m")), "vae/checkpoint.pt: no such checkpoint")


def test_trains_on_another_idx_folder(make_idx_dir, tmp_path):
    folder = make_idx_dir(n_train=300, n_test=50)
    result = run_cli("train", "--model", "classifier", "--data-dir", str(folder), "--run-dir", str(tmp_path / "r"),
                     "--epochs", "1", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r" / "classifier" / "checkpoint.pt").exists()
