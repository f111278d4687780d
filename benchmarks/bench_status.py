"""CPU: wall time of ``mfti status`` on a 200-job sweep (target: well under 2 s), beside baselines measured in the
same run: the interpreter alone (``python -c pass``), importing the command, and reading (and json-parsing) the
sweep's files alone (the manifest and each run directory's results.json, progress.json, lease.json), no SLURM.

The sweep is synthetic but sized like the paper's: one job array of 200 tasks in submissions.jsonl; per run
directory a results.json of a 156-direction evaluation (per-direction metrics, signatures, error rates and
examples, rows, eight validations; its size is printed), a progress.json with attempts, and for 3 jobs in 4 (running
on another host) a lease.json. SLURM's two
commands are scripts on PATH that print 200 rows (a mix of running, pending, completed and failed), so the parsing
is included; where the real ``squeue``/``sacct`` are installed, one call of each for the sweep's (unknown) array id
is timed too and the status command is also run against them.

    python benchmarks/bench_status.py [--jobs 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mfti_lightning.core.languages import PAPER_LANGUAGES
from mfti_lightning.core.results import write_json_atomic
from mfti_lightning.launch.manifest import Submission, append_submissions

ARRAY = "990001"
DIRECTIONS = [f"{a}-{b}" for a in sorted(PAPER_LANGUAGES) for b in sorted(PAPER_LANGUAGES) if a != b]
READ_BYTES = """
import json, os, sys
sweep = sys.argv[1]
for rec in [json.loads(x) for x in open(os.path.join(sweep, "submissions.jsonl"))]:
    for name in ("results.json", "progress.json", "lease.json"):
        try:
            open(os.path.join(sweep, rec["run_dir"], name), "rb").read()
        except FileNotFoundError:
            pass
"""
READ_ALONE = """
import json, os, sys
sweep = sys.argv[1]
lines = [json.loads(x) for x in open(os.path.join(sweep, "submissions.jsonl"))]
for rec in lines:
    for name in ("results.json", "progress.json", "lease.json"):
        try:
            json.load(open(os.path.join(sweep, rec["run_dir"], name)))
        except FileNotFoundError:
            pass
"""


def results_record(i: int) -> dict:
    """A results.json of a 156-direction run, as large as the real one's per-direction parts make it."""
    metrics, signatures, rows, errors = {}, {}, [], {}
    for d in DIRECTIONS:
        for m in ("bleu", "chrf", "chrf++", "spbleu"):
            metrics[f"test/{m}/{d}"] = metrics[f"test_clean/{m}/{d}"] = 12.345678 + i
        for rate in ("off_target", "source_copy", "oscillatory_hallucination", "template_leakage", "other"):
            metrics[f"test/rate_{rate}/{d}"] = 0.0123
        signatures[d] = {m: f"nrefs:1|case:mixed|eff:no|tok:flores101|smooth:exp|version:2.5.1|{m}" for m in "abc"}
        rows.append({"direction": d, "bleu": 1.0, "chrf": 2.0, "n": 1012, "off_target": 0.1, "source_copy": 0.0})
        errors[d] = {
            "counts": {k: 3 for k in ("off_target", "source_copy", "other")},
            "examples": [{"source": "a source sentence " * 4, "hypothesis": "its translation " * 4}] * 2,
        }
    history = [{"step": s, **{f"val/chrf/{d}": 3.0 for d in DIRECTIONS}} for s in range(250, 2001, 250)]
    return {"schema": 1, "status": ("completed", "failed")[i % 40 == 7], "task": "train", "metrics": metrics,
            "signatures": signatures, "direction_rows": rows, "errors": errors, "validation_history": history,
            "config": {"model": {"name": "xglm-7.5b"}, "lang_pairs": {"train": DIRECTIONS, "eval": DIRECTIONS}},
            "error": "RuntimeError: CUDA out of memory" if i % 40 == 7 else None}  # fmt: skip


def make_sweep(root: Path, n: int) -> Path:
    sweep = root / "train" / "sweeps" / "bench"
    recs = [Submission(run_dir=f"job{i:03d}-0123abcd", num=i, overrides=[f"seed={i}"], job_id=f"{ARRAY}_{i}",
                       array_job_id=ARRAY, array_task_id=i, log=f".submitit/{ARRAY}_{i}/{ARRAY}_{i}_0_log.out",
                       submitted_at="2026-12-04T10:00:00+00:00", gpu_hours_estimate=64.0) for i in range(n)]  # fmt: skip
    append_submissions(sweep, recs)
    now = time.time()
    for i, rec in enumerate(recs):
        run_dir = sweep / rec.run_dir
        run_dir.mkdir(parents=True)
        attempts = [{"started_at": now - 7200, "ended_at": now - 60, "host": "gpu01", "slurm_job": rec.job_id,
                     "restart": 0, "devices": 8}]  # fmt: skip
        progress = {"phase": "training", "updated_at": now - 60, "step": 900, "max_steps": 2000, "loss": 1.23,
                    "eta_s": 3600.0, "val": {"metric": "val/chrf/avg", "value": 40.1, "step": 750},
                    "attempts": attempts}  # fmt: skip
        (run_dir / "progress.json").write_text(json.dumps(progress))
        write_json_atomic(run_dir / "results.json", results_record(i))  # every job's (the worst case), as jobs write it
        if i % 4:  # running again on another host (re-evaluation, say), heartbeat fresh
            holder = {"host": "gpu01", "pid": 4242, "token": "t", "acquired_at": now - 7200, "heartbeat_at": now,
                      "slurm_job": rec.job_id}  # fmt: skip
            (run_dir / "lease.json").write_text(json.dumps(holder))
    return sweep


def fake_slurm(root: Path, n: int) -> Path:
    """squeue/sacct scripts printing 200 rows, as the real ones print them."""
    bin_dir = root / "bin"
    bin_dir.mkdir()
    queue = [f"{ARRAY}_{i}|RUNNING|None|gpu01" for i in range(n) if i % 4]
    acct = [f"{ARRAY}_{i}|{'FAILED' if i % 40 == 7 else 'COMPLETED' if i % 4 == 0 else 'RUNNING'}|0:0|7140|gpu01"
            for i in range(n)]  # fmt: skip
    for name, rows in (("squeue", queue), ("sacct", acct)):
        (bin_dir / f"{name}.out").write_text("\n".join(rows) + "\n")
        (bin_dir / name).write_text(f'#!/bin/sh\ncat "{bin_dir}/{name}.out"\n')
        (bin_dir / name).chmod(0o755)
    return bin_dir


def timed(cmd: list[str], repeat: int, env: dict | None = None) -> float:
    """Median wall seconds of ``repeat`` runs (after one warm-up run)."""
    runs = []
    for k in range(repeat + 1):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, timeout=120)
        if p.returncode not in (0, 1):
            raise SystemExit(f"{cmd} failed: {p.stderr[-2000:]}")
        if k:
            runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, {socket.gethostname()}"
    )
    root = Path(tempfile.mkdtemp(prefix="bench-status-"))
    try:
        sweep = make_sweep(root, args.jobs)
        size = (sweep / "job000-0123abcd" / "results.json").stat().st_size
        print(f"sweep: {args.jobs} jobs, results.json {size / 1e6:.2f} MB each, medians of {args.repeat} runs")
        fake_env = {**os.environ, "PATH": f"{fake_slurm(root, args.jobs)}:{os.environ['PATH']}"}
        py = sys.executable
        status = [py, "-m", "mfti_lightning.cli.main", "status", str(sweep)]
        rows = [
            ("python -c pass", timed([py, "-c", "pass"], args.repeat)),
            ("import mfti_lightning.cli.status", timed([py, "-c", "import mfti_lightning.cli.status"], args.repeat)),
            ("read the sweep's files alone (bytes)", timed([py, "-c", READ_BYTES, str(sweep)], args.repeat)),
            ("read + json-parse the sweep's files alone", timed([py, "-c", READ_ALONE, str(sweep)], args.repeat)),
            ("mfti status --json (SLURM: 200-row scripts)", timed([*status, "--json"], args.repeat, fake_env)),
            ("mfti status, table (SLURM: 200-row scripts)", timed(status, args.repeat, fake_env)),
        ]
        if shutil.which("squeue") and shutil.which("sacct"):
            rows.append(("squeue -j <id> alone (real SLURM)", timed(["squeue", "-h", "-j", ARRAY], args.repeat)))
            rows.append(("sacct -j <id> alone (real SLURM)", timed(["sacct", "-X", "-n", "-j", ARRAY], args.repeat)))
            rows.append(("mfti status --json (real SLURM)", timed([*status, "--json"], args.repeat)))
        print("| what | wall (s) |\n|---|---|")
        for what, t in rows:
            print(f"| {what} | {t:.3f} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
