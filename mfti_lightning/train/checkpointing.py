"""Checkpoints that a killed job can resume from exactly: atomic writes, data order and RNG state.

Imported only once a job really trains (it imports Lightning).
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write ``<name>.tmp`` then rename: a job killed while saving never leaves a truncated checkpoint."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


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


class PeriodicCheckpoint(pl.callbacks.ModelCheckpoint):
    """Every ``every_n_train_steps`` optimizer steps, keep the newest ``keep`` checkpoints (for resume).

    No monitor: Lightning defers monitored saves that fall on an epoch's last batch to the next validation,
    which would move the checkpoint steps; here a save is never deferred or skipped."""

    def __init__(self, dirpath, every_n_train_steps: int, keep: int = 2):
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

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)  # saves every n steps
        if trainer.is_global_zero:
            import re
            import shutil

            found = sorted(
                (int(m.group(1)), p)
                for p in Path(self.dirpath).glob("step*.ckpt")
                if (m := re.search(r"step(\d+)", p.name))
            )
            for _, old in found[: -self.keep]:
                shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)
