#!/usr/bin/env bash
# Install what the tests need and run the whole suite (README command 2; .ci/run calls exactly this).
#
# Python environment: the active virtual environment ($VIRTUAL_ENV) if there is one, else ./.venv, created on first
# use (a stock Debian/Ubuntu python3 refuses `pip install` outside a venv: externally-managed-environment).
# Everything the suite exercises is installed here, from pyproject's [test] extra (peft, tensorboard, ctranslate2, ...):
# a test that needs a package this command does not install is a bug in this script or in pyproject.toml.
# torch==2.13.0 is pinned here because on CPU-only CI machines it installs a CPU build from local disk, while an
# unpinned torch would pull a multi-GB CUDA build.
# Then ruff (lint, format check), then pytest. A single-node SLURM (scripts/local_slurm.sh) and a two-node one
# (scripts/local_slurm_multinode.sh) are started before pytest for the tests marked `slurm` and `multinode` and
# stopped after; where one cannot start (not root, no apt-get) its tests skip with the reason, except under CI, where
# that fails the run. MFTI_NO_SLURM=1 starts neither. pytest's exit code is kept. Extra arguments go to pytest
# (e.g. bash scripts/test.sh -k identity).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${VIRTUAL_ENV:-} ]]; then
  [[ -x .venv/bin/python ]] || python3 -m venv .venv
  # shellcheck disable=SC1091
  source .venv/bin/activate
fi
echo "test.sh: python environment $VIRTUAL_ENV" >&2
python -m pip install --disable-pip-version-check -q "torch==2.13.0" -e ".[test]"
# lint and format first (pyproject's [tool.ruff]): cheap, and a failure names the file and line
ruff check .
ruff format --check .
# the clusters are stopped on exit (stop_clusters), in the reverse order of their start
stops=()
stop_clusters() {
  local i
  for ((i = ${#stops[@]} - 1; i >= 0; i--)); do bash "${stops[i]}" stop || true; done
}
trap stop_clusters EXIT
start_cluster() {  # start_cluster <script> <marker>: skip its tests where it cannot start, except under CI
  if bash "scripts/$1" start >/dev/null; then
    stops+=("scripts/$1")
  elif [[ -n ${CI:-} ]]; then
    echo "test.sh: scripts/$1 did not start (see above); CI needs it for the tests marked $2" >&2
    exit 1
  else
    echo "test.sh: scripts/$1 did not start (see above); tests marked $2 will skip" >&2
  fi
}
if [[ ${MFTI_NO_SLURM:-0} != 1 ]]; then
  start_cluster local_slurm.sh slurm
  start_cluster local_slurm_multinode.sh multinode  # two slurmd on loopback, beside the single-node cluster
fi
rc=0
# -m "": every test (pyproject's addopts selects the fast tier for a bare `pytest`); a -m in "$@" comes later and wins
# one pytest worker per core (pytest-xdist): most tests start processes that spend their time importing and in
# single-threaded Python; the tests that use the local clusters stay on one worker (tests/conftest.py)
python -m pytest -q -p no:cacheprovider -m "" -n "${MFTI_TEST_WORKERS:-auto}" --dist loadgroup "$@" || rc=$?
exit $rc
