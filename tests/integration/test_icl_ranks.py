"""An evaluation-only mfti-train job (num_examples=n0, the ICL baseline) started as two ranks (torchrun-style
environment, as srun gives each task): the ranks form a process group and deal the sentences, each translated
once, with the same translations as one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

ARGS = ["num_examples=n0", "logger=none", "trainer=ddp_cpu", "optim.micro_batch_size=8", "lang_pairs.test_size=6",
        "eval.max_new_tokens=6", "eval.num_beams=1", "progress.mode=none"]  # fmt: skip


def _translations(run_dir):
    return {
        f.stem: [json.loads(x)["hypothesis"] for x in f.read_text().splitlines()]
        for f in sorted((run_dir / "translations").glob("*.jsonl"))
    }


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_two_ranks_deal_the_icl_evaluation(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for r in (0, 1):
        env = {**os.environ, "WORLD_SIZE": "2", "RANK": str(r), "LOCAL_RANK": str(r), "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port)}  # fmt: skip
        cmd = [sys.executable, "-m", "mfti_lightning.cli.train", *ARGS, f"hydra.run.dir={tmp_path / 'two'}"]
        procs.append(subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outs = [p.communicate(timeout=350)[0].decode()[-3000:] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    one = subprocess.run([sys.executable, "-m", "mfti_lightning.cli.train", *ARGS[:2], "trainer=cpu", *ARGS[3:],
                          f"hydra.run.dir={tmp_path / 'one'}"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    two_rec, one_rec = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("two", "one"))
    assert two_rec["status"] == "completed" and two_rec["eval_world_size"] == 2 and one_rec["eval_world_size"] == 1
    assert _translations(tmp_path / "two") == _translations(tmp_path / "one")  # every sentence once, the same


def test_srun_ranks_join_through_lightnings_slurm_environment(monkeypatch):
    """srun sets no MASTER_ADDR (Lightning derives it inside fit, which an evaluation-only job never runs): the
    evaluation's Lightning Fabric takes rank, world size and rendezvous from SLURM (the first node of the job's node
    list, a port from the job id), starts no process, leaves requeueing to submitit (no auto-requeue), and each rank
    computes with the CPUs of its task (core.distributed.use_srun_threads), as in training."""
    # imported before SLURM_PROCID is set: Lightning reads its rank_zero_only.rank from it once, at import, and a
    # rank 3 left there would silence every rank-zero logger of the later tests in this session
    import pytorch_lightning  # noqa: F401
    import torch
    from lightning_fabric.plugins.environments import SLURMEnvironment
    from omegaconf import OmegaConf

    from mfti_lightning.train.trainer import eval_fabric

    for k in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "OMP_NUM_THREADS"):
        # set then delete: monkeypatch then restores the key's original state (absent) after the test, so the
        # MASTER_ADDR and OMP_NUM_THREADS written here do not leak into later tests' subprocesses
        monkeypatch.setenv(k, "unset")
        monkeypatch.delenv(k)
    slurm = {"SLURM_NTASKS": "8", "SLURM_PROCID": "3", "SLURM_LOCALID": "3", "SLURM_NODEID": "0",
             "SLURM_NODELIST": "gpu[07-08]", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "mfti",
             "SLURM_NTASKS_PER_NODE": "4", "SLURM_CPUS_PER_TASK": "2"}  # fmt: skip
    for k, v in slurm.items():
        monkeypatch.setenv(k, v)
    # the strategy sets Lightning's process-wide rank_zero_only.rank to this rank (3): restored after the test, or
    # every rank-zero logger and W&B run of the later tests in this worker would be silenced
    from lightning_utilities.core.rank_zero import rank_zero_only

    monkeypatch.setattr(rank_zero_only, "rank", rank_zero_only.rank)
    threads = torch.get_num_threads()
    try:
        fabric = eval_fabric(OmegaConf.create({"accelerator": "cpu", "devices": 4, "num_nodes": 2}))
        assert torch.get_num_threads() == 2 and os.environ["OMP_NUM_THREADS"] == "2"
    finally:
        torch.set_num_threads(threads)
    env = fabric.strategy.cluster_environment
    assert isinstance(env, SLURMEnvironment) and not env.auto_requeue and env.creates_processes_externally
    assert (fabric.global_rank, fabric.local_rank, fabric.world_size) == (3, 3, 8)
    assert env.main_address == "gpu07" and env.main_port == int(os.environ["MASTER_PORT"]) > 1024  # from the job id
