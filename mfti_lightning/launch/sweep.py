"""Sweeps without torch: expand a sweep into jobs, find their run directories and status, check each job before
anything is submitted, and estimate GPU-hours from the model shape and token counts.

Used by ``mfti-plan`` (list a sweep's jobs on a login node) and by the SLURM launcher
(:mod:`mfti_lightning.launch.launcher`), which runs the same checks on every job before submitting and leaves out jobs
whose ``results.json`` already says ``completed``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mfti_lightning.core import results as res
from mfti_lightning.core.config import num_devices, world_size
from mfti_lightning.core.errors import ConfigError, MftiError
from mfti_lightning.core.identity import decide_reuse


# ---------------------------------------------------------------------------------------------------------------
# job directories and status
# ---------------------------------------------------------------------------------------------------------------
def job_run_dir(job_cfg: DictConfig) -> Path:
    """The run directory a multirun job will use: ``hydra.sweep.dir/hydra.sweep.subdir`` (deterministic)."""
    sweep_dir = OmegaConf.select(job_cfg, "hydra.sweep.dir")
    subdir = OmegaConf.select(job_cfg, "hydra.sweep.subdir")
    return Path(str(sweep_dir)) / str(subdir)


def job_action(job_cfg: DictConfig, run_dir: Path) -> str:
    """What the job will do with its run directory (:func:`identity.decide_reuse`): ``new``, ``run`` (start or
    resume an unfinished run), ``skip`` (completed, same experiment) or ``reevaluate`` (completed, evaluation
    settings changed). Raises ConfigError when the directory holds another experiment."""
    return decide_reuse(run_dir, job_cfg).action


def job_status(run_dir: Path) -> str:
    """``completed`` / ``failed`` / ``running`` / ``interrupted`` from results.json, or ``new``."""
    try:
        existing = res.read_results(run_dir)
    except ValueError:  # a torn results.json (cannot happen with the atomic write, but never trust it)
        return "unreadable"
    if not existing:
        return "new"
    return str(existing.get("status", "unknown"))


def completed_objective(run_dir: Path):
    """The value ``mfti-train`` returned for a completed run (what a sweeper sees when the job is skipped)."""
    existing = res.read_results(run_dir) or {}
    return res.objective(existing.get("metrics", {}))


# ---------------------------------------------------------------------------------------------------------------
# checks that need nothing heavy (run by the launcher on every job before submitting)
# ---------------------------------------------------------------------------------------------------------------
def _gres_gpus(gres) -> int | None:
    if not gres:
        return None
    m = re.search(r"gpu(?::[^:,]+)?:(\d+)", str(gres))
    return int(m.group(1)) if m else None


def check_resources(job_cfg: DictConfig, launcher: dict) -> None:
    """SLURM tasks/GPUs/nodes agree with the trainer (Lightning freezes silently on a mismatch)."""
    tr = job_cfg.trainer
    devices, nodes = num_devices(tr), int(tr.get("num_nodes", 1))
    tasks = int(launcher.get("tasks_per_node") or 1)
    snodes = int(launcher.get("nodes") or 1)
    gpus = launcher.get("gpus_per_node")
    if gpus is None:
        gpus = launcher.get("gpus_per_task")
        gpus = gpus * tasks if gpus is not None else _gres_gpus(launcher.get("gres"))
    problems = []
    if tasks != devices:
        problems.append(f"hydra.launcher.tasks_per_node={tasks} but trainer.devices={devices}")
    if snodes != nodes:
        problems.append(f"hydra.launcher.nodes={snodes} but trainer.num_nodes={nodes}")
    accel = str(tr.get("accelerator", "auto"))
    if accel in ("gpu", "cuda") and gpus is None:
        problems.append(
            f"trainer.accelerator={accel} but the job asks SLURM for no GPU (hydra.launcher.gpus_per_node is null)"
        )
    elif gpus is not None and int(gpus) not in (0, devices) and accel in ("gpu", "cuda", "auto"):
        problems.append(f"hydra.launcher.gpus_per_node={gpus} but trainer.devices={devices}")
    if problems:
        raise ConfigError(
            "SLURM resources do not match the trainer: " + "; ".join(problems) + ". Lightning would hang waiting for "
            "ranks that never start. The hydra/launcher=slurm_* presets derive tasks_per_node, gpus_per_node and "
            "nodes from trainer.devices and trainer.num_nodes: set those instead of hydra.launcher.* "
            "(e.g. trainer.devices=4 trainer.num_nodes=2)."
        )


class JobCheckError(ConfigError):
    """Every problem of one job found before submission (``problems``: missing inputs, SLURM resources)."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def problems_of(error: Exception) -> list[str]:
    """The problems an error stands for: its ``problems`` list (InputsError, JobCheckError), else its message."""
    return list(getattr(error, "problems", None) or [str(error)])


def check_job(job_cfg: DictConfig, launcher: dict | None = None) -> None:
    """The checks every job runs before anything is submitted (and again in the job, before loading a model).

    :func:`pipeline.check_before_loading` ends with :func:`inputs.require_inputs`, which checks every input of the
    job (corpora, FLORES files, model, SPM model) in the environment the job will run with (for SLURM launchers
    with the exports of ``hydra.launcher.setup``, e.g. HF_HUB_OFFLINE=1). Raises :class:`JobCheckError` listing
    all missing inputs and a resources mismatch together; a config that cannot work at all raises on its own."""
    from mfti_lightning.core.errors import InputsError
    from mfti_lightning.tasks.checks import check_before_loading

    problems = []
    if launcher is not None:
        try:
            check_resources(job_cfg, launcher)
        except ConfigError as e:
            problems.append(str(e))
    try:
        check_before_loading(job_cfg)
    except InputsError as e:
        problems += e.problems
    if problems:
        raise JobCheckError(problems)


def failure_report(failures: list[tuple[str, list[str]]], n_jobs: int, extra: list[str] = ()) -> str:
    """One report for a whole sweep: every failing job with all of its problems (jobs with the same problems are
    listed together, over one copy of the list), then problems of the sweep as a whole (``extra``)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for label, problems in failures:
        groups.setdefault(tuple(problems), []).append(label)
    lines = [f"{len(failures)} of {n_jobs} job(s) of this sweep would fail; nothing was submitted:"]
    for problems, labels in groups.items():
        lines += [f"  {label}" for label in labels]
        lines.append(
            f"    {'these ' + str(len(labels)) + ' jobs: ' if len(labels) > 1 else ''}{len(problems)} problem(s):"
        )
        lines += [f"    - {p}" for p in problems]
    lines += [f"  {e}" for e in extra]
    return "\n".join(lines)


def check_unique_run_dirs(jobs: list[tuple[int, list[str], Path]]) -> None:
    """Two jobs of one sweep must not share a run directory (they would resume each other's checkpoints)."""
    seen: dict[Path, tuple[int, list[str]]] = {}
    for num, overrides, run_dir in jobs:
        if run_dir in seen:
            other = seen[run_dir]
            raise ConfigError(
                f"jobs #{other[0]} ({' '.join(other[1])}) and #{num} ({' '.join(overrides)}) would share the run "
                f"directory {run_dir}: run_slug names the experiment (model, lang_pairs, template, shots, "
                "num_examples, seed and a hash of everything else that determines the trained model), not the "
                "hardware (trainer) nor evaluation-only settings. Run such jobs as separate sweeps (another "
                "sweep_name each), or add the swept key to run_slug (e.g. run_slug='${model.name}_..._${trainer.devices}')."
            )
        seen[run_dir] = (num, overrides)


# ---------------------------------------------------------------------------------------------------------------
# cost estimate
# ---------------------------------------------------------------------------------------------------------------
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
    # measured throughput (benchmarks/throughput.json, written by benchmarks/gpu_all.py on a GPU): replaces the
    # assumed MFUs above for the models and engines it has numbers for (see :func:`rates`)
    measured: dict = field(default_factory=dict)
    measured_path: str = ""


THROUGHPUT_FILE = "benchmarks/throughput.json"  # relative to the repository root (conf/..)


def load_throughput(path: str | Path | None = None) -> tuple[dict, str]:
    """The measured-throughput JSON and its path (``path``, else :data:`THROUGHPUT_FILE` of the repository), or
    ``({}, "")`` when there is none. A file that does not parse is an error naming it."""
    import json

    from mfti_lightning.core.config import conf_dir

    p = Path(path) if path else conf_dir().parent / THROUGHPUT_FILE
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


def estimate(job_cfg: DictConfig, cost: CostModel | None = None) -> dict:
    """Training tokens, FLOPs and GPU-hours of one job (training + validation + the final test)."""
    from mfti_lightning.core.directions import eval_directions, train_directions
    from mfti_lightning.train.throughput import matmul_params  # torch-free

    cost = cost or CostModel()

    n_params = matmul_params(job_cfg.model.shape)
    n_train = int(job_cfg.num_examples.n)
    lp = job_cfg.lang_pairs
    train_dirs = train_directions(lp) if n_train else []
    eval_dirs = eval_directions(lp)
    steps = 0
    if n_train:  # by epochs: the sampled pairs over the global batch (an estimate: filtering and max_length drop some)
        epochs = job_cfg.optim.get("max_epochs")
        per_epoch = len(train_dirs) * n_train / int(job_cfg.optim.global_batch_size)
        steps = int(job_cfg.optim.max_steps) if epochs is None else max(1, math.ceil(float(epochs) * per_epoch))
    train_tokens = steps * int(job_cfg.optim.global_batch_size) * cost.tokens_per_example
    train_flops = 6 * n_params * train_tokens

    shots = int(job_cfg.shots.k)
    test_size = lp.get("test_size") or cost.flores_devtest
    val_size = lp.get("val_size") or cost.flores_dev
    n_val = (
        (steps // max(int(job_cfg.eval.val_every_n_steps), 1)) + bool(job_cfg.eval.score_before_training)
        if n_train
        else 0
    )
    prompt = (2 * shots + 1) * cost.tokens_per_sentence
    new = min(int(job_cfg.eval.max_new_tokens), 2 * cost.tokens_per_sentence)
    test_tokens = len(eval_dirs) * test_size * (prompt + int(job_cfg.eval.num_beams) * new)
    val_tokens = n_val * len(train_dirs or eval_dirs) * val_size * (prompt + int(job_cfg.eval.val_num_beams) * new)
    gen_flops = 2 * n_params * (test_tokens + val_tokens)

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


# ---------------------------------------------------------------------------------------------------------------
# expanding a sweep
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Job:
    num: int
    overrides: list[str]
    cfg: DictConfig
    run_dir: Path
    status: str
    estimate: dict = field(default_factory=dict)


def split_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """(task overrides, hydra overrides), as Hydra splits a command line."""
    hydra_ov = [o for o in overrides if re.match(r"^[+~]*hydra[./]", o)]
    return [o for o in overrides if o not in hydra_ov], hydra_ov


def expand(sweep_params: dict, task_overrides: list[str]) -> list[list[str]]:
    """The jobs of a basic-sweeper multirun: ``hydra.sweeper.params`` plus the command line (sweep syntax ``a=x,y``,
    ``range``, ``choice``), cartesian product in the basic sweeper's order; the one sweep expander (mfti-plan,
    mfti-prefetch). Built on Hydra's public override parser."""
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = [f"{k}={v}" for k, v in (sweep_params or {}).items()] + list(task_overrides)
    axes = []
    for o in OverridesParser.create().parse_overrides(args):
        key = o.get_key_element()
        values = o.sweep_string_iterator() if o.is_sweep_override() else [o.get_value_element_as_str()]
        axes.append([f"{key}={v}" for v in values])
    return [list(job) for job in itertools.product(*axes)] if axes else [[]]


def resolve_sweep_file(name: str) -> tuple[Path, str] | None:
    """``sweeps/<name>.yaml`` (a path, or a name looked up in ./sweeps and next to the package)."""
    p = Path(name)
    cands = [p] if p.suffix in (".yaml", ".yml") else []
    from mfti_lightning.core.config import conf_dir

    for root in (Path.cwd() / "sweeps", conf_dir().parent / "sweeps", conf_dir() / "sweeps"):
        cands.append(root / f"{name}.yaml")
    for c in cands:
        if c.is_file():
            return c.resolve().parent, c.stem
    return None


def compose_job(config_dir: Path, config_name: str, overrides: list[str]) -> DictConfig:
    """The config of one job, composed the way ``mfti-train [--config-dir sweeps --config-name X] ...`` would."""
    from mfti_lightning.core.compose import compose

    return compose(config_name, overrides, config_dir)


def plan(sweep: str | None, overrides: list[str], cost: CostModel | None = None, check: bool = True) -> list[Job]:
    """Every job of a sweep file (or of ``mfti-train -m <overrides>``), composed and checked, nothing launched."""
    from mfti_lightning.core.config import conf_dir

    cost = cost or CostModel()

    if sweep:
        found = resolve_sweep_file(sweep)
        if not found:
            raise ConfigError(
                f"sweep {sweep!r} not found: give a path to a .yaml file or the name of a file in "
                "sweeps/ (see sweeps/README.md)."
            )
        config_dir, config_name = found
    else:
        config_dir, config_name = conf_dir(), "train"
    task_ov, hydra_ov = split_overrides(overrides)
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(task_ov)
    parser_free = [o for o, p in zip(task_ov, parsed) if not p.is_sweep_override()]
    base = compose_job(config_dir, config_name, hydra_ov + parser_free)
    # resolve ${now:...} (the default sweep_name) once; every job reuses the value, as Hydra's own multirun does
    # (its config loader copies the primary config's resolver cache into each job's config)
    OmegaConf.select(base, "hydra.sweep.dir")
    node = base.hydra.sweeper.get("params")
    params = OmegaConf.to_container(node, resolve=False) if node is not None else {}
    jobs, failures = [], []
    for num, job_ov in enumerate(expand(params, task_ov)):
        cfg = compose_job(config_dir, config_name, hydra_ov + job_ov)
        OmegaConf.copy_cache(from_config=base, to_config=cfg)
        launcher = _launcher_params(cfg)
        run_dir = job_run_dir(cfg)
        status = job_status(run_dir)
        try:
            if check:
                check_job(cfg, launcher if _is_slurm(cfg) else None)
            if status != "new" and job_action(cfg, run_dir) == "reevaluate":  # also refuses another experiment's dir
                status = "completed, evaluation changed: re-evaluate"
        except MftiError as e:  # every job is checked: one report lists them all, as the launcher's does
            failures.append((f"job #{num} ({' '.join(job_ov) or 'no overrides'}):", problems_of(e)))
            continue
        jobs.append(Job(num, job_ov, cfg, run_dir, status, estimate(cfg, cost)))
    if failures:
        raise ConfigError(failure_report(failures, len(failures) + len(jobs)))
    check_unique_run_dirs([(j.num, j.overrides, j.run_dir) for j in jobs])
    return jobs


def _is_slurm(cfg: DictConfig) -> bool:
    return "slurm" in str(OmegaConf.select(cfg, "hydra.launcher._target_") or "").lower()


def _launcher_params(cfg: DictConfig) -> dict:
    node = OmegaConf.select(cfg, "hydra.launcher")
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}
