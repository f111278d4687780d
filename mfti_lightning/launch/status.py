"""Where a sweep's jobs stand, from what they leave behind: the sweep's manifest (``submissions.jsonl``), SLURM's
state of the jobs it names (:mod:`mfti_lightning.launch.slurm_state`: one squeue and one sacct call), and each run
directory's ``results.json``, ``progress.json`` and ``lease.json``. Torch-free and Hydra-free: no config is
composed and no log is parsed (only a failed job that recorded no error gets the last error line of its log).

One status per job (:data:`STATUSES`), decided in this order (:func:`decide`):

1. SLURM has the job pending or running -> ``pending`` / ``running`` (a requeued job is pending again);
2. a live process holds the run directory's lease -> ``running`` (also a local run, without SLURM);
3. ``results.json`` says ``completed``, ``failed`` or ``interrupted`` -> that;
4. the job started (a progress record or results.json ``running``) and nothing runs it any more -> ``interrupted``
   (killed without a chance to record its end: SIGKILL, out of memory, a node that died);
5. SLURM ended the job and the run directory has no result -> ``failed`` (cancelled while pending, ...);
6. else ``unknown`` (SLURM did not answer, or no longer knows the job).

The same reading decides what the launcher and ``mfti plan`` do (:func:`activity`): a job that SLURM has pending
or running, or whose run directory a live process holds, is never submitted again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from mfti_lightning.core.errors import MftiError
from mfti_lightning.core.layout import HYDRA_DIR, LEASE_FILE, PROGRESS_FILE, RESULTS_FILE
from mfti_lightning.core.lease import Holder, holder_state, read_holder
from mfti_lightning.core.progress_record import device_seconds, read_progress
from mfti_lightning.core.results_schema import RunResults, Swept
from mfti_lightning.launch import slurm_state
from mfti_lightning.launch.manifest import Submission, latest_by_run_dir, manifest_path, read_manifest

log = logging.getLogger(__name__)
STATUSES = ("pending", "running", "completed", "failed", "interrupted", "unknown")
ENDED_BADLY = ("failed", "interrupted")  # `mfti status` exits 1 when a job ended so
STARTED_PHASES = ("preparing", "training", "evaluating")
UNREADABLE = "unreadable"  # the status read_status_fields gives a results.json that does not parse
DEFAULT_OUTPUT_ROOT = "outputs"  # conf/paths/default.yaml: output_root: ${oc.env:MFTI_OUTPUT_ROOT,outputs}


class SlurmUnanswered(MftiError):
    """SLURM could not say whether a job submitted before is still pending or running."""


@dataclass
class JobState:
    """One job of a sweep as ``mfti status`` shows it (``--json``: these fields)."""

    run: str  # the run directory's name (its run_slug)
    run_dir: str
    status: str  # one of STATUSES
    why: str = ""  # what the status rests on: a pending reason, the holder of the lease, ...
    job_id: str | None = None
    slurm_state: str | None = None  # SLURM's word for the job (with the exit code of a failed one)
    run_state: str | None = None  # the run directory's: results.json status, else the progress phase
    num: int | None = None
    overrides: list = field(default_factory=list)
    step: int | None = None
    max_steps: int | None = None
    loss: float | None = None
    val: dict | None = None  # last validation: {metric, value, step}
    eta_s: float | None = None  # to the end of training
    directions_done: int | None = None
    directions_total: int | None = None
    requeues: int = 0
    attempts: int = 0
    gpu_hours: float = 0.0
    gpu_hours_estimate: float | None = None
    error: str | None = None  # the first line of the recorded error, else why the job counts as failed
    log: str | None = None
    log_error: str | None = None  # the last line naming an error in the log of a job that recorded none
    updated_at: float | None = None


@dataclass
class SweepStatus:
    sweep_dir: Path
    jobs: list[JobState]
    slurm: slurm_state.SlurmView
    submitted: bool  # the sweep has a manifest (a SLURM sweep), else a local multirun
    at: float

    def totals(self) -> dict:
        count = {s: sum(j.status == s for j in self.jobs) for s in STATUSES}
        estimates = [j.gpu_hours_estimate for j in self.jobs if j.gpu_hours_estimate is not None]
        return {
            "jobs": len(self.jobs),
            **count,
            "gpu_hours": sum(j.gpu_hours for j in self.jobs),
            "gpu_hours_estimate": sum(estimates) if estimates else None,
            "jobs_with_estimate": len(estimates),
            "requeues": sum(j.requeues for j in self.jobs),
        }

    @property
    def ended_badly(self) -> list[JobState]:
        return [j for j in self.jobs if j.status in ENDED_BADLY]

    @property
    def finished(self) -> bool:
        """No job is pending or running (``--watch`` stops)."""
        return not any(j.status in ("pending", "running") for j in self.jobs)


# ---------------------------------------------------------------------------------------------------------------
# finding the sweep
# ---------------------------------------------------------------------------------------------------------------
def output_root() -> Path:
    """``paths.output_root`` as conf/paths/default.yaml sets it (``MFTI_OUTPUT_ROOT``, else ./outputs)."""
    return Path(os.environ.get("MFTI_OUTPUT_ROOT") or DEFAULT_OUTPUT_ROOT)


def resolve_sweep(arg: str) -> Path:
    """A sweep directory, or a sweep name looked up under ``<output root>/{train,eval}/sweeps/``."""
    root = output_root()
    cands = [Path(arg)] + [root / task / "sweeps" / arg for task in ("train", "eval")]
    for cand in cands:
        if cand.is_dir():
            return Path(os.path.abspath(cand))  # the log paths shown can be pasted anywhere
    cands = cands[1:]
    raise MftiError(
        f"no sweep {arg!r}: neither a directory nor a sweep name under {' or '.join(str(c.parent) for c in cands)}. "
        "Give the sweep directory (hydra.sweep.dir), or run from the directory the sweep was started in, or set "
        "MFTI_OUTPUT_ROOT as it was then."
    )


def local_run_dirs(sweep_dir: Path) -> list[str]:
    """Run directories found in a sweep directory: the ones a job has written into."""
    marks = (RESULTS_FILE, PROGRESS_FILE, LEASE_FILE, HYDRA_DIR)
    try:
        entries = sorted(os.scandir(sweep_dir), key=lambda e: e.name)
    except OSError:
        return []
    return [
        e.name
        for e in entries
        if e.is_dir() and not e.name.startswith(".") and any(os.path.exists(os.path.join(e.path, m)) for m in marks)
    ]


# ---------------------------------------------------------------------------------------------------------------
# one job
# ---------------------------------------------------------------------------------------------------------------
HEAD = re.compile(rb'\A\{\s*"schema":\s*\d+,\s*"status":\s*"(\w+)"')  # how results.json begins (tasks/job.py)


def read_status_fields(run_dir: Path, whole: bool = True) -> RunResults:
    """The record in results.json, typed; status ``unreadable`` when it does not parse, an empty record (status
    None) when there is none. ``whole=False``: a completed record is read from its first bytes only (the writer
    puts ``schema`` and ``status`` first; a 156-direction record is a few hundred KB, and a sweep of 200 would be
    most of the time of ``mfti status``); any other record, or one that begins otherwise, is parsed whole. Recorded paths are not
    needed here, so there is no path mapping (unlike :func:`results.read_results`)."""
    path = run_dir / RESULTS_FILE
    try:
        with open(path, "rb") as f:
            head = f.read(256)
            m = HEAD.match(head)
            if not whole and m and m.group(1) == b"completed":
                return RunResults(status="completed")
            record = json.loads(head + f.read())
    except FileNotFoundError:
        return RunResults()
    except (OSError, ValueError):
        return RunResults(status=UNREADABLE)
    return RunResults.from_dict(record) if isinstance(record, dict) else RunResults(status=UNREADABLE)


def decide(
    slurm: slurm_state.SlurmJob | None,
    active: bool,
    holder: Holder | None,
    lease: str | None,
    results_status: str | None,
    phase: str | None,
) -> tuple[str, str]:
    """``(status, why)`` of one job: the rules of the module docstring, in order."""
    if active and slurm is not None:
        if slurm.state in slurm_state.PENDING:
            return "pending", slurm.reason
        return "running", f"on {slurm.nodes}" if slurm.nodes else ""
    if lease == "live" and holder is not None:
        return "running", f"lease held by {holder.describe()}"
    if results_status in ("completed", "failed", "interrupted"):
        return results_status, ""
    gone = f"SLURM: {slurm.detail}" if slurm is not None else "no process holds its run directory"
    if results_status == "running" or phase in STARTED_PHASES:
        return "interrupted", f"stopped without recording its end ({gone})"
    if slurm is not None and slurm.state not in slurm_state.ACTIVE:
        return "failed", f"SLURM ended it ({slurm.detail}) before it recorded a result"
    return "unknown", ""


def job_state(sweep_dir: Path, name: str, rec: Submission | None, view, now: float) -> JobState:
    """One job from its manifest record (None: a local run), SLURM's view and its run directory."""
    run_dir = sweep_dir / name
    results = read_status_fields(run_dir, whole=rec is None) if run_dir.is_dir() else RunResults()
    progress = (read_progress(run_dir) if results.status != UNREADABLE else None) or {}
    holder = read_holder(run_dir)
    lease = holder_state(holder, now) if holder else None
    slurm = view.get(rec.job_id) if rec else None
    recorded = _recorded_status(run_dir, results, progress)
    status, why = decide(slurm, bool(rec) and view.active(rec.job_id), holder, lease, recorded, progress.get("phase"))
    if status == "unknown" and rec:
        why = "SLURM did not answer" if not view.answered else f"SLURM no longer knows job {rec.job_id}"
    job = JobState(
        run=Path(name).name,
        run_dir=str(run_dir),
        status=status,
        why=why,
        job_id=rec.job_id if rec else None,
        slurm_state=slurm.detail if slurm else None,
        run_state=_run_state(recorded, progress, lease),
        num=rec.num if rec else None,
        overrides=list(rec.overrides) if rec else _swept_overrides(results.swept),
        gpu_hours_estimate=rec.gpu_hours_estimate if rec else None,
        updated_at=progress.get("updated_at"),
    )
    _progress_fields(job, progress, lease == "live", now)
    job.requeues = _requeues(progress, rec, slurm)
    if status in ENDED_BADLY:
        job.log = _log_path(sweep_dir, run_dir, rec, results)
        own = results.error if recorded == results.status else None  # not an earlier attempt's
        job.error = _first_line(own or progress.get("error"))
        if job.error is None:  # it died before it could record an error: what SLURM says, and what its log says
            job.error, job.log_error = why, _last_error_line(job.log)
    elif rec:
        job.log = str(sweep_dir / rec.log)
    return job


def _swept_overrides(swept: Swept) -> list[str]:
    """``name=value`` of the swept values a record holds (a record without ``swept``: none)."""
    return [f"{k}={v}" for k, v in dataclasses.asdict(swept).items() if v is not None]


def _recorded_status(run_dir: Path, results: RunResults, progress: dict) -> str | None:
    """results.json's status, or ``running`` when a newer attempt has started since it was written (a job submitted
    again: its progress record is newer and says preparing, training or evaluating)."""
    status = results.status
    if status in ("completed", "failed", "interrupted") and progress.get("phase") in STARTED_PHASES:
        try:
            if float(progress.get("updated_at") or 0) > (run_dir / RESULTS_FILE).stat().st_mtime:
                return "running"
        except OSError:
            pass
    return status


def _run_state(recorded: str | None, progress: dict, lease: str | None) -> str | None:
    state = recorded if recorded != "running" else None
    state = state or progress.get("phase") or recorded
    if state == "evaluating" and progress.get("directions_total"):
        state = f"evaluating {progress.get('directions_done') or 0}/{progress['directions_total']}"
    if state and lease == "stale" and state.split()[0] in (*STARTED_PHASES, "running"):
        state += " (lease stale)"
    return state


def _progress_fields(job: JobState, progress: dict, live: bool, now: float) -> None:
    for key in ("step", "max_steps", "loss", "val", "directions_done", "directions_total"):
        setattr(job, key, progress.get(key))
    attempts = progress.get("attempts") or []
    job.attempts = len(attempts)
    seconds = device_seconds(progress)
    since = max(0.0, now - float(progress.get("updated_at") or now))
    if live and attempts:  # the running attempt counts until now, not until its last write
        seconds += since * int(attempts[-1].get("devices") or 1)
    job.gpu_hours = seconds / 3600
    if job.status == "running" and progress.get("phase") == "training" and progress.get("eta_s") is not None:
        job.eta_s = max(0.0, float(progress["eta_s"]) - since)


def _requeues(progress: dict, rec: Submission | None, slurm) -> int:
    """Requeues of the current SLURM job (SLURM's count, or the attempts it started); of a local run, restarts."""
    attempts = progress.get("attempts") or []
    if rec is None:
        return max(0, len(attempts) - 1)
    mine = sum(a.get("slurm_job") == rec.job_id for a in attempts)
    return max(slurm.requeues if slurm else 0, mine - 1, 0)


def _log_path(sweep_dir: Path, run_dir: Path, rec: Submission | None, results: RunResults) -> str | None:
    if rec is not None and rec.log:
        return str(sweep_dir / rec.log)
    task = results.task
    logs = [run_dir / f"{task}.log"] if task else []
    logs += sorted(run_dir.glob("*.log")) if run_dir.is_dir() else []
    return next((str(p) for p in logs if p.is_file()), None)


def _first_line(text) -> str | None:
    return str(text).strip().splitlines()[0] if text and str(text).strip() else None


def _last_error_line(log: str | None, tail: int = 65536) -> str | None:
    """The last line of a log's tail that names an error (a job that died before recording one)."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, os.path.getsize(log) - tail))
            lines = f.read().decode("utf-8", errors="replace").splitlines()
    except (OSError, TypeError):
        return None
    words = ("Error", "error:", "Exception", "Killed", "CANCELLED", "DUE TO")
    return next((ln.strip() for ln in reversed(lines) if any(w in ln for w in words)), None)


# ---------------------------------------------------------------------------------------------------------------
# a sweep
# ---------------------------------------------------------------------------------------------------------------
def sweep_status(sweep_dir: str | Path, now: float | None = None) -> SweepStatus:
    """Every job of the sweep: the manifest's (newest submission of each run directory) and the run directories
    found besides (a local multirun has only those). One squeue and one sacct call in all."""
    sweep_dir = Path(sweep_dir)
    try:
        latest = latest_by_run_dir(read_manifest(sweep_dir))
    except OSError as e:
        raise MftiError(f"{manifest_path(sweep_dir)} cannot be read ({e}).") from None
    view = slurm_state.query([s.job_id for s in latest.values()])
    now = time.time() if now is None else now
    names = list(latest) + [d for d in local_run_dirs(sweep_dir) if d not in latest]
    jobs = [job_state(sweep_dir, name, latest.get(name), view, now) for name in names]
    return SweepStatus(sweep_dir, jobs, view, bool(latest), now)


# ---------------------------------------------------------------------------------------------------------------
# what the launcher and mfti plan need: is a job pending or running?
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Activity:
    """Whether a job of a sweep about to be (re)submitted is pending or running (``busy``: ``running (job
    1234_5)``), and, when it was submitted before and is not, why it is submitted again (``note``)."""

    busy: str | None = None
    note: str | None = None
    record: Submission | None = None


def activity(sweep_dir: str | Path, run_dirs: list[Path], strict: bool = True) -> dict[Path, Activity]:
    """For each of ``run_dirs`` (jobs of the sweep in ``sweep_dir``): SLURM's state of its newest submission (one
    squeue + one sacct call for all) and its run directory's lease. ``strict``: raise :class:`SlurmUnanswered` when
    SLURM cannot say whether a job submitted before still runs (the launcher then submits nothing)."""
    sweep_dir = Path(sweep_dir)
    try:
        latest = latest_by_run_dir(read_manifest(sweep_dir))
    except OSError as e:  # not a file, not readable: the leases still tell the jobs that run
        log.warning(f"{manifest_path(sweep_dir)} cannot be read ({e}): only jobs running now are recognised.")
        latest = {}
    recs = {rd: latest.get(_name_in(sweep_dir, rd)) for rd in run_dirs}
    view = slurm_state.query([r.job_id for r in recs.values() if r])
    out = {}
    for rd, rec in recs.items():
        holder = read_holder(rd)
        live = holder is not None and holder_state(holder) == "live"
        if rec is not None and view.active(rec.job_id):
            state = "pending" if view.get(rec.job_id).state in slurm_state.PENDING else "running"
            out[rd] = Activity(f"{state} (job {rec.job_id})", record=rec)
        elif live:
            who = f"job {holder.slurm_job}" if holder.slurm_job else f"pid {holder.pid} on {holder.host}"
            out[rd] = Activity(f"running ({who})", record=rec)
        elif rec is not None and not view.answered:
            if strict:
                raise SlurmUnanswered(_unanswered(rec, view))
            out[rd] = Activity(note=f"submitted before as job {rec.job_id}; SLURM did not say whether it still runs")
        elif rec is not None:
            out[rd] = Activity(note=_resubmit_note(rec, view.get(rec.job_id), holder), record=rec)
        else:
            out[rd] = Activity()
    return out


def _name_in(sweep_dir: Path, run_dir: Path) -> str:
    """A run directory as the manifest names it (relative to the sweep directory when inside it)."""
    try:
        return str(Path(run_dir).relative_to(sweep_dir))
    except ValueError:
        return str(run_dir)


def _resubmit_note(rec: Submission, slurm, holder: Holder | None) -> str:
    ended = f"ended ({slurm.detail})" if slurm is not None else "is no longer known to SLURM"
    lease = (
        f"its run directory's lease is stale ({holder.describe()})" if holder else "no process holds its run directory"
    )
    return f"submitted again: SLURM job {rec.job_id} {ended} and {lease}"


def _unanswered(rec: Submission, view) -> str:
    return (
        f"SLURM could not say whether job {rec.job_id} (run directory {rec.run_dir}), submitted before, is still "
        f"pending or running ({'; '.join(view.errors) or 'no answer'}). Nothing was submitted, so that no job runs "
        "twice: run the command again once squeue/sacct answer."
    )
