"""The ``logger`` group (wandb | csv | tensorboard | none): checked before any model loading, and the Lightning
loggers it makes (the W&B one: :mod:`~mfti_lightning.track.wandb_run`)."""

from __future__ import annotations

from pathlib import Path

from mfti_lightning.core.errors import ConfigError
from mfti_lightning.track.wandb_mode import wandb_mode_reason
from mfti_lightning.track.wandb_run import wandb_loggers


def check_logger(cfg) -> None:
    """Bad ``logger`` settings fail here, before any model loading."""
    from importlib.util import find_spec

    name = cfg.logger.name
    if name not in ("wandb", "csv", "tensorboard", "none"):
        raise ConfigError(f"logger={name}: unknown; use wandb, csv, tensorboard or none.")
    if name == "tensorboard" and not (find_spec("tensorboard") or find_spec("tensorboardX")):
        raise ConfigError(
            "logger=tensorboard needs the tensorboard package: pip install tensorboard "
            "(or pip install 'mfti-lightning[tensorboard]'), or use logger=csv."
        )
    if name == "wandb":
        wandb_mode_reason(cfg.logger.get("mode", "auto"), 0)  # validates logger.mode, no network


def make_loggers(cfg, run_dir: Path, record: dict) -> list:
    """The Lightning loggers of ``cfg.logger`` (a W&B run is started right away on rank 0: see module doc)."""
    name = cfg.logger.name
    if name == "none":
        return []
    # a re-evaluation (identity.decide_reuse) logs beside the training curves instead of replacing them
    reeval = record.get("reevaluation")
    number = int(Path(reeval["previous_results"]).stem) + 1 if reeval else 0  # previous_results/<number - 1>.json
    if name == "csv":
        from mfti_lightning.track.curves import EVALUATION, CurveLogger

        return [CurveLogger(run_dir, {EVALUATION: number} if reeval else None)]
    version = f"reevaluation-{number - 1}" if reeval else ""
    if name == "tensorboard":
        from pytorch_lightning.loggers import TensorBoardLogger

        return [TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version=version)]
    if name == "wandb":
        return wandb_loggers(cfg, Path(run_dir), record)
    raise ConfigError(f"logger={name}: unknown; use wandb, csv, tensorboard or none.")
