"""``<run dir>/progress.json``: where a job stands, written by the job at intervals so that ``mfti status`` never
parses logs. Torch-free; rank 0 writes, atomically (readers see the old record or the new one).

Fields (all optional but ``phase`` and ``updated_at``)::

    {
      "phase": "preparing" | "training" | "evaluating" | "completed" | "failed" | "interrupted",
      "updated_at": unix time of this write,
      "step": optimizer steps done, "max_steps": planned steps,
      "loss": last training loss, "steps_per_s": recent rate, "eta_s": estimated seconds to the end of training,
      "val": {"metric": "val/chrf/avg", "value": 12.3, "step": 250},   (last validation)
      "directions_done": finished test directions, "directions_total": test directions,
      "error": the one-line error of a failed or interrupted job,
      "attempts": [{"started_at", "ended_at", "host", "slurm_job", "restart", "devices"}, ...]  (one per start)
    }

``attempts`` counts requeues and gives the device-seconds a run has used (``mfti status``'s GPU-hours).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from mfti_lightning.core.layout import PROGRESS_FILE
from mfti_lightning.core.results import write_json_atomic

PHASES = ("preparing", "training", "evaluating", "completed", "failed", "interrupted")


def read_progress(run_dir: str | Path) -> dict | None:
    """The progress record of a run directory (None when there is none or it does not parse)."""
    try:
        data = json.loads((Path(run_dir) / PROGRESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def update_progress(run_dir: str | Path, **fields) -> dict:
    """Merge ``fields`` into the record and write it (a failure to write never stops a job: returns the record)."""
    record = read_progress(run_dir) or {}
    now = time.time()
    record.update(fields, updated_at=now)
    if record.get("attempts"):  # the attempt lasts at least until this write (a killed job stops counting here)
        record["attempts"] = [*record["attempts"][:-1], {**record["attempts"][-1], "ended_at": now}]
    try:
        write_json_atomic(Path(run_dir) / PROGRESS_FILE, record)
    except OSError:
        pass
    return record


def start_attempt(run_dir: str | Path, devices: int, slurm_job: str | None) -> None:
    """A job (re)starts on the run: a new attempt, phase ``preparing``; earlier fields of the run are kept."""
    record = read_progress(run_dir) or {}
    attempts = list(record.get("attempts") or [])
    now = time.time()
    attempts.append(
        {
            "started_at": now,
            "ended_at": now,
            "host": socket.gethostname(),
            "slurm_job": slurm_job,
            "restart": int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0),
            "devices": devices,
        }
    )
    update_progress(run_dir, phase="preparing", attempts=attempts, error=None)


def end_attempt(run_dir: str | Path, phase: str, error: str | None = None) -> None:
    """The attempt ends (completed, failed or interrupted): its end time and the final phase."""
    update_progress(run_dir, phase=phase, error=error)


def device_seconds(record: dict) -> float:
    """Device-seconds used by every attempt, each from its start to its last write."""
    return sum(
        max(0.0, float(a.get("ended_at") or 0) - float(a.get("started_at") or 0)) * int(a.get("devices") or 1)
        for a in record.get("attempts") or []
    )
