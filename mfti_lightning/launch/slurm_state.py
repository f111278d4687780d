"""What SLURM says about a sweep's jobs: one ``squeue`` and one ``sacct`` call for all of them, run side by side.
Torch-free, used by ``mfti status``, ``mfti plan`` and the launcher (which never submits a job that is pending or
running).

``squeue`` is the controller's view: authoritative for jobs that are pending or running, but it forgets a job a few
minutes after it ended (``MinJobAge``). ``sacct`` is the accounting database's: every job, ended ones too, and with
``--duplicates`` the earlier runs of a requeued job (state ``REQUEUED``), which counts the requeues; it can lag a
few seconds behind the controller. Both are asked about the sweep's (array) job ids only: the cluster is shared.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field

from mfti_lightning.launch.manifest import split_job_id

PENDING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SPECIAL_EXIT"}
RUNNING = {"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING", "SUSPENDED", "STOPPED"}
ACTIVE = PENDING | RUNNING
TIMEOUT_S = 30.0
SQUEUE_FORMAT = "%i|%T|%r|%N"  # job id (array tasks as <array>_<task> with -r), state, reason, nodes
SACCT_FIELDS = "JobID,State,ExitCode,ElapsedRaw,NodeList"


@dataclass
class SlurmJob:
    """One job (or array task) as SLURM reports it."""

    job_id: str
    state: str  # the state's first word: PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY ...
    detail: str = ""  # the whole state ("CANCELLED by 1000") and the exit code ("FAILED 1:0")
    reason: str = ""  # why a pending job waits (squeue: Priority, Resources, BeginTime ...)
    requeues: int = 0  # earlier runs of this job that SLURM requeued (sacct --duplicates)
    elapsed_s: int | None = None
    nodes: str = ""
    in_queue: bool = False  # squeue listed it


@dataclass
class SlurmView:
    """SLURM's answer for a set of job ids. ``queue_ok``/``accounting_ok``: whether squeue/sacct answered;
    ``errors``: what the ones that did not said."""

    jobs: dict[str, SlurmJob] = field(default_factory=dict)
    queue_ok: bool = False
    accounting_ok: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def answered(self) -> bool:
        return self.queue_ok or self.accounting_ok

    def get(self, job_id: str | None) -> SlurmJob | None:
        return self.jobs.get(str(job_id)) if job_id else None

    def active(self, job_id: str | None) -> bool:
        """Pending or running: in squeue's list when squeue answered (sacct can lag behind an ending job), else by
        sacct's state."""
        job = self.get(job_id)
        if job is None:
            return False
        if self.queue_ok:
            return job.in_queue and job.state in ACTIVE
        return job.state in ACTIVE


def expand(job_id: str) -> list[str]:
    """``1234_[0-2,5%2]`` (a pending array's tasks, as sacct and squeue without -r print them) -> its task ids."""
    m = re.fullmatch(r"(\d+)_\[([^\]]*)\]", job_id)
    if not m:
        return [job_id]
    out = []
    for part in m.group(2).split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit():
            out += [f"{m.group(1)}_{t}" for t in range(int(lo), int(hi or lo) + 1)]
    return out


def query(job_ids, timeout: float = TIMEOUT_S) -> SlurmView:
    """SLURM's state of ``job_ids`` (``<id>`` or ``<array id>_<task>``): one squeue and one sacct call, side by
    side, for their array job ids. Never raises: what could not be asked is in ``errors``."""
    arrays = sorted({split_job_id(j)[0] for j in job_ids if j}, key=lambda a: (len(a), a))
    view = SlurmView()
    if not arrays:
        view.queue_ok = view.accounting_ok = True
        return view
    ids = ",".join(arrays)
    commands = {
        "squeue": ["squeue", "-h", "-r", "-j", ids, "-o", SQUEUE_FORMAT],
        "sacct": ["sacct", "-X", "-D", "-n", "-P", "-j", ids, "-o", SACCT_FIELDS],
    }
    procs = {}
    for name, cmd in commands.items():
        if shutil.which(cmd[0]) is None:
            view.errors.append(f"{name}: not found on PATH (no SLURM here)")
            continue
        procs[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = {name: _finish(name, p, timeout, view.errors) for name, p in procs.items()}
    if outputs.get("sacct") is not None:
        view.accounting_ok = True
        _read_sacct(outputs["sacct"], view.jobs)
    if outputs.get("squeue") is not None:
        view.queue_ok = True
        _read_squeue(outputs["squeue"], view.jobs)
    return view


def _finish(name: str, proc: subprocess.Popen, timeout: float, errors: list[str]) -> str | None:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        errors.append(f"{name}: no answer in {timeout:.0f} s")
        return None
    if proc.returncode != 0:
        if name == "squeue" and "Invalid job id" in err:
            return ""  # every id asked about has left the controller's memory: none is in the queue
        errors.append(f"{name}: {(err.strip().splitlines() or ['exit status %d' % proc.returncode])[-1]}")
        return None
    return out


def _read_sacct(text: str, jobs: dict[str, SlurmJob]) -> None:
    """``--duplicates`` lists a requeued job's earlier runs (state REQUEUED) before its current one."""
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 5:
            continue
        jid, state, code, elapsed, nodes = parts[:5]
        for task in expand(jid.strip()):
            earlier = jobs.get(task)
            requeues = (earlier.requeues + (earlier.state == "REQUEUED")) if earlier else 0
            first = (state.split() or ["?"])[0]
            detail = state if first not in ("FAILED", "OUT_OF_MEMORY", "TIMEOUT", "NODE_FAIL") else f"{state} {code}"
            jobs[task] = SlurmJob(
                task,
                first,
                detail,
                requeues=requeues,
                elapsed_s=int(elapsed) if elapsed.isdigit() else None,
                nodes=nodes,
            )


def _read_squeue(text: str, jobs: dict[str, SlurmJob]) -> None:
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 4:
            continue
        jid, state, reason, nodes = (p.strip() for p in parts[:4])
        for task in expand(jid):
            job = jobs.setdefault(task, SlurmJob(task, state))
            job.state, job.detail, job.in_queue = state, state, True
            job.reason = "" if reason in ("None", "(null)") else reason
            job.nodes = nodes or job.nodes
