"""mfti's SLURM launcher: hydra-submitit-launcher's ``SlurmLauncher`` with checks before submission and skipping.

Picked by the ``hydra/launcher=slurm_*`` presets (``_target_`` in conf/hydra/launcher/slurm_base.yaml). On top
of the plugin it

- composes every job of the sweep and runs the torch-free checks on it (languages, template, batch math, trainer
  devices/nodes vs SLURM tasks/GPUs/nodes, and every input: corpora, FLORES files, model, SPM model, see
  :mod:`mfti_lightning.tasks.inputs`) before anything is submitted; one report lists every failing job with all its
  problems;
- leaves out jobs whose ``results.json`` already says ``completed`` (re-running a finished sweep submits nothing;
  re-running after a failure submits only the jobs that did not complete, which resume from their checkpoints);
- submits jobs whose resources differ (a sweep over ``trainer=...``) as separate job arrays, each with its own
  derived ``tasks_per_node``/``gpus_per_node``/``nodes``;
- turns an ``sbatch`` rejection (unknown partition, invalid GRES, too much memory) into an error that shows
  SLURM's message and the jobs that caused it.

Requeue is owned by submitit (see :func:`mfti_lightning.train.trainer.lightning_cluster_kwargs` and the README): on USR2 submitit calls
``checkpoint()`` (inherited: resubmit the same job), requeues the array task and exits; the requeued job composes
the same config, finds the same run directory and resumes from ``checkpoints/periodic/step<N>.ckpt`` and the same W&B run.

Nothing here imports torch or Lightning at module level.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as _PluginSlurmLauncher
from mfti_lightning.core.errors import ConfigError, MftiError
from mfti_lightning.launch import sweep as sw

log = logging.getLogger(__name__)


class SlurmSubmissionError(MftiError, RuntimeError):
    """sbatch refused a job array; the message holds SLURM's words and the jobs of the array."""


class SlurmLauncher(_PluginSlurmLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Check every job (one report, nothing submitted on a problem), skip completed ones, submit the rest as one
        job array per set of SLURM resources, and wait for their results."""
        assert self.config is not None and self.hydra_context is not None
        jobs = self._checked_jobs(job_overrides, initial_job_idx)
        returns: dict[int, JobReturn] = {}
        groups: dict[str, list] = {}
        for idx, overrides, job_cfg, params, run_dir, action in jobs:
            if action == "skip":
                log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}  (completed in {run_dir}: skipped)")
                returns[idx] = JobReturn(
                    overrides=overrides, cfg=job_cfg, working_dir=str(run_dir), task_name=job_cfg.hydra.job.name,
                    status=JobStatus.COMPLETED,
                )  # fmt: skip
                returns[idx].return_value = sw.completed_objective(run_dir)
                continue
            status = sw.job_status(run_dir) if action != "reevaluate" else "completed, evaluation changed"
            groups.setdefault(json.dumps(params, sort_keys=True, default=str), []).append((idx, overrides, status))
        log.info(
            f"Sweep dir {self.config.hydra.sweep.dir}: {len(jobs)} job(s), {len(returns)} already completed, "
            f"{len(jobs) - len(returns)} to submit"
        )
        pending = [p for key, members in groups.items() for p in self._submit_array(json.loads(key), members)]
        for idx, j in pending:
            returns[idx] = j.results()[0]
        return [returns[idx] for idx, *_ in jobs]

    def __call__(self, *args, **kwargs) -> JobReturn:
        """One job on the cluster (the plugin's path); a job that raised ends the SLURM job with a non-zero status.

        Hydra's ``run_job`` turns the task's exception into a FAILED JobReturn, which submitit would pickle as a
        result and exit 0 (SLURM: COMPLETED; Hydra issue 1928). Reading ``return_value`` of a failed job raises
        its exception: submitit records it and the process exits 1 (SLURM: FAILED)."""
        ret = super().__call__(*args, **kwargs)
        if ret.status == JobStatus.FAILED:
            ret.return_value  # noqa: B018  (raises the job's exception)
        return ret

    def _checked_jobs(self, job_overrides, initial_job_idx: int) -> list[tuple]:
        """Every job composed and checked (inputs, resources, run directory); raises one report for all problems."""
        loader = self.hydra_context.config_loader
        jobs, errors = [], []
        for i, overrides in enumerate(job_overrides):
            idx = initial_job_idx + i
            job_cfg = loader.load_sweep_config(self.config, list(overrides))
            params = OmegaConf.to_container(job_cfg.hydra.launcher, resolve=True)
            params.pop("_target_", None)
            run_dir = sw.job_run_dir(job_cfg)
            action = "new"
            try:
                sw.check_job(job_cfg, params)
                action = sw.job_action(job_cfg, run_dir)
            except MftiError as e:  # every problem of every job goes into one report
                label = f"job #{idx} ({' '.join(filter_overrides(overrides)) or 'no overrides'}):"
                errors.append((label, sw.problems_of(e)))
            jobs.append((idx, list(overrides), job_cfg, params, run_dir, action))
        sweep_errors = []
        try:
            sw.check_unique_run_dirs([(idx, filter_overrides(ov), rd) for idx, ov, _, _, rd, _ in jobs])
        except ConfigError as e:
            sweep_errors.append(str(e))
        if errors or sweep_errors:
            raise ConfigError(sw.failure_report(errors, len(jobs), sweep_errors))
        return jobs

    def _submit_array(self, params: dict, members: list) -> list:
        """One job array for jobs with the same resources; ``[(job index, submitit job)]``."""
        import submitit

        executor = self._executor(submitit, params)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        job_params = []
        for idx, overrides, status in members:
            note = "" if status == "new" else f"  (was {status}: resuming)"
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}{note}")
            job_params.append((overrides, "hydra.sweep.dir", idx, f"job_id_for_{idx}", self._singleton_state()))
        try:
            submitted = executor.map_array(self, *zip(*job_params))
        except Exception as e:  # sbatch said no: show SLURM's message and the jobs
            raise SlurmSubmissionError(_submission_message(e, members, params)) from None
        ids = ", ".join(j.job_id for j in submitted)
        log.info(
            f"Submitted {len(submitted)} job(s) as SLURM job(s) {ids} "
            f"(tasks_per_node={params.get('tasks_per_node')}, nodes={params.get('nodes')}, "
            f"gpus_per_node={params.get('gpus_per_node')})"
        )
        return [(idx, j) for (idx, _, _), j in zip(members, submitted)]

    @staticmethod
    def _singleton_state():
        from hydra.core.singleton import Singleton

        return Singleton.get_state()

    def _executor(self, submitit, params: dict):
        """An executor as the plugin builds one, from one group's resolved parameters."""
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

        init = {"folder": params.pop("submitit_folder"), "slurm_max_num_timeout": params.pop("max_num_timeout")}
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in params.items()})
        return executor


def _submission_message(error: Exception, members: list, params: dict) -> str:
    text = str(error).strip()
    # submitit wraps sbatch's stderr; keep SLURM's own lines ("sbatch: error: ...") in front
    slurm_lines = [ln.strip() for ln in text.splitlines() if "sbatch:" in ln or "error" in ln.lower()]
    jobs = "\n".join(f"  job #{idx}: {' '.join(filter_overrides(ov)) or '(no overrides)'}" for idx, ov, _ in members)
    res = {
        k: params.get(k)
        for k in (
            "partition",
            "account",
            "qos",
            "constraint",
            "nodes",
            "tasks_per_node",
            "gpus_per_node",
            "gres",
            "cpus_per_task",
            "mem_gb",
            "timeout_min",
        )
        if params.get(k) is not None
    }
    return (
        "SLURM refused the job array (nothing of it was submitted):\n  "
        + ("\n  ".join(dict.fromkeys(slurm_lines)) or text)
        + f"\nrequested: {res}\njobs of this array:\n{jobs}\n"
        "Fix the partition/account/QOS in conf/local/default.yaml (cluster:), or the resources "
        "(trainer.devices, trainer.num_nodes, hydra.launcher.mem_gb, ...)."
    )


class PreflightCallback(Callback):
    """Refuses a plain ``hydra/launcher=submitit_slurm`` whose tasks/GPUs/nodes disagree with the trainer.

    The slurm_* presets use :class:`SlurmLauncher`, which checks every job of the sweep; this callback covers the
    plugin's own launcher (used directly, without the presets), where only the primary config can be checked.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        target = str(OmegaConf.select(config, "hydra.launcher._target_") or "")
        if "hydra_submitit_launcher" not in target or "Slurm" not in target:
            return
        params = OmegaConf.to_container(config.hydra.launcher, resolve=True)
        try:
            sw.check_resources(config, params)
        except ConfigError as e:
            # Hydra turns exceptions raised in callbacks into warnings; SystemExit stops the sweep before submission
            raise SystemExit(f"mfti: nothing was submitted. {e}") from None
