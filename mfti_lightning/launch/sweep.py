"""Sweeps without torch: expand a sweep into jobs exactly as ``mfti-train -m`` does (Hydra's own sweeper and config
loader), find their run directories and status, and check each job before anything is submitted.

Used by ``mfti-plan`` (list a sweep's jobs with their cost on a login node, :mod:`mfti_lightning.launch.cost`),
``mfti-prefetch`` and the SLURM launcher (:mod:`mfti_lightning.launch.launcher`), which composes and checks every
job with :func:`inspect_jobs` before submitting and leaves out jobs whose ``results.json`` already says ``completed``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mfti_lightning.core import results as res
from mfti_lightning.core.config import num_devices
from mfti_lightning.core.errors import ConfigError, MftiError
from mfti_lightning.core.identity import decide_reuse
from mfti_lightning.core.results_schema import RunResults


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
        existing = RunResults.read(run_dir)
    except ValueError:  # a torn results.json (cannot happen with the atomic write, but never trust it)
        return "unreadable"
    if existing is None:
        return "new"
    return existing.status if existing.status is not None else "unknown"


def completed_objective(run_dir: Path):
    """The value ``mfti-train`` returned for a completed run (what a sweeper sees when the job is skipped)."""
    existing = RunResults.read(run_dir) or RunResults()
    return res.objective(existing.metrics)


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

    :func:`~mfti_lightning.tasks.checks.check_before_loading` ends with
    :func:`~mfti_lightning.tasks.inputs.require_inputs`, which checks every input of the job (corpora, FLORES files,
    model, SPM model) in the environment the job will run with (for SLURM launchers with the exports of
    ``hydra.launcher.setup``, e.g. HF_HUB_OFFLINE=1). Raises :class:`JobCheckError` listing
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


def failure_report(
    failures: list[tuple[str, list[str]]], n_jobs: int, extra: list[str] = (), outcome: str = "nothing was submitted"
) -> str:
    """One report for a whole sweep: every failing job with all of its problems (jobs with the same problems are
    listed together, over one copy of the list), then problems of the sweep as a whole (``extra``)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for label, problems in failures:
        groups.setdefault(tuple(problems), []).append(label)
    lines = [f"{len(failures)} of {n_jobs} job(s) of this sweep would fail; {outcome}:"]
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
# expanding a sweep: Hydra's own sweeper and config loader, as `mfti-train -m` runs them
# ---------------------------------------------------------------------------------------------------------------
def job_overrides(loader, primary: DictConfig) -> list[list[str]]:
    """The overrides of every job of the multirun whose primary config is ``primary``, in Hydra's order: Hydra's
    configured sweeper (the basic sweeper), instantiated by Hydra, expands ``hydra.sweeper.params`` followed by the
    command line's task overrides, and a key given on the command line replaces the same key of the params.

    This is ``BasicSweeper.sweep()`` up to the point where it would write ``multirun.yaml`` and launch. It relies
    on two names Hydra does not document: ``BasicSweeper._parse_config`` (the params as ``key=value`` strings) and
    the static ``BasicSweeper.split_arguments`` (tests/unit/launch/test_plan_hydra.py compares the result with the jobs
    ``mfti-train -m`` hands its launcher, for every sweep file)."""
    from hydra._internal.callbacks import Callbacks
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext

    context = HydraContext(config_loader=loader, callbacks=Callbacks())
    sweeper = Plugins.instance().instantiate_sweeper(config=primary, hydra_context=context, task_function=None)
    if not isinstance(sweeper, BasicSweeper):
        raise ConfigError(
            f"hydra.sweeper is {type(sweeper).__name__}: mfti-plan and mfti-prefetch expand sweeps of Hydra's basic "
            "sweeper only (the jobs of other sweepers depend on the results of earlier ones)."
        )
    arguments = sweeper._parse_config() + list(OmegaConf.to_container(primary.hydra.overrides.task))
    parsed = OverridesParser.create(config_loader=loader).parse_overrides(arguments)
    return [list(job) for batch in sweeper.split_arguments(parsed, sweeper.max_batch_size) for job in batch]


def multirun_config(loader, config_name: str, overrides: list[str]) -> DictConfig:
    """The primary config of ``mfti-train -m <overrides>`` (Hydra's multirun mode: sweep syntax allowed), with
    ``${now:...}`` (the default sweep_name) resolved once: each job's config copies it, as in Hydra's multirun."""
    from hydra.types import RunMode

    primary = loader.load_configuration(config_name=config_name, overrides=list(overrides), run_mode=RunMode.MULTIRUN)
    OmegaConf.select(primary, "hydra.sweep.dir")  # BasicSweeper.sweep() resolves it before launching, too
    return primary


@dataclass
class Job:
    """One job of a sweep as the launcher sees it before submitting."""

    num: int
    overrides: list[str]
    cfg: DictConfig
    run_dir: Path
    status: str  # results.json's status, or new
    launcher: dict = field(default_factory=dict)  # hydra.launcher of this job, resolved
    action: str = "new"  # identity.decide_reuse: new / run / skip / reevaluate
    problems: list[str] = field(default_factory=list)  # why it would fail (nothing is submitted while one has any)
    estimate: dict = field(default_factory=dict)
    active: str | None = None  # mfti plan: "running (job 1234_5)" when pending or running (not submitted again)

    @property
    def label(self) -> str:
        from hydra.core.utils import filter_overrides

        return f"job #{self.num} ({' '.join(filter_overrides(self.overrides)) or 'no overrides'})"


def inspect_jobs(loader, primary: DictConfig, overrides: list[list[str]], first: int = 0, check=True) -> list[Job]:
    """Every job composed as Hydra's launchers compose it (``loader.load_sweep_config``), with its run directory,
    status, reuse action and (``check``) every problem :func:`check_job` finds; the SLURM launcher and mfti-plan."""
    jobs = []
    for num, job_ov in enumerate(overrides, start=first):
        cfg = loader.load_sweep_config(primary, list(job_ov))
        run_dir = job_run_dir(cfg)
        job = Job(num, list(job_ov), cfg, run_dir, job_status(run_dir), launcher_params(cfg))
        try:
            if check:
                check_job(cfg, job.launcher if is_slurm(cfg) else None)
            job.action = job_action(cfg, run_dir)  # also refuses a directory of another experiment
        except MftiError as e:  # every job is checked: one report lists them all
            job.problems = problems_of(e)
        jobs.append(job)
    return jobs


def refuse_failing(jobs: list[Job]) -> None:
    """One ConfigError listing every job with problems and two jobs sharing a run directory, if any."""
    sweep_errors = []
    try:
        check_unique_run_dirs([(j.num, j.overrides, j.run_dir) for j in jobs])
    except ConfigError as e:
        sweep_errors.append(str(e))
    failures = [(f"{j.label}:", j.problems) for j in jobs if j.problems]
    if failures or sweep_errors:
        raise ConfigError(failure_report(failures, len(jobs), sweep_errors))


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


def sweep_source(sweep: str | None, default_config: str = "train") -> tuple[Path, str]:
    """``(config dir, config name)`` of a sweep file (None: conf/<default_config>.yaml)."""
    from mfti_lightning.core.config import conf_dir

    if not sweep:
        return conf_dir(), default_config
    found = resolve_sweep_file(sweep)
    if not found:
        raise ConfigError(
            f"sweep {sweep!r} not found: give a path to a .yaml file or the name of a file in sweeps/ "
            "(see sweeps/README.md)."
        )
    return found


def compose_job(config_dir: Path, config_name: str, overrides: list[str]) -> DictConfig:
    """The config of one job, composed the way ``mfti-train [--config-dir sweeps --config-name X] ...`` would."""
    from mfti_lightning.core.compose import compose

    return compose(config_name, overrides, config_dir)


def plan(sweep: str | None, overrides: list[str], cost=None, check: bool = True) -> list[Job]:
    """Every job of a sweep file (or of ``mfti-train -m <overrides>``), expanded by Hydra's sweeper, composed,
    checked and costed, nothing launched. Jobs with problems are returned with them (:func:`refuse_failing` says
    what the launcher would say); two jobs sharing a run directory raise."""
    from mfti_lightning.core.compose import config_loader, search_path_overrides
    from mfti_lightning.launch.cost import CostModel, estimate

    config_dir, config_name = sweep_source(sweep)
    with config_loader(config_dir) as loader:
        primary = multirun_config(loader, config_name, search_path_overrides(config_dir) + list(overrides))
        jobs = inspect_jobs(loader, primary, job_overrides(loader, primary), check=check)
    check_unique_run_dirs([(j.num, j.overrides, j.run_dir) for j in jobs])
    for j in jobs:
        j.estimate = estimate(j.cfg, cost or CostModel())
    mark_active(jobs, Path(str(OmegaConf.select(primary, "hydra.sweep.dir"))))
    return jobs


def mark_active(jobs: list[Job], sweep_dir: Path) -> None:
    """``job.active`` for the jobs that are pending or running, as the launcher decides it (:func:`status.activity`,
    which the launcher would not submit again); SLURM not answering marks nothing here."""
    from mfti_lightning.launch.status import activity

    found = activity(sweep_dir, [j.run_dir for j in jobs if j.action != "skip"], strict=False)
    for j in jobs:
        if j.run_dir in found:
            j.active = found[j.run_dir].busy


def is_slurm(cfg: DictConfig) -> bool:
    return "slurm" in str(OmegaConf.select(cfg, "hydra.launcher._target_") or "").lower()


def launcher_params(cfg: DictConfig) -> dict:
    """The job's ``hydra.launcher``, resolved against the job's own config (tasks and GPUs follow its trainer)."""
    node = OmegaConf.select(cfg, "hydra.launcher")
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}
