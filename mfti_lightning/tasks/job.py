"""The job frame shared by ``mfti-train`` and ``mfti-eval``: torch-free checks first, then what to do with the run
directory (skip, re-evaluate, refuse, run: :func:`mfti_lightning.core.identity.decide_reuse`), the task body, and
always a ``results.json`` (completed, failed or interrupted) written atomically by rank 0, a W&B run finished, and
a summary printed."""

from __future__ import annotations

import logging
import signal
import threading
import time
import traceback
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mfti_lightning.core import layout
from mfti_lightning.core import results as res
from mfti_lightning.core.distributed import global_rank
from mfti_lightning.core.identity import decide_reuse
from mfti_lightning.core.schema import validate
from mfti_lightning.track.tracking import finish_wandb, redact_secrets

log = logging.getLogger("mfti_lightning")


def swept_values(cfg: DictConfig) -> dict:
    return {
        "model": cfg.model.name,
        "lang_pairs": cfg.lang_pairs.name,
        "template": cfg.template.name,
        "shots": int(cfg.shots.k),
        "num_examples": int(cfg.num_examples.n),
        "seed": int(cfg.seed),
    }


def resolved_container(cfg: DictConfig) -> dict:
    """The resolved config as plain data, without the ``hydra`` node."""
    c = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    c.pop("hydra", None)
    return redact_secrets(c)


def run_dir_of(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)


def run_task(cfg: DictConfig, body, extra: dict | None = None, checks=None) -> float | None:
    """The shared job frame of mfti-train and mfti-eval: run the torch-free ``checks(cfg)`` (also for a completed
    run: a bad value is an error, never a silent skip), decide how the run directory may be used
    (:func:`identity.decide_reuse`: skip a completed run of the same experiment, re-evaluate one whose evaluation
    settings changed, refuse another experiment's directory), run ``body(cfg, run_dir, record)`` and always leave
    a results.json (completed or failed) written atomically by rank 0."""
    validate(cfg, keys=("resume",))  # before it decides what to do with an existing run dir
    if checks is not None:
        checks(cfg)
    run_dir = run_dir_of(cfg)
    reuse = decide_reuse(run_dir, cfg)
    if reuse.action == "skip":
        log.info(
            "%s already completed (%s) with this config; nothing to do. resume=never refuses reuse.",
            run_dir,
            res.RESULTS_FILE,
        )
        return res.objective(reuse.existing.get("metrics", {}))

    t0 = time.time()
    record = {
        "schema": res.SCHEMA,
        "status": "running",
        "task": cfg.task_name,
        "run_name": cfg.run_name,
        "run_dir": str(run_dir.resolve()),
        "sweep_name": cfg.sweep_name,
        "swept": swept_values(cfg),
        "extraction": OmegaConf.select(cfg, "eval.extraction"),  # how hypotheses were cut (eval.extraction)
        "engine": OmegaConf.select(cfg, "eval.engine") or "hf",  # what decoded them (eval.engine)
        "metrics": {},
        "signatures": {},
        "config": resolved_container(cfg),
        "provenance": res.provenance(),
        **(extra or {}),
    }
    if reuse.action == "reevaluate":
        record["reevaluation"] = archive_previous(run_dir, reuse)
    results_path = run_dir / res.RESULTS_FILE
    sigterm = SigtermWatch()
    try:
        body(cfg, run_dir, record)
        record["status"] = "completed"
    except BaseException as e:
        ending = record_end(record, e, sigterm.received)
        if ending is not e:
            raise ending from e
        raise
    finally:
        sigterm.restore()
        record["wall_time_s"] = time.time() - t0
        if global_rank() == 0:
            res.write_json_atomic(results_path, record)
        finish_wandb(record["status"] == "completed", record, run_dir)
    if global_rank() == 0:
        print_summary(record)
    return res.objective(record["metrics"])


def record_end(record: dict, error: BaseException, sigterm: bool) -> BaseException:
    """Record how the job body ended with ``error`` (``interrupted`` or ``failed``); returns what to raise.

    SystemExit: submitit requeued the job after USR2 (preemption / time limit); it resumes from its checkpoint.
    After a SIGTERM (SLURM ends the job: requeue, preemption, scancel) every process of the job got it: the W&B
    service and the other ranks died first, hence the error. It is the end of this run, not its result: a
    SystemExit, as submitit exits when it requeues, so that no result of this run reaches the launcher while the
    requeued job resumes from its checkpoint."""
    record["status"] = "interrupted" if isinstance(error, (SystemExit, KeyboardInterrupt)) or sigterm else "failed"
    record["error"] = f"{type(error).__name__}: {error}"
    record["traceback"] = traceback.format_exc()
    if sigterm and not isinstance(error, SystemExit):
        return SystemExit(f"mfti: stopped by SIGTERM ({type(error).__name__}: {error})")
    return error


class SigtermWatch:
    """Whether the process got SIGTERM while the job ran (SLURM's ``scontrol requeue``, a preemption, ``scancel``).

    Installed only over a Python handler already in place, which it still calls (submitit's, which just logs the
    signal: the job runs on until SLURM's SIGKILL); a process with the default handler keeps dying at once."""

    def __init__(self):
        self.received = False
        self._previous = signal.getsignal(signal.SIGTERM)
        self._installed = callable(self._previous) and threading.current_thread() is threading.main_thread()
        if self._installed:
            signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame) -> None:
        self.received = True
        self._previous(signum, frame)

    def restore(self) -> None:
        if self._installed and signal.getsignal(signal.SIGTERM) == self._handle:
            signal.signal(signal.SIGTERM, self._previous)


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
        res.write_json_atomic(path, reuse.existing)
    return {
        "changed": {k: {"before": a, "now": b} for k, a, b in reuse.changed},
        "previous_results": str(path),
        "best_checkpoint": reuse.existing.get("best_checkpoint"),
        "best_step": reuse.existing.get("best_step"),
    }


def print_summary(record: dict) -> None:
    m = record["metrics"]
    dirs = record["directions"]["eval"]
    bleu = next((k.split("/")[1] for k in m if k.startswith("test/") and "bleu" in k.split("/")[1]), "bleu")
    lines = [
        f"\nmFTI run {record['run_name']}  ({record['status']}, {record['wall_time_s']:.0f} s)",
        f"{'direction':<10} {bleu:>8} {'chrF':>8} {'chrF++':>8}",
    ]
    for d in dirs + ["avg"]:
        lines.append(
            f"{d:<10} {m.get(f'test/{bleu}/{d}', float('nan')):>8.2f} "
            f"{m.get(f'test/chrf/{d}', float('nan')):>8.2f} {m.get(f'test/chrf++/{d}', float('nan')):>8.2f}"
        )
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
