"""One run directory, one owner: a lease file in the run directory, safe on NFS. Torch-free.

``<run dir>/lease.json`` names the process that holds the directory (host, pid, the process's start time, the
SLURM job id, a random token) and a heartbeat its holder refreshes every :data:`HEARTBEAT_S` seconds. A job takes
the lease before it writes anything into the directory and gives it back when it ends; a second process refuses
at once, naming the holder and what to do.

Why not ``flock``: advisory locks over NFS depend on the client, the server and lockd (and on some mounts silently
lock nothing); a lock held by a node that died may never be released. Instead:

- taking a free lease is ``link(2)`` of a private file onto ``lease.json``: atomic on local filesystems and on NFS
  (where ``O_EXCL`` was not before NFSv3). A lost reply is recognised by the private file's link count;
- a lease is *stale* when its holder is certainly gone: on the same host, the pid is not running (or runs another
  program: its start time differs); in the same SLURM job (a requeued job is the same job id, and SLURM runs one
  instance of it), the holder was this job's earlier run; elsewhere, no heartbeat for :data:`STALE_AFTER_S` seconds;
- a stale lease is taken over by whoever first creates ``lease.json.takeover-<stale token>`` (again ``link``): two
  processes that find the same stale lease cannot both take it.

The same module answers "is this run directory busy?" for the launcher and ``mfti status`` (:func:`read_holder`,
:func:`holder_state`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mfti_lightning.core.errors import MftiError
from mfti_lightning.core.layout import LEASE_FILE

log = logging.getLogger("mfti_lightning")

HEARTBEAT_S = 30.0  # the holder rewrites its heartbeat this often
STALE_AFTER_S = 150.0  # a holder on another host without a heartbeat this long is gone (5 missed beats)


class RunDirBusy(MftiError):
    """Another live process holds the run directory."""


@dataclass
class Holder:
    """Who holds a run directory (the content of ``lease.json``)."""

    host: str
    pid: int
    token: str
    acquired_at: float
    heartbeat_at: float
    slurm_job: str | None = None  # "<job id>" or "<array job id>_<task id>"
    proc_start: str | None = None  # the pid's start time (field 22 of /proc/<pid>/stat): tells a reused pid apart
    command: list = field(default_factory=list)

    def describe(self, now: float | None = None) -> str:
        age = (now or time.time()) - self.heartbeat_at
        job = f", SLURM job {self.slurm_job}" if self.slurm_job else ""
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.acquired_at))
        return f"pid {self.pid} on {self.host}{job}, since {started}, last heartbeat {age:.0f} s ago"


def slurm_job() -> str | None:
    """This process's SLURM job as ``squeue``/``sacct`` name it (array tasks as ``<array job>_<task>``)."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID") or None


def _proc_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22; the command name (field 2) may hold spaces


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_holder(run_dir: str | Path) -> Holder | None:
    """The holder named in ``<run dir>/lease.json``, or None when there is no (readable) lease."""
    try:
        data = json.loads((Path(run_dir) / LEASE_FILE).read_text(encoding="utf-8"))
        return Holder(**{k: data[k] for k in Holder.__dataclass_fields__ if k in data})
    except (OSError, ValueError, TypeError, KeyError):
        return None


def holder_state(holder: Holder, now: float | None = None) -> str:
    """``live`` or ``stale`` (see the module docstring for when a holder is certainly gone)."""
    now = time.time() if now is None else now
    if holder.host == socket.gethostname():
        if not _pid_running(holder.pid):
            return "stale"
        if holder.proc_start and _proc_start(holder.pid) not in (None, holder.proc_start):
            return "stale"  # the pid now belongs to another process
        return "live"
    mine = slurm_job()
    if mine and holder.slurm_job == mine and os.environ.get("SLURM_RESTART_COUNT"):
        return "stale"  # our own job's run before a requeue: SLURM runs one instance of a job at a time
    return "stale" if now - holder.heartbeat_at > STALE_AFTER_S else "live"


def _link_exclusive(content: str, target: Path) -> bool:
    """Create ``target`` with ``content`` iff it does not exist (atomic on NFS: link, then check the link count)."""
    private = target.with_name(f"{target.name}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    private.write_text(content, encoding="utf-8")
    try:
        os.link(private, target)
        return True
    except FileExistsError:
        return False
    except OSError:
        return private.stat().st_nlink == 2  # NFS: the link was made but the reply was lost
    finally:
        private.unlink(missing_ok=True)


class RunLease:
    """The lease of one run directory, held by this process (see the module docstring).

    ``acquire()`` takes it or raises :class:`RunDirBusy`; a daemon thread refreshes the heartbeat; ``release()``
    (also at interpreter exit, and only in the process that took it: a forked DDP rank never releases it)
    removes the file. ``lost`` turns True when another process took the lease over (this one was thought gone)."""

    def __init__(self, run_dir: str | Path, prog: str = "mfti"):
        self.path = Path(run_dir) / LEASE_FILE
        self.prog = prog
        self.holder: Holder | None = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _new_holder(self) -> Holder:
        now = time.time()
        import sys

        return Holder(
            socket.gethostname(), os.getpid(), uuid.uuid4().hex, now, now, slurm_job(), _proc_start(os.getpid()),
            list(sys.argv),
        )  # fmt: skip

    def acquire(self) -> RunLease:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        holder = self._new_holder()
        for _ in range(3):  # a lease that disappears between our attempts: try again
            if _link_exclusive(json.dumps(asdict(holder)), self.path):
                self._hold(holder)
                return self
            current = read_holder(self.path.parent)
            if current is None:
                time.sleep(0.05)
                self._remove_unreadable()
                continue
            if holder_state(current) == "live":
                raise RunDirBusy(self._busy_message(current))
            self._take_over(current, holder)
            return self
        raise RunDirBusy(f"{self.path.parent}: could not take {LEASE_FILE}; another process keeps changing it.")

    def _remove_unreadable(self) -> None:
        """A lease file that stays unreadable (cut by a full disk, say) holds nothing: set it aside."""
        if self.path.exists() and read_holder(self.path.parent) is None:
            self.path.replace(self.path.with_name(f"{LEASE_FILE}.unreadable-{uuid.uuid4().hex[:8]}"))

    def _take_over(self, stale: Holder, holder: Holder) -> None:
        marker = self.path.with_name(f"{LEASE_FILE}.takeover-{stale.token}")
        if not _link_exclusive(holder.token, marker):
            raise RunDirBusy(
                f"{self.path.parent}: another process is taking over the stale lease of {stale.describe()}. "
                f"Check with `mfti status` (or squeue) before starting it again."
            )
        try:
            current = read_holder(self.path.parent)
            if current is not None and current.token == stale.token:
                self.path.unlink(missing_ok=True)
            if not _link_exclusive(json.dumps(asdict(holder)), self.path):
                raise RunDirBusy(self._busy_message(read_holder(self.path.parent) or stale))
        finally:
            marker.unlink(missing_ok=True)
        log.warning(
            "%s: took over the lease of a process that is gone (%s).",
            self.path.parent,
            stale.describe(holder.acquired_at),
        )
        self._hold(holder)

    def _busy_message(self, current: Holder) -> str:
        stop = f"scancel {current.slurm_job}" if current.slurm_job else f"kill {current.pid} on {current.host}"
        return (
            f"{self.path.parent} is in use by another process ({current.describe()}). Two processes must not "
            f"train into one run directory. Wait for it to end (it may be the same job, still running: see "
            f"`mfti status`), or stop it ({stop}) and run this command again. A lease whose holder died is "
            f"taken over by the next run: at once on the same host or in the same SLURM job, else after "
            f"{STALE_AFTER_S:.0f} s without a heartbeat."
        )

    def _hold(self, holder: Holder) -> None:
        import atexit

        self.holder = holder
        self._thread = threading.Thread(target=self._beat, name="mfti-lease-heartbeat", daemon=True)
        self._thread.start()
        atexit.register(self.release)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self.heartbeat()

    def heartbeat(self) -> None:
        """Rewrite the heartbeat (atomically), unless the lease is no longer ours."""
        from mfti_lightning.core.results import atomic_write

        if self.holder is None or os.getpid() != self.holder.pid:
            return
        current = read_holder(self.path.parent)
        if current is None or current.token != self.holder.token:
            if not self.lost:
                self.lost = True
                log.error(
                    "%s: this process's lease was taken over by %s.", self.path.parent, current and current.describe()
                )
            return
        self.holder.heartbeat_at = time.time()
        try:
            atomic_write(self.path, lambda f: f.write(json.dumps(asdict(self.holder))))
        except OSError as e:  # a full disk or a slow NFS must not kill the job; the next beat tries again
            log.warning("%s: could not refresh the lease heartbeat (%s).", self.path, e)

    def release(self) -> None:
        if self.holder is None or os.getpid() != self.holder.pid:
            return  # never taken, or a forked child: only the process that took it gives it back
        self._stop.set()
        current = read_holder(self.path.parent)
        if current is not None and current.token == self.holder.token:
            self.path.unlink(missing_ok=True)
        self.holder = None

    def __enter__(self) -> RunLease:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
