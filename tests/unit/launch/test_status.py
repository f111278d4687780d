"""``mfti status`` and "a job is never submitted twice" without a cluster: sweeps made of real manifests
(launch.manifest), real leases (core.lease) and progress/results records as the jobs write them, with SLURM's two
commands replaced by scripts on PATH that print what squeue/sacct print (and log how often they were called).
tests/integration/test_slurm_status.py runs the same against the real local SLURM."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO

from mfti_lightning.cli import status as cli
from mfti_lightning.core.lease import RunLease
from mfti_lightning.core.progress_record import end_attempt, start_attempt, update_progress
from mfti_lightning.core.results import write_results
from mfti_lightning.core.results_schema import RunResults
from mfti_lightning.launch import status as st
from mfti_lightning.launch.manifest import Submission, append_submissions, read_manifest, split_job_id


class FakeSlurm:
    """``squeue`` and ``sacct`` on PATH that print ``self.squeue`` / ``self.sacct`` and append their arguments to
    ``calls``."""

    def __init__(self, root: Path, monkeypatch):
        self.bin = root / "bin"
        self.bin.mkdir()
        for name in ("squeue", "sacct"):
            script = self.bin / name
            script.write_text(f'#!/bin/sh\necho "$@" >> "{self.bin}/calls"\ncat "{self.bin}/{name}.out"\n')
            script.chmod(0o755)
        self.set(squeue="", sacct="")
        monkeypatch.setenv("PATH", f"{self.bin}:{os.environ['PATH']}")

    def set(self, squeue: str | None = None, sacct: str | None = None) -> None:
        for name, text in (("squeue", squeue), ("sacct", sacct)):
            if text is not None:
                (self.bin / f"{name}.out").write_text(text.strip() + "\n" if text.strip() else "")

    @property
    def calls(self) -> list[str]:
        path = self.bin / "calls"
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    return FakeSlurm(tmp_path, monkeypatch)


def submit(sweep: Path, run: str, job_id: str, num: int = 0, estimate: float | None = 0.5) -> Submission:
    array, task = split_job_id(job_id)
    rec = Submission(run_dir=run, num=num, overrides=[f"seed={num}"], job_id=job_id, array_job_id=array,
                     array_task_id=task, log=f".submitit/{job_id}/{job_id}_0_log.out",
                     submitted_at="2026-12-04T10:00:00+00:00", gpu_hours_estimate=estimate)  # fmt: skip
    append_submissions(sweep, [rec])
    return rec


def started(run_dir: Path, job: str | None, **progress) -> None:
    """A job that began: its first attempt 1 h ago on 2 devices, then ``progress``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    start_attempt(run_dir, devices=2, slurm_job=job)
    record = json.loads((run_dir / "progress.json").read_text())
    record["attempts"][-1]["started_at"] -= 3600
    (run_dir / "progress.json").write_text(json.dumps(record))
    if progress:
        update_progress(run_dir, **progress)


def ended(run_dir: Path, status: str, error: str | None = None) -> None:
    write_results(run_dir, {"status": status, "task": "train", **({"error": error} if error else {})})
    end_attempt(run_dir, status, error)


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait(timeout=60)
    return p.pid


def lease_of(run_dir: Path, pid: int, job: str | None = None) -> None:
    now = time.time()
    holder = {"host": socket.gethostname(), "pid": pid, "token": "t", "acquired_at": now - 60, "heartbeat_at": now,
              "slurm_job": job}  # fmt: skip
    (run_dir / "lease.json").write_text(json.dumps(holder))


def a_sweep(tmp_path: Path, fake: FakeSlurm) -> Path:
    """Five jobs of one array 7: completed, running (training), pending, failed (its error recorded), and killed
    on its node (OUT_OF_MEMORY: the record still says training, the lease is stale)."""
    sweep = tmp_path / "train" / "sweeps" / "five"
    names = ["a-completed", "b-running", "c-pending", "d-failed", "e-killed"]
    for i, name in enumerate(names):
        submit(sweep, name, f"7_{i}", num=i)
    started(sweep / "a-completed", "7_0", phase="training", step=4, max_steps=4, loss=3.25)
    ended(sweep / "a-completed", "completed")
    started(sweep / "b-running", "7_1", phase="training", step=120, max_steps=400, loss=4.5, eta_s=600.0,
            val={"metric": "val/chrf/avg", "value": 12.5, "step": 100})  # fmt: skip
    lease_of(sweep / "b-running", os.getpid(), "7_1")
    started(sweep / "d-failed", "7_3")
    ended(sweep / "d-failed", "failed", "RuntimeError: injected fault on the node\nTraceback follows")
    started(sweep / "e-killed", "7_4", phase="training", step=50, max_steps=400)
    lease_of(sweep / "e-killed", dead_pid(), "7_4")
    fake.set(
        squeue="7_1|RUNNING|None|node1\n7_2|PENDING|Resources|",
        sacct="7_0|COMPLETED|0:0|80|node1\n7_1|REQUEUED|0:0|30|node1\n7_1|RUNNING|0:0|50|node1\n"
        "7_[2]|PENDING|0:0|0|None assigned\n7_3|FAILED|1:0|20|node1\n7_4|OUT_OF_MEMORY|0:125|70|node1",
    )
    return sweep


def test_each_job_of_a_submitted_sweep_from_one_squeue_and_one_sacct_call(tmp_path, fake_slurm, capsys):
    sweep = a_sweep(tmp_path, fake_slurm)
    assert cli.main([str(sweep), "--json"]) == 1  # a job failed
    out = json.loads(capsys.readouterr().out)
    assert len(fake_slurm.calls) == 2 and all(" -j 7 " in c for c in fake_slurm.calls), fake_slurm.calls  # once each
    jobs = {j["run"]: j for j in out["jobs"]}
    assert {n: (j["status"], j["job_id"], j["slurm_state"]) for n, j in jobs.items()} == {
        "a-completed": ("completed", "7_0", "COMPLETED"),
        "b-running": ("running", "7_1", "RUNNING"),
        "c-pending": ("pending", "7_2", "PENDING"),
        "d-failed": ("failed", "7_3", "FAILED 1:0"),
        "e-killed": ("interrupted", "7_4", "OUT_OF_MEMORY 0:125"),
    }
    run = jobs["b-running"]
    assert (run["step"], run["max_steps"], run["loss"], run["val"]["value"], run["requeues"]) == (
        120,
        400,
        4.5,
        12.5,
        1,
    )
    assert 590 < run["eta_s"] <= 600 and run["run_state"] == "training"
    assert 2.0 <= run["gpu_hours"] < 2.01  # 1 h on 2 devices, still running
    assert jobs["c-pending"]["why"] == "Resources" and jobs["c-pending"]["run_state"] is None
    failed = jobs["d-failed"]
    assert failed["error"] == "RuntimeError: injected fault on the node"
    assert failed["log"] == str(sweep / ".submitit" / "7_3" / "7_3_0_log.out")
    killed = jobs["e-killed"]
    assert killed["run_state"] == "training (lease stale)" and "stopped without recording its end" in killed["error"]
    assert "OUT_OF_MEMORY 0:125" in killed["error"]
    t = out["totals"]
    assert (t["jobs"], t["completed"], t["running"], t["pending"], t["failed"], t["interrupted"]) == (5, 1, 1, 1, 1, 1)
    assert t["gpu_hours_estimate"] == 2.5 and t["jobs_with_estimate"] == 5 and t["requeues"] == 1
    assert out["exit_code"] == 1


def test_the_table_a_user_sees(tmp_path, fake_slurm, capsys):
    sweep = a_sweep(tmp_path, fake_slurm)
    assert cli.main([str(sweep)]) == 1
    text = capsys.readouterr().out
    assert re.search(
        r"7_1 +b-running +running +RUNNING +training +120/400 +4\.500 +chrf 12\.50 @100 +9m\d\ds +1 ", text
    ), text
    assert re.search(r"7_2 +c-pending +pending \(Resources\) +PENDING", text), text
    assert "failed: d-failed (job 7_3, SLURM FAILED 1:0)\n    error: RuntimeError: injected fault on the node\n" in text
    assert f"    log:   {sweep / '.submitit/7_3/7_3_0_log.out'}\n" in text
    assert "5 job(s): 1 completed, 1 running, 1 pending, 1 failed, 1 interrupted; GPU-hours" in text
    assert "of ~2.50 estimated; 1 requeue(s)" in text


def test_all_completed_exits_0(tmp_path, fake_slurm, capsys):
    sweep = tmp_path / "sw"
    submit(sweep, "r1", "9")
    started(sweep / "r1", "9")
    ended(sweep / "r1", "completed")
    fake_slurm.set(sacct="9|COMPLETED|0:0|80|node1")
    assert cli.main([str(sweep)]) == 0
    assert "1 job(s): 1 completed" in capsys.readouterr().out


def test_a_local_multirun_is_read_from_its_run_directories_alone(tmp_path, fake_slurm, capsys):
    """No submissions.jsonl: SLURM is not asked; a live lease means running, a record that says running without
    a holder means the process died."""
    sweep = tmp_path / "local"
    started(sweep / "done", None)
    ended(sweep / "done", "completed")
    started(sweep / "now", None, phase="evaluating", directions_done=2, directions_total=3)
    started(sweep / "died", None, phase="training", step=3, max_steps=10)
    write_results(sweep / "died", {"status": "running", "task": "train"})
    (sweep / "died" / "train.log").write_text("step 3\nValueError: bad batch\nlater line\n")
    (sweep / ".submitit").mkdir()
    (sweep / "empty").mkdir()  # no job wrote into it: not a run directory
    with RunLease(sweep / "now"):
        assert cli.main([str(sweep), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert fake_slurm.calls == [] and out["submitted"] is False
    jobs = {j["run"]: j for j in out["jobs"]}
    assert {n: (j["status"], j["job_id"], j["run_state"]) for n, j in jobs.items()} == {
        "died": ("interrupted", None, "training"),
        "done": ("completed", None, "completed"),
        "now": ("running", None, "evaluating 2/3"),
    }
    assert jobs["died"]["log"] == str(sweep / "died" / "train.log")
    assert jobs["died"]["error"] == "stopped without recording its end (no process holds its run directory)"
    assert jobs["died"]["log_error"] == "ValueError: bad batch"


def test_a_failed_job_without_a_record_gets_the_last_error_line_of_its_log(tmp_path, fake_slurm, capsys):
    sweep = tmp_path / "sw"
    rec = submit(sweep, "r1", "11")
    log = sweep / rec.log
    log.parent.mkdir(parents=True)
    log.write_text("starting\nModuleNotFoundError: No module named 'mfti_lightning'\nsrun: error: task 0: Exited\n")
    fake_slurm.set(sacct="11|FAILED|1:0|3|node1")
    assert cli.main([str(sweep), "--json"]) == 1
    (job,) = json.loads(capsys.readouterr().out)["jobs"]
    assert job["status"] == "failed" and job["log"] == str(log)
    assert job["error"] == "SLURM ended it (FAILED 1:0) before it recorded a result"
    assert job["log_error"] == "srun: error: task 0: Exited"


def test_without_slurm_commands_the_state_is_unknown_and_says_why(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # neither squeue nor sacct
    sweep = tmp_path / "sw"
    submit(sweep, "r1", "12")
    assert cli.main([str(sweep)]) == 0
    text = capsys.readouterr().out
    assert "unknown: r1 (job 12, SLURM ?)\n    SLURM did not answer\n" in text, text
    assert "SLURM did not answer (squeue: not found on PATH (no SLURM here); sacct: not found" in text


def test_a_sweep_name_is_found_under_the_output_root(tmp_path, fake_slurm, monkeypatch, capsys):
    monkeypatch.setenv("MFTI_OUTPUT_ROOT", str(tmp_path / "out"))
    sweep = tmp_path / "out" / "eval" / "sweeps" / "icl"
    submit(sweep, "r1", "13")
    assert st.resolve_sweep("icl") == sweep
    assert cli.main(["nosuch"]) == 2
    err = capsys.readouterr().err
    assert (
        f"no sweep 'nosuch': neither a directory nor a sweep name under {tmp_path / 'out' / 'train' / 'sweeps'}" in err
    )
    monkeypatch.delenv("MFTI_OUTPUT_ROOT")
    monkeypatch.chdir(tmp_path)
    assert st.output_root() == Path("outputs")
    paths = (REPO / "conf" / "paths" / "default.yaml").read_text()
    assert f"output_root: ${{oc.env:MFTI_OUTPUT_ROOT,{st.DEFAULT_OUTPUT_ROOT}}}" in paths  # the same default


@pytest.mark.timeout(60)
def test_watch_refreshes_until_no_job_runs(tmp_path, fake_slurm, capsys):
    sweep = tmp_path / "sw"
    submit(sweep, "r1", "14")
    started(sweep / "r1", "14", phase="training", step=1, max_steps=4)
    fake_slurm.set(squeue="14|RUNNING|None|node1", sacct="14|RUNNING|0:0|5|node1")

    def finish():
        time.sleep(1.5)
        ended(sweep / "r1", "completed")
        fake_slurm.set(squeue="", sacct="14|COMPLETED|0:0|9|node1")

    t = threading.Thread(target=finish)
    t.start()
    assert cli.main([str(sweep), "--watch", "--interval", "1"]) == 0
    t.join()
    assert len(fake_slurm.calls) >= 4  # asked again at each refresh
    assert "1 job(s): 1 completed" in capsys.readouterr().out


def test_a_job_submitted_again_is_read_from_its_new_attempt_not_the_old_result(tmp_path, fake_slurm, capsys):
    """results.json still says failed (the earlier attempt); the progress record of the new attempt is newer."""
    sweep = tmp_path / "sw"
    submit(sweep, "r1", "15_0")
    started(sweep / "r1", "15_0")
    ended(sweep / "r1", "failed", "RuntimeError: the first attempt")
    submit(sweep, "r1", "16")
    started(sweep / "r1", "16", phase="training", step=7, max_steps=40)
    fake_slurm.set(sacct="15_0|FAILED|1:0|4|node1\n16|NODE_FAIL|0:0|30|node1")  # the new one died with its node
    assert cli.main([str(sweep), "--json"]) == 1
    (job,) = json.loads(capsys.readouterr().out)["jobs"]
    assert (job["job_id"], job["status"], job["run_state"], job["step"]) == ("16", "interrupted", "training", 7)
    assert job["error"] == "stopped without recording its end (SLURM: NODE_FAIL 0:0)"
    assert job["attempts"] == 2 and job["requeues"] == 0


def test_a_completed_record_is_read_from_its_head_any_other_whole(tmp_path):
    """The bulk of a finished sweep's results.json files is not parsed; what a failed one recorded is."""
    big = {f"test/chrf/{i}": 1.0 for i in range(5000)}
    write_results(tmp_path / "done", {"schema": 1, "status": "completed", "task": "train", "metrics": big})
    write_results(tmp_path / "bad", {"schema": 1, "status": "failed", "task": "train", "error": "E: x", "metrics": big})
    write_results(tmp_path / "odd", {"status": "completed", "schema": 1, "task": "train"})  # another key order
    assert st.read_status_fields(tmp_path / "done", whole=False) == RunResults(status="completed")  # no task
    assert st.read_status_fields(tmp_path / "done").metrics == big
    assert st.read_status_fields(tmp_path / "bad", whole=False).error == "E: x"
    assert st.read_status_fields(tmp_path / "odd", whole=False).task == "train"
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "results.json").write_text('{"schema": 1, "status": "fail')
    assert st.read_status_fields(tmp_path / "torn", whole=False) == RunResults(status="unreadable")
    assert st.read_status_fields(tmp_path / "none") == RunResults()


# ------------------------------------------------------------------------------------ never submitted twice
def test_activity_pending_running_held_gone_and_unanswered(tmp_path, fake_slurm):
    sweep = tmp_path / "sw"
    dirs = {n: sweep / n for n in ("pend", "run", "held", "gone", "new")}
    for i, n in enumerate(("pend", "run", "gone")):
        submit(sweep, n, f"20_{i}", num=i)
    dirs["held"].mkdir(parents=True)
    lease_of(dirs["held"], os.getpid())  # a local process holds it: no submission at all
    dirs["gone"].mkdir()
    lease_of(dirs["gone"], dead_pid(), "20_2")
    fake_slurm.set(squeue="20_0|PENDING|Priority|\n20_1|RUNNING|None|node1", sacct="20_2|FAILED|1:0|4|node1")
    found = st.activity(sweep, list(dirs.values()))
    assert found[dirs["pend"]].busy == "pending (job 20_0)" and found[dirs["run"]].busy == "running (job 20_1)"
    assert found[dirs["held"]].busy == f"running (pid {os.getpid()} on {socket.gethostname()})"
    gone = found[dirs["gone"]]
    assert gone.busy is None
    assert gone.note.startswith(
        "submitted again: SLURM job 20_2 ended (FAILED 1:0) and its run directory's lease is stale (pid "
    )
    assert found[dirs["new"]] == st.Activity()
    assert len(fake_slurm.calls) == 2  # one squeue, one sacct for all of them

    fake_slurm.set(squeue="")  # squeue answers, the job has left the queue, sacct still lags behind: not active
    fake_slurm.set(sacct="20_1|RUNNING|0:0|50|node1")
    assert st.activity(sweep, [dirs["run"]])[dirs["run"]].busy is None


def test_the_launcher_submits_nothing_when_slurm_cannot_be_asked(tmp_path, monkeypatch):
    from mfti_lightning.launch.skips import skip_active
    from mfti_lightning.launch.sweep import Job

    monkeypatch.setenv("PATH", str(tmp_path))
    sweep = tmp_path / "sw"
    submit(sweep, "r1", "21")
    job = Job(num=0, overrides=["seed=0"], cfg=None, run_dir=sweep / "r1", status="new")
    with pytest.raises(st.SlurmUnanswered, match=r"whether job 21 \(run directory r1\), submitted before, is still"):
        skip_active([job], sweep)
    assert st.activity(sweep, [sweep / "r1"], strict=False)[sweep / "r1"].busy is None
    fresh = Job(num=1, overrides=["seed=1"], cfg=None, run_dir=sweep / "r2", status="new")
    assert skip_active([fresh], sweep) == {}  # never submitted: nothing to ask SLURM


def test_skip_active_leaves_out_running_jobs_and_says_why_others_go_again(tmp_path, fake_slurm, caplog):
    from mfti_lightning.launch.skips import skip_active
    from mfti_lightning.launch.sweep import Job

    sweep = tmp_path / "sw"
    recs = [submit(sweep, f"r{i}", f"22_{i}", num=i) for i in range(2)]
    fake_slurm.set(squeue="22_0|RUNNING|None|node1", sacct="22_0|RUNNING|0:0|5|node1\n22_1|CANCELLED by 0|0:0|0|")
    jobs = [Job(num=i, overrides=[f"seed={i}"], cfg=None, run_dir=sweep / f"r{i}", status="new") for i in range(2)]
    with caplog.at_level("INFO", logger="mfti_lightning.launch.skips"):
        skips = skip_active(jobs, sweep)
    assert list(skips) == [0] and skips[0].reason == "running (job 22_0)" and skips[0].return_value == recs[0]
    assert (
        "#1 : seed=1  (submitted again: SLURM job 22_1 ended (CANCELLED by 0) and no process holds its run"
        in caplog.text
    )


def test_manifest_lines_without_an_estimate_still_read(tmp_path):
    sweep = tmp_path / "sw"
    sweep.mkdir()
    old = {"version": 1, "submitted_at": "t", "run_dir": "r0", "num": 0, "overrides": [], "job_id": "5",
           "array_job_id": "5", "array_task_id": None, "log": "l"}  # fmt: skip
    (sweep / "submissions.jsonl").write_text(json.dumps(old) + "\n")
    submit(sweep, "r1", "6", estimate=1.25)
    first, second = read_manifest(sweep)
    assert first.gpu_hours_estimate is None and second.gpu_hours_estimate == 1.25 and second.extra == {}
    assert json.loads((sweep / "submissions.jsonl").read_text().splitlines()[1])["gpu_hours_estimate"] == 1.25


def test_pending_array_ranges_expand_to_their_tasks():
    from mfti_lightning.launch.slurm_state import expand

    assert expand("31_[0-2,5%2]") == ["31_0", "31_1", "31_2", "31_5"] and expand("31_4") == ["31_4"]


@pytest.mark.timeout(120)
def test_status_and_mfti_help_load_neither_torch_nor_hydra(tmp_path):
    sweep = tmp_path / "sw"
    started(sweep / "r1", None)
    code = (
        "import sys; from mfti_lightning.cli.main import main\n"
        f"rc = main(['status', {str(sweep)!r}, '--json'])\n"
        "heavy = [m for m in ('torch', 'pytorch_lightning', 'hydra', 'omegaconf', 'transformers') if m in sys.modules]\n"
        "print('RC', rc, 'HEAVY', heavy, file=sys.stderr)"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=100, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert "RC 1 HEAVY []" in p.stderr, p.stderr[-2000:]  # r1 started and nothing runs it: interrupted
    p = subprocess.run([sys.executable, "-m", "mfti_lightning.cli.main", "--help"], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert re.search(r"\n  status +where a submitted or local sweep stands", p.stdout), p.stdout


@pytest.mark.subprocess
@pytest.mark.timeout(300)
def test_plan_marks_jobs_pending_or_running_and_leaves_them_out_of_what_is_to_run(tmp_path, fake_slurm):
    from conftest import run_cli

    env = {"MFTI_OUTPUT_ROOT": str(tmp_path / "out")}
    cmd = ["mfti_lightning.cli.plan", "-", "logger=none", "sweep_name=p", "seed=1,2,3"]

    def plan(*extra):
        p = run_cli([*cmd, *extra], cwd=tmp_path, timeout=200, env=env)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
        return p.stdout

    jobs = [json.loads(line) for line in plan("--json").splitlines() if line.startswith("{")]
    assert [j["status"] for j in jobs] == ["new"] * 3
    sweep = tmp_path / "out" / "train" / "sweeps" / "p"
    for j in jobs:
        submit(sweep, Path(j["run_dir"]).name, f"30_{j['num']}", num=j["num"])
    fake_slurm.set(squeue="30_0|RUNNING|None|node1\n30_1|PENDING|Priority|",
                   sacct="30_0|RUNNING|0:0|9|node1\n30_1|PENDING|0:0|0|\n30_2|FAILED|1:0|9|node1")  # fmt: skip
    again = [json.loads(line) for line in plan("--json").splitlines() if line.startswith("{")]
    assert [j["status"] for j in again] == ["running (job 30_0)", "pending (job 30_1)", "new"]
    table = plan()
    assert f"run dir {jobs[0]['run_dir']}  [running (job 30_0): skipped]" in table, table
    assert "3 job(s), 1 to run, 2 pending or running, ~" in table, table
