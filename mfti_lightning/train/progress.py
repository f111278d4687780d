"""Training progress: a rich progress bar in a terminal, plain periodic log lines otherwise.

When stdout is not a terminal (SLURM ``.out`` files, ``nohup``, CI logs), a redrawn bar writes carriage returns
that fill the file; :class:`PlainProgress` writes one ordinary line every ``every_n_steps`` optimizer steps or
``every_s`` seconds (whichever comes first), plus one line per validation. ``progress.mode`` picks:
``auto`` (rich on a TTY, plain otherwise), ``rich``, ``plain`` or ``none``.
"""

from __future__ import annotations

import logging
import sys
import time

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar

from mfti_lightning.core.metric_key import AVG, MetricKey

log = logging.getLogger("mfti_lightning")


def choose_mode(setting: str = "auto", stream=None) -> str:
    """``rich`` | ``plain`` | ``none``: ``auto`` is rich only when the stream is an interactive terminal."""
    if setting in ("rich", "plain", "none"):
        return setting
    if setting != "auto":
        from mfti_lightning.core.errors import ConfigError

        raise ConfigError(f"progress.mode={setting!r}: use auto, rich, plain or none.")
    stream = stream or sys.stdout
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return "rich" if tty else "plain"


def progress_callbacks(cfg) -> list:
    p = cfg.progress  # defaults: core/schema_evaluation.py ProgressConfig
    mode = choose_mode(p.mode)
    if mode != "rich":
        # no redrawn bars in a log file: nor transformers' ("Loading weights", "Writing model shards", downloads)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    if mode == "rich":
        try:
            from pytorch_lightning.callbacks import RichProgressBar

            return [RichProgressBar(leave=True)]
        except (ImportError, ModuleNotFoundError):  # rich missing: plain lines still work
            mode = "plain"
    return [PlainProgress(every_n_steps=int(p.every_n_steps), every_s=float(p.every_s), enabled=mode == "plain")]


def _fmt_time(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class PlainProgress(ProgressBar):
    """One log line per ``every_n_steps`` optimizer steps or ``every_s`` seconds; no carriage returns.

    Being a ``ProgressBar`` it also replaces Lightning's default tqdm bar (``enabled=False`` silences it).
    """

    def __init__(self, every_n_steps: int = 50, every_s: float = 60.0, enabled: bool = True, printer=None):
        super().__init__()
        self.every_n_steps = max(0, int(every_n_steps))
        self.every_s = float(every_s)
        self._enabled = enabled
        self._print = printer or (lambda line: log.info("%s", line))
        self._t0 = None
        self._last_t = None
        self._last_step = -1
        self._first_step = 0
        self.lines: list[str] = []  # what was printed (tests and debugging)

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def _emit(self, trainer, line: str) -> None:
        if self._enabled and trainer.is_global_zero:
            self.lines.append(line)
            self._print(line)

    def on_train_start(self, trainer, pl_module):
        self._t0 = self._last_t = time.perf_counter()
        self._first_step = self._last_step = int(trainer.global_step)
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else "?"
        self._emit(trainer, f"training: step {trainer.global_step}/{total}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = int(trainer.global_step)
        if step == self._last_step:  # inside gradient accumulation
            return
        now = time.perf_counter()
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        due = (
            (self.every_n_steps and step % self.every_n_steps == 0)
            or (now - self._last_t >= self.every_s)
            or (total is not None and step >= total)
        )
        if not due:
            return
        elapsed = now - self._t0
        rate = (step - self._first_step) / elapsed if elapsed > 0 else 0.0
        parts = [f"step {step}/{total or '?'}" + (f" ({100 * step / total:.0f}%)" if total else "")]
        metrics = self.get_metrics(trainer, pl_module)
        for key in ("train/loss", "loss"):
            if key in metrics:
                parts.append(f"loss {float(metrics[key]):.4f}")
                break
        lr = next((v for k, v in trainer.callback_metrics.items() if k.startswith("lr-")), None)
        if lr is not None:
            parts.append(f"lr {float(lr):.2e}")
        parts.append(f"{rate:.2f} steps/s")
        parts.append(f"elapsed {_fmt_time(elapsed)}")
        if total and rate > 0:
            parts.append(f"eta {_fmt_time((total - step) / rate)}")
        self._emit(trainer, " | ".join(parts))
        self._last_t, self._last_step = now, step

    def on_validation_start(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self._val_t0 = time.perf_counter()
            self._emit(trainer, f"validation at step {trainer.global_step} ...")

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        keys = [(MetricKey.find(k), v) for k, v in trainer.callback_metrics.items()]
        avg = {k.metric: float(v) for k, v in keys if k and k.split == "val" and k.scope == AVG}
        took = time.perf_counter() - getattr(self, "_val_t0", time.perf_counter())
        scores = ", ".join(f"{metric} {v:.2f}" for metric, v in sorted(avg.items()))
        self._emit(
            trainer,
            f"validation at step {trainer.global_step} done in {_fmt_time(took)}" + (f": {scores}" if scores else ""),
        )

    def on_train_end(self, trainer, pl_module):
        elapsed = time.perf_counter() - (self._t0 or time.perf_counter())
        self._emit(trainer, f"training done: {trainer.global_step} steps in {_fmt_time(elapsed)}")


class ProgressRecord(pl.Callback):
    """Writes where training stands into ``<run dir>/progress.json`` (:mod:`mfti_lightning.core.progress_record`):
    at the start, every ``every_s`` seconds of optimizer steps, after each validation and at the end (rank 0).
    ``mfti status`` reads it instead of parsing logs."""

    def __init__(self, run_dir, monitor: str | None = None, every_s: float = 30.0):
        self.run_dir = run_dir
        self.monitor = monitor
        self.every_s = float(every_s)
        self._t0 = self._last = 0.0
        self._step0 = 0

    def _write(self, trainer, **fields) -> None:
        from mfti_lightning.core.progress_record import update_progress

        if trainer.is_global_zero:
            update_progress(self.run_dir, **fields)

    def _state(self, trainer) -> dict:
        step, total = int(trainer.global_step), int(trainer.max_steps or 0)
        elapsed = time.perf_counter() - self._t0
        rate = (step - self._step0) / elapsed if elapsed > 0 and step > self._step0 else None
        loss = trainer.callback_metrics.get("train/loss")
        return {
            "phase": "training",
            "step": step,
            "max_steps": total or None,
            "loss": float(loss) if loss is not None else None,
            "steps_per_s": rate,
            "eta_s": (total - step) / rate if rate and total else None,
        }

    def on_train_start(self, trainer, pl_module):
        self._t0 = self._last = time.perf_counter()
        self._step0 = int(trainer.global_step)
        self._write(trainer, **self._state(trainer))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if time.perf_counter() - self._last >= self.every_s:
            self._last = time.perf_counter()
            self._write(trainer, **self._state(trainer))

    def on_validation_end(self, trainer, pl_module):
        value = trainer.callback_metrics.get(self.monitor) if self.monitor else None
        if value is not None and not trainer.sanity_checking:
            val = {"metric": self.monitor, "value": float(value), "step": int(trainer.global_step)}
            self._write(trainer, **self._state(trainer), val=val)

    def on_train_end(self, trainer, pl_module):
        self._write(trainer, **self._state(trainer))
