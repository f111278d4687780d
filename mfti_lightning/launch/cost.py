"""GPU-hour estimates without torch: training tokens and FLOPs from the model shape (``model.shape``) and the
sweep's token counts, at the measured throughput of ``mfti_lightning/assets/throughput.json`` (package data: the same
file from a checkout and from an installed wheel) where there is one, else at the assumed MFUs of
:class:`CostModel` (``mfti-plan`` prints which it used)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mfti_lightning.assets import THROUGHPUT_FILE
from mfti_lightning.core.config import world_size
from mfti_lightning.core.errors import ConfigError, MftiError

log = logging.getLogger(__name__)


@dataclass
class CostModel:
    """Assumptions behind the GPU-hour estimate (printed with it; change them on the mfti-plan command line)."""

    tokens_per_example: float = 100.0  # prompt + target tokens of one training example (FLORES-length sentences)
    tokens_per_sentence: float = 45.0  # tokens of one source sentence / one demonstration side
    gpu_tflops: float = 312.0  # peak dense bf16 TFLOP/s of one GPU (A100)
    train_mfu: float = 0.35  # model FLOPs utilisation of training
    generate_mfu: float = 0.02  # generation is memory-bound: a few % of peak
    flores_devtest: int = 1012
    flores_dev: int = 997
    # measured throughput (assets/throughput.json, written by benchmarks/gpu_all.py on a GPU): replaces the
    # assumed MFUs above for the models and engines it has numbers for (see :func:`rates`)
    measured: dict = field(default_factory=dict)
    measured_path: str = ""


def load_throughput(path: str | Path | None = None) -> tuple[dict, str]:
    """The measured-throughput JSON and its path (``path``, else the package's :data:`THROUGHPUT_FILE`), or
    ``({}, "")`` when there is none. A file that does not parse is an error naming it."""
    import json

    p = Path(path) if path else THROUGHPUT_FILE
    if not p.is_file():
        if path:
            raise ConfigError(f"--throughput {path}: no such file (or use --throughput none for the assumed MFUs)")
        return {}, ""
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ConfigError(f"{p}: not valid JSON ({e}); rerun benchmarks/gpu_all.py or remove the file") from None
    return data, str(p)


def rates(job_cfg: DictConfig, cost: CostModel) -> dict:
    """FLOP/s of one GPU for training and for generation, and where each comes from: the measured MFU of this
    model (``model.name``) and this engine (``eval.engine``; ``batch_tokens``: the job's setting, else any
    measured one) on the measured card, else the assumed MFUs of :class:`CostModel`."""
    name = str(OmegaConf.select(job_cfg, "model.name") or "")
    engine = str(OmegaConf.select(job_cfg, "eval.engine") or "hf")
    budget = str(OmegaConf.select(job_cfg, "eval.batch_tokens") or "auto")
    m = cost.measured or {}
    peak = float(m.get("peak_tflops") or cost.gpu_tflops) * 1e12
    where = f"measured on {m.get('device', '?')} ({cost.measured_path})"
    out = {
        "train_flops_s": cost.gpu_tflops * 1e12 * cost.train_mfu,
        "train_source": f"assumed {cost.train_mfu:.0%} MFU",
    }
    train = (m.get("train") or {}).get(name)
    if train and train.get("mfu"):
        out.update(train_flops_s=peak * float(train["mfu"]), train_source=f"{float(train['mfu']):.1%} MFU {where}")
    out.update(
        gen_flops_s=cost.gpu_tflops * 1e12 * cost.generate_mfu, gen_source=f"assumed {cost.generate_mfu:.0%} MFU"
    )
    runs = ((m.get("generate") or {}).get(name) or {}).get(engine) or {}
    gen = runs.get(budget) or (next(iter(runs.values())) if runs else None)
    if gen and gen.get("mfu"):
        out.update(gen_flops_s=peak * float(gen["mfu"]), gen_source=f"{float(gen['mfu']):.1%} MFU ({engine}) {where}")
    return out


def _train_steps(job_cfg: DictConfig, train_dirs: list) -> int:
    """Optimizer steps of the job: ``optim.max_steps``, or by epochs the sampled pairs over the global batch (an
    estimate: filtering and max_length drop some); 0 without training examples."""
    if not job_cfg.num_examples.n:
        return 0
    epochs = job_cfg.optim.max_epochs
    per_epoch = len(train_dirs) * job_cfg.num_examples.n / job_cfg.optim.global_batch_size
    return job_cfg.optim.max_steps if epochs is None else max(1, math.ceil(float(epochs) * per_epoch))


def _generated_tokens(job_cfg: DictConfig, cost: CostModel, steps: int, train_dirs: list, eval_dirs: list) -> float:
    """Prompt + generated tokens of the final test and of every validation (each ``val_every_n_steps``, plus one
    before training when ``score_before_training``; none without training)."""
    lp = job_cfg.lang_pairs
    test_size = lp.test_size or cost.flores_devtest
    val_size = lp.val_size or cost.flores_dev
    n_val = (
        (steps // max(job_cfg.eval.val_every_n_steps, 1)) + bool(job_cfg.eval.score_before_training)
        if job_cfg.num_examples.n
        else 0
    )
    prompt = (2 * job_cfg.shots.k + 1) * cost.tokens_per_sentence
    new = min(job_cfg.eval.max_new_tokens, 2 * cost.tokens_per_sentence)
    test_tokens = len(eval_dirs) * test_size * (prompt + job_cfg.eval.num_beams * new)
    val_tokens = n_val * len(train_dirs or eval_dirs) * val_size * (prompt + job_cfg.eval.val_num_beams * new)
    return test_tokens + val_tokens


def estimate(job_cfg: DictConfig, cost: CostModel | None = None) -> dict:
    """Training tokens, FLOPs and GPU-hours of one job (training + validation + the final test)."""
    from mfti_lightning.core.directions import eval_directions, train_directions
    from mfti_lightning.train.throughput import matmul_params  # torch-free

    cost = cost or CostModel()
    n_params = matmul_params(job_cfg.model.shape)
    train_dirs = train_directions(job_cfg.lang_pairs) if job_cfg.num_examples.n else []
    eval_dirs = eval_directions(job_cfg.lang_pairs)
    steps = _train_steps(job_cfg, train_dirs)
    train_tokens = steps * job_cfg.optim.global_batch_size * cost.tokens_per_example
    train_flops = 6 * n_params * train_tokens
    gen_flops = 2 * n_params * _generated_tokens(job_cfg, cost, steps, train_dirs, eval_dirs)

    r = rates(job_cfg, cost)
    gpu_s = train_flops / r["train_flops_s"] + gen_flops / r["gen_flops_s"]
    world = world_size(job_cfg.trainer)
    return {
        "params": n_params,
        "train_directions": len(train_dirs),
        "eval_directions": len(eval_dirs),
        "train_tokens": train_tokens,
        "train_flops": train_flops,
        "gen_flops": gen_flops,
        "gpu_hours": gpu_s / 3600,
        "wall_hours": gpu_s / 3600 / max(world, 1),
        "world_size": world,
        "train_rate": r["train_source"],
        "generate_rate": r["gen_source"],
    }


def gpu_hours_estimates(job_cfgs: dict) -> dict:
    """``{job number: GPU-hours}`` of composed jobs, as ``mfti plan`` estimates them by default (measured throughput
    where assets/throughput.json has it): what the launcher records in the manifest. An estimate is advice: one
    that fails is None, with a warning, and never stops a submission."""
    try:
        measured, path = load_throughput()
    except MftiError as e:
        log.warning(f"GPU-hour estimates without measured throughput: {e}")
        measured, path = {}, ""
    cost = CostModel(measured=measured, measured_path=path)
    out = {}
    for num, cfg in job_cfgs.items():
        try:
            out[num] = float(estimate(cfg, cost)["gpu_hours"])
        except Exception as e:  # the job was checked before; a cost-model gap must not keep it from running
            log.warning(f"job #{num}: no GPU-hour estimate ({type(e).__name__}: {e})")
            out[num] = None
    return out
