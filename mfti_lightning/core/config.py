"""Finding conf/, composing configs outside @hydra.main, and checks that need no torch."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

from mfti_lightning.core.errors import ConfigError


def conf_dir() -> Path:
    """``conf/`` inside an installed wheel (mfti_lightning/conf), else the repository's top-level ``conf/``."""
    here = Path(__file__).resolve().parents[1]  # the mfti_lightning package
    for cand in (here / "conf", here.parent / "conf"):
        if (cand / "train.yaml").exists():
            return cand
    raise FileNotFoundError(f"conf/ not found next to {here}; reinstall mfti-lightning.")


def num_devices(trainer_cfg) -> int:
    devices = trainer_cfg.devices
    if isinstance(devices, int):
        return devices
    if isinstance(devices, (list, tuple)) or (hasattr(devices, "__len__") and not isinstance(devices, str)):
        return len(devices)
    if str(devices).isdigit():
        return int(devices)
    raise ConfigError(
        f"trainer.devices={devices!r}: give a number of devices per node (the batch math and the SLURM "
        "launcher presets derive from it)."
    )


def hub_offline(env=None, datasets: bool = False) -> bool:
    """Whether the Hugging Face hub is off for a process with this environment (default: this one):
    HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE (and HF_DATASETS_OFFLINE for ``datasets``) set to a true value."""
    env = os.environ if env is None else env
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") + (("HF_DATASETS_OFFLINE",) if datasets else ())
    return any(str(env.get(v, "")).strip().lower() in ("1", "true", "yes", "on") for v in names)


def world_size(trainer_cfg) -> int:
    """Ranks of a job: ``trainer.devices`` per node x ``trainer.num_nodes``."""
    return num_devices(trainer_cfg) * trainer_cfg.num_nodes


@dataclass(frozen=True)
class BatchPlan:
    """How one optimizer step's sequences are spread (litgpt style): ``global_batch_size = micro_batch_size x
    accumulate x world_size``; derived from ``optim.global_batch_size`` and ``optim.micro_batch_size`` by
    :meth:`from_config`. results.json records it as ``batch``."""

    world_size: int  # ranks: trainer.devices x trainer.num_nodes
    micro_batch_size: int  # sequences per rank and forward pass
    accumulate: int  # micro batches per optimizer step on each rank
    global_batch_size: int  # sequences per optimizer step over all ranks

    @classmethod
    def from_config(cls, cfg) -> BatchPlan:
        """The plan of a validated config, or a ConfigError naming the micro batch sizes that divide evenly."""
        devices, nodes, world = num_devices(cfg.trainer), cfg.trainer.num_nodes, world_size(cfg.trainer)
        glob, micro = cfg.optim.global_batch_size, cfg.optim.micro_batch_size
        if glob % (micro * world):
            options = [m for m in range(1, glob + 1) if glob % (m * world) == 0]
            raise ConfigError(
                f"optim.global_batch_size={glob} is not divisible by optim.micro_batch_size={micro} x "
                f"{devices} device(s) x {nodes} node(s) = {micro * world}. "
                + (
                    f"Micro batch sizes that work with {world} rank(s): {options}."
                    if options
                    else f"No micro batch size works: make global_batch_size a multiple of {world}."
                )
            )
        return cls(world, micro, glob // (micro * world), glob)

    def micro_batches(self, steps: int) -> int:
        """Micro batches each rank runs in ``steps`` optimizer steps (Lightning counts these)."""
        return steps * self.accumulate

    def record(self) -> dict:
        return dataclasses.asdict(self)


def training_length(cfg) -> dict:
    """``{"by": "steps", "max_steps": N}`` or ``{"by": "epochs", "max_epochs": E}``: exactly one of
    ``optim.max_steps`` and ``optim.max_epochs`` is set (an ICL run, ``num_examples.n=0``, needs neither), else a
    clear error. Steps per epoch are known only once the examples are encoded (:func:`steps_for_epochs`)."""
    steps, epochs = cfg.optim.max_steps, cfg.optim.max_epochs
    if steps is not None and epochs is not None:
        raise ConfigError(
            f"optim.max_steps={steps} and optim.max_epochs={epochs:g} are both set; training length is one or the "
            f"other. Train by epochs with optim.max_steps=null optim.max_epochs={epochs:g}, or by steps with "
            "optim.max_epochs=null."
        )
    if epochs is not None:
        return {"by": "epochs", "max_epochs": epochs}
    if steps is None and cfg.num_examples.n > 0:
        raise ConfigError(
            "optim.max_steps and optim.max_epochs are both null: set one (e.g. optim.max_steps=2000 or "
            "optim.max_epochs=1)."
        )
    return {"by": "steps", "max_steps": steps if steps is not None else 0}


def steps_for_epochs(epochs: float, micro_batches_per_epoch: int, accumulate: int) -> int:
    """Optimizer steps of ``epochs`` passes when one pass is ``micro_batches_per_epoch`` micro batches on each rank
    (the batch sampler's size) and a step takes ``accumulate`` of them; at least 1, a partial step rounded up."""
    if micro_batches_per_epoch <= 0:
        raise ConfigError(
            "No full training micro batch: add examples (num_examples.n) or lower optim.micro_batch_size."
        )
    return max(1, math.ceil(epochs * micro_batches_per_epoch / accumulate - 1e-9))


def flatten(d, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists are values)."""
    out = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = d
    return out
