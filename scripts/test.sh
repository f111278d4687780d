#!/usr/bin/env bash
# Install what the tests need and run the whole suite (README command 2; .ci/run calls exactly this).
# torch==2.13.0 is pinned here because on CPU-only CI machines it installs a CPU build from local disk,
# while an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --disable-pip-version-check -q "torch==2.13.0" -e ".[test]"
exec python3 -m pytest -q -p no:cacheprovider "$@"
