"""A sweep's submission manifest: ``<sweep dir>/submissions.jsonl`` (:data:`mfti_lightning.core.layout.SUBMISSIONS_FILE`).

The SLURM launcher appends one JSON object per line, one line per job each time it submits it, and never rewrites
the file: a re-submission adds lines, so the last line of a run directory names its newest SLURM job. Fields
(:class:`Submission`; readers ignore fields they do not know, and ``version`` changes only when a field changes meaning):

    version        1
    submitted_at   ISO 8601 time with its UTC offset
    run_dir        the job's run directory, relative to the sweep directory (its run_slug)
    num            the job's number in the sweep (Hydra's hydra.job.num)
    overrides      the job's overrides (hydra.sweeper.params and the command line, as Hydra expanded them)
    job_id         SLURM's id of the job: <array job id>_<task id> for a task of a job array, else a plain number
    array_job_id   the job array's id (the plain job's own id when it is not an array)
    array_task_id  the task's index in the array, null for a plain job
    log            rank 0's log file (stdout; stderr too with stderr_to_stdout), relative to the sweep directory
    git_commit     the commit of the code that submitted it (null outside a git checkout), and git_dirty
    command        the command line that submitted it, and cwd its working directory
    wait           whether that command waited for the jobs (hydra.launcher.wait)
    gpu_hours_estimate  ``mfti plan``'s GPU-hour estimate of the job when it was submitted (``mfti status`` shows
                   the GPU-hours used against it); null when it could not be estimated, absent in older lines

Each line is written by one ``os.write`` on a descriptor opened with ``O_APPEND``, under an exclusive ``flock``, and
then fsync'd: two submitters never interleave inside a line, and a crash leaves at most one torn last line, which
:func:`read_manifest` skips (the next append starts on a new line). On NFS, appends from two machines at the same
moment are atomic only where the server honours the lock; one submitter per sweep is the norm.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shlex
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from mfti_lightning.core.layout import SUBMISSIONS_FILE

VERSION = 1


@dataclass
class Submission:
    """One job of one submission: a line of ``submissions.jsonl``."""

    run_dir: str
    num: int
    overrides: list[str]
    job_id: str
    array_job_id: str
    array_task_id: int | None
    log: str
    submitted_at: str
    git_commit: str | None = None
    git_dirty: bool | None = None
    command: str = ""
    cwd: str = ""
    wait: bool = False
    gpu_hours_estimate: float | None = None
    version: int = VERSION
    extra: dict = field(default_factory=dict)  # fields of a newer version, kept as read

    @classmethod
    def from_json(cls, record: dict) -> Submission:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(
            **{k: v for k, v in record.items() if k in names}, extra={k: v for k, v in record.items() if k not in names}
        )

    def to_json(self) -> str:
        record = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("extra", "version")}
        return json.dumps({"version": self.version, **record, **self.extra}, ensure_ascii=False)


def manifest_path(sweep_dir: str | Path) -> Path:
    return Path(sweep_dir) / SUBMISSIONS_FILE


def split_job_id(job_id: str) -> tuple[str, int | None]:
    """``"1234_5"`` -> ``("1234", 5)``; ``"1234"`` -> ``("1234", None)``."""
    array_id, _, task = str(job_id).partition("_")
    return array_id, int(task) if task.isdigit() else None


def submitted_now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def command_line() -> str:
    """The command that is submitting: the console script's name and its arguments."""
    argv = list(sys.argv) or ["?"]
    return shlex.join([Path(argv[0]).name, *argv[1:]])


def append_submissions(sweep_dir: str | Path, records: list[Submission]) -> None:
    """Append ``records`` to the sweep's manifest, one atomic, fsync'd write per line."""
    path = manifest_path(sweep_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another submitter's line is whole before we look for a torn one
        torn = _ends_without_newline(path)
        for i, record in enumerate(records):
            line = ("\n" if torn and i == 0 else "") + record.to_json() + "\n"
            os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _ends_without_newline(path: Path) -> bool:
    """A torn last line (a crash mid-write) must not swallow the next record."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def read_manifest(sweep_dir: str | Path) -> list[Submission]:
    """Every submission recorded in the sweep directory, oldest first (``[]`` when nothing was submitted). Lines
    that do not parse (a torn last line) are skipped."""
    path = manifest_path(sweep_dir)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
            out.append(Submission.from_json(record))
        except (ValueError, TypeError):
            continue
    return out


def latest_by_run_dir(submissions: list[Submission]) -> dict[str, Submission]:
    """The newest submission of each run directory."""
    return {s.run_dir: s for s in submissions}
