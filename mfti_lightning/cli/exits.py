"""How every mfti command ends: the exit status and the one line a user reads.

- an error the user can fix (:class:`~mfti_lightning.core.errors.MftiError`: ConfigError, DataError, InputsError,
  a busy run directory, ...): its message alone on stderr, ``<prog>: error: <message>``, exit status 2; the
  traceback only with ``HYDRA_FULL_ERROR=1`` (Hydra's own switch, so one variable shows every traceback);
- an interrupted job (:class:`~mfti_lightning.core.errors.JobInterrupted`: SIGTERM from ``kill``, ``scancel`` or a
  time limit): one line saying where it stopped and how to resume, exit status 128 + the signal (143), so that
  SLURM records the job as failed or cancelled, never as completed;
- anything else is a bug: Python's (or Hydra's) traceback, exit status 1.
"""

from __future__ import annotations

import os
import sys

from mfti_lightning.core.errors import JobInterrupted, MftiError, exit_for


def full_error() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR", "") == "1"


def report_errors(prog: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, ending as the module docstring says."""
    try:
        return fn(*args, **kwargs)
    except MftiError as e:
        if full_error():
            raise
        raise exit_for(e, prog) from None
    except JobInterrupted as e:
        print(f"{prog}: {e}", file=sys.stderr, flush=True)
        raise
