"""SIGTERM during a job (``kill``, ``scancel``, a time limit): stop, record the run as interrupted, and exit with a
non-zero status and one line (:class:`~mfti_lightning.core.errors.JobInterrupted`). Torch-free.

While Lightning trains (inside :func:`lightning_stops`), the signal only sets Lightning's flag: Lightning finishes
the step and raises its ``SIGTERMException`` (a ``SystemExit`` with status 0), which the training task turns into
:class:`JobInterrupted` with the step. Anywhere else in the job (data preparation, the final evaluation) the signal
raises :class:`JobInterrupted` at once; what was finished is on disk (checkpoints, finished directions).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

from mfti_lightning.core.errors import JobInterrupted

RESUME_HINT = "run the same command again to resume"
_state = {"lightning": False, "received": None, "previous": None}


def _on_sigterm(signum, frame) -> None:
    _state["received"] = signum
    if callable(_state["previous"]):  # the handler in place before (submitit's logs the signal): it still runs
        _state["previous"](signum, frame)
    if not _state["lightning"]:  # Lightning composed this handler with its own flag: it stops after the step
        raise JobInterrupted(f"interrupted by {signal.Signals(signum).name}; {RESUME_HINT}", signum)


@contextmanager
def sigterm_interrupts():
    """For the body of a job: SIGTERM raises :class:`JobInterrupted` (restores the previous handler after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    _state.update(received=None, previous=previous)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def lightning_stops():
    """Around ``trainer.fit``: a SIGTERM is Lightning's to handle at the end of the step."""
    _state["lightning"] = True
    try:
        yield
    finally:
        _state["lightning"] = False


def received() -> int | None:
    """The signal this job received (None: none)."""
    return _state["received"]
