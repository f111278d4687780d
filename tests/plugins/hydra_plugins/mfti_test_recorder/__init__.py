"""A Hydra launcher for tests only (tests/unit/launch/test_plan_hydra.py puts tests/plugins on PYTHONPATH): it runs nothing and
appends every job Hydra's sweeper hands it to the file named by $MFTI_RECORD_JOBS, one JSON line per job with its
number, overrides and run directory (the job's config composed as Hydra's launchers compose it). Picked with
``hydra.launcher._target_=hydra_plugins.mfti_test_recorder.RecordingLauncher``; the other launcher settings are
accepted and ignored. ``ResultsSweeper`` is Hydra's basic sweeper under another name: it stands for a sweeper
that needs each job's result (Optuna, Ax) in tests of mfti's launcher."""

import json
import os

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher


class RecordingLauncher(Launcher):
    def __init__(self, **_settings) -> None:
        self.config = self.loader = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config, self.loader = config, hydra_context.config_loader

    def launch(self, job_overrides, initial_job_idx):
        returns = []
        with open(os.environ["MFTI_RECORD_JOBS"], "a", encoding="utf-8") as f:
            for num, overrides in enumerate(job_overrides, start=initial_job_idx):
                cfg = self.loader.load_sweep_config(self.config, list(overrides))
                run_dir = f"{cfg.hydra.sweep.dir}/{cfg.hydra.sweep.subdir}"
                f.write(json.dumps({"num": num, "overrides": list(overrides), "run_dir": run_dir}) + "\n")
                ret = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
                ret.return_value = None
                returns.append(ret)
        return returns


class ResultsSweeper(BasicSweeper):
    pass
