"""The model repository read as untrusted input: version names, special and huge files,
and manifests of every JSON type, each refused with a reason that names the file."""

import json
import os
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genserve.repository import (MAX_MANIFEST_BYTES, MAX_VERSION, RepositoryError, newest_folders, parse_version,
                                 read_version)


@pytest.mark.parametrize("text, value", [
    ("1", 1), ("17", 17), (str(MAX_VERSION), MAX_VERSION),
    ("0", None), ("01", None), ("-1", None), ("+1", None), (" 1", None), ("1 ", None), ("", None),
    ("²", None), ("٥", None), ("５", None), ("1٧", None), ("1e3", None), ("1_000", None),
    (str(MAX_VERSION + 1), None), ("1" * 5000, None),
])
def test_versions_are_ascii_digits_within_int64(text, value):
    assert parse_version(text) == value


@given(st.text(max_size=30))
def test_any_text_is_a_version_or_none(text):
    value = parse_version(text)
    assert value is None or (1 <= value <= MAX_VERSION and str(value) == text)


@pytest.fixture
def version(tmp_path, tiny_repository):
    """A copy of a real version folder, to tamper with."""
    folder = tmp_path / "gan_generator" / "1"
    shutil.copytree(tiny_repository / "gan_generator" / "1", folder)
    return folder


def refusal(folder) -> str:
    with pytest.raises(RepositoryError) as error:
        read_version(folder)
    return error.value.reason


def test_a_good_version_reads(version):
    assert read_version(version).version == 1


@pytest.mark.parametrize("manifest, reason", [
    ([], "a JSON object, not list"), ("text", "not str"), (3, "not int"), (None, "not NoneType"),
    ({"sha256": 5}, "sha256 must be a string"),
    ({"metrics": "fast"}, "metrics must be an object"),
    ({"inputs": {}}, "inputs must be a list"),
    ({"outputs": [5]}, "outputs[0] is not an object"),
    ({"inputs": [{"name": "noise", "dtype": "float32", "shape": ["N", "x"]}]}, "inputs[0] needs a shape"),
    ({"metrics": {"a": json.loads("[" * 40 + "]" * 40)}}, "nested deeper"),
])
def test_manifests_of_the_wrong_shape_are_refused(version, manifest, reason):
    good = json.loads((version / "manifest.json").read_text())
    if isinstance(manifest, dict):
        manifest = {**good, **manifest}
    (version / "manifest.json").write_text(json.dumps(manifest))
    got = refusal(version)
    assert reason in got and "manifest.json" in got


def test_unparseable_and_deeply_nested_manifests_are_refused(version):
    for text in ("{", "[" * 100_000, "\xff", '{"sha256": NaN'):
        (version / "manifest.json").write_text(text)
        assert "unreadable manifest" in refusal(version) or "nested deeper" in refusal(version)


def test_special_and_huge_files_are_refused_without_reading_them(version):
    manifest = version / "manifest.json"
    manifest.unlink()
    os.mkfifo(manifest)  # opening it for reading would block
    assert "not a regular file" in refusal(version)
    manifest.unlink()
    manifest.symlink_to("/dev/zero")  # reading it would never end
    assert "not a regular file" in refusal(version)
    manifest.unlink()
    manifest.write_bytes(b" " * (MAX_MANIFEST_BYTES + 1))
    assert "over the limit" in refusal(version)
    manifest.unlink()
    manifest.mkdir()
    assert "not a regular file" in refusal(version)


def test_a_model_file_that_is_not_a_regular_file_is_refused(version):
    model = version / "model.onnx"
    model.unlink()
    model.symlink_to("/dev/zero")
    assert "model.onnx: not a regular file" in refusal(version)
    model.unlink()
    assert "missing model file" in refusal(version)


def test_folder_names_outside_the_version_rule_are_not_versions(tmp_path, version):
    model_dir = version.parent
    for name in ("1٧", "٥", "9223372036854775808", "007", "2.0", ".staging-3"):
        (model_dir / name).mkdir()
    (model_dir / "5").write_text("a file, not a folder")
    assert newest_folders(version.parent.parent) == {"gan_generator": model_dir / "1"}
    assert "within int64" in refusal(model_dir / "9223372036854775808")


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=20))
def test_a_manifest_of_any_json_reads_or_is_refused_with_a_reason(tmp_path_factory, tiny_repository, value):
    folder = tmp_path_factory.mktemp("fuzz") / "gan_generator" / "1"
    shutil.copytree(tiny_repository / "gan_generator" / "1", folder)
    (folder / "manifest.json").write_text(json.dumps(value))
    with pytest.raises(RepositoryError) as error:  # none of these has the model's sha256
        read_version(folder)
    assert "manifest.json" in error.value.reason or "sha256" in error.value.reason
