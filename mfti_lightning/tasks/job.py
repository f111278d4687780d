"""The job frame shared by ``mfti-train`` and ``mfti-eval`` (:func:`run_task`): torch-free checks first, the run
directory's lease, what to do with the run directory (skip, re-evaluate, refuse, run:
:func:`mfti_lightning.core.identity.decide_reuse`), the task body, and always a ``results.json`` (completed, failed or
interrupted) written atomically by rank 0, a W&B run finished, and a summary printed."""

from __future__ import annotations

import logging
import signal
import time
import traceback
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mfti_lightning.core import layout
from mfti_lightning.core import results as res
from mfti_lightning.core.config import world_size
from mfti_lightning.core.distributed import global_rank
from mfti_lightning.core.errors import JobInterrupted
from mfti_lightning.core.identity import decide_reuse
from mfti_lightning.core.interrupt import RESUME_HINT, received, sigterm_interrupts
from mfti_lightning.core.keys import swept_values
from mfti_lightning.core.lease import RunLease, slurm_job
from mfti_lightning.core.metric_key import MetricKey
from mfti_lightning.core.progress_record import end_attempt, start_attempt
from mfti_lightning.core.validation import validate
from mfti_lightning.track.redact import redact_secrets
from mfti_lightning.track.wandb_run import finish_wandb

log = logging.getLogger("mfti_lightning")


def resolved_container(cfg: DictConfig) -> dict:
    """The resolved config as plain data, without the ``hydra`` node."""
    c = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    c.pop("hydra", None)
    return redact_secrets(c)


def run_dir_of(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)


def run_task(cfg: DictConfig, body, extra: dict | None = None, checks=None, preflight=None) -> float | None:
    """The shared job frame of mfti-train and mfti-eval.

    1. the torch-free ``checks(cfg)`` (also for a completed run: a bad value is an error, never a silent skip);
    2. the run directory's lease (:mod:`mfti_lightning.core.lease`; rank 0 only): a second process refuses at once;
    3. how the run directory may be used (:func:`identity.decide_reuse`: skip a completed run of the same
       experiment, re-evaluate one whose evaluation settings changed, refuse another experiment's directory), then
       ``preflight(cfg, run_dir, reuse)``: the refusals that need the directory. Nothing in the directory has changed
       yet (the lease aside): a refused or skipped invocation leaves it byte for byte as it was;
    4. the run proceeds: ``.hydra/`` and the job's log file are written (Hydra's own writing of them is off, see
       conf/hydra/default.yaml), then ``body(cfg, run_dir, record)``;
    5. always a results.json (completed, failed or interrupted), written atomically by rank 0, except that a
       completed result is never replaced by a failed or interrupted attempt (that goes to failed_attempts/)."""
    validate(cfg, keys=("resume",))  # before it decides what to do with an existing run dir
    if checks is not None:
        checks(cfg)
    run_dir = run_dir_of(cfg)
    lease = RunLease(run_dir) if global_rank() == 0 else None
    try:
        if lease is not None:
            lease.acquire()
            res.set_aside_unreadable(run_dir, log)
        reuse = decide_reuse(run_dir, cfg)
        if reuse.action != "skip" and preflight is not None:
            preflight(cfg, run_dir, reuse)
    except BaseException:
        _give_back(lease, run_dir)
        raise
    if reuse.action == "skip":
        _give_back(lease, run_dir)
        log.info(
            "%s already completed (%s) with this config; nothing to do. resume=never refuses reuse.",
            run_dir,
            res.RESULTS_FILE,
        )
        return res.objective(reuse.existing.get("metrics", {}))
    try:
        return _proceed(cfg, body, run_dir, reuse, extra or {}, lease)
    finally:
        _give_back(lease, run_dir)


def _give_back(lease: RunLease | None, run_dir: Path) -> None:
    """Release the lease; a run directory this invocation created and left empty is removed again."""
    if lease is None:
        return
    lease.release()
    try:
        run_dir.rmdir()  # only when empty
    except OSError:
        pass


def _proceed(cfg: DictConfig, body, run_dir: Path, reuse, extra: dict, lease: RunLease | None) -> float | None:
    """Steps 4 and 5 of :func:`run_task`."""
    t0 = time.time()
    if global_rank() == 0:
        write_hydra_records(cfg, run_dir)
        log_file = log_to_file(run_dir, cfg)
        start_attempt(run_dir, world_size(cfg.trainer), slurm_job())
    record = running_record(cfg, run_dir, extra)
    if reuse.action == "reevaluate":
        record["reevaluation"] = archive_previous(run_dir, reuse)
    completed_before = reuse.existing if (reuse.existing or {}).get("status") == "completed" else None
    try:
        with sigterm_interrupts():
            body(cfg, run_dir, record)
        record["status"] = "completed"
    except BaseException as e:
        ending = record_end(record, e)
        if ending is not e:
            raise ending from e
        raise
    finally:
        record["wall_time_s"] = time.time() - t0
        if global_rank() == 0:
            write_record(run_dir, record, completed_before, lease)
            end_attempt(run_dir, record["status"], record.get("error"))
            logging.getLogger().removeHandler(log_file)
            log_file.close()
        finish_wandb(record["status"] == "completed", record, run_dir)
    if global_rank() == 0:
        print_summary(record)
    return res.objective(record["metrics"])


def running_record(cfg: DictConfig, run_dir: Path, extra: dict) -> dict:
    """The results.json record of an attempt that has started (status ``running``): what the run is, its resolved
    config and provenance, plus the task's ``extra`` keys; the body fills in metrics and signatures."""
    return {
        "schema": res.SCHEMA,
        "status": "running",
        "task": cfg.task_name,
        "run_name": cfg.run_name,
        "run_dir": str(run_dir.resolve()),
        "sweep_name": cfg.sweep_name,
        "swept": swept_values(cfg),  # schema.SWEPT
        "extraction": OmegaConf.select(cfg, "eval.extraction"),  # how hypotheses were cut (eval.extraction)
        "engine": OmegaConf.select(cfg, "eval.engine") or "hf",  # what decoded them (eval.engine)
        "metrics": {},
        "signatures": {},
        "config": resolved_container(cfg),
        "provenance": res.provenance(),
        **extra,
    }


def record_end(record: dict, error: BaseException) -> BaseException:
    """Record how the body ended with ``error`` (``interrupted`` or ``failed``); returns what to raise.

    SystemExit: interrupted (SIGTERM, Ctrl+C), or submitit requeued the job after USR2 (preemption / time limit);
    a requeued job resumes from its checkpoint. After a SIGTERM (SLURM ends the job: requeue, preemption,
    ``scancel``) every process of the job got it, and the W&B service or another rank may have died first, hence
    some other error: it is the end of this run, not its result, so it ends as :class:`JobInterrupted` too (no
    result of this run reaches the launcher while the requeued job resumes)."""
    signum = received()
    interrupted = isinstance(error, (SystemExit, KeyboardInterrupt)) or signum is not None
    record["status"] = "interrupted" if interrupted else "failed"
    record["error"] = f"{type(error).__name__}: {error}"
    record["traceback"] = traceback.format_exc()
    if signum is not None and not isinstance(error, SystemExit):
        name = signal.Signals(signum).name
        return JobInterrupted(f"interrupted by {name} ({type(error).__name__}: {error}); {RESUME_HINT}", signum)
    return error


def write_record(run_dir: Path, record: dict, completed_before: dict | None, lease: RunLease | None) -> None:
    """results.json, unless this attempt failed on a completed run (then ``failed_attempts/<n>.json``: reports
    keep reading the completed result) or this process lost its lease (another process owns the directory now)."""
    if lease is not None and lease.lost:
        log.error("%s: not writing %s: another process holds this run directory now.", run_dir, res.RESULTS_FILE)
        return
    if completed_before is not None and record["status"] != "completed":
        archive = run_dir / layout.FAILED_ATTEMPTS_DIR
        n = len(list(archive.glob("*.json"))) if archive.is_dir() else 0
        path = res.write_results(run_dir, record, archive / f"{n}.json")
        log.warning(
            "This attempt on a completed run %s (%s); the completed %s is kept, the attempt is in %s.",
            record["status"],
            record.get("error", ""),
            res.RESULTS_FILE,
            path,
        )
        return
    res.write_results(run_dir, record)


def write_hydra_records(cfg: DictConfig, run_dir: Path) -> None:
    """``.hydra/{config,hydra,overrides}.yaml`` as Hydra writes them, but only once the run proceeds (Hydra's own
    writing is off: ``hydra.output_subdir: null``), so that a refused invocation changes nothing in the directory."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hydra_node = HydraConfig.instance().cfg  # {"hydra": ...}, as Hydra saves it
    task_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]) if "hydra" in cfg else cfg
    out = run_dir / layout.HYDRA_DIR
    for name, node in (
        ("config.yaml", task_cfg),
        ("hydra.yaml", hydra_node),
        ("overrides.yaml", HydraConfig.get().overrides.task),  # the node itself: iterating it would resolve it
    ):
        res.atomic_write(out / name, lambda f, node=node: f.write(OmegaConf.to_yaml(node)))


def log_to_file(run_dir: Path, cfg: DictConfig) -> logging.Handler:
    """The job's log file ``<run dir>/<job name>.log`` (what Hydra's default job logging writes), appended once the
    run proceeds (conf/hydra/job_logging/mfti.yaml has no file handler, so a refused invocation writes none)."""
    from hydra.core.hydra_config import HydraConfig

    name = HydraConfig.get().job.name if HydraConfig.initialized() else str(cfg.task_name)
    path = (run_dir / f"{name}.log").resolve()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def archive_previous(run_dir: Path, reuse) -> dict:
    """Keep the completed results of the earlier evaluation (``previous_results/<n>.json``) before re-evaluating;
    returns what results.json records about it."""
    changed = [k for k, _, _ in reuse.changed]
    log.info(
        "%s: completed, but evaluation settings changed (%s): re-evaluating the best checkpoint %s without retraining.",
        run_dir,
        ", ".join(changed),
        reuse.existing.get("best_checkpoint") or "(no training)",
    )
    archive = run_dir / layout.PREVIOUS_RESULTS_DIR
    n = len(list(archive.glob("*.json"))) if archive.is_dir() else 0
    path = archive / f"{n}.json"
    if global_rank() == 0:
        res.write_results(run_dir, reuse.existing, path)
    return {
        "changed": {k: {"before": a, "now": b} for k, a, b in reuse.changed},
        "previous_results": str(path),
        "best_checkpoint": reuse.existing.get("best_checkpoint"),
        "best_step": reuse.existing.get("best_step"),
    }


def print_summary(record: dict) -> None:
    m = record["metrics"]
    dirs = record["directions"]["eval"]
    keys = [k for k in map(MetricKey.find, m) if k and k.split == "test"]
    bleu = next((k.metric for k in keys if "bleu" in k.metric), "bleu")
    lines = [
        f"\nrun {record['run_name']}  ({record['status']}, {record['wall_time_s']:.0f} s)",
        f"{'direction':<10} {bleu:>8} {'chrF':>8} {'chrF++':>8}",
    ]
    for d in dirs + ["avg"]:
        scores = [m.get(str(MetricKey("test", metric, d)), float("nan")) for metric in (bleu, "chrf", "chrf++")]
        lines.append(f"{d:<10} " + " ".join(f"{s:>8.2f}" for s in scores))
    if record.get("reevaluation"):
        changed = ", ".join(
            f"{k} {v['before']!r} -> {v['now']!r}" for k, v in record["reevaluation"]["changed"].items()
        )
        lines.append(
            f"re-evaluated without training ({changed}); earlier results kept in "
            f"{record['reevaluation']['previous_results']}"
        )
    tr = record.get("training")
    if tr:
        lines.append(f"training: {tr['steps']} steps, loss {tr['loss_first']:.3f} -> {tr['loss_last']:.3f}")
    if "val_init/chrf/avg" in m and "val/chrf/avg" in m:
        lines.append(f"dev chrF before -> after finetuning: {m['val_init/chrf/avg']:.2f} -> {m['val/chrf/avg']:.2f}")
    lines.append(f"results: {Path(record['run_dir']) / res.RESULTS_FILE}")
    print("\n".join(lines), flush=True)
