"""The evaluation task behind ``mfti-eval``: a hub model, a local Hugging Face directory or a training checkpoint on
FLORES-101 (entry point: :mod:`mfti_lightning.cli.eval`).

Torch is imported only inside the functions that load a model; the job frame (checks, run-directory reuse,
provenance, atomic results.json) is :func:`mfti_lightning.tasks.job.run_task`, the same as mfti-train's.

Several processes: under ``torchrun`` / ``srun`` (``WORLD_SIZE``/``RANK`` or ``SLURM_NTASKS``/``SLURM_PROCID``
plus ``MASTER_ADDR``/``MASTER_PORT`` in the environment) every process is one rank; otherwise
``trainer.devices > 1`` forks the extra ranks locally. Each rank holds a full copy of the model (evaluation
shards the sentences, not the weights) and translates its share of the batches; rank 0 scores and writes.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from omegaconf import DictConfig

from mfti_lightning.core import validation
from mfti_lightning.core.config import world_size
from mfti_lightning.core.distributed import global_rank, launched_ranks

log = logging.getLogger("mfti_lightning")


SPLITS = {"devtest": "test", "dev": "val"}  # FLORES split -> metric split name (results.json schema)


def evaluate_task(cfg: DictConfig) -> float | None:
    from mfti_lightning.tasks.job import run_task

    return run_task(cfg, _eval_body, extra={"eval_split": cfg.split, "checkpoint": cfg.ckpt_path})


# ---- checks and training directions (before any model is loaded) ------------------------------------------
def metric_split(cfg) -> str:
    from mfti_lightning.core.errors import ConfigError

    if cfg.split not in SPLITS:
        raise ConfigError(f"split={cfg.split!r}: use devtest (the paper's test set) or dev.")
    return SPLITS[cfg.split]


def training_directions(cfg, info: dict):
    """Training directions for the partitions (see ``train_directions`` in conf/eval.yaml)."""
    from mfti_lightning.core import directions
    from mfti_lightning.core.languages import parse_direction
    from mfti_lightning.core.results_schema import RunResults
    from mfti_lightning.eval.partitions import partition_directions

    spec = cfg.train_directions
    if spec != "auto":
        return partition_directions(spec, cfg.lang_pairs)
    run_dir = info.get("run_dir")
    if run_dir is not None:
        rec = RunResults.read(run_dir)
        dirs = rec.directions.train if rec else None
        if dirs:
            return [parse_direction(d) for d in dirs]
    return directions.train_directions(cfg.lang_pairs)


# ---- the job --------------------------------------------------------------------------------------------
def _eval_body(cfg: DictConfig, run_dir: Path, record: dict) -> None:
    from mfti_lightning.core.directions import eval_directions
    from mfti_lightning.core.template import Template
    from mfti_lightning.core.template import from_config as template_from_config
    from mfti_lightning.data.prepare import check_languages, eval_sets
    from mfti_lightning.eval.metrics import bleu_metric_name
    from mfti_lightning.eval.ranks import fork_ranks, srun_rendezvous
    from mfti_lightning.model.source import resolve_checkpoint
    from mfti_lightning.tasks.checks import check_engine

    validation.validate(cfg)  # types, allowed values and ranges first (torch-free)
    check_engine(cfg)  # eval.engine=ctranslate2 without the package: the install command, now
    check_languages(cfg)
    split = metric_split(cfg)
    template = template_from_config(cfg.template)
    bleu_metric_name(cfg.eval.bleu_tokenize)  # unknown tokenizer: ConfigError now
    sets = eval_sets(cfg, split)  # missing languages, shots > pool: DataError / ConfigError now
    info = resolve_checkpoint(cfg)
    saved = info.get("run_dir") and Path(info["run_dir"]) / "template.json"
    if saved and saved.exists() and Template.load(saved.parent) != template:
        log.warning(
            "The model was trained with template %s but is evaluated with %s (template=...).",
            Template.load(saved.parent).name,
            template.name,
        )
    train_dirs = training_directions(cfg, info)
    record["directions"] = {
        "train": [f"{s}-{t}" for s, t in train_dirs or []],
        "eval": [f"{s}-{t}" for s, t in eval_directions(cfg.lang_pairs)],
    }
    record["model_source"] = {k: (str(v) if v is not None else None) for k, v in info.items()}
    run_dir.mkdir(parents=True, exist_ok=True)
    template.save(run_dir)

    srun_rendezvous()
    world = launched_ranks()
    devices = world_size(cfg.trainer)
    record["world_size"] = world[2] if world else devices
    if world is None and devices > 1:
        result = fork_ranks(devices, partial(rank_main, cfg, run_dir, sets, template, info, split))
    else:
        result = rank_main(cfg, run_dir, sets, template, info, split, world)
    from mfti_lightning.eval.decode_and_score import record_result

    record_result(record, result, split, train_dirs)
    if global_rank() == 0:
        from mfti_lightning.track.loggers import make_loggers

        for logger in make_loggers(cfg, run_dir, record):
            logger.log_metrics(result.metrics, step=0)


def rank_main(cfg, run_dir, sets, template, info, split, world):
    """One rank's evaluation (``world``: ``(rank, local rank, world size)``, None for one process): the process
    group joined, the decoder loaded on this rank's device, its share of the sentences translated."""
    import torch
    import torch.distributed as dist

    from mfti_lightning.eval.decode_and_score import DecodeSettings, evaluate
    from mfti_lightning.eval.decoders import engine_id, load_decoder
    from mfti_lightning.eval.ranks import join_process_group

    rank, local_rank, world_size = world or (0, 0, 1)
    gpu = cfg.trainer.accelerator in ("gpu", "cuda") or (
        cfg.trainer.accelerator == "auto" and torch.cuda.is_available()
    )
    join_process_group(rank, world_size, gpu)
    device = torch.device(f"cuda:{local_rank}" if gpu else "cpu")
    if gpu:
        torch.cuda.set_device(device)
    model, tokenizer = load_decoder(cfg, info, device, rank, world_size)
    result = evaluate(
        model,
        tokenizer,
        template,
        sets,
        split=split,
        decode=DecodeSettings.from_config(cfg),
        rank=rank,
        world_size=world_size,
        out_dir=run_dir,
        settings={"model": info["model_path"], "ckpt": info.get("ckpt_file"), "engine": engine_id(cfg)},
    )
    if world_size > 1:
        dist.barrier()
    return result
