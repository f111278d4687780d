"""The training task behind ``mfti-train``, in named phases that tests and benchmarks call too.

``train(cfg)`` runs :func:`run_training` inside the shared job frame (:func:`mfti_lightning.tasks.job.run_task`,
after :func:`mfti_lightning.tasks.checks.check_before_loading`). The phases, in order:

1. :func:`prepare_run`: launch and resume checks, batch math and directions recorded, the template saved;
2. :func:`prepare_data`: sampled and rendered training pairs (cached), validation and test sets, the model path
   and its tokenizer (checked against the model's vocabulary);
3. :func:`build_module`: encoded examples, the LightningModule, the loggers (Lightning is imported here);
4. :func:`fit`: the Lightning Trainer (resuming from the newest checkpoint); returns the best checkpoint;
5. :func:`load_best`: the best checkpoint, unsharded, exported as a Hugging Face directory;
6. :func:`mfti_lightning.tasks.evaluate_trained.final_evaluation`: the full evaluation on FLORES devtest, resumable per
   direction.

A completed run whose evaluation settings alone changed skips 4 (``record["reevaluation"]``).
"""

from __future__ import annotations

import json
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from mfti_lightning.core import layout
from mfti_lightning.core.config import BatchPlan, steps_for_epochs, training_length
from mfti_lightning.core.directions import directions_record, eval_directions, train_directions
from mfti_lightning.core.distributed import global_rank, local_rank
from mfti_lightning.core.errors import ConfigError, JobInterrupted
from mfti_lightning.core.interrupt import RESUME_HINT, lightning_stops, received
from mfti_lightning.core.template import Template
from mfti_lightning.core.template import from_config as template_from_config
from mfti_lightning.tasks import evaluate_trained
from mfti_lightning.tasks.checks import check_before_loading
from mfti_lightning.tasks.job import resolved_container, run_task
from mfti_lightning.track.loggers import check_logger, make_loggers

log = logging.getLogger("mfti_lightning")


def train(cfg: DictConfig) -> float | None:
    """Run one training job; always leaves a results.json (completed or failed) in the run directory."""
    return run_task(cfg, run_training, checks=check_before_loading, preflight=preflight)


def preflight(cfg: DictConfig, run_dir: Path, reuse) -> None:
    """The refusals that need the run directory (torch-free), before anything in it changes: the launch, the
    logger, and under resume=auto checkpoints of a different training config."""
    from mfti_lightning.train.trainer import check_launch, check_resume_config

    check_logger(cfg)
    check_launch(cfg)
    if cfg.num_examples.n and reuse.action != "reevaluate":
        check_resume_config(resolved_container(cfg), run_dir, cfg.resume, save=False)


@dataclass
class TrainingJob:
    """What the phases hand each other."""

    cfg: DictConfig
    run_dir: Path
    record: dict
    template: Template
    batch: BatchPlan
    n_train: int
    bleu_name: str
    model_path: str = ""
    examples: list = field(default_factory=list)
    val_sets: list = field(default_factory=list)
    test_sets: list = field(default_factory=list)
    tokenizer: object = None
    encoded: list = field(default_factory=list)
    module: object = None
    loggers: list = field(default_factory=list)
    trainer: object = None
    resume_from: Path | None = None  # the verified checkpoint fit resumes from (phase 1)


def run_training(cfg: DictConfig, run_dir: Path, record: dict) -> None:
    """The task body: the phases of the module docstring."""
    job = prepare_run(cfg, run_dir, record)
    prepare_data(job)
    build_module(job)
    reeval = record.get("reevaluation")
    best = None
    if job.n_train:
        best = reeval["best_checkpoint"] if reeval else fit(job)  # re-evaluation: no training
        collect_training(run_dir, record)
    if "throughput" in record.get("training", {}):
        record["throughput"] = record["training"]["throughput"]
    load_best(job, best, export=not reeval)
    evaluate_trained.final_evaluation(job)


def prepare_run(cfg: DictConfig, run_dir: Path, record: dict) -> TrainingJob:
    """Phase 1 (torch-free): what the run trains and evaluates, the training config and the template saved (the
    launch and resume refusals ran before, in :func:`preflight`)."""
    from mfti_lightning.eval.metrics import bleu_metric_name
    from mfti_lightning.train.trainer import check_resume_config

    job = TrainingJob(
        cfg,
        run_dir,
        record,
        template_from_config(cfg.template),
        BatchPlan.from_config(cfg),
        cfg.num_examples.n,
        bleu_metric_name(cfg.eval.bleu_tokenize),
    )
    record["batch"] = job.batch.record()
    record["directions"] = directions_record(
        train_directions(cfg.lang_pairs) if job.n_train else [], eval_directions(cfg.lang_pairs)
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    if job.n_train:
        job.resume_from = check_checkpoints(job)
        check_resume_config(record["config"], run_dir, cfg.resume)
    job.template.save(run_dir)
    return job


def check_checkpoints(job: TrainingJob) -> Path | None:
    """Phase 1: the checkpoints this run will read, checked before any data or model loads; returns the one to
    resume from (``model.checkpoint_files.resume_checkpoint``: damaged ones set aside). Leftovers of killed writes are
    removed (rank 0). A re-evaluation checks the best checkpoint it needs."""
    from mfti_lightning.model.checkpoint_files import check_best_checkpoint, clean_partial_writes, resume_checkpoint

    cfg, run_dir, trust = job.cfg, job.run_dir, trusts_checkpoints(job.cfg)
    reeval = job.record.get("reevaluation")
    if reeval:
        check_best_checkpoint(reeval.get("best_checkpoint"), run_dir, trust)
        return None
    if global_rank() == 0:
        clean_partial_writes(run_dir)
    return resume_checkpoint(run_dir, trust, move=global_rank() == 0) if cfg.resume == "auto" else None


def trusts_checkpoints(cfg) -> bool:
    """``trust_checkpoint=true``: load checkpoints that need more than plain types (unpickling may run code)."""
    return cfg.trust_checkpoint


def prepare_data(job: TrainingJob) -> None:
    """Phase 2 (no model needed): training examples (from the prepared-data cache), evaluation sets, model path,
    and the tokenizer, refused when it has more tokens than the model has embeddings (before Lightning is
    imported and long before a model is built)."""
    from mfti_lightning.data.prepare import eval_sets, load_or_prepare
    from mfti_lightning.model.modeling import check_loadable, load_tokenizer

    job.examples, job.record["data"] = load_or_prepare(job.cfg, job.template)
    job.val_sets = eval_sets(job.cfg, "val") if job.n_train else []
    job.test_sets = eval_sets(job.cfg, "test")
    job.model_path = check_loadable(job.cfg.model)
    job.tokenizer = load_tokenizer(job.model_path)


def build_module(job: TrainingJob) -> None:
    """Phase 3: the tokenizer saved with the run, encoded examples, the LightningModule and the loggers."""
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    from mfti_lightning.eval.decode_and_score import selection_record
    from mfti_lightning.model.modeling import peft_settings
    from mfti_lightning.train.module import MFTIModule

    cfg = job.cfg
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    job.tokenizer.save_pretrained(job.run_dir / layout.TOKENIZER_DIR)
    encode_training_examples(job)
    if job.n_train:
        job.record["selection"] = selection_record(
            cfg.eval.select, job.bleu_name, cfg.eval.monitor, cfg.lang_pairs.val_size,
            cfg.eval.num_beams, cfg.eval.val_num_beams,
        )  # fmt: skip
    job.module = MFTIModule(
        model_path=job.model_path,
        template=job.template.to_dict(),
        optimizer=instantiate(cfg.optim.optimizer),
        warmup_steps=cfg.optim.warmup_steps,
        dtype=cfg.model.dtype,
        attn_implementation=cfg.model.attn_implementation,
        gradient_checkpointing=cfg.optim.gradient_checkpointing,
        val_sets=job.val_sets,
        eval_settings=validation_settings(cfg),
        out_dir=str(job.run_dir),
        peft=peft_settings(cfg.model),
        shape=dict(cfg.model.shape) if cfg.model.shape else None,
    )
    job.module.tokenizer = job.tokenizer
    job.loggers = make_loggers(cfg, job.run_dir, job.record)


def encode_training_examples(job: TrainingJob) -> None:
    """``job.encoded`` (and the tokenization counts in the record); refuses a run none of whose examples fit."""
    from mfti_lightning.data.datamodule import encode_examples

    data = job.cfg.data
    job.encoded, job.record["data"]["tokenization"] = encode_examples(
        job.examples, job.tokenizer, job.template, data.max_length, data.loss_on, data.overlong
    )
    if job.n_train and not job.encoded:  # (no examples at all is refused earlier: data.prepare.check_directions)
        raise ConfigError(
            f"All {len(job.examples)} training examples are longer than data.max_length={data.max_length} "
            f"tokens (data.overlong={data.overlong}): raise data.max_length, or set "
            "data.overlong=truncate_source to shorten their sources."
        )


def validation_settings(cfg: DictConfig) -> dict:
    """The module's validation settings: the test's decoding, and how validation picks the best checkpoint (plain
    values: they are checkpointed hyperparameters)."""
    from mfti_lightning.eval.decode_and_score import DecodeSettings

    return DecodeSettings.from_config(cfg).record() | {
        "val_num_beams": cfg.eval.val_num_beams,
        "score_before_training": cfg.eval.score_before_training,
        "select": cfg.eval.select,
    }


def build_datamodule(job: TrainingJob, steps: int, n_val: int):
    """The training batches (length-grouped, seeded) for ``steps`` optimizer steps, and ``n_val`` validation prompts."""
    from mfti_lightning.data.datamodule import MFTIDataModule

    cfg, batches = job.cfg, job.batch
    return MFTIDataModule(
        job.encoded,
        job.tokenizer.pad_token_id,
        batches.micro_batch_size,
        cfg.seed,
        cfg.data.length_group_chunk,
        cfg.data.num_workers,
        n_val_prompts=n_val,
        total_micro_batches=batches.micro_batches(steps),
    )


def fit(job: TrainingJob):
    """Phase 4: train (resuming from the newest checkpoint under resume=auto); returns the best checkpoint's path.
    The Trainer is left on ``job.trainer`` for tests and benchmarks."""
    from mfti_lightning.eval.decode_and_score import selection_metric
    from mfti_lightning.model.checkpoint_files import newest_checkpoint
    from mfti_lightning.track.curves import RestartCurves
    from mfti_lightning.train.trainer import build_trainer

    cfg, batches = job.cfg, job.batch
    n_val = sum(len(s.sources) for s in job.val_sets)
    steps = planned_steps(job)
    dm = build_datamodule(job, steps, n_val)
    monitor = selection_metric(cfg.eval.select, job.bleu_name, cfg.eval.monitor) if n_val else None
    trainer, best_cb, _ = build_trainer(
        cfg, batches, job.run_dir, job.loggers, monitor, job.model_path, max_steps=steps
    )
    trainer.callbacks.append(RestartCurves())  # logger=csv: a resumed job's rows replace those after its checkpoint
    job.trainer = trainer
    resume_from = job.resume_from  # checked in phase 1 (check_checkpoints)
    if resume_from:
        log.info("Resuming from %s", resume_from)
    try:
        with lightning_stops():
            trainer.fit(
                job.module,
                datamodule=dm,
                ckpt_path=str(resume_from) if resume_from else None,
                weights_only=not trusts_checkpoints(cfg),  # mfti-train's checkpoints hold plain types only
            )
    except SystemExit:  # Lightning's SIGTERMException (status 0) after it finished the step
        if received() is None:
            raise
    if received() is not None:
        raise interrupted_in_fit(job.run_dir, trainer.global_step) from None
    return (best_cb.best_model_path if best_cb else "") or str(newest_checkpoint(job.run_dir) or "")


def interrupted_in_fit(run_dir: Path, step: int) -> JobInterrupted:
    """The one line of a training interrupted by a signal: where it stopped and what a re-run resumes from."""
    from mfti_lightning.model.checkpoint_files import newest_checkpoint

    newest = newest_checkpoint(run_dir)
    kept = f"it resumes from {newest.parent.name}/{newest.name}" if newest else "no checkpoint was written yet"
    name = signal.Signals(received()).name
    return JobInterrupted(f"interrupted by {name} at step {step} ({kept}); {RESUME_HINT}", received())


def planned_steps(job: TrainingJob) -> int:
    """The run's optimizer steps: ``optim.max_steps``, or ``optim.max_epochs`` passes of the batch sampler (full
    micro batches of the encoded examples on each rank) over the gradient accumulation. Recorded as
    ``results.json["training_length"]``."""
    from mfti_lightning.data.datamodule import LengthGroupedBatches

    cfg, batches = job.cfg, job.batch
    length = training_length(cfg)
    if length["by"] == "epochs":
        sampler = LengthGroupedBatches(
            [len(e.input_ids) for e in job.encoded], batches.micro_batch_size, cfg.seed,
            cfg.data.length_group_chunk, 0, batches.world_size,
        )  # fmt: skip
        per_epoch = len(sampler.epoch_batches(0))
        length["micro_batches_per_epoch_per_rank"] = per_epoch
        length["steps_per_epoch"] = per_epoch / batches.accumulate
        length["max_steps"] = steps_for_epochs(length["max_epochs"], per_epoch, batches.accumulate)
    job.record["training_length"] = length
    return int(length["max_steps"])


def collect_training(run_dir: Path, record: dict) -> None:
    """Training and validation numbers written by rank 0 inside fit (also under ddp_fork/spawn)."""
    summary = run_dir / layout.TRAIN_SUMMARY_FILE
    if summary.exists():
        record["training"] = json.loads(summary.read_text())
    init = run_dir / layout.VAL_INIT_FILE
    if init.exists():
        d = json.loads(init.read_text())
        record["metrics"].update(d["metrics"])
        record["signatures"].update(d["signatures"])
    vals = sorted((run_dir / layout.VAL_DIR).glob("step*.json"))
    if vals:
        record["metrics"].update(json.loads(vals[-1].read_text())["metrics"])
        record["validation_history"] = {p.stem: json.loads(p.read_text())["metrics"] for p in vals}


def load_best(job: TrainingJob, best: str | None, export: bool = True) -> None:
    """Phase 5: the best checkpoint replaces the trained (maybe sharded) model, unsharded; exported to ``hf/``
    (``checkpoint.export``, rank 0). Without a checkpoint (n0, the ICL baseline) the base model stays. The model
    goes to this rank's GPU when the trainer runs on GPUs."""
    import torch

    from mfti_lightning.core.errors import CheckpointError
    from mfti_lightning.model.checkpoint_files import load_checkpoint, model_from_checkpoint
    from mfti_lightning.model.export import save_hf

    record, module = job.record, job.module
    if best:
        record["best_checkpoint"] = best
        if not Path(best).exists():  # never silently test the base model in its place
            raise CheckpointError(
                f"The best checkpoint {best} is missing. Restore it, or delete {job.run_dir} to train again."
            )
        ckpt = load_checkpoint(best, trusts_checkpoints(job.cfg))
        record["best_step"] = int(ckpt["global_step"])
        module.model = None
        model = model_from_checkpoint(best, ckpt)
        del ckpt
        model.eval()
        if export and job.cfg.checkpoint.export and global_rank() == 0:
            # written beside hf/ and swapped in: a kill mid-export leaves the old hf/ (or none), never a mix
            _, model = save_hf(model, job.run_dir / layout.HF_DIR, job.tokenizer, job.template, replace=True)
        if (job.run_dir / layout.HF_DIR).is_dir():
            record["export_dir"] = str(job.run_dir / layout.HF_DIR)
        module.model = model
    module.configure_model()
    if job.cfg.trainer.accelerator in ("gpu", "cuda") and torch.cuda.is_available():
        # also the no-finetuning path (num_examples=n0, the ICL baseline), whose model was never fitted
        module.model.to(torch.device("cuda", local_rank()))
