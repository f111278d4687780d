#!/usr/bin/env bash
# Issue 23's one prepared GPU run (< 8 min on one H100/H200): the carried wheels, then benchmarks/gpu_all.py
# (training and evaluation throughput -> $OUT/throughput.json), then a short tiny-model mfti-train with trainer=gpu
# end to end (bf16, SDPA, checkpoint, run again = resume of the completed run, mfti-export, mfti-eval of the export).
# Each part runs even if the one before failed; logs are unbuffered and tee'd into $OUT.
#
#   bash scripts/gpu_run.sh                                 # on the GPU machine ($OUT set by the device tool)
#   OUT=/tmp/o PARTS=e2e TRAINER=cpu bash scripts/gpu_run.sh  # the end-to-end part on a CPU (same overrides)
#
# Wheels for what the GPU image lacks travel in .whl/ (git-ignored): hydra-core, omegaconf, antlr4-python3-runtime
# (sdist only: `pip wheel --no-deps`), submitit, hydra-submitit-launcher, ctranslate2 (cp312). Not carried:
# wandb (logger=none) and lingua-language-detector (96 MB wheel; eval.lid_languages=none skips language ID).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_run_out}
PY=${PY:-python3}
TRAINER=${TRAINER:-gpu}
PARTS=${PARTS:-all} # all | bench | e2e
BENCH_LIMIT=${BENCH_LIMIT:-250} # gpu_all --time-limit: no case starts after this many seconds
BENCH_TIMEOUT=${BENCH_TIMEOUT:-330} # hard limit for gpu_all (it saves its JSON after every case)
E2E_TIMEOUT=${E2E_TIMEOUT:-130} # hard limit for the whole end-to-end part
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" WANDB_MODE=offline TOKENIZERS_PARALLELISM=false

if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl &&
    export PYTHONPATH="$PYTHONPATH:/tmp/site" || echo "WHEEL INSTALL FAILED"
fi
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  $PY -c 'import torch, transformers, pytorch_lightning as pl, hydra, omegaconf
print("python", __import__("sys").version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
      "transformers", transformers.__version__, "lightning", pl.__version__, "hydra", hydra.__version__,
      "omegaconf", omegaconf.__version__, "gpu", torch.cuda.get_device_name() if torch.cuda.is_available() else None)'
  ldconfig -p 2>/dev/null | grep -E "libcublas\.so" || echo "ldconfig: no libcublas"
  find /usr /opt -name "libcublas.so.1[0-9]*" 2>/dev/null | head -5
} 2>&1 | tee "$OUT/env.log"

if [[ $PARTS == all || $PARTS == bench ]]; then
  timeout -k 10 "$BENCH_TIMEOUT" $PY benchmarks/gpu_all.py --time-limit "$BENCH_LIMIT" --out "$OUT/throughput.json" 2>&1 |
    tee "$OUT/gpu_all.log"
  echo "gpu_all exit ${PIPESTATUS[0]}" | tee -a "$OUT/gpu_all.log"
fi

if [[ $PARTS == all || $PARTS == e2e ]]; then
  work=$(mktemp -d /tmp/mfti-e2e-XXXX)
  export MFTI_OUTPUT_ROOT="$work/outputs" MFTI_CACHE_DIR="$work/cache"
  args=(trainer="$TRAINER" logger=none eval.lid_languages=none optim.max_steps=40 eval.val_every_n_steps=20)
  e2e() {
    set -e
    local t0=$SECONDS
    echo "== mfti-train ${args[*]}"
    $PY -m mfti_lightning.cli.train "${args[@]}"
    run_dir=$(dirname "$(find "$MFTI_OUTPUT_ROOT" -name results.json -path '*/runs/*' | head -1)")
    echo "== run dir $run_dir ($((SECONDS - t0)) s); again (a completed run: skipped)"
    $PY -m mfti_lightning.cli.train "${args[@]}"
    echo "== mfti-export ($((SECONDS - t0)) s)"
    $PY -m mfti_lightning.cli.export "$run_dir" --out "$work/export"
    echo "== mfti-eval ckpt_path=<export> ($((SECONDS - t0)) s)"
    $PY -m mfti_lightning.cli.eval ckpt_path="$work/export" trainer="$TRAINER" logger=none eval.lid_languages=none \
      lang_pairs.test_size=20
    echo "== e2e passed ($((SECONDS - t0)) s)"
  }
  export -f e2e
  export PY TRAINER work
  timeout -k 10 "$E2E_TIMEOUT" bash -c "args=(${args[*]}); e2e" 2>&1 | tee "$OUT/e2e.log"
  echo "e2e exit ${PIPESTATUS[0]}" | tee -a "$OUT/e2e.log"
  find "$work/outputs" -name results.json | head -3 | while read -r f; do
    cp "$f" "$OUT/results_$(basename "$(dirname "$(dirname "$f")")")_$(basename "$(dirname "$f")" | cut -c1-40).json"
  done
fi
ls -la "$OUT"
