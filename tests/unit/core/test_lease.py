"""The run-directory lease (core/lease.py) in process: who wins, when a holder is gone, what a loser is told."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from mfti_lightning.core import lease as lease_mod
from mfti_lightning.core.lease import RunDirBusy, RunLease, holder_state, read_holder


def _write_lease(run_dir, **fields):
    base = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "token": "t0",
        "acquired_at": time.time(),
        "heartbeat_at": time.time(),
    }
    (run_dir / "lease.json").write_text(json.dumps({**base, **fields}))


def test_second_lease_on_the_same_directory_is_refused_naming_the_holder(tmp_path):
    with RunLease(tmp_path) as first:
        holder = read_holder(tmp_path)
        assert holder.pid == os.getpid() and holder.token == first.holder.token
        with pytest.raises(RunDirBusy) as e:
            RunLease(tmp_path).acquire()
        msg = str(e.value)
        assert f"pid {os.getpid()} on {socket.gethostname()}" in msg and "is in use by another process" in msg
        assert f"kill {os.getpid()}" in msg  # how to proceed
    assert not (tmp_path / "lease.json").exists()  # released
    assert [p.name for p in tmp_path.iterdir()] == []  # no private link files left behind


def test_lease_of_a_dead_pid_on_this_host_is_taken_over(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_lease(tmp_path, pid=dead.pid, token="old")
    assert holder_state(read_holder(tmp_path)) == "stale"
    with caplog.at_level("WARNING"), RunLease(tmp_path) as lease:
        assert read_holder(tmp_path).token == lease.holder.token
    assert "took over the lease of a process that is gone" in caplog.text and f"pid {dead.pid}" in caplog.text


def test_reused_pid_is_not_mistaken_for_the_holder(tmp_path):
    """A live pid whose start time differs from the lease's is another process: the lease is stale."""
    _write_lease(tmp_path, proc_start="1")  # this (live) pid, but not started at clock tick 1
    assert holder_state(read_holder(tmp_path)) == "stale"
    _write_lease(tmp_path, proc_start=lease_mod._proc_start(os.getpid()))
    assert holder_state(read_holder(tmp_path)) == "live"


def test_holder_on_another_host_is_live_until_its_heartbeat_is_old(tmp_path):
    now = time.time()
    _write_lease(tmp_path, host="node-elsewhere", pid=1, heartbeat_at=now - 10)
    assert holder_state(read_holder(tmp_path), now) == "live"
    with pytest.raises(RunDirBusy, match="node-elsewhere"):
        RunLease(tmp_path).acquire()
    _write_lease(tmp_path, host="node-elsewhere", pid=1, heartbeat_at=now - lease_mod.STALE_AFTER_S - 1)
    assert holder_state(read_holder(tmp_path), now) == "stale"
    with RunLease(tmp_path):
        assert read_holder(tmp_path).host == socket.gethostname()


def test_requeued_slurm_job_takes_over_its_own_earlier_lease_at_once(tmp_path, monkeypatch):
    _write_lease(tmp_path, host="node-a", pid=1, slurm_job="77_3", heartbeat_at=time.time())
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert holder_state(read_holder(tmp_path)) == "live"  # same job, no restart: that run may still be alive
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert holder_state(read_holder(tmp_path)) == "stale"


def test_only_one_of_two_processes_takes_over_a_stale_lease(tmp_path):
    """Both see the same stale lease; the takeover marker lets exactly one of them take it."""
    _write_lease(tmp_path, host="node-elsewhere", pid=1, token="stale", heartbeat_at=0)
    stale = read_holder(tmp_path)
    (tmp_path / "lease.json.takeover-stale").write_text("another process")  # the other one got here first
    with pytest.raises(RunDirBusy, match="another process is taking over"):
        RunLease(tmp_path)._take_over(stale, RunLease(tmp_path)._new_holder())
    assert read_holder(tmp_path).token == "stale"  # untouched


@pytest.mark.subprocess
@pytest.mark.timeout(120)
def test_two_processes_started_together_one_wins(tmp_path):
    code = (
        "import sys, time\n"
        "from mfti_lightning.core.lease import RunLease, RunDirBusy\n"
        "try:\n"
        f"    lease = RunLease({str(tmp_path)!r}).acquire()\n"
        "except RunDirBusy as e:\n"
        "    print('BUSY', e); sys.exit(3)\n"
        "time.sleep(3); lease.release(); print('HELD')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=100)[0] for p in procs]
    assert sorted(p.returncode for p in procs) == [0, 3, 3, 3], outs
    assert all("is in use by another process" in o for o in outs if o.startswith("BUSY"))


def test_heartbeat_refreshes_and_notices_a_takeover(tmp_path):
    lease = RunLease(tmp_path).acquire()
    try:
        before = read_holder(tmp_path).heartbeat_at
        time.sleep(0.01)
        lease.heartbeat()
        assert read_holder(tmp_path).heartbeat_at > before
        _write_lease(tmp_path, host="node-b", pid=1, token="thief")  # another process took it over
        lease.heartbeat()
        assert lease.lost and read_holder(tmp_path).token == "thief"
    finally:
        lease.release()
    assert read_holder(tmp_path).token == "thief"  # never removes a lease that is not its own
