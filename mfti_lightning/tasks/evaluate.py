"""The evaluation task behind ``mfti-eval``: a hub model, a local Hugging Face directory or a training checkpoint on
FLORES-101 (entry point: :mod:`mfti_lightning.cli.eval`).

Torch is imported only inside the functions that load a model; the job frame (checks, run-directory reuse,
provenance, atomic results.json) is :func:`mfti_lightning.tasks.job.run_task`, the same as mfti-train's.

Several processes, through Lightning Fabric (:func:`mfti_lightning.train.trainer.eval_fabric`): under ``torchrun``
/ ``srun`` every process is one rank (``ddp``: Fabric starts nothing and takes the rendezvous from torchrun or
SLURM); otherwise ``trainer.devices > 1`` forks the ranks (``ddp_fork``). Each rank holds a full copy of the model
(evaluation shards the sentences, not the weights) and translates its share of the batches; rank 0 scores and writes.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from omegaconf import DictConfig

from mfti_lightning.core import validation
from mfti_lightning.core.distributed import global_rank
from mfti_lightning.core.errors import MftiError

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
    from mfti_lightning.core.template import from_config as template_from_config
    from mfti_lightning.data.prepare import eval_sets
    from mfti_lightning.eval.decode_and_score import record_result
    from mfti_lightning.model.source import resolve_checkpoint

    split = check_inputs(cfg)
    template = template_from_config(cfg.template)
    sets = eval_sets(cfg, split)  # missing languages, shots > pool: DataError / ConfigError now
    info = resolve_checkpoint(cfg)
    warn_template_change(info, template)
    train_dirs = training_directions(cfg, info)
    record_directions(cfg, record, info, train_dirs)
    run_dir.mkdir(parents=True, exist_ok=True)
    template.save(run_dir)
    result = run_ranks(cfg, record, partial(rank_main, cfg=cfg, run_dir=run_dir, sets=sets, template=template,
                                            info=info, split=split))  # fmt: skip
    record_result(record, result, split, train_dirs)
    if global_rank() == 0:
        from mfti_lightning.track.loggers import make_loggers

        for logger in make_loggers(cfg, run_dir, record):
            logger.log_metrics(result.metrics, step=0)


def check_inputs(cfg) -> str:
    """The checks before any model is loaded; returns the metric split."""
    from mfti_lightning.data.prepare import check_languages
    from mfti_lightning.eval.metrics import bleu_metric_name
    from mfti_lightning.tasks.checks import check_engine

    validation.validate(cfg)  # types, allowed values and ranges first (torch-free)
    check_engine(cfg)  # eval.engine=ctranslate2 without the package: the install command, now
    check_languages(cfg)
    split = metric_split(cfg)
    bleu_metric_name(cfg.eval.bleu_tokenize)  # unknown tokenizer: ConfigError now
    return split


def warn_template_change(info: dict, template) -> None:
    """A warning when the model was trained with another prompt template than the one it is evaluated with."""
    from mfti_lightning.core.template import Template

    saved = info.get("run_dir") and Path(info["run_dir"]) / "template.json"
    if saved and saved.exists() and Template.load(saved.parent) != template:
        log.warning(
            "The model was trained with template %s but is evaluated with %s (template=...).",
            Template.load(saved.parent).name,
            template.name,
        )


def record_directions(cfg, record: dict, info: dict, train_dirs) -> None:
    from mfti_lightning.core.directions import directions_record, eval_directions

    record["directions"] = directions_record(train_dirs or [], eval_directions(cfg.lang_pairs))
    record["model_source"] = {k: (str(v) if v is not None else None) for k, v in info.items()}


def run_ranks(cfg, record: dict, rank_fn):
    """``rank_fn(fabric)`` on every rank (:func:`~mfti_lightning.train.trainer.eval_fabric`: the ranks srun /
    torchrun started, else ``trainer.devices`` forked ones, else this process); rank 0's result, and the world size
    in ``record``. A user error (:class:`MftiError`) of rank 0 is raised here as itself; any other failure of a
    forked rank is one RuntimeError naming the rank, with its traceback."""
    from torch.multiprocessing import ProcessExitedException, ProcessRaisedException

    from mfti_lightning.train.trainer import eval_fabric

    fabric = eval_fabric(cfg.trainer)
    try:
        record["world_size"], result = fabric.launch(partial(rank_outcome, rank_fn))
    except (ProcessRaisedException, ProcessExitedException) as e:
        why = str(e).strip().splitlines()[-1]  # the exception of a raised one; the exit status of a killed one
        raise RuntimeError(f"evaluation rank {e.error_index} of {fabric.world_size} failed ({why}):{e}") from None
    if isinstance(result, MftiError):
        raise result
    return result


def rank_outcome(rank_fn, fabric):
    """``(world size, rank_fn(fabric))``; a user error is returned as the result, not raised: from a forked rank
    torch would pass it on as traceback text only, and its message is the one the user needs."""
    try:
        return fabric.world_size, rank_fn(fabric)
    except MftiError as e:
        return fabric.world_size, e


def rank_main(fabric, cfg, run_dir, sets, template, info, split):
    """One rank's evaluation (``fabric``: this rank, its device and the joined process group): the decoder loaded
    on this rank's device, its share of the sentences translated."""
    from mfti_lightning.eval.decode_and_score import DecodeSettings, evaluate
    from mfti_lightning.eval.decoders import engine_id, load_decoder

    rank, world_size = fabric.global_rank, fabric.world_size
    model, tokenizer = load_decoder(cfg, info, fabric.device, rank, world_size)
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
    fabric.barrier()
    return result
