"""Which checked jobs of a sweep the SLURM launcher (:mod:`mfti_lightning.launch.launcher`) leaves out, so that
re-running a sweep command never submits a job twice: completed ones and those pending or running. Each filter
maps ``(checked jobs, sweep dir)`` to ``{job num: Skip}``. Nothing here imports torch or Lightning."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.utils import filter_overrides

from mfti_lightning.launch import status as st
from mfti_lightning.launch import sweep as sw

log = logging.getLogger(__name__)


@dataclass
class Skip:
    """Why a checked job is not submitted (``kind``, counted in the summary) and what Hydra gets back for it."""

    kind: str
    reason: str
    return_value: Any = None


def skip_completed(jobs: list[sw.Job], sweep_dir: Path) -> dict[int, Skip]:
    """Jobs whose results.json says completed, for the same experiment and evaluation settings
    (:func:`identity.decide_reuse` says ``skip``): re-running a finished sweep submits nothing. Their value for
    Hydra is the objective the run returned."""
    return {
        j.num: Skip("already completed", f"completed in {j.run_dir}", sw.completed_objective(j.run_dir))
        for j in jobs
        if j.action == "skip"
    }


def skip_active(jobs: list[sw.Job], sweep_dir: Path) -> dict[int, Skip]:
    """Jobs that are pending or running (:func:`status.activity`): the newest submission of the run directory in
    the manifest is pending or running in SLURM (one squeue + one sacct call for the sweep), or a live process holds
    the run directory's lease. Their value for Hydra is their manifest record. A job submitted before whose SLURM
    job has ended and whose lease is stale (or free) is submitted again, and the log says why. When SLURM cannot be
    asked, nothing is submitted (:class:`status.SlurmUnanswered`)."""
    found = st.activity(sweep_dir, [j.run_dir for j in jobs], strict=True)
    skips = {}
    for j in jobs:
        act = found[j.run_dir]
        if act.busy:
            skips[j.num] = Skip("already pending or running", act.busy, act.record)
        elif act.note:
            log.info(f"\t#{j.num} : {' '.join(filter_overrides(j.overrides))}  ({act.note})")
    return skips
