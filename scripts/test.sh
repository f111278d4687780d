#!/usr/bin/env bash
# Install what the tests need and run the whole suite (README command 2; .ci/run calls exactly this).
#
# Python environment: the active virtual environment ($VIRTUAL_ENV) if there is one, else ./.venv, created on first
# use (a stock Debian/Ubuntu python3 refuses `pip install` outside a venv: externally-managed-environment).
# Everything the suite exercises is installed here, from pyproject's [test] extra (peft, tensorboard, scipy, ...):
# a test that needs a package this command does not install is a bug in this script or in pyproject.toml.
# torch==2.13.0 is pinned here because on CPU-only CI machines it installs a CPU build from local disk, while an
# unpinned torch would pull a multi-GB CUDA build.
# Then ruff (lint, format check), then pytest. A single-node SLURM (scripts/local_slurm.sh) is started before pytest for the tests marked `slurm` and stopped
# after; where it cannot start (not root, no apt-get) those tests skip with the reason, except under CI, where that
# fails the run. pytest's exit code is kept. Extra arguments go to pytest (e.g. bash scripts/test.sh -k identity).
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
slurm_started=0
if [[ ${MFTI_NO_SLURM:-0} != 1 ]]; then
  if bash scripts/local_slurm.sh start >/dev/null; then
    slurm_started=1
    trap 'bash scripts/local_slurm.sh stop || true' EXIT
  elif [[ -n ${CI:-} ]]; then
    echo "test.sh: the local SLURM did not start (see above); CI needs it for the tests marked slurm" >&2
    exit 1
  else
    echo "test.sh: local SLURM not started (see above); tests marked slurm will skip" >&2
  fi
fi
rc=0
python -m pytest -q -p no:cacheprovider "$@" || rc=$?
exit $rc
