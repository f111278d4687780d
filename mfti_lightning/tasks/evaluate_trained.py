"""Phase 6 of ``mfti-train`` (:mod:`mfti_lightning.tasks.train`): the trained model's final evaluation on FLORES
devtest, on the ranks of training (or ranks joined here for an evaluation-only run), with the hf or CTranslate2
decoder. Torch is imported inside the functions."""

from __future__ import annotations

from mfti_lightning.core.directions import train_directions
from mfti_lightning.core.results import relative_to_run
from mfti_lightning.eval.decoders import engine_id


def eval_ranks(cfg) -> tuple[int, int]:
    """``(rank, world size)`` of the final test. After fit the ranks of training; an evaluation-only job (n0, the
    ICL baseline) started as several ranks by srun / torchrun joins them into a process group here (Lightning
    Fabric, :func:`~mfti_lightning.train.trainer.eval_fabric`), so its ranks deal the sentences (each translated
    once) instead of each translating everything."""
    import torch.distributed as dist

    from mfti_lightning.core.distributed import ranks_started_outside
    from mfti_lightning.train.trainer import eval_fabric

    if not dist.is_initialized() and ranks_started_outside():
        eval_fabric(cfg.trainer).launch()  # starts nothing: joins the ranks srun / torchrun started
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def final_decoder(job, rank: int, world: int):
    """The model of the final test, or with ``eval.engine=ctranslate2`` a CTranslate2 engine converted from it
    (the exported best checkpoint, else the base model; an unexported finetuned model from memory)."""
    model = job.module.model
    if job.cfg.eval.engine != "ctranslate2":
        return model
    import copy

    import torch

    from mfti_lightning.eval.decoders import ct2_decoder

    best = job.record.get("best_checkpoint")
    export = job.record.get("export_dir")
    source = export or job.model_path
    device = next(model.parameters()).device
    in_memory = (lambda: copy.deepcopy(model).to(torch.device("cpu"))) if best and not export else None
    engine = ct2_decoder(job.cfg, source, job.tokenizer, device, rank, world, None if export else best, in_memory)
    job.module.model = model.to(torch.device("cpu"))  # the torch copy leaves the accelerator to the engine
    return engine


def final_evaluation(job) -> None:
    """Phase 6: the full evaluation on devtest, resumable per direction (translations/ + eval_state/test/), with
    error analysis and seen/unseen partitions; the test metrics go to results.json and the loggers. ``job``: the
    :class:`~mfti_lightning.tasks.train.TrainingJob` after phase 5 (the best checkpoint loaded)."""
    from mfti_lightning.eval.decode_and_score import DecodeSettings, evaluate, record_result
    from mfti_lightning.eval.partitions import partition_directions

    cfg, record = job.cfg, job.record
    rank, world = eval_ranks(cfg)
    record["eval_world_size"] = world  # ranks that dealt the test sentences
    result = evaluate(
        final_decoder(job, rank, world),
        job.tokenizer,
        job.template,
        job.test_sets,
        split="test",
        decode=DecodeSettings.from_config(cfg),
        rank=rank,
        world_size=world,
        out_dir=job.run_dir,
        settings={
            "checkpoint": relative_to_run(record.get("best_checkpoint"), job.run_dir),  # a moved run resumes too
            "model": str(job.model_path),
            "engine": engine_id(cfg),
        },
    )
    # partitions: a finetuned run by its own training directions; an ICL run (n0) by train_directions= (a list, or
    # the mFTI run it is compared with)
    parts = (
        train_directions(cfg.lang_pairs) if job.n_train else partition_directions(cfg.train_directions, cfg.lang_pairs)
    )
    record_result(record, result, "test", parts)
    if rank == 0:
        for logger in job.loggers:
            logger.log_metrics(result.metrics, step=int(record.get("training", {}).get("steps", 0)))
