"""mfti's SLURM launcher: hydra-submitit-launcher's ``SlurmLauncher`` with checks before submission, skipping, one job
array per set of resources, a submission manifest and, by default, no waiting.

Picked by the ``hydra/launcher=slurm_*`` presets (schema :class:`MftiSlurmQueueConf`: the plugin's ``SlurmQueueConf``
plus ``wait``). :meth:`SlurmLauncher.launch`

1. composes every job as Hydra's launchers do and checks it (:func:`mfti_lightning.launch.sweep.inspect_jobs`:
   languages, template, batch math, trainer devices/nodes vs SLURM tasks/GPUs/nodes, every input the job reads, a
   run directory of another experiment, two jobs sharing a run directory); one report lists every failing job with
   all its problems, and then nothing is submitted;
2. leaves out the jobs claimed by :attr:`SlurmLauncher.skip_filters`: jobs whose ``results.json`` says
   ``completed`` (:func:`~mfti_lightning.launch.skips.skip_completed`), and jobs already pending or running
   (:func:`~mfti_lightning.launch.skips.skip_active`: the manifest's newest submission of the run directory that
   SLURM has pending or running, or a live lease of the run directory), so that re-running a sweep command never
   submits a job twice;
3. submits the rest as one job array per set of SLURM resources (a sweep over ``trainer=...`` gets one array per
   trainer, each with its own derived ``tasks_per_node``/``gpus_per_node``/``nodes``), every array before waiting
   for any, through the plugin's own submission steps (:meth:`SlurmLauncher.submit_array`), and appends every
   submitted job to ``<sweep dir>/submissions.jsonl`` (:mod:`mfti_lightning.launch.manifest`), with its
   ``mfti plan`` GPU-hour estimate (what ``mfti status`` shows the GPU-hours used against). An ``sbatch``
   rejection (unknown partition, invalid GRES, too much memory) shows SLURM's message and the jobs of the array;
4. ``hydra.launcher.wait=false`` (the default): logs the job ids and how to follow them, and returns. Nothing on the
   submitting machine has to stay alive: each job re-composes its own config, requeues and resumes on its own.
   ``wait=true``: waits for every job, then lists the failed ones with their log files and fails (exit 1).

Inherited from the plugin unchanged: ``__init__`` (the launcher parameters), ``setup``, ``__call__`` (what runs in
the job: the job's config composed again with Hydra's config loader, run by Hydra's ``run_job``) and ``checkpoint``
(requeue). Requeue is owned by submitit (see :func:`mfti_lightning.train.trainer.lightning_cluster_kwargs` and the
README): on USR2 submitit calls ``checkpoint()`` (resubmit the same job), requeues the array task and exits; the
requeued job composes the same config, finds the same run directory and resumes from
``checkpoints/periodic/step<N>.ckpt`` and the same W&B run.

Nothing here imports torch or Lightning.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as _PluginSlurmLauncher
from mfti_lightning.core.errors import ConfigError, MftiError, exit_for
from mfti_lightning.core.results import git_state
from mfti_lightning.launch import cost, manifest
from mfti_lightning.launch import sweep as sw
from mfti_lightning.launch.skips import Skip, skip_active, skip_completed

log = logging.getLogger(__name__)


@dataclass
class MftiSlurmQueueConf(SlurmQueueConf):
    """The slurm_* presets' schema: every setting of the plugin's ``SlurmQueueConf``, mfti's launcher, ``wait``."""

    _target_: str = "hydra_plugins.mfti_lightning_launcher.SlurmLauncher"
    # false: submit, print the job ids and return (nothing has to stay alive on the login node);
    # true: wait for every job, then list the failed ones with their log files (exit 1 if any failed)
    wait: bool = False


# settings of mfti's launcher that are not submitit's (never handed to the executor)
OWN_KEYS = {"_target_"} | (
    {f.name for f in dataclasses.fields(MftiSlurmQueueConf)} - {f.name for f in dataclasses.fields(SlurmQueueConf)}
)


def register_schema() -> None:
    """``hydra/launcher=mfti_slurm`` in Hydra's ConfigStore (the defaults of conf/hydra/launcher/slurm_base.yaml)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(
        group="hydra/launcher", name="mfti_slurm", node=MftiSlurmQueueConf, provider="mfti_lightning"
    )


class SlurmSubmissionError(MftiError, RuntimeError):
    """sbatch refused a job array; the message holds SLURM's words and the jobs of the array."""


class SweepFailedError(MftiError, RuntimeError):
    """``wait=true``: some jobs failed; the message lists them with their log files."""


@dataclass
class Submitted:
    """A job handed to SLURM: the checked job, submitit's job and its manifest line."""

    job: sw.Job
    slurm: Any  # submitit.Job
    record: manifest.Submission


class SlurmLauncher(_PluginSlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher that checks, skips, records and (``wait=false``) does not wait: see
    the module's docstring."""

    # each: (checked jobs, sweep dir) -> {job num: Skip}; the first filter that claims a job decides
    skip_filters: tuple = (skip_completed, skip_active)

    def __init__(self, wait: bool = False, **params: Any) -> None:
        super().__init__(**params)
        self.wait = bool(wait)

    @property
    def sweep_dir(self) -> Path:
        return Path(str(self.config.hydra.sweep.dir))

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Check every job (one report, nothing submitted on a problem), leave out the skipped ones, submit the rest
        as one job array per set of SLURM resources, record them, then return (or wait, ``wait=true``)."""
        try:
            return self._launch(job_overrides, initial_job_idx)
        except MftiError as e:  # Hydra prints a launcher's exception under a traceback; SystemExit is one message
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            raise exit_for(e) from None

    def _launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and self.hydra_context is not None
        self._check_sweeper()
        loader = self.hydra_context.config_loader
        jobs = sw.inspect_jobs(loader, self.config, [list(o) for o in job_overrides], initial_job_idx)
        sw.refuse_failing(jobs)
        skips = self._skips(jobs)
        todo = [j for j in jobs if j.num not in skips]
        by_num = {j.num: j for j in jobs}
        returns = {num: self._job_return(by_num[num], s.return_value) for num, s in skips.items()}
        submitted = self._submit_all(todo)
        if self.wait:
            returns.update(self._wait_for(submitted))
        else:
            self._log_how_to_follow(submitted)
            # Hydra's sweeper reads each JobReturn's value; a submitted job's value is its manifest record
            returns.update({s.job.num: self._job_return(s.job, s.record) for s in submitted})
        return [returns[j.num] for j in jobs]

    def __call__(self, *args, **kwargs) -> JobReturn:
        """One job on the cluster (the plugin's path); a job that raised ends the SLURM job with a non-zero status.

        Hydra's ``run_job`` turns the task's exception into a FAILED JobReturn, which submitit would pickle as a
        result and exit 0 (SLURM: COMPLETED; Hydra issue 1928). Reading ``return_value`` of a failed job raises
        its exception: submitit records it and the process exits 1 (SLURM: FAILED)."""
        ret = super().__call__(*args, **kwargs)
        if ret.status == JobStatus.FAILED:
            ret.return_value  # noqa: B018  (raises the job's exception)
        return ret

    def _check_sweeper(self) -> None:
        target = str(OmegaConf.select(self.config, "hydra.sweeper._target_") or "")
        if not self.wait and not target.endswith(".BasicSweeper"):
            raise ConfigError(
                f"hydra.sweeper is {target}: a sweeper that picks jobs from the results of earlier ones needs them, "
                "and hydra.launcher.wait=false returns once the jobs are submitted. Add hydra.launcher.wait=true."
            )

    def _skips(self, jobs: list[sw.Job]) -> dict[int, Skip]:
        """The jobs :attr:`skip_filters` leave out, logged with a summary of the sweep."""
        skips: dict[int, Skip] = {}
        for skip_filter in self.skip_filters:
            left = [j for j in jobs if j.num not in skips]
            skips.update({n: s for n, s in skip_filter(left, self.sweep_dir).items() if n not in skips})
        for j in jobs:
            if j.num in skips:
                log.info(f"\t#{j.num} : {' '.join(filter_overrides(j.overrides))}  ({skips[j.num].reason}: skipped)")
        kinds = [s.kind for s in skips.values()]
        counts = ", ".join(f"{kinds.count(k)} {k}" for k in dict.fromkeys(kinds)) or "0 already completed"
        log.info(f"Sweep dir {self.sweep_dir}: {len(jobs)} job(s), {counts}, {len(jobs) - len(skips)} to submit")
        return skips

    @staticmethod
    def _job_return(job: sw.Job, value: Any) -> JobReturn:
        ret = JobReturn(overrides=job.overrides, cfg=job.cfg, working_dir=str(job.run_dir), status=JobStatus.COMPLETED)
        ret.task_name = job.cfg.hydra.job.name
        ret.return_value = value
        return ret

    def _submit_all(self, jobs: list[sw.Job]) -> list[Submitted]:
        """Every job array submitted (one per set of resources) and recorded, before anything waits."""
        groups: dict[str, list[sw.Job]] = {}
        for j in jobs:
            params = {k: v for k, v in j.launcher.items() if k not in OWN_KEYS}
            groups.setdefault(json.dumps(params, sort_keys=True, default=str), []).append(j)
        submitted: list[Submitted] = []
        provenance = {**git_state(), "command": manifest.command_line(), "cwd": os.getcwd(), "wait": self.wait}
        estimates = cost.gpu_hours_estimates({j.num: j.cfg for j in jobs})
        for key, members in groups.items():
            params = json.loads(key)
            for j in members:
                note = "" if j.status == "new" else f"  (was {self._was(j)}: resuming)"
                log.info(f"\t#{j.num} : {' '.join(filter_overrides(j.overrides))}{note}")
            try:
                slurm_jobs = self.submit_array(params, members)
            except Exception as e:  # sbatch said no: show SLURM's message and the jobs
                raise SlurmSubmissionError(_submission_message(e, members, params, submitted)) from None
            new = [
                Submitted(j, s, self._record(j, s, {**provenance, "gpu_hours_estimate": estimates[j.num]}))
                for j, s in zip(members, slurm_jobs)
            ]
            submitted += new
            self._append_to_manifest(new, submitted)
            log.info(
                f"Submitted {len(new)} job(s) as SLURM job(s) {', '.join(s.job_id for s in slurm_jobs)} "
                f"(tasks_per_node={params.get('tasks_per_node')}, nodes={params.get('nodes')}, "
                f"gpus_per_node={params.get('gpus_per_node')})"
            )
        return submitted

    def _append_to_manifest(self, new: list[Submitted], submitted: list[Submitted]) -> None:
        try:
            manifest.append_submissions(self.sweep_dir, [s.record for s in new])
        except OSError as e:  # a full disk: the jobs run regardless, say which they are
            ids = ", ".join(s.record.job_id for s in submitted)
            raise MftiError(
                f"SLURM job(s) {ids} were submitted and will run, but {manifest.manifest_path(self.sweep_dir)} "
                f"could not be written ({e}), so they are not recorded; no further job array was submitted. Free "
                "the space, and re-run the command only once these jobs have ended."
            ) from None

    @staticmethod
    def _was(job: sw.Job) -> str:
        return "completed, evaluation changed" if job.action == "reevaluate" else job.status

    def submit_array(self, params: dict, jobs: list[sw.Job]) -> list:
        """One job array: the submission steps of the plugin's ``BaseSubmititLauncher.launch``
        (hydra-submitit-launcher 1.2.0) for one set of resources, without its final wait on every result (which
        ``launch`` cannot skip, and which would submit the next array only after this one ended): the executor
        built from the parameters as the plugin builds it, the sweep directory created with ``hydra.sweep.mode``,
        and ``executor.map_array(self, ...)`` with the arguments of the inherited ``__call__``.
        tests/integration/test_slurm.py compares the sbatch script with the one the plugin's own launcher writes."""
        import submitit
        from hydra.core.singleton import Singleton

        executor = self._executor(submitit, params)
        self._make_sweep_dir()
        job_params = [
            (j.overrides, "hydra.sweep.dir", j.num, f"job_id_for_{j.num}", Singleton.get_state()) for j in jobs
        ]
        return executor.map_array(self, *zip(*job_params))

    def _executor(self, submitit, params: dict):
        """``submitit.AutoExecutor`` exactly as ``BaseSubmititLauncher.launch`` builds it, from one group's
        resolved parameters instead of the primary config's."""
        init_keys = {"max_num_timeout"}
        init = {f"{self._EXECUTOR}_{k}": v for k, v in params.items() if k in init_keys}
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, folder=params["submitit_folder"], **init)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        rest = {k: v for k, v in params.items() if k not in init_keys | {"submitit_folder"}}
        executor.update_parameters(**{k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in rest.items()})
        return executor

    def _make_sweep_dir(self) -> None:
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:  # the plugin's permissions for the sweep directory (octal string)
            os.chmod(self.sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))

    def _record(self, job: sw.Job, slurm_job, provenance: dict) -> manifest.Submission:
        array_id, task = manifest.split_job_id(slurm_job.job_id)
        return manifest.Submission(
            run_dir=_relative(job.run_dir, self.sweep_dir),
            num=job.num,
            overrides=list(job.overrides),
            job_id=str(slurm_job.job_id),
            array_job_id=array_id,
            array_task_id=task,
            log=_relative(Path(slurm_job.paths.stdout), self.sweep_dir),
            submitted_at=manifest.submitted_now(),
            **provenance,
        )

    def _log_how_to_follow(self, submitted: list[Submitted]) -> None:
        if not submitted:
            return
        ids = ",".join(dict.fromkeys(s.record.array_job_id for s in submitted))
        first = self.sweep_dir / submitted[0].record.log
        log.info(
            f"{len(submitted)} job(s) submitted as SLURM job(s) {ids}. Nothing here has to keep running "
            "(hydra.launcher.wait=false): the jobs requeue and resume on their own.\n"
            f"  follow: squeue -j {ids}   |   sacct -X -j {ids} -o JobID,JobName%30,State,Elapsed,NodeList\n"
            f"  logs:   {self.sweep_dir}/.submitit/<job id>/<job id>_0_log.out, e.g. tail -f {first}\n"
            f"  record: {manifest.manifest_path(self.sweep_dir)} (one line per job and submission)\n"
            f"  status: mfti status {self.sweep_dir}   (--watch to follow it live)\n"
            "Running the same command again skips completed jobs and jobs still pending or running, and submits "
            "the others again."
        )

    def _wait_for(self, submitted: list[Submitted]) -> dict[int, JobReturn]:
        """``wait=true``: every job's JobReturn; raises SweepFailedError with a table of the failed jobs."""
        if submitted:
            log.info(
                f"Waiting for {len(submitted)} job(s) (hydra.launcher.wait=true; stopping this stops only the wait)"
            )
        returns, failed = {}, []
        for s in submitted:
            try:
                ret = s.slurm.results()[0]
                _ = ret.return_value  # raises the job's exception when it failed, as Hydra's sweeper does
                returns[s.job.num] = ret
            except Exception as e:  # the task raised, or SLURM ended the job (cancelled, out of time, node failure)
                failed.append((s, e))
        if failed:
            raise SweepFailedError(_failure_table(failed, len(submitted)))
        return returns


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def _failure_table(failed: list[tuple[Submitted, Exception]], n: int) -> str:
    lines = [f"{len(failed)} of {n} submitted job(s) failed:"]
    for s, error in failed:
        state = getattr(s.slurm, "state", "?")
        message = " ".join(str(error).split())  # submitit's messages span lines; a job's traceback is in its log
        overrides = " ".join(filter_overrides(s.job.overrides))
        lines.append(f"  #{s.job.num} {overrides}: SLURM job {s.record.job_id} {state}")
        lines.append(f"      {type(error).__name__}: {message[:300]}{' ...' if len(message) > 300 else ''}")
        folder = Path(s.slurm.paths.stdout).parent
        logs = sorted(folder.glob(f"{s.record.job_id}_*_log.*")) if folder.exists() else []
        never = f"      log: {s.slurm.paths.stdout} (not written: the job never started)"
        lines += [f"      log: {p}" for p in logs] or [never]
    lines.append(
        "Run the same command again to submit the failed jobs again: completed jobs are skipped and the others "
        "resume from their checkpoints."
    )
    return "\n".join(lines)


def _submission_message(error: Exception, jobs: list[sw.Job], params: dict, earlier: list[Submitted]) -> str:
    text = str(error).strip()
    # submitit wraps sbatch's stderr; keep SLURM's own lines ("sbatch: error: ...") in front
    slurm_lines = [ln.strip() for ln in text.splitlines() if "sbatch:" in ln or "error" in ln.lower()]
    listed = "\n".join(f"  job #{j.num}: {' '.join(filter_overrides(j.overrides)) or '(no overrides)'}" for j in jobs)
    keys = ("partition", "account", "qos", "constraint", "nodes", "tasks_per_node", "gpus_per_node", "gres",
            "cpus_per_task", "mem_gb", "timeout_min")  # fmt: skip
    res = {k: params.get(k) for k in keys if params.get(k) is not None}
    before = (
        f"\n{len(earlier)} job(s) of other arrays were submitted before it (SLURM job(s) "
        f"{', '.join(s.record.job_id for s in earlier)}, recorded in submissions.jsonl)."
        if earlier
        else ""
    )
    return (
        "SLURM refused the job array (nothing of it was submitted):\n  "
        + ("\n  ".join(dict.fromkeys(slurm_lines)) or text)
        + f"\nrequested: {res}\njobs of this array:\n{listed}{before}\n"
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
