#!/bin/sh
# The install step of every image: a virtualenv at VENV with genserve and one extra.
# CI runs this same script (tests/e2e/test_deploy.py), so the images' installs cannot rot.
#
#   deploy/install.sh serve|serve-gpu|train|client VENV
set -eu
extra="${1:?usage: deploy/install.sh serve|serve-gpu|train|client VENV}"
venv="${2:?usage: deploy/install.sh serve|serve-gpu|train|client VENV}"
case "$extra" in
    serve|serve-gpu|train|client) ;;
    *) echo "deploy/install.sh: unknown extra '$extra' (serve, serve-gpu, train or client)" >&2; exit 2 ;;
esac
python3 -m venv "$venv"
"$venv/bin/pip" install --no-cache-dir --quiet --upgrade pip
if [ "$extra" = train ]; then
    # As in the README: this torch first, so that the range in pyproject.toml pulls no other.
    "$venv/bin/pip" install --no-cache-dir --quiet torch==2.13.0
fi
"$venv/bin/pip" install --no-cache-dir --quiet ".[$extra]"
