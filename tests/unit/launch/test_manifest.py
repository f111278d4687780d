"""A sweep's submissions.jsonl (mfti_lightning.launch.manifest): appended line by line by concurrent submitters
without interleaving, a torn last line (a crash mid-write) skipped and not swallowing the next record, fields of a
newer version kept; and the launcher's refusal to return early to a sweeper that needs results (no SLURM needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

from mfti_lightning.launch.manifest import (
    Submission,
    append_submissions,
    latest_by_run_dir,
    manifest_path,
    read_manifest,
    split_job_id,
)


def _record(run_dir: str, job_id: str, **kw) -> Submission:
    array_id, task = split_job_id(job_id)
    return Submission(run_dir=run_dir, num=0, overrides=[f"seed={run_dir}"], job_id=job_id, array_job_id=array_id,
                      array_task_id=task, log=f".submitit/{job_id}/{job_id}_0_log.out",
                      submitted_at="2026-12-03T12:00:00+00:00", **kw)  # fmt: skip


WRITER = """
import sys
from mfti_lightning.launch.manifest import Submission, append_submissions
who, n, sweep = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for i in range(n):
    rec = Submission(run_dir=f"{who}-{i}", num=i, overrides=["x=" + "y" * 3000], job_id=f"{who}_{i}",
                     array_job_id=who, array_task_id=i, log="", submitted_at="t")
    append_submissions(sweep, [rec])
"""


@pytest.mark.subprocess
@pytest.mark.timeout(120)
def test_concurrent_submitters_never_interleave_lines(tmp_path):
    """Four processes append 50 long lines each at once: 200 whole records, each process's in its own order."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(100 + w), "50", str(tmp_path)], env=env)
             for w in range(4)]  # fmt: skip
    assert [p.wait(timeout=100) for p in procs] == [0] * 4
    lines = manifest_path(tmp_path).read_text().splitlines()
    assert len(lines) == 200 and all(json.loads(line)["version"] == 1 for line in lines)
    records = read_manifest(tmp_path)
    for w in range(4):
        mine = [r.num for r in records if r.array_job_id == str(100 + w)]
        assert mine == list(range(50))


def test_a_torn_last_line_is_skipped_and_does_not_swallow_the_next(tmp_path):
    append_submissions(tmp_path, [_record("a", "7_0"), _record("b", "7_1")])
    with open(manifest_path(tmp_path), "a") as f:  # a crash in the middle of a write
        f.write('{"version": 1, "run_dir": "c", "num": 0, "overri')
    assert [r.run_dir for r in read_manifest(tmp_path)] == ["a", "b"]
    append_submissions(tmp_path, [_record("b", "9")])  # b submitted again, as a plain job
    records = read_manifest(tmp_path)
    assert [(r.run_dir, r.job_id, r.array_task_id) for r in records] == [("a", "7_0", 0), ("b", "7_1", 1),
                                                                        ("b", "9", None)]  # fmt: skip
    assert latest_by_run_dir(records)["b"].job_id == "9"


def test_fields_of_a_newer_version_are_kept(tmp_path):
    line = json.loads(_record("a", "3_2").to_json())
    line["lease"] = {"host": "n1"}
    manifest_path(tmp_path).write_text(json.dumps(line) + "\n")
    (r,) = read_manifest(tmp_path)
    assert r.extra == {"lease": {"host": "n1"}} and json.loads(r.to_json()) == line
    assert read_manifest(tmp_path / "never-submitted") == []


@pytest.mark.subprocess
@pytest.mark.timeout(120)
def test_a_sweeper_that_needs_results_is_told_to_wait(tmp_path):
    """wait=false returns before any result exists: a sweeper other than Hydra's basic one is refused, naming the fix,
    before anything is submitted."""
    other = "hydra_plugins.mfti_test_recorder.ResultsSweeper"  # tests/plugins: stands for Optuna, Ax, ...
    env = {**os.environ, "MFTI_OUTPUT_ROOT": str(tmp_path), "HYDRA_FULL_ERROR": "0",
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "plugins"), str(REPO)])}  # fmt: skip
    cmd = [sys.executable, "-m", "mfti_lightning.cli.train", "-m", "hydra/launcher=slurm_cpu", "sweep_name=sweeper",
           f"hydra.sweeper._target_={other}", "seed=1,2"]  # fmt: skip
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=100)
    assert p.returncode != 0 and "Add hydra.launcher.wait=true" in p.stderr, p.stderr[-3000:]
    assert not list(tmp_path.rglob(".submitit")) and not list(tmp_path.rglob("submissions.jsonl"))
