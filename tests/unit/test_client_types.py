"""The client SDK is typed for its callers: it ships py.typed and passes mypy --strict."""

import subprocess
import sys

from helpers import ROOT


def test_the_client_passes_mypy_strict(tmp_path):
    assert (ROOT / "client" / "py.typed").is_file()
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path), "client"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
