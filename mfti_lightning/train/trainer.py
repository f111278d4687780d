"""Building the Lightning Trainer from the ``trainer`` config group, launch checks, and resume.

The checks (:func:`check_launch`, :func:`check_resume_config`, :func:`newest_checkpoint`) are torch-free and run
before any model loading; :func:`build_trainer` imports Lightning.

Launch model:
- under SLURM the ranks are started by ``srun`` (one task per device: ``tasks_per_node == trainer.devices``);
  Lightning sees ``SLURMEnvironment`` and starts nothing. Requeue belongs to submitit, so Lightning's own
  auto-requeue is off (``SLURMEnvironment(auto_requeue=False)``).
- locally, one run with ``ddp``/``fsdp``/``fsdp2`` lets Lightning start the other ranks (it re-runs the
  command line); ``ddp_fork`` (``trainer=ddp_cpu``) forks instead and also works inside Hydra sweeps.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import warnings
from pathlib import Path

from mfti_lightning.core.config import BatchPlan, flatten, num_devices, world_size
from mfti_lightning.core.distributed import (
    FORKING_STRATEGIES,
    REEXEC_STRATEGIES,
    ranks_started_outside,
    slurm_tasks,
    srun_started_ranks,
    torchelastic,
    use_srun_threads,
)
from mfti_lightning.core.errors import ConfigError
from mfti_lightning.core.identity import changed, classify
from mfti_lightning.core.keys import resume_may_change
from mfti_lightning.core.layout import CHECKPOINTS_DIR, TRAINING_CONFIG_FILE
from mfti_lightning.core.results import atomic_write
from mfti_lightning.core.schema_training import FsdpConfig
from mfti_lightning.model.checkpoint_files import newest_checkpoint

log = logging.getLogger(__name__)


# ---- launch ---------------------------------------------------------------------------------------------
def lightning_spawns(cfg) -> bool:
    """True when Lightning itself would start the other ranks (re-executing the command line)."""
    world = world_size(cfg.trainer)
    strategy = cfg.trainer.strategy
    if world <= 1 or strategy not in REEXEC_STRATEGIES:
        return False
    return slurm_tasks() != world and not torchelastic()


def _hydra_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:
        return False


def check_launch(cfg) -> None:
    """Refuse launches that hang or fail later, with what to use instead (before any model loading)."""
    devices, nodes, world = num_devices(cfg.trainer), cfg.trainer.num_nodes, world_size(cfg.trainer)
    strategy = cfg.trainer.strategy
    slurm = slurm_tasks()
    if slurm is not None and slurm > 1 and slurm != world:
        raise ConfigError(
            f"SLURM started {slurm} task(s) but trainer.devices x trainer.num_nodes = {devices} x {nodes} = {world}. "
            "Lightning needs one srun task per device (tasks_per_node == trainer.devices, nodes == "
            "trainer.num_nodes); a mismatch hangs. Fix the launcher preset or the trainer settings."
        )
    if lightning_spawns(cfg) and (_hydra_multirun() or os.environ.get("SUBMITIT_EXECUTOR") == "local"):
        where = "a Hydra multirun" if _hydra_multirun() else "the submitit_local launcher"
        fork_hint = (
            (
                "trainer.strategy=ddp_fork (forks instead of re-running the command line; on GPUs it "
                "works because nothing touches CUDA before fit)"
            )
            if strategy == "ddp"
            else (f"one single run at a time (no --multirun) for trainer={strategy}")
        )
        raise ConfigError(
            f"trainer.strategy={strategy} with {world} devices inside {where}: Lightning would start the other "
            "ranks by re-running the command line, which re-runs the whole sweep (or fails under submitit). "
            f"Use {fork_hint}, or launch the sweep on SLURM (hydra/launcher=slurm_*), where srun starts one "
            "task per device."
        )


# ---- resume ---------------------------------------------------------------------------------------------
def training_config(container: dict) -> dict:
    """The flattened config keys that a resumed training must keep: all but those that never change a result and
    those whose change leaves the weights up to a checkpoint as they are (``resume=True`` on their schema field:
    evaluation settings, checkpointing, the training length)."""
    return {k: v for k, v in flatten(container).items() if classify(k) is not None and not resume_may_change(k)}


def check_resume_config(container: dict, run_dir: Path, resume: str, save: bool = True) -> None:
    """With ``resume=auto`` and checkpoints present, refuse a config that differs in a way that changes training,
    showing the difference; else (``save``) save the training config in the run dir."""
    path = Path(run_dir) / TRAINING_CONFIG_FILE
    current = training_config(container)
    if path.exists() and resume == "auto" and newest_checkpoint(run_dir) is not None:
        diff = changed(json.loads(path.read_text()), current)
        if diff:
            lines = "\n".join(f"  {k}: {a!r} (checkpoint) -> {b!r} (now)" for k, a, b in diff)
            raise ConfigError(
                f"resume=auto: {run_dir} holds checkpoints of a run with a different training config:\n{lines}\n"
                "Resuming would mix two trainings. Restore those values, use another run dir (e.g. another "
                "seed or sweep), or delete the checkpoints to start over."
            )
        return
    if save:
        atomic_write(path, lambda f: f.write(json.dumps(current, indent=1, sort_keys=True, default=str) + "\n"))


def lightning_cluster_kwargs(strategy) -> dict:
    """Trainer arguments for the cluster the job runs on (call where the ``pl.Trainer`` is built); ``strategy`` is a
    strategy name or a built Lightning strategy.

    Under SLURM: ``SLURMEnvironment(auto_requeue=False)``, so Lightning neither installs its own requeue handler
    (submitit owns USR2 and requeueing) nor starts processes (srun started one task per device); a strategy that
    would spawn processes (``ddp_fork``/``ddp_spawn``, e.g. trainer=ddp_cpu) becomes plain ``ddp`` when SLURM runs
    several tasks, and each srun rank computes with the CPUs of its task (:func:`use_srun_threads`), as the ranks
    Lightning launches itself do. Elsewhere: the strategy unchanged and no plugin.
    """
    import torch
    from pytorch_lightning.plugins.environments import SLURMEnvironment

    if not SLURMEnvironment.detect():
        return {"strategy": strategy}
    ntasks = slurm_tasks() or 1
    if ntasks > 1 and isinstance(strategy, str) and strategy in FORKING_STRATEGIES:
        log.info(
            "SLURM started %d tasks: strategy %s -> ddp (srun starts the ranks, Lightning spawns nothing)",
            ntasks,
            strategy,
        )
        strategy = "ddp"
    env = SLURMEnvironment(auto_requeue=False)
    if ntasks > 1:
        threads = use_srun_threads() or torch.get_num_threads()
        # where each rank runs and whom it meets: the first thing to read when a multi-node job hangs
        log.info(
            "SLURM rank %d of %d on node %s (node %d of %s), local rank %d, %d CPU thread(s); rendezvous at %s:%d",
            env.global_rank(), env.world_size(), socket.gethostname(), env.node_rank(),
            os.environ.get("SLURM_JOB_NUM_NODES", "?"), env.local_rank(), threads, env.main_address, env.main_port,
        )  # fmt: skip
    return {"strategy": strategy, "plugins": [env]}


# ---- the ranks of an evaluation (Lightning Fabric) -----------------------------------------------------------
def eval_fabric(trainer_cfg):
    """Lightning Fabric for the ranks of an evaluation (each holds a full copy of the model: evaluation deals the
    sentences, not the weights). Ranks that srun / torchrun started join one another (``ddp``; under SLURM with
    :func:`lightning_cluster_kwargs`, as in training: SLURMEnvironment without auto-requeue, each rank with the CPUs
    of its task); otherwise ``trainer.devices x trainer.num_nodes > 1`` ranks are forked here (``ddp_fork``: the Hydra
    command line is not re-run) on a free local port (LightningEnvironment, also inside a one-task SLURM job).
    ``fabric.launch(fn)`` joins the process group and returns rank 0's ``fn(fabric)``."""
    from lightning_fabric import Fabric
    from lightning_fabric.plugins.environments import LightningEnvironment

    quiet_lightning()  # before lightning_cluster_kwargs: its SLURMEnvironment.detect() gives the srun hint
    if ranks_started_outside():  # torchrun: Fabric detects TorchElasticEnvironment (or reads LOCAL_RANK)
        kw = lightning_cluster_kwargs("ddp") if srun_started_ranks() else {"strategy": "ddp"}
        devices, nodes = trainer_cfg.devices, trainer_cfg.num_nodes
    else:
        world = world_size(trainer_cfg)
        kw = {"strategy": "ddp_fork" if world > 1 else "auto", "plugins": [LightningEnvironment()]}
        devices, nodes = world, 1
    return Fabric(accelerator=trainer_cfg.accelerator, devices=devices, num_nodes=nodes, **kw)


# ---- Trainer --------------------------------------------------------------------------------------------
LITLOGGER_TIP = "💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]"


def quiet_lightning() -> None:
    """Silence what Lightning prints on every run of this project that no user can act on; each filter is as
    narrow as the message it removes (tests/integration/test_demo.py fails on any warning not explained there)."""
    from pytorch_lightning.utilities.warnings import PossibleUserWarning

    # Lightning 2.6's CombinedLoader (every fit) builds torch's LeafSpec, which torch 2.13 deprecates
    # (Lightning-AI/pytorch-lightning#21326): Lightning's to fix; nothing in a config avoids it
    warnings.filterwarnings(
        "ignore",
        message=re.escape("`isinstance(treespec, LeafSpec)` is deprecated"),
        category=FutureWarning,
        module=r"pytorch_lightning\.utilities\._pytree$",
    )
    if "SLURM_JOB_ID" not in os.environ:
        # outside any SLURM allocation, Lightning advises prefixing the command with srun merely because srun is
        # installed; this project's SLURM jobs go through hydra/launcher=slurm_*, and submitit runs them under srun.
        # Inside an allocation (salloc) the hint may apply and is kept.
        warnings.filterwarnings(
            "ignore",
            message=re.escape("The `srun` command is available on your system but is not used."),
            category=PossibleUserWarning,
            module=r"lightning_fabric\.plugins\.environments\.slurm$",
        )
    # an advertisement for Lightning's hosted logger on every Trainer without it; loggers here are chosen by logger=
    rank_zero = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if not any(isinstance(f, _NoLitLoggerTip) for f in rank_zero.filters):
        rank_zero.addFilter(_NoLitLoggerTip())


class _NoLitLoggerTip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(LITLOGGER_TIP)


def decoder_layer_classes(model_path: str) -> set:
    """The transformer block classes of a model (``_no_split_modules``), found without loading weights."""
    import sys

    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, AutoConfig

    config = AutoConfig.from_pretrained(model_path)
    cls = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    module = sys.modules[cls.__module__]
    names = list(getattr(cls, "_no_split_modules", None) or [])
    classes = {getattr(module, n) for n in names if hasattr(module, n)}
    if not classes:
        raise ConfigError(f"trainer=fsdp: {cls.__name__} declares no _no_split_modules to wrap; use trainer=ddp.")
    return classes


def build_strategy(cfg, model_path: str):
    t = cfg.trainer
    strategy = str(t.strategy)
    world = world_size(t)
    if strategy == "fsdp":
        from pytorch_lightning.strategies import FSDPStrategy

        layers = decoder_layer_classes(model_path)
        f = t.get("fsdp") or {}
        return FSDPStrategy(
            auto_wrap_policy=layers,
            activation_checkpointing_policy=layers if f.get("activation_checkpointing") else None,
            sharding_strategy=f.get("sharding_strategy", FsdpConfig.sharding_strategy),
            state_dict_type=f.get("state_dict_type", FsdpConfig.state_dict_type),
        )
    if strategy == "fsdp2":
        from pytorch_lightning.strategies import ModelParallelStrategy

        return ModelParallelStrategy(data_parallel_size=world, tensor_parallel_size=1, save_distributed_checkpoint=True)
    return strategy


def trainer_callbacks(cfg, run_dir: Path, loggers: list, monitor: str | None) -> tuple:
    """``(callbacks, best_callback_or_None, periodic_callback)``: the resumable checkpoints, the learning-rate
    monitor, the progress bar or lines and ``progress.json``, in the order they must run."""
    from pytorch_lightning.callbacks import LearningRateMonitor

    from mfti_lightning.train.checkpoint_callbacks import BestCheckpoint, PeriodicCheckpoint, ResumeState
    from mfti_lightning.train.progress import ProgressRecord, progress_callbacks

    ckdir = Path(run_dir) / CHECKPOINTS_DIR
    periodic = PeriodicCheckpoint(
        ckdir / "periodic", cfg.checkpoint.every_n_steps, cfg.checkpoint.keep, validates=bool(monitor)
    )
    best = BestCheckpoint(ckdir / "best", monitor) if monitor else None
    callbacks = [
        ResumeState(),
        *([best] if best else []),  # before periodic: a validated step's periodic checkpoint records the best one
        periodic,
        *([LearningRateMonitor("step")] if loggers else []),
    ]
    callbacks += progress_callbacks(cfg)  # rich bar in a terminal, plain lines in batch logs (progress.mode)
    callbacks.append(ProgressRecord(run_dir, monitor))  # progress.json, for mfti status
    return callbacks, best, periodic


def _strategy_and_plugins(cfg, model_path: str) -> tuple:
    """Lightning's strategy and plugins for this cluster, with checkpoints written atomically."""
    from mfti_lightning.train.checkpoint_callbacks import AtomicCheckpointIO

    quiet_lightning()  # before lightning_cluster_kwargs: its SLURMEnvironment.detect() gives the srun hint
    kw = lightning_cluster_kwargs(build_strategy(cfg, model_path))
    plugins = list(kw.get("plugins") or [])
    plugins.append(AtomicCheckpointIO())  # also FSDP's full checkpoints (sharded ones are written in place)
    return kw["strategy"], plugins


def _precision(t) -> str:
    """``trainer.precision``, except that the GPU presets' ``*-mixed`` runs as ``32-true`` on CPU (e.g.
    trainer=fsdp2 trainer.accelerator=cpu)."""
    precision = str(t.precision)
    return "32-true" if str(t.accelerator) == "cpu" and precision.endswith("-mixed") else precision


def build_trainer(
    cfg, batches: BatchPlan, run_dir: Path, loggers: list, monitor: str | None, model_path: str, max_steps=None
):
    """The Trainer and its checkpoint callbacks: ``(trainer, best_callback_or_None, periodic_callback)``.
    ``max_steps``: the run's optimizer steps (default ``optim.max_steps``; derived for ``optim.max_epochs``)."""
    import pytorch_lightning as pl

    strategy, plugins = _strategy_and_plugins(cfg, model_path)
    callbacks, best, periodic = trainer_callbacks(cfg, run_dir, loggers, monitor)
    t = cfg.trainer
    trainer_steps = int(max_steps if max_steps is not None else cfg.optim.max_steps)
    trainer = pl.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=strategy,
        precision=_precision(t),
        max_steps=trainer_steps,
        accumulate_grad_batches=batches.accumulate,
        gradient_clip_val=cfg.optim.gradient_clip_val,
        val_check_interval=batches.micro_batches(cfg.eval.val_every_n_steps),
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        logger=loggers or False,
        callbacks=callbacks,
        plugins=plugins or None,
        # at most the run's length: Lightning warns when its one epoch (max_steps x accumulation micro batches, see
        # data.datamodule) is shorter than the interval, and such a run would log no training point
        log_every_n_steps=min(int(t.log_every_n_steps), max(1, trainer_steps)),
        use_distributed_sampler=False,
        default_root_dir=str(run_dir),
        enable_model_summary=False,
    )
    return trainer, best, periodic
