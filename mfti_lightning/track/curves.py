"""``logger=csv``: ONE curve per run in ``<run dir>/csv/metrics.csv``, across every job of the run.

Lightning's CSVLogger deletes ``metrics.csv`` whenever its directory already exists, so each resume, requeue or
re-evaluation used to wipe the run's history. :class:`CurveLogger` keeps it:

- a resumed (or requeued) job drops the rows at or after the step it restarts from, once its checkpoint is
  restored (:class:`RestartCurves`): that part of training is about to be logged again, so no step appears twice
  and every row before the checkpoint stays as it was;
- a row logged again with the same step and the same columns (the scores of a validation or test that a killed
  job had already logged) replaces the earlier one;
- a re-evaluation (``record["reevaluation"]``) appends its test scores as a row marked ``evaluation=<n>``: the
  n-th re-evaluation, whose predecessor's results are kept in ``previous_results/<n-1>.json``; the training rows
  stay;
- each row is on disk when ``log_metrics`` returns (appended; the file is rewritten atomically when rows are
  dropped or replaced or the columns change), and a last line cut by a kill is dropped when the file is read.

The file stays a plain CSV, one row per logging call: ``step`` first, then the columns in alphabetical order, an
empty cell where a row did not log that column (as Lightning writes it). Imported only when a job logs.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.core.saving import save_hparams_to_yaml
from pytorch_lightning.loggers.logger import Logger, rank_zero_experiment
from pytorch_lightning.utilities import rank_zero_only

from mfti_lightning.core.layout import CURVE_DIR, CURVE_FILE
from mfti_lightning.core.results import atomic_write

log = logging.getLogger("mfti_lightning")

EVALUATION = "evaluation"  # the column that marks a re-evaluation's rows
HPARAMS_FILE = "hparams.yaml"


def read_curve(path: str | Path) -> tuple[list[dict], bool]:
    """The rows of a ``metrics.csv`` (only the cells that hold a value, as strings) and whether the file must be
    rewritten before anything is appended to it (its last line was cut by a kill, or it could not be read)."""
    path = Path(path)
    if not path.exists():
        return [], False
    try:
        text = path.read_text(encoding="utf-8")
        rows = list(csv.DictReader(io.StringIO(text[: text.rfind("\n") + 1])))  # without a last line cut short
    except (UnicodeDecodeError, csv.Error):
        aside = path.with_name(path.name + ".unreadable")
        os.replace(path, aside)
        log.warning("%s is not a readable CSV; moved it to %s and starting the curve anew.", path, aside)
        return [], False
    cut = bool(text) and not text.endswith("\n")
    # a short row (fewer cells than the header) is the remains of an interrupted write
    return [{k: v for k, v in r.items() if v != ""} for r in rows if None not in r and None not in r.values()], cut


def step_of(row: dict) -> int:
    return int(float(row.get("step", -1)))


def identity(row: dict) -> tuple:
    """Rows with the same identity hold the same measurement: a later one replaces an earlier one."""
    return step_of(row), str(row.get(EVALUATION, "")), frozenset(row)


class Curve:
    """The rows of one ``metrics.csv`` in the order they were logged, and the file kept equal to them (appended
    to; rewritten atomically when rows are dropped or replaced or a column appears)."""

    def __init__(self, path: str | Path, tag: dict | None = None):
        self.path = Path(path)
        self.tag = dict(tag or {})
        self.rows, self._rewrite = read_curve(self.path)
        self._ids = {identity(r) for r in self.rows}
        self._keys = {k for r in self.rows for k in r}
        self._pending: list[dict] = []

    def columns(self) -> list[str]:
        return ["step"] + sorted(self._keys - {"step"})

    def add(self, metrics: dict, step: int) -> None:
        row = {k: (v.item() if hasattr(v, "item") else v) for k, v in metrics.items() if v is not None}
        self._pending.append({**row, **self.tag, "step": int(step)})

    def restart_at(self, step: int) -> None:
        """Drop the rows at or after ``step``: a job that resumes from that step's checkpoint logs them again."""
        kept = [r for r in self.rows if step_of(r) < step]
        if len(kept) != len(self.rows):
            log.info(
                "%s: %d row(s) from step %d on dropped: logged again from there.",
                self.path,
                len(self.rows) - len(kept),
                step,
            )
            self.rows, self._rewrite = kept, True
            self._ids = {identity(r) for r in kept}
        self.save()

    def save(self) -> None:
        new, self._pending = self._pending, []
        replaced = {identity(r) for r in new} & self._ids
        if replaced:
            self.rows = [r for r in self.rows if identity(r) not in replaced]
        self.rows += new
        self._ids.update(identity(r) for r in new)
        new_keys = {k for r in new for k in r} - self._keys
        self._keys |= new_keys
        if self._rewrite or replaced or new_keys or (new and not self.path.exists()):
            self._rewrite = False
            atomic_write(self.path, lambda f: self._write(f, self.rows, header=True))
        elif new:
            with open(self.path, "a", encoding="utf-8", newline="") as f:
                self._write(f, new, header=False)

    def _write(self, f, rows: list[dict], header: bool) -> None:
        writer = csv.DictWriter(f, fieldnames=self.columns(), lineterminator="\n")
        if header:
            writer.writeheader()
        writer.writerows(rows)


class CurveLogger(Logger):
    """The Lightning logger of ``logger=csv`` (see the module doc); ``tag``: cells added to every row this job
    logs (a re-evaluation's ``{"evaluation": n}``)."""

    def __init__(self, run_dir: str | Path, tag: dict | None = None):
        super().__init__()
        self._root = Path(run_dir) / CURVE_DIR
        self._tag = tag
        self._curve: Curve | None = None

    @property
    def name(self) -> str:
        return CURVE_DIR

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return str(self._root.parent)

    @property
    def log_dir(self) -> str:
        return str(self._root)

    @property
    @rank_zero_experiment
    def experiment(self) -> Curve:
        if self._curve is None:  # created in the process that logs (a forked rank 0 too), reading what is there
            self._root.mkdir(parents=True, exist_ok=True)
            self._curve = Curve(self._root / CURVE_FILE, self._tag)
        return self._curve

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        save_hparams_to_yaml(self._root / HPARAMS_FILE, params)

    @rank_zero_only
    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        curve = self.experiment
        curve.add(metrics, len(curve.rows) if step is None else step)
        curve.save()  # on disk now: the test scores are logged after fit, when nothing else saves

    @rank_zero_only
    def restart_at(self, step: int) -> None:
        self.experiment.restart_at(step)

    @rank_zero_only
    def save(self) -> None:
        if self._curve is not None:
            self._curve.save()


class RestartCurves(pl.Callback):
    """Tells each :class:`CurveLogger` the step training starts from, once the trainer has restored its checkpoint
    (``on_train_start``, before the first row of this job is logged)."""

    def on_train_start(self, trainer, pl_module) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, CurveLogger):
                logger.restart_at(int(trainer.global_step))
