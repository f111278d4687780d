"""A job's W&B run: started, continued, fallen back to offline, finished.

A W&B run is built for scaling curves: ``group`` = the sweep name, ``job_type`` = train or eval, a readable name
made of the swept values, tags from the config groups, the resolved config without secrets or ``???``, a
deterministic id stored in the run directory (a requeued job continues the same run), and at the end of the job
the summary fields, tables and sample translations read from the final ``results.json`` record
(:func:`log_final`; the fields and rows: :mod:`~mfti_lightning.track.run_summary`). W&B never fails or hangs a job: without an API key or a reachable server it runs offline,
and a failing online init (an entity or project that does not exist, no permission) falls back to offline.

No torch, Lightning or wandb at module level: the config commands import this module (through loggers.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from pathlib import Path

from mfti_lightning.core.distributed import FORKING_STRATEGIES, global_rank, srun_started_ranks
from mfti_lightning.core.layout import RUN_ID_FILE
from mfti_lightning.core.results import atomic_write
from mfti_lightning.track.run_summary import (
    direction_rows,
    error_rows,
    run_tags,
    sample_rows,
    summary_fields,
    wandb_config,
)
from mfti_lightning.track.wandb_mode import wandb_mode_reason

log = logging.getLogger("mfti_lightning")


def wandb_run_id(run_dir: Path) -> str:
    """Deterministic W&B id for a run directory, stored in it so a resumed job continues the same run."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_ID_FILE
    if path.exists():
        return path.read_text().strip()
    rid = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:12]
    atomic_write(path, lambda f: f.write(rid + "\n"))
    return rid


def _init_kwargs(cfg, run_dir: Path, record: dict, run_id: str) -> dict:
    """WandbLogger's arguments: the run's identity, config, tags and wandb settings (see the module doc)."""
    lc = cfg.logger
    kwargs = dict(
        project=lc.project, entity=lc.get("entity"), name=cfg.run_name, group=cfg.sweep_name, job_type=cfg.task_name,
        save_dir=str(run_dir), id=run_id, resume="allow", log_model=False, config=wandb_config(record),
        tags=run_tags(cfg, record),
    )  # fmt: skip
    try:
        import wandb

        kwargs["settings"] = wandb.Settings(
            init_timeout=float(lc.get("init_timeout", 60)), silent=True, console=lc.get("console", "auto")
        )
    except Exception as e:
        log.debug("wandb.Settings not used: %s", e)
    return kwargs


def wandb_loggers(cfg, run_dir: Path, record: dict) -> list:
    """The W&B logger of a job (none when disabled or when it cannot start even offline); notes its mode in
    ``record["wandb"]``."""
    lc = cfg.logger
    mode, why = wandb_mode_reason(lc.get("mode", "auto"), float(lc.get("network_check_timeout", 3.0) or 0))
    if mode == "disabled":
        log.info("W&B disabled (%s).", why)
        return []
    finish_wandb(True)  # a run left over from a previous job of this process (multirun) must not be reused
    run_id = wandb_run_id(run_dir)
    kwargs = _init_kwargs(cfg, run_dir, record, run_id)
    logger = _wandb_logger(mode, kwargs)
    if _launches_by_fork_or_spawn(cfg):
        # Lightning runs every rank (rank 0 included) in a forked/spawned child: a run started here could not be
        # used there (wandb raises ForkedError), so the run starts lazily inside rank 0, as Lightning does.
        log.info(
            "W&B run starts inside rank 0 (trainer.strategy=%s); an online init failure is not caught "
            "early with this strategy.",
            cfg.trainer.strategy,
        )
    elif global_rank() == 0:
        logger, mode, why = _start_or_fall_back(logger, mode, why, kwargs, lc, run_dir)
        if logger is None:
            return []
    log.info("W&B %s (%s): project=%s group=%s id=%s", mode, why, lc.project, cfg.sweep_name, run_id)
    record["wandb"] = {
        "mode": mode, "reason": why, "id": run_id, "project": lc.project, "entity": lc.get("entity"),
        "group": cfg.sweep_name, "name": cfg.run_name, "job_type": cfg.task_name,
    }  # fmt: skip
    return [logger]


def _start_or_fall_back(logger, mode: str, why: str, kwargs: dict, lc, run_dir: Path):
    """Start the run now (rank 0); a failed online init continues offline, a failed offline one without W&B.
    Returns ``(logger or None, mode, reason)``."""
    try:
        _start(logger)
        return logger, mode, why
    except Exception as e:
        finish_wandb(False)
        if mode != "online":
            log.warning(
                "W&B could not start even offline (%s: %s); continuing without W&B. The run "
                "directory's results.json has everything.",
                type(e).__name__,
                e,
            )
            return None, mode, why
        log.warning(
            "W&B online init failed: %s: %s. Check that logger.entity=%r and logger.project=%r exist and "
            "that your API key may write there (or set logger.mode=offline). Continuing OFFLINE; upload "
            "later with `wandb sync %s/wandb/offline-run-*`.",
            type(e).__name__,
            str(e).strip()[:500],
            lc.get("entity"),
            lc.project,
            run_dir,
        )
        mode, why = "offline", f"online init failed ({type(e).__name__})"
    _teardown()  # the failed run keeps its id busy in the wandb service until it is torn down
    logger = _wandb_logger(mode, kwargs)
    try:
        _start(logger)
    except Exception as e2:
        finish_wandb(False)
        log.warning("W&B offline init failed too (%s); continuing without W&B.", e2)
        return None, mode, why
    return logger, mode, why


def _launches_by_fork_or_spawn(cfg) -> bool:
    if srun_started_ranks():
        return False  # srun started the ranks; trainer.lightning_cluster_kwargs turns ddp_fork into ddp there
    return str((cfg.get("trainer") or {}).get("strategy", "")) in FORKING_STRATEGIES


def _teardown() -> None:
    wandb = sys.modules.get("wandb")
    try:
        if wandb is not None:
            wandb.teardown()
    except Exception as e:
        log.debug("wandb.teardown failed: %s", e)


_LOGGER_CLASS = None


def _logger_class():
    """WandbLogger that finishes its run at the end of fit when fit ran in a forked/spawned rank-0 process
    (ddp_fork, ddp_spawn): that process exits without atexit hooks, so its records would never be written.
    The job's own process then continues the same run id (resume="allow") for the test scores and summary."""
    global _LOGGER_CLASS
    if _LOGGER_CLASS is None:
        from pytorch_lightning.loggers import WandbLogger
        from pytorch_lightning.utilities import rank_zero_only

        class MFTIWandbLogger(WandbLogger):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self._creator_pid = os.getpid()

            @rank_zero_only
            def finalize(self, status: str) -> None:
                super().finalize(status)
                if os.getpid() != self._creator_pid and self._experiment is not None:
                    self._experiment.finish(exit_code=0 if status == "success" else 1)
                    self._experiment = None

        _LOGGER_CLASS = MFTIWandbLogger
    return _LOGGER_CLASS


# Lightning's WandbLogger has no public way to drop the ``anonymous`` init argument or to end its run from a
# forked rank (finalize): the two private attributes used for that (``_wandb_init``, ``_experiment``) are used
# only here, checked against pytorch-lightning LIGHTNING_CHECKED_WITH; tests/unit/test_library_internals.py fails,
# naming this module, when WandbLogger changes them.
LIGHTNING_CHECKED_WITH = "2.6.6"


def _wandb_logger(mode: str, kwargs: dict):
    logger = _logger_class()(mode=mode, **kwargs)
    logger._wandb_init.pop("anonymous", None)  # Lightning always passes it; wandb 0.31 warns that it is a no-op
    return logger


def _start(logger) -> None:
    run = logger.experiment  # wandb.init happens here, now, not in the middle of fit
    if getattr(run, "define_metric", None) is None:
        return
    run.define_metric("trainer/global_step")
    for pattern in ("train/*", "val/*", "val_init/*", "test/*", "lr-*", "throughput/*"):
        run.define_metric(pattern, step_metric="trainer/global_step")


def finish_wandb(ok: bool, record: dict | None = None, run_dir: Path | None = None) -> None:
    """End this job's W&B run (after :func:`log_final` when a record is given), exit code 1 when it failed."""
    wandb = sys.modules.get("wandb")
    if wandb is None or getattr(wandb, "run", None) is None:
        return
    if record is not None:
        try:
            log_final(record, run_dir)
        except Exception as e:
            log.warning("W&B: logging the final results failed: %s: %s", type(e).__name__, e)
    try:
        wandb.finish(exit_code=0 if ok else 1)
    except Exception as e:
        log.warning("wandb.finish failed: %s", e)


def _table(wandb, rows: list[dict]):
    columns = []
    for r in rows:
        columns += [c for c in r if c not in columns]
    return wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])


def log_final(record: dict, run_dir: Path | None = None, samples_per_direction: int | None = None) -> None:
    """At the end of a job: summary fields, the per-direction, error-type and sample-translation tables."""
    wandb = sys.modules.get("wandb")
    run = getattr(wandb, "run", None) if wandb else None
    if run is None:
        return
    run_dir = Path(run_dir or record.get("run_dir") or ".")
    if samples_per_direction is None:
        samples_per_direction = int(((record.get("config") or {}).get("logger") or {}).get("log_samples", 3) or 0)
    for key, value in summary_fields(record).items():
        run.summary[key] = value
    tables = {}
    for name, rows in (
        ("directions", direction_rows(record)),
        ("errors", error_rows(record)),
        ("samples", sample_rows(run_dir, samples_per_direction)),
    ):
        if rows:
            tables[f"tables/{name}"] = _table(wandb, rows)
    if tables:
        run.log(tables)
