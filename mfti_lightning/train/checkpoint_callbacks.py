"""Checkpoints that a killed job can resume from exactly: atomic writes, data order and RNG state, and the
periodic checkpoint of a validation step written after that validation (so a resumed run never skips it).

Imported only once a job really trains (it imports Lightning).
"""

from __future__ import annotations

import errno
import os
import random
import re
import shutil
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from mfti_lightning.core.errors import CheckpointError
from mfti_lightning.model.checkpoint_files import PARTIAL


def save_atomic(path: Path, write) -> None:
    """``write(f)`` into ``.<name>.<pid>.partial`` beside ``path`` (same filesystem; never $TMPDIR, never a copy in
    memory), fsync, rename over ``path``, fsync the folder: readers see the old file or the new one. A failed write
    removes its partial file and names the path (a full disk: :class:`CheckpointError`); one killed mid-write
    leaves the partial file for ``model.checkpoint_files.clean_partial_writes`` on the next start."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{PARTIAL}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        full = _disk_full(e)
        if full is not None:
            free = shutil.disk_usage(path.parent).free / 2**20
            raise CheckpointError(
                f"Could not write the checkpoint {path}: {full.strerror} ({free:.0f} MiB free there). Free space on "
                "that filesystem (or lower checkpoint.keep) and run the same command again: training resumes from "
                "the newest complete checkpoint."
            ) from e
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a crash of the node
    finally:
        os.close(fd)


def _disk_full(error: BaseException) -> OSError | None:
    """The "no space" / "quota exceeded" OSError behind ``error`` (torch.save's zip writer reports it as a
    RuntimeError raised while the OSError is handled), or None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return error
        error = error.__cause__ or error.__context__
    return None


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` straight into a partial file beside the checkpoint, then an atomic rename (see
    :func:`save_atomic`). Lightning's own writer buffers the whole checkpoint in memory and writes it through a
    temporary file in $TMPDIR (fsspec's local transaction), which fails on a small node-local /tmp."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        save_atomic(Path(path), lambda f: torch.save(checkpoint, f))


class ResumeState(pl.Callback):
    """Makes a resumed run continue exactly: saves the RNG states with each checkpoint and keeps Lightning's
    batch counters consistent with the optimizer step that was saved.

    The data order needs nothing here: the training batch sampler is one stream indexed by micro batch
    (datamodule.LengthGroupedBatches with ``total``), and the datamodule starts it at global step x accumulation.
    """

    def __init__(self):
        self._trainer = None

    @property
    def state_key(self) -> str:
        return "ResumeState"

    def setup(self, trainer, pl_module, stage):
        self._trainer = trainer
        # Lightning warns that a mid-epoch resume is unreliable unless the dataloader is stateful; here the
        # sampler restarts at the exact micro batch (see the class docstring), so the warning does not apply
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        # ModelCheckpoint saves in on_train_batch_end, before Lightning counts the batch as completed; on resume
        # Lightning would then run that batch slot again. Record it as completed: the optimizer step is saved.
        progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.batch_progress")
        if progress and self._trainer is not None and self._trainer.training:
            for part in ("current", "total"):
                progress[part]["completed"] = max(progress[part]["completed"], progress[part]["processed"])

    def state_dict(self):
        state = {"torch_rng": torch.get_rng_state(), "python_rng": random.getstate()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        try:
            import numpy as np

            name, keys, pos, has_gauss, cached = np.random.get_state()
            # plain types: checkpoints must load with torch.load(weights_only=True)
            state["numpy_rng"] = [
                name,
                torch.from_numpy(keys.astype(np.int64)),
                int(pos),
                int(has_gauss),
                float(cached),
            ]
        except ImportError:  # pragma: no cover
            pass
        return state

    def load_state_dict(self, state_dict):
        torch.set_rng_state(state_dict["torch_rng"])
        random.setstate(state_dict["python_rng"])
        if "cuda_rng" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda_rng"])
        if "numpy_rng" in state_dict:
            import numpy as np

            name, keys, pos, has_gauss, cached = state_dict["numpy_rng"]
            np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))


def expect_earlier_checkpoints(dirpath) -> None:
    """Lightning warns when a checkpoint callback's directory is not empty at the start of fit: files it does not
    track could be mixed with its own. This project's callbacks own their directories (checkpoints/periodic and
    checkpoints/best of a run) and handle an earlier attempt's files there (:meth:`PeriodicCheckpoint._prune`,
    :meth:`BestCheckpoint.on_fit_end`); a resumed run always finds them. Only this directory's warning is silenced."""
    warnings.filterwarnings(
        "ignore",
        message=re.escape(f"Checkpoint directory {dirpath} exists and is not empty."),
        category=UserWarning,
        module=r"pytorch_lightning\.callbacks\.model_checkpoint$",
    )


class PeriodicCheckpoint(pl.callbacks.ModelCheckpoint):
    """Every ``every_n_train_steps`` optimizer steps, keep the newest ``keep`` checkpoints (for resume).

    No monitor: Lightning defers monitored saves that fall on an epoch's last batch to the next validation,
    which would move the checkpoint steps; here a save is never skipped. With ``validates`` (the run validates every
    ``eval.val_every_n_steps``), the checkpoint of a step that is also validated is written when that validation
    has ended, after the best checkpoint: it then records the validation and the best checkpoint so far, and a run
    resumed from it neither skips that validation nor forgets the best step (Lightning does not validate a step
    again when it resumes from that step's checkpoint). Put it after the best checkpoint's callback."""

    def __init__(self, dirpath, every_n_train_steps: int, keep: int = 2, validates: bool = False):
        super().__init__(
            dirpath=dirpath,
            filename="step{step:06d}",
            monitor=None,
            save_top_k=-1,
            every_n_train_steps=every_n_train_steps,
            auto_insert_metric_name=False,
            save_on_train_epoch_end=False,
        )
        self.keep = max(1, int(keep))
        self.validates = validates
        self._deferred = False

    def setup(self, trainer, pl_module, stage) -> None:
        expect_earlier_checkpoints(self.dirpath)
        super().setup(trainer, pl_module, stage)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.validates and self._validation_follows(trainer):
            self._deferred = True  # saved in on_validation_end
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)  # saves every n steps
        self._prune(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if self._deferred:
            self._deferred = False
            # the base class's step-based save, now that the step's validation (and best checkpoint) are done;
            # outputs/batch are unused by it under automatic optimization
            super().on_train_batch_end(trainer, pl_module, None, None, 0)
            self._prune(trainer)

    @staticmethod
    def _validation_follows(trainer) -> bool:
        """Lightning validates after this batch (the step-based rule of its training epoch loop, with
        ``check_val_every_n_epoch=None``: every ``val_check_batch`` micro batches in total)."""
        every = trainer.val_check_batch
        if not trainer.enable_validation or not every or every == float("inf"):
            return False
        return (trainer.fit_loop.epoch_loop.total_batch_idx + 1) % int(every) == 0

    def _prune(self, trainer) -> None:
        if not trainer.is_global_zero:
            return
        found = sorted(
            (int(m.group(1)), p)
            for p in Path(self.dirpath).glob("step*.ckpt")
            if (m := re.search(r"step(\d+)", p.name))
        )
        for _, old in found[: -self.keep]:
            shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)


class BestCheckpoint(pl.callbacks.ModelCheckpoint):
    """The best checkpoint by ``monitor`` (mode max, top 1) in ``dirpath``, safe to resume:

    - a step validated again after a resume writes the same file name (no ``-v1`` copy beside a killed attempt's);
    - the state restored from a run directory that was moved points into the new directory;
    - at the end of fit only the best file stays (a killed attempt may have left another one)."""

    def __init__(self, dirpath, monitor: str):
        super().__init__(
            dirpath=dirpath,
            filename="step{step:06d}",
            monitor=monitor,
            mode="max",
            save_top_k=1,
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )

    def setup(self, trainer, pl_module, stage) -> None:
        expect_earlier_checkpoints(self.dirpath)
        super().setup(trainer, pl_module, stage)

    @property
    def state_key(self) -> str:
        # the key of a plain ModelCheckpoint, as in checkpoints written before this class existed
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)

    def load_state_dict(self, state_dict) -> None:
        old = state_dict.get("dirpath")
        if old and self.dirpath and str(old) != str(self.dirpath):

            def moved(p):
                return str(Path(self.dirpath) / Path(p).name) if p and Path(p).parent == Path(old) else p

            state_dict = {**state_dict, "dirpath": self.dirpath}
            for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
                state_dict[key] = moved(state_dict.get(key))
            state_dict["best_k_models"] = {moved(k): v for k, v in (state_dict.get("best_k_models") or {}).items()}
        super().load_state_dict(state_dict)

    def on_fit_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or not self.best_model_path:
            return
        for p in Path(self.dirpath).glob("*.ckpt"):
            if p.resolve() != Path(self.best_model_path).resolve():
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
