"""Helpers of the SLURM tests (test_slurm.py: the single-node cluster of scripts/local_slurm.sh; test_multinode.py:
the two-node cluster of scripts/local_slurm_multinode.sh): start a cluster or skip with the reason, run the entry
points against it, and wait for its jobs.

A :class:`Cluster` carries the environment that points SLURM's commands at one cluster (``SLURM_CONF``); nothing
here changes ``os.environ``, so tests of both clusters can run in one pytest session. Every wait has a timeout: a
job that SLURM killed can make a waiting process hang forever.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import REPO

# small and fast: a few steps, 2 sentences per direction, no W&B (csv logger: the LR monitor needs a logger)
FAST = [
    "logger=csv",
    "optim.global_batch_size=4",
    "optim.micro_batch_size=4",
    "optim.max_steps=4",
    "eval.val_every_n_steps=2",
    "eval.max_new_tokens=8",
    "eval.score_before_training=false",
    "lang_pairs.val_size=2",
    "lang_pairs.test_size=2",
    "num_examples.n=16",
]
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


@dataclass
class Cluster:
    """One local SLURM: its partition and the environment its client commands need (empty: the default
    /etc/slurm/slurm.conf)."""

    partition: str
    env: dict = field(default_factory=dict)

    def run(self, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """A SLURM client command (sacct, scontrol, srun, ...) against this cluster."""
        return subprocess.run(
            list(cmd), capture_output=True, text=True, timeout=timeout, env={**os.environ, **self.env}
        )


def start_cluster(script: str, env: dict | None = None) -> str:
    """``scripts/<script> start`` (idempotent; root + apt): its partition, or a skip with the reason (exit 3)."""
    p = subprocess.run(
        ["bash", str(REPO / "scripts" / script), "start"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    if p.returncode == 3:
        pytest.skip(f"no local SLURM ({script}): {p.stderr.strip().splitlines()[-1]}")
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout.strip()


# ---- the entry points ----------------------------------------------------------------------------------------
def mfti_env(out_root: Path, cluster: Cluster | None = None, env: dict | None = None) -> dict:
    base = {**os.environ, "MFTI_OUTPUT_ROOT": str(out_root), "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "0"}
    return {**base, **(cluster.env if cluster else {}), **(env or {})}


def mfti(args, out_root: Path, timeout: float, module="mfti_lightning.cli.train", cluster=None, env=None):
    """``mfti-train <args>`` (or another entry point) in ``out_root``, to completion; ``cluster``: the SLURM its
    launcher submits to (default: the single-node one), ``env``: more environment."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=out_root,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=mfti_env(out_root, cluster, env),
    )


def submit(args, out_root: Path, cluster: Cluster | None = None, log: Path | None = None) -> subprocess.Popen:
    """Start ``mfti-train -m <args>`` (a sweep through a SLURM launcher preset) without waiting for it; its output
    goes to ``log`` (default ``out_root/submit.log``). Wait for the jobs with :func:`wait_for_sweep`, then for the
    process with :func:`finish` (the launcher returns once it has submitted, unless ``hydra.launcher.wait=true``).
    """
    log = log or out_root / "submit.log"
    return subprocess.Popen(
        [sys.executable, "-m", "mfti_lightning.cli.train", "-m", *args],
        cwd=out_root,
        env=mfti_env(out_root, cluster),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def finish(proc: subprocess.Popen, timeout: float) -> int:
    """The exit code of a :func:`submit` process (killed after ``timeout``)."""
    try:
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


# ---- what SLURM and the run directories say ----------------------------------------------------------------------
def results(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/results.json"))}


def submitit_dirs(sweep_dir: Path) -> list[str]:
    d = sweep_dir / ".submitit"
    return sorted(p.name for p in d.iterdir() if re.fullmatch(r"\d+(_\d+)?", p.name)) if d.exists() else []


def sacct_jobs(cluster: Cluster | None = None, name: str | None = None) -> set[str]:
    """Every job id the cluster's accounting knows from the last day (``name``: only jobs of that name, the sweep
    name: the cluster is shared)."""
    by_name = ["--name", name] if name else []
    p = (cluster or Cluster("")).run("sacct", "-X", "-n", "-a", "-S", "now-1days", *by_name, "-o", "JobID%40")
    return {line.strip() for line in p.stdout.splitlines() if line.strip()}


def job_states(job_ids, cluster: Cluster | None = None) -> dict[str, dict]:
    """``{job id: {"state", "nodes", "restarts"...}}`` from sacct (the allocation's line of each job): what a
    status command must show."""
    p = (cluster or Cluster("")).run(
        "sacct", "-X", "-n", "-P", "-j", ",".join(job_ids), "-o", "JobID,State,NodeList,NNodes,ExitCode"
    )
    out = {}
    for line in p.stdout.splitlines():
        jid, state, nodes, nnodes, code = line.split("|")
        out[jid] = {"state": state.split()[0], "nodes": nodes, "nnodes": int(nnodes or 0), "exit_code": code}
    return out


def job_id(sweep: Path, timeout: float) -> str:
    """The (first) SLURM job id of a sweep, as soon as submitit made its folder."""
    end = time.time() + timeout
    while time.time() < end:
        dirs = [d for d in submitit_dirs(sweep) if re.fullmatch(r"\d+", d)]
        if dirs:
            return dirs[0]
        time.sleep(0.5)
    raise TimeoutError(f"no job of {sweep} was submitted in {timeout} s")


def wait_for_sweep(sweep: Path, n_jobs: int, timeout: float, cluster: Cluster | None = None, proc=None) -> dict:
    """Wait until ``n_jobs`` jobs of the sweep were submitted and sacct says every one of them ended; returns
    :func:`job_states`. Fails early when the submitting ``proc`` exited non-zero (nothing to wait for)."""
    end = time.time() + timeout
    states: dict = {}
    while time.time() < end:
        if proc is not None and proc.poll() not in (None, 0):
            raise AssertionError(f"the submission failed (exit {proc.returncode})")
        ids = submitit_dirs(sweep)  # <job id>, or <array id>_<task> for a job array
        if len(ids) >= n_jobs:
            states = job_states(ids, cluster)
            if len(states) >= n_jobs and all(s["state"] in FINAL_STATES for s in states.values()):
                return states
        time.sleep(1)
    raise TimeoutError(f"{sweep}: jobs not ended after {timeout} s: {states}")


def task_logs(sweep: Path, jid: str) -> dict[int, str]:
    """``{task: text}`` of submitit's per-task logs of job ``jid`` (one task per rank)."""
    folder = sweep / ".submitit" / jid
    return {int(p.name.split("_")[-2]): p.read_text() for p in sorted(folder.glob(f"{jid}_*_log.out"))}


def paper_inputs(root: Path) -> dict:
    """What the paper sweeps read, as small stand-ins: a WikiMatrix file for every pair of the 13 languages, the
    five XGLM models in an (offline) hub cache and sacrebleu's FLORES SentencePiece model (the paper overlays
    require spBLEU). Returns the environment that points the jobs at them."""
    import gzip
    import itertools

    from mfti_lightning.core.languages import PAPER_LANGUAGES

    corpora = root / "corpora"
    corpora.mkdir(parents=True)
    for a, b in itertools.combinations(sorted(PAPER_LANGUAGES), 2):
        (corpora / f"WikiMatrix.{a}-{b}.tsv.gz").write_bytes(gzip.compress(b"1.2\tx\ty\n"))
    hub = [f"facebook--xglm-{size}" for size in ("564M", "1.7B", "2.9B", "4.5B", "7.5B")]
    hub += ["bigscience--bloom-560m", "bigscience--bloom-1b7", "bigscience--bloom-7b1", "ai-forever--mGPT"]
    hub += [f"Qwen--Qwen2.5-{size}" for size in ("0.5B", "1.5B", "7B")]  # sweeps/architectures.yaml
    for name in hub:
        snap = root / "hf" / "hub" / f"models--{name}"
        (snap / "refs").mkdir(parents=True)
        (snap / "refs" / "main").write_text("0" * 40)
        (snap / "snapshots" / ("0" * 40)).mkdir(parents=True)
        (snap / "snapshots" / ("0" * 40) / "config.json").write_text("{}")
    spm = root / "sacrebleu" / "models" / "sacrebleu_tokenizer_spm.model"
    spm.parent.mkdir(parents=True)
    spm.write_bytes(b"stand-in")
    from conftest import fake_flores_dir

    from mfti_lightning.core.languages import LANGUAGES

    extra = {c: "en" for c, lang in LANGUAGES.items() if lang.flores101 and c not in PAPER_LANGUAGES}
    flores = fake_flores_dir(root / "flores101", extra)  # sweeps/more_languages.yaml: a full FLORES-101 copy
    return {"MFTI_CORPORA_DIR": str(corpora), "HF_HOME": str(root / "hf"), "SACREBLEU": str(root / "sacrebleu"),
            "MFTI_FLORES_DIR": str(flores)}  # fmt: skip


# A fault injected into the job only (this directory goes on the job's PYTHONPATH through hydra.launcher.setup):
# loading the training data raises an error no check foresees, as a bug or a broken node would.
FAULT_SITECUSTOMIZE = """
import importlib.abc, importlib.util, sys

class _Inject(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "mfti_lightning.data.prepare":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)

            def boom(*a, **k):
                raise RuntimeError("injected fault on the node")

            module.load_or_prepare = boom

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, _Inject())
"""
