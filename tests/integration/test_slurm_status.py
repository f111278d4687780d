"""``mfti status`` and "a job is never submitted twice" on the real local SLURM (scripts/local_slurm.sh, shared with
other people's jobs: everything is filtered by this sweep's job ids or name). tests/unit/launch/test_status.py covers the same
rules in process."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import REPO
from slurm_jobs import FAST, FAULT_SITECUSTOMIZE, mfti

from mfti_lightning.launch.slurm_state import expand

SWEEP = f"status3-{os.getpid()}"  # the SLURM job name: other runs of this test use another
# three jobs of one array; task 2 meets the injected fault on its node (only there: the fault is the job's own
# PYTHONPATH, and only array task 2 loads it). Two tasks at a time (array_parallelism): task 2 waits until a 40-step
# job has ended, so all three are still pending or running when the command is run again right after submitting
ARGS = ["-m", "hydra/launcher=slurm_cpu", f"sweep_name={SWEEP}", *FAST, "optim.max_steps=40",
        "eval.val_every_n_steps=10", "hydra.launcher.array_parallelism=2", "seed=1,2,3"]  # fmt: skip


def status(out_root: Path, *extra: str, timeout: float = 60) -> tuple[int, dict | str]:
    """``mfti status <sweep name> [extra]``: its exit code and its --json object (else its text)."""
    p = mfti(["status", SWEEP, *extra], out_root, timeout, module="mfti_lightning.cli.main")
    assert p.returncode in (0, 1), p.stdout[-2000:] + p.stderr[-2000:]
    return p.returncode, json.loads(p.stdout) if "--json" in extra else p.stdout


def slurm_jobs_named() -> set[str]:
    """Every job of this sweep's name (the job name) that SLURM knows: squeue's (a pending job, which sacct's time
    window can leave out) and sacct's since yesterday, array tasks one by one."""
    queue = ["squeue", "-h", "-r", "-n", SWEEP, "-o", "%i"]
    accounted = ["sacct", "-X", "-n", "-a", "-S", "now-1days", "--name", SWEEP, "-o", "JobID%40"]
    out = [
        subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout for cmd in (queue, accounted)
    ]
    return {task for text in out for line in text.splitlines() if line.strip() for task in expand(line.strip())}


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_status_follows_a_sweep_rerun_submits_nothing_failed_job_shows_its_error(slurm, tiny_model_dir, tmp_path):
    fault = tmp_path / "fault"
    fault.mkdir()
    only_task_2 = "import os\nif os.environ.get('SLURM_ARRAY_TASK_ID') == '2':\n"
    (fault / "sitecustomize.py").write_text(only_task_2 + textwrap.indent(FAULT_SITECUSTOMIZE, "    "))
    args = [*ARGS, f'hydra.launcher.setup=["export PYTHONPATH={fault}:{REPO}"]']
    sweep = tmp_path / "train" / "sweeps" / SWEEP

    # submitted, and the command returned at once
    p = mfti(args, tmp_path, 200)
    assert p.returncode == 0, p.stderr[-3000:]
    records = [json.loads(line) for line in (sweep / "submissions.jsonl").read_text().splitlines()]
    ids = [r["job_id"] for r in records]
    array = records[0]["array_job_id"]
    assert ids == [f"{array}_{t}" for t in range(3)] and all(r["gpu_hours_estimate"] > 0 for r in records)

    # followed while it runs
    code, now = status(tmp_path, "--json")
    assert code == 0 and [j["job_id"] for j in now["jobs"]] == ids, now
    assert {j["status"] for j in now["jobs"]} <= {"pending", "running"}, now["jobs"]

    # the same command again, while the jobs run: nothing is submitted
    p = mfti(args, tmp_path, 200)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout + p.stderr
    assert "3 job(s), 3 already pending or running, 0 to submit" in out, out[-3000:]
    for i in ids:
        assert f"(running (job {i}): skipped)" in out or f"(pending (job {i}): skipped)" in out, out[-3000:]
    assert len((sweep / "submissions.jsonl").read_text().splitlines()) == 3
    assert slurm_jobs_named() == set(ids)  # SLURM has no second job of this sweep

    # followed to the end (--watch returns when no job is pending or running)
    p = mfti(["status", SWEEP, "--watch", "--interval", "3"], tmp_path, 700, module="mfti_lightning.cli.main")
    assert p.returncode == 1, p.stdout[-3000:] + p.stderr[-2000:]  # one job failed
    table = p.stdout
    code, end = status(tmp_path, "--json")
    assert code == 1 and end["exit_code"] == 1
    jobs = {j["job_id"]: j for j in end["jobs"]}
    assert [jobs[i]["status"] for i in ids] == ["completed", "completed", "failed"], end["jobs"]
    assert [jobs[i]["slurm_state"] for i in ids] == ["COMPLETED", "COMPLETED", "FAILED 1:0"]
    done, failed = jobs[ids[0]], jobs[ids[2]]
    assert (done["step"], done["max_steps"], done["val"]["step"]) == (40, 40, 40) and done["gpu_hours"] > 0
    assert failed["error"] == "RuntimeError: injected fault on the node" and Path(failed["log"]).is_file()
    assert f"failed: {failed['run']} (job {ids[2]}, SLURM FAILED 1:0)" in table, table
    assert f"error: RuntimeError: injected fault on the node\n    log:   {failed['log']}\n" in table, table
    assert "3 job(s): 2 completed, 1 failed; GPU-hours" in table
    assert slurm_jobs_named() == set(ids)

    # once its SLURM job has ended and nothing holds its run directory, the failed job is submitted again
    p = mfti(args, tmp_path, 200)
    lines = (sweep / "submissions.jsonl").read_text().splitlines()
    if len(lines) > 3:
        subprocess.run(["scancel", json.loads(lines[3])["job_id"]], timeout=30)  # not needed past this point
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout + p.stderr
    assert f"(submitted again: SLURM job {ids[2]} ended (FAILED 1:0) and no process holds its run directory)" in out
    assert "2 already completed, 1 to submit" in out and len(lines) == 4, out[-3000:]
