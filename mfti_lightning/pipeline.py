"""The task function behind ``mfti-train``: checks, data, model, fit, test, results.json.

Everything that can fail on bad input is checked before the model is loaded and before any training step.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mfti_lightning import results as res
from mfti_lightning.config import batch_math
from mfti_lightning.distributed import global_rank
from mfti_lightning.errors import ConfigError
from mfti_lightning.identity import decide_reuse
from mfti_lightning.schema import validate
from mfti_lightning.template import from_config as template_from_config
from mfti_lightning.tracking import check_logger, finish_wandb, make_loggers, redact_secrets

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


def train(cfg: DictConfig) -> float | None:
    """Run one job; always leaves a results.json (completed or failed) in the run directory."""
    return run_task(cfg, _run, checks=check_before_loading)


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
        log.info("%s already completed (%s) with this config; nothing to do. resume=never refuses reuse.",
                 run_dir, res.RESULTS_FILE)
        return _objective(reuse.existing.get("metrics", {}))

    t0 = time.time()
    record = {
        "schema": res.SCHEMA, "status": "running", "task": cfg.task_name, "run_name": cfg.run_name,
        "run_dir": str(run_dir.resolve()), "sweep_name": cfg.sweep_name, "swept": swept_values(cfg),
        "metrics": {}, "signatures": {}, "config": resolved_container(cfg), "provenance": res.provenance(),
        **(extra or {}),
    }
    if reuse.action == "reevaluate":
        record["reevaluation"] = _archive_previous(run_dir, reuse)
    results_path = run_dir / res.RESULTS_FILE
    try:
        body(cfg, run_dir, record)
        record["status"] = "completed"
    except BaseException as e:
        # SystemExit: submitit requeued the job after USR2 (preemption / time limit); it resumes from its checkpoint
        record["status"] = "interrupted" if isinstance(e, (SystemExit, KeyboardInterrupt)) else "failed"
        record["error"] = f"{type(e).__name__}: {e}"
        record["traceback"] = traceback.format_exc()
        raise
    finally:
        record["wall_time_s"] = time.time() - t0
        if global_rank() == 0:
            res.write_json_atomic(results_path, record)
        finish_wandb(record["status"] == "completed", record, run_dir)
    if global_rank() == 0:
        _print_summary(record)
    return _objective(record["metrics"])


def _archive_previous(run_dir: Path, reuse) -> dict:
    """Keep the completed results of the earlier evaluation (``previous_results/<n>.json``) before re-evaluating;
    returns what results.json records about it."""
    changed = [k for k, _, _ in reuse.changed]
    log.info("%s: completed, but evaluation settings changed (%s): re-evaluating the best checkpoint %s without "
             "retraining.", run_dir, ", ".join(changed), reuse.existing.get("best_checkpoint") or "(no training)")
    archive = run_dir / "previous_results"
    n = len(list(archive.glob("*.json"))) if archive.is_dir() else 0
    path = archive / f"{n}.json"
    if global_rank() == 0:
        res.write_json_atomic(path, reuse.existing)
    return {"changed": {k: {"before": a, "now": b} for k, a, b in reuse.changed}, "previous_results": str(path),
            "best_checkpoint": reuse.existing.get("best_checkpoint"), "best_step": reuse.existing.get("best_step")}


def _objective(metrics: dict) -> float | None:
    for key in ("test/spbleu/avg", "test/bleu/avg", "test/chrf/avg"):
        if key in metrics:
            return float(metrics[key])
    return None


def check_before_loading(cfg: DictConfig):
    """Torch-free checks of a training job, most relevant first: types and allowed values (schema.validate),
    strategy vs accelerator, languages, template, batch math, and every input it reads (mfti_lightning.inputs).
    Run by the job itself (:func:`run_task`, before it looks at the run directory) and, for sweeps, by the launcher
    and mfti-plan before anything is submitted (sweep.check_job). Returns ``(template, batch math)``."""
    from mfti_lightning.prepare import check_languages

    validate(cfg)
    if cfg.trainer.strategy == "fsdp" and cfg.trainer.accelerator == "cpu":
        raise ConfigError("trainer=fsdp needs GPUs (Lightning's FSDPStrategy refuses CPUs). On CPU use "
                          "trainer=fsdp2 trainer.accelerator=cpu, or run on a GPU node.")
    check_languages(cfg)
    template = template_from_config(cfg.template)
    bm = batch_math(cfg)
    from mfti_lightning.inputs import require_inputs

    require_inputs(cfg)  # corpora, FLORES files, model, SPM model: every missing one at once (mfti_lightning.inputs)
    return template, bm


def _run(cfg: DictConfig, run_dir: Path, record: dict) -> None:
    # ---- checks that need nothing heavy --------------------------------------------------------------
    from mfti_lightning.directions import eval_directions, train_directions
    from mfti_lightning.metrics import bleu_metric_name

    template, bm = template_from_config(cfg.template), batch_math(cfg)  # checked by run_task (check_before_loading)
    check_logger(cfg)
    bleu_name = bleu_metric_name(cfg.eval.bleu_tokenize)
    n_train = int(cfg.num_examples.n)
    from mfti_lightning.trainer import check_launch, check_resume_config

    check_launch(cfg)
    record["batch"] = bm
    record["directions"] = {"train": [f"{s}-{t}" for s, t in train_directions(cfg.lang_pairs)] if n_train else [],
                            "eval": [f"{s}-{t}" for s, t in eval_directions(cfg.lang_pairs)]}
    run_dir.mkdir(parents=True, exist_ok=True)
    if n_train:
        check_resume_config(record["config"], run_dir, str(cfg.resume))
    template.save(run_dir)

    # ---- data (no model needed) ------------------------------------------------------------------------
    from mfti_lightning.modeling import check_loadable
    from mfti_lightning.prepare import eval_sets, load_or_prepare

    examples, data_report = load_or_prepare(cfg, template)
    record["data"] = data_report
    val_sets = eval_sets(cfg, "val") if n_train else []
    test_sets = eval_sets(cfg, "test")
    model_path = check_loadable(cfg.model)

    # ---- heavy imports start here -------------------------------------------------------------------
    import pytorch_lightning as pl
    import torch
    from hydra.utils import instantiate

    from mfti_lightning.datamodule import encode_examples
    from mfti_lightning.evaluation import evaluate
    from mfti_lightning.modeling import load_tokenizer, peft_settings
    from mfti_lightning.module import MFTIModule

    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    tokenizer = load_tokenizer(model_path)
    tokenizer.save_pretrained(run_dir / "tokenizer")
    encoded, enc_stats = encode_examples(examples, tokenizer, template, int(cfg.data.max_length),
                                         cfg.data.loss_on, cfg.data.overlong)
    data_report["tokenization"] = enc_stats
    if n_train and not encoded:
        raise ConfigError(f"Every training example is longer than data.max_length={cfg.data.max_length} tokens.")

    eval_settings = {
        "shots": int(cfg.shots.k), "seed": int(cfg.seed), "val_num_beams": int(cfg.eval.val_num_beams),
        "max_new_tokens": int(cfg.eval.max_new_tokens), "batch_tokens": int(cfg.eval.batch_tokens),
        "bleu_tokenize": cfg.eval.bleu_tokenize, "score_before_training": bool(cfg.eval.score_before_training),
    }
    module = MFTIModule(
        model_path=model_path, template=template.to_dict(),
        optimizer=instantiate(cfg.optim.optimizer), warmup_steps=int(cfg.optim.warmup_steps),
        dtype=cfg.model.dtype, attn_implementation=cfg.model.attn_implementation,
        gradient_checkpointing=bool(cfg.optim.gradient_checkpointing), val_sets=val_sets,
        eval_settings=eval_settings, out_dir=str(run_dir), peft=peft_settings(cfg.model),
        shape=dict(cfg.model.shape) if cfg.model.get("shape") else None,
    )
    module.tokenizer = tokenizer
    loggers = make_loggers(cfg, run_dir, record)

    reeval = record.get("reevaluation")
    best = None
    if n_train and reeval:  # completed run, only evaluation settings changed: no training
        best = reeval["best_checkpoint"]
        _collect_training(run_dir, record)
    elif n_train:
        best = _fit(cfg, bm, run_dir, module, encoded, tokenizer, val_sets, loggers, bleu_name, model_path)
        _collect_training(run_dir, record)
    if best:
        record["best_checkpoint"] = best
    if "throughput" in record.get("training", {}):
        record["throughput"] = record["training"]["throughput"]
    if best and Path(best).exists():
        from mfti_lightning.export import load_checkpoint, model_from_checkpoint, save_hf

        ckpt = load_checkpoint(best)
        record["best_step"] = int(ckpt["global_step"])
        module.model = None  # the trained (maybe sharded) model: replaced by the best one, unsharded
        model = model_from_checkpoint(best, ckpt)
        del ckpt
        model.eval()
        if cfg.get("checkpoint", {}).get("export", True) and global_rank() == 0 and not reeval:
            _, model = save_hf(model, run_dir / "hf", tokenizer, template)
        if (run_dir / "hf").is_dir():
            record["export_dir"] = str(run_dir / "hf")
        module.model = model
    module.configure_model()
    if cfg.trainer.accelerator in ("gpu", "cuda") and torch.cuda.is_available():
        # also the no-finetuning path (num_examples=n0, the ICL baseline), whose model was never fitted
        module.model.to(torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))))

    # ---- final test: the full evaluation on devtest ----------------------------------------------------
    # resumable per direction (translations/ + eval_state/test/), error analysis, partitions
    import torch.distributed as dist

    from mfti_lightning.evaluation import record_result

    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    result = evaluate(
        module.model, tokenizer, template, test_sets, split="test", shots=int(cfg.shots.k), seed=int(cfg.seed),
        num_beams=int(cfg.eval.num_beams), max_new_tokens=int(cfg.eval.max_new_tokens),
        batch_tokens=int(cfg.eval.batch_tokens), bleu_tokenize=cfg.eval.bleu_tokenize, rank=rank, world_size=world,
        out_dir=run_dir, analyze_errors=bool(cfg.eval.get("error_analysis", True)),
        settings={"checkpoint": record.get("best_checkpoint"), "model": str(model_path)},
    )
    record_result(record, result, "test", train_directions(cfg.lang_pairs) if n_train else None)
    if rank == 0:
        for logger in loggers:
            logger.log_metrics(result.metrics, step=int(record.get("training", {}).get("steps", 0)))


def _fit(cfg, bm, run_dir, module, encoded, tokenizer, val_sets, loggers, bleu_name, model_path) -> str:
    """Train (resuming from the newest checkpoint under resume=auto); returns the best checkpoint's path."""
    from mfti_lightning.datamodule import MFTIDataModule
    from mfti_lightning.trainer import build_trainer, newest_checkpoint

    n_val = sum(len(s.sources) for s in val_sets)
    dm = MFTIDataModule(encoded, tokenizer.pad_token_id, bm["micro_batch_size"], int(cfg.seed),
                        int(cfg.data.length_group_chunk), int(cfg.data.num_workers), n_val_prompts=n_val,
                        total_micro_batches=int(cfg.optim.max_steps) * bm["accumulate"])
    monitor = (cfg.eval.get("monitor") or f"val/{bleu_name}/avg") if n_val else None
    trainer, best_cb, _ = build_trainer(cfg, bm, run_dir, loggers, monitor, model_path)
    resume_from = newest_checkpoint(run_dir) if cfg.resume == "auto" else None
    if resume_from:
        log.info("Resuming from %s", resume_from)
    trainer.fit(module, datamodule=dm, ckpt_path=str(resume_from) if resume_from else None)
    return (best_cb.best_model_path if best_cb else "") or str(newest_checkpoint(run_dir) or "")


def _collect_training(run_dir: Path, record: dict) -> None:
    """Training and validation numbers written by rank 0 inside fit (also under ddp_fork/spawn)."""
    summary = run_dir / "train_summary.json"
    if summary.exists():
        record["training"] = json.loads(summary.read_text())
    init = run_dir / "metrics_val_init.json"
    if init.exists():
        d = json.loads(init.read_text())
        record["metrics"].update(d["metrics"])
        record["signatures"].update(d["signatures"])
    vals = sorted((run_dir / "val").glob("step*.json"))
    if vals:
        record["metrics"].update(json.loads(vals[-1].read_text())["metrics"])
        record["validation_history"] = {p.stem: json.loads(p.read_text())["metrics"] for p in vals}


def _print_summary(record: dict) -> None:
    m = record["metrics"]
    dirs = record["directions"]["eval"]
    bleu = next((k.split("/")[1] for k in m if k.startswith("test/") and "bleu" in k.split("/")[1]), "bleu")
    lines = [f"\nmFTI run {record['run_name']}  ({record['status']}, {record['wall_time_s']:.0f} s)",
             f"{'direction':<10} {bleu:>8} {'chrF':>8} {'chrF++':>8}"]
    for d in dirs + ["avg"]:
        lines.append(f"{d:<10} {m.get(f'test/{bleu}/{d}', float('nan')):>8.2f} "
                     f"{m.get(f'test/chrf/{d}', float('nan')):>8.2f} {m.get(f'test/chrf++/{d}', float('nan')):>8.2f}")
    if record.get("reevaluation"):
        changed = ", ".join(f"{k} {v['before']!r} -> {v['now']!r}" for k, v in record["reevaluation"]["changed"].items())
        lines.append(f"re-evaluated without training ({changed}); earlier results kept in "
                     f"{record['reevaluation']['previous_results']}")
    tr = record.get("training")
    if tr:
        lines.append(f"training: {tr['steps']} steps, loss {tr['loss_first']:.3f} -> {tr['loss_last']:.3f}")
    if "val_init/chrf/avg" in m and "val/chrf/avg" in m:
        lines.append(f"dev chrF before -> after finetuning: {m['val_init/chrf/avg']:.2f} -> {m['val/chrf/avg']:.2f}")
    lines.append(f"results: {Path(record['run_dir']) / res.RESULTS_FILE}")
    print("\n".join(lines), flush=True)
