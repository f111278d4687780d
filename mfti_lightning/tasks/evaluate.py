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
import os
from pathlib import Path

from omegaconf import DictConfig

from mfti_lightning.core import validation
from mfti_lightning.core.config import world_size
from mfti_lightning.core.distributed import global_rank, launched_ranks
from mfti_lightning.core.layout import TOKENIZER_DIR
from mfti_lightning.model.checkpoints import check_state_dict, model_state_of_file, run_dir_of_checkpoint

log = logging.getLogger("mfti_lightning")


SPLITS = {"devtest": "test", "dev": "val"}  # FLORES split -> metric split name (results.json schema)


def evaluate_task(cfg: DictConfig) -> float | None:
    from mfti_lightning.tasks.job import run_task

    return run_task(cfg, _eval_body, extra={"eval_split": cfg.split, "checkpoint": cfg.ckpt_path})


# ---- checks and model resolution (before any model is loaded) ------------------------------------------
def metric_split(cfg) -> str:
    from mfti_lightning.core.errors import ConfigError

    if cfg.split not in SPLITS:
        raise ConfigError(f"split={cfg.split!r}: use devtest (the paper's test set) or dev.")
    return SPLITS[cfg.split]


def resolve_checkpoint(cfg) -> dict:
    """What to load: ``{"kind": hub|dir|lightning, "model_path", "tokenizer_path", "ckpt_file", "run_dir"}``.
    A Lightning checkpoint is checked against the base model's config here (keys and shapes, on the meta
    device: no weights are loaded)."""
    from mfti_lightning.core.errors import ModelLoadError
    from mfti_lightning.model.modeling import check_loadable

    ckpt = cfg.ckpt_path
    if not ckpt:
        path = check_loadable(cfg.model)
        return {
            "kind": "hub" if not Path(path).is_dir() else "dir",
            "model_path": path,
            "tokenizer_path": path,
            "ckpt_file": None,
            "run_dir": Path(path) if Path(path).is_dir() else None,
        }
    p = Path(str(ckpt)).expanduser()
    if not p.exists():
        raise ModelLoadError(f"ckpt_path={ckpt} does not exist.")
    if p.is_dir():
        if (p / "config.json").exists():
            has_tok = any(
                (p / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "sentencepiece.bpe.model")
            )
            return {
                "kind": "dir",
                "model_path": str(p),
                "ckpt_file": None,
                "run_dir": p,
                "tokenizer_path": str(p) if has_tok else check_loadable(cfg.model),
            }
        raise ModelLoadError(
            f"ckpt_path={ckpt} is a directory without config.json: a sharded (FSDP) Lightning checkpoint? "
            "Consolidate it into a Hugging Face directory first (mfti-export, or Lightning's "
            "`python -m lightning.pytorch.utilities.consolidate_checkpoint`), then pass that directory."
        )
    base = check_loadable(cfg.model)
    # damaged or needing more than plain types (unless trust_checkpoint=true): CheckpointError now, nothing loaded
    check_state_dict(p, base, cfg.trust_checkpoint)
    # <run dir>/checkpoints/{periodic,best}/<name>.ckpt (or a checkpoint file anywhere else)
    run_dir = run_dir_of_checkpoint(p)
    tok = run_dir / TOKENIZER_DIR
    return {
        "kind": "lightning",
        "model_path": base,
        "ckpt_file": str(p),
        "run_dir": run_dir,
        "tokenizer_path": str(tok) if (tok / "tokenizer_config.json").exists() else base,
    }


def training_directions(cfg, info: dict):
    """Training directions for the partitions (see ``train_directions`` in conf/eval.yaml)."""
    from mfti_lightning.core import directions, results
    from mfti_lightning.core.languages import parse_direction
    from mfti_lightning.eval.partitions import partition_directions

    spec = cfg.train_directions
    if spec != "auto":
        return partition_directions(spec, cfg.lang_pairs)
    run_dir = info.get("run_dir")
    if run_dir is not None:
        rec = results.read_results(run_dir)
        dirs = (rec or {}).get("directions", {}).get("train")
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
        result = _fork_and_run(cfg, run_dir, sets, template, info, split, devices)
    else:
        result = _rank_main(cfg, run_dir, sets, template, info, split, world)
    from mfti_lightning.eval.evaluation import record_result

    record_result(record, result, split, train_dirs)
    if global_rank() == 0:
        from mfti_lightning.track.loggers import make_loggers

        for logger in make_loggers(cfg, run_dir, record):
            logger.log_metrics(result.metrics, step=0)


def srun_rendezvous() -> None:
    """srun started this process as one of several tasks but set no MASTER_ADDR/MASTER_PORT (Lightning derives
    them inside ``fit``, which an evaluation-only job never calls): set them as Lightning's SLURMEnvironment does
    (the first node of the job, a port from the job id), so that ``launched_ranks()`` sees the srun ranks. Each
    rank computes with the CPUs of its task, as in training (:func:`~mfti_lightning.core.distributed.use_srun_threads`)."""
    import torch  # noqa: F401  (use_srun_threads sets the threads of the loaded torch)

    from mfti_lightning.core.distributed import srun_started_ranks, use_srun_threads

    use_srun_threads()
    if not srun_started_ranks() or "MASTER_ADDR" in os.environ:
        return
    from pytorch_lightning.plugins.environments import SLURMEnvironment

    env = SLURMEnvironment(auto_requeue=False)
    os.environ["MASTER_ADDR"] = env.main_address
    os.environ.setdefault("MASTER_PORT", str(env.main_port))


def _fork_and_run(cfg, run_dir, sets, template, info, split, devices: int):
    """Fork ``devices - 1`` extra ranks (before any model or CUDA is touched); this process is rank 0."""
    import multiprocessing as mp
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["MASTER_PORT"] = str(port)
    ctx = mp.get_context("fork")
    children = [
        ctx.Process(target=_child, args=(cfg, run_dir, sets, template, info, split, (r, r, devices)))
        for r in range(1, devices)
    ]
    for c in children:
        c.start()
    try:
        result = _rank_main(cfg, run_dir, sets, template, info, split, (0, 0, devices))
    finally:
        for c in children:
            c.join(timeout=600)
            if c.is_alive():
                c.kill()
    bad = [c.exitcode for c in children if c.exitcode != 0]
    if bad:
        raise RuntimeError(f"evaluation rank(s) failed with exit codes {bad}")
    return result


def _child(*args):
    try:
        _rank_main(*args)
    except BaseException:
        logging.getLogger("mfti_lightning").exception("evaluation rank failed")
        os._exit(1)
    os._exit(0)


def _rank_main(cfg, run_dir, sets, template, info, split, world):
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    rank, local_rank, world_size = world or (0, 0, 1)
    gpu = cfg.trainer.accelerator in ("gpu", "cuda") or (
        cfg.trainer.accelerator == "auto" and torch.cuda.is_available()
    )
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(
            "nccl" if gpu else "gloo", rank=rank, world_size=world_size, timeout=timedelta(minutes=30)
        )
    device = torch.device(f"cuda:{local_rank}" if gpu else "cpu")
    if gpu:
        torch.cuda.set_device(device)
    model, tokenizer = load_decoder(cfg, info, device, rank, world_size)
    from mfti_lightning.eval.evaluation import DecodeSettings, evaluate

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


def engine_id(cfg) -> str:
    """The decoder as the saved per-direction state records it (a resumed evaluation with another engine redoes
    the directions): ``hf`` or ``ctranslate2:<compute type>``."""
    engine = cfg.eval.engine
    return engine if engine == "hf" else f"{engine}:{cfg.eval.ct2_compute_type}"


def load_decoder(cfg, info: dict, device, rank: int = 0, world_size: int = 1):
    """What translates (``eval.engine``): the Hugging Face model on ``device``, or a CTranslate2 engine converted
    from the same weights (once per checkpoint; a Lightning checkpoint is loaded into the base model on the CPU
    only when the conversion cache has no copy yet)."""
    if cfg.eval.engine != "ctranslate2":
        return load_for_eval(cfg, info, device)
    from mfti_lightning.model.modeling import load_tokenizer

    tokenizer = load_tokenizer(info["tokenizer_path"], info["model_path"])
    model = None
    if info.get("ckpt_file"):

        def model():
            import torch

            return load_for_eval(cfg, info, torch.device("cpu"))[0]

    engine = ct2_decoder(cfg, info["model_path"], tokenizer, device, rank, world_size, info.get("ckpt_file"), model)
    return engine, tokenizer


def ct2_decoder(cfg, model_path, tokenizer, device, rank, world_size, ckpt_file=None, model=None):
    """A :class:`~mfti_lightning.eval.ct2_engine.CT2Engine` for ``model_path`` (+ ``ckpt_file``'s weights, given
    as ``model``, a loaded model or a function that loads one); rank 0 converts, the other ranks wait for it."""
    import torch

    from mfti_lightning.eval.ct2_engine import load_engine

    barrier = None
    if world_size > 1:
        import torch.distributed as dist

        barrier = dist.barrier if dist.is_initialized() else None
    return load_engine(
        str(model_path),
        tokenizer,
        cache_dir=str(cfg.paths.cache_dir),
        device=device,
        compute_type=cfg.eval.ct2_compute_type,
        ckpt_file=ckpt_file,
        model=model,
        threads=torch.get_num_threads() if device.type == "cpu" else 0,
        is_first_rank=rank == 0,
        barrier=barrier,
    )


def load_for_eval(cfg, info: dict, device):
    """Tokenizer and model in eval mode on ``device``; a Lightning checkpoint's weights are loaded into the base
    model (``model.`` prefix stripped; already checked by :func:`check_state_dict`)."""
    from mfti_lightning.model.modeling import load_model, load_tokenizer

    tokenizer = load_tokenizer(info["tokenizer_path"], info["model_path"])
    dtype = cfg.model.dtype
    precision = str(cfg.trainer.get("precision", ""))
    if device.type == "cuda" and precision.startswith("bf16"):
        dtype = "bfloat16"
    elif device.type == "cuda" and precision.startswith("16"):
        dtype = "float16"
    model = load_model(info["model_path"], dtype, cfg.model.attn_implementation)
    if info.get("ckpt_file"):
        state = model_state_of_file(Path(info["ckpt_file"]), cfg.trust_checkpoint)
        model.load_state_dict(state, strict=False)
        model.tie_weights()
    model.to(device).eval()
    return model, tokenizer
