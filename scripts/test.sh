#!/usr/bin/env bash
# Install what the tests need and run the whole suite (README command 2; .ci/run calls exactly this).
# torch==2.13.0 is pinned here because on CPU-only CI machines it installs a CPU build from local disk,
# while an unpinned torch would pull a multi-GB CUDA build.
# A single-node SLURM (scripts/local_slurm.sh) is started before pytest for the tests marked `slurm` and stopped
# after; where it cannot start (not root, no apt-get) those tests skip with the reason. pytest's exit code is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --disable-pip-version-check -q "torch==2.13.0" -e ".[test]"
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
python3 -m pytest -q -p no:cacheprovider "$@" || rc=$?
exit $rc
