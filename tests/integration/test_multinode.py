"""``trainer.num_nodes=2`` for real: jobs submitted through ``mfti-train -m hydra/launcher=slurm_multinode_cpu`` to the
two-node SLURM of scripts/local_slurm_multinode.sh (two slurmd with their own hostnames, mn1 and mn2, on loopback).

Tests marked ``multinode`` need that cluster: scripts/test.sh starts it (beside the single-node one); the fixture
starts it too when it is down and this is root, and skips with the reason where it cannot start. The references
are the same runs on one node with two processes (Lightning's own launchers, no SLURM), one CPU thread per rank as
SLURM gives each task here (cpus_per_task=1): with the same thread count the weights are bit-identical (two ranks
sum their gradients in either order to the same float; other thread counts change the order of the matmul sums).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO
from slurm_jobs import FAST, Cluster, finish, job_id, mfti, results, start_cluster, submit, task_logs, wait_for_sweep

SCRIPT = "local_slurm_multinode.sh"
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # the references: one thread per rank, as each SLURM task (cpus_per_task=1)
# 12 steps, a checkpoint every 4: long enough that a requeue after the first checkpoint interrupts training
TRAIN = [*FAST, "optim.micro_batch_size=2", "optim.max_steps=12", "eval.val_every_n_steps=12",
         "checkpoint.every_n_steps=4", "checkpoint.keep=5", "checkpoint.export=false", "progress.mode=plain",
         "seed=11"]  # fmt: skip
FSDP2 = ["trainer=fsdp2", "trainer.accelerator=cpu"]
FINAL = Path("checkpoints") / "periodic" / "step000012.ckpt"
RUN = "tiny_demo_t1_k0_n16_s11-*"


@pytest.fixture(scope="session")
def two_nodes() -> Cluster:
    """The two-node cluster (started if needed), as a :class:`Cluster` whose environment points SLURM at it."""
    partition = start_cluster(SCRIPT)
    out = subprocess.run(["bash", str(REPO / "scripts" / SCRIPT), "env"], capture_output=True, text=True, timeout=30)
    env = dict(line.removeprefix("export ").split("=", 1) for line in out.stdout.split("\n") if "=" in line)
    return Cluster(partition, env)


def on_two_nodes(cluster: Cluster, sweep: str, *args: str) -> list[str]:
    return ["hydra/launcher=slurm_multinode_cpu", f"hydra.launcher.partition={cluster.partition}",
            "trainer.num_nodes=2", "trainer.devices=1", f"sweep_name={sweep}", *args]  # fmt: skip


class Reference:
    """A single-node two-process run of :data:`TRAIN`, started now and awaited on first use."""

    def __init__(self, root: Path, name: str, trainer: list[str]):
        self.run_dir = root / name
        cmd = [sys.executable, "-m", "mfti_lightning.cli.train", *trainer, "trainer.devices=2", *TRAIN,
               f"hydra.run.dir={self.run_dir}"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO), **ONE_THREAD}
        self.log = root / f"{name}.log"
        self.proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT)

    def final_weights(self) -> dict:
        assert finish(self.proc, 500) == 0, self.log.read_text()[-3000:]
        return weights(self.run_dir / FINAL)


@pytest.fixture(scope="module")
def references(tmp_path_factory, tiny_model_dir):
    """DDP (trainer=ddp_cpu, forked ranks) and FSDP2 (re-executed ranks) on one node; they run while the two-node
    jobs do."""
    root = tmp_path_factory.mktemp("one-node")
    refs = {"ddp": Reference(root, "ddp", ["trainer=ddp_cpu"]), "fsdp2": Reference(root, "fsdp2", FSDP2)}
    yield refs
    for r in refs.values():
        finish(r.proc, 500)


def weights(ckpt: Path) -> dict:
    from mfti_lightning.model.checkpoint_files import load_checkpoint

    return load_checkpoint(ckpt)["state_dict"]  # a sharded (FSDP2) checkpoint consolidated


def assert_same_weights(a: dict, b: dict, what: str) -> None:
    import torch

    assert a.keys() == b.keys(), what
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{what}: {len(differ)} of {len(a)} tensors differ, e.g. {differ[:3]}"


def last_run(log: str) -> str:
    """The part of a submitit task log written by the last start of the job."""
    return log[log.rindex("Starting with JobEnvironment(") :]


def assert_one_rank_per_node(logs: dict[int, str]) -> None:
    """Task t ran on node mn<t+1> as global rank t of 2, and both met at the first node of the job's node list."""
    assert sorted(logs) == [0, 1], sorted(logs)
    for t, text in logs.items():
        assert "JobEnvironment(job_id=" in text and f"hostname=mn{t + 1}," in text, text[:2000]
        assert f"SLURM rank {t} of 2 on node mn{t + 1} (node {t} of 2), local rank 0, 1 CPU thread(s)" in text, text[
            -3000:
        ]
        assert "rendezvous at mn1:" in text, text[-3000:]
        assert "Job completed successfully" in text, text[-3000:]


# ------------------------------------------------------------------------------------------------ no cluster needed
def test_local_rank_and_threads_of_srun_ranks(monkeypatch):
    """srun sets no LOCAL_RANK (Lightning sets it only for the ranks it launches): the GPU of a rank is its
    SLURM_LOCALID; its CPU threads are its task's CPUs unless OMP_NUM_THREADS says otherwise."""
    from mfti_lightning.core.distributed import local_rank, srun_threads

    for k in ("LOCAL_RANK", "OMP_NUM_THREADS"):
        monkeypatch.setenv(k, "unset")  # then deleted: restored to their original state after the test
        monkeypatch.delenv(k)
    slurm = {"SLURM_NTASKS": "4", "SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_CPUS_PER_TASK": "6"}
    for k, v in slurm.items():
        monkeypatch.setenv(k, v)
    assert (local_rank(), srun_threads()) == (1, 6)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert (local_rank(), srun_threads()) == (0, None)
    monkeypatch.setenv("SLURM_NTASKS", "1")  # one task: Lightning launches (and sets up) the ranks itself
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert srun_threads() is None


@pytest.mark.parametrize("sigterm", [True, False])
def test_an_error_after_sigterm_ends_the_job_as_interrupted(cfg_factory, sigterm):
    """SLURM's requeue SIGTERMs every process of the job (the W&B service, the other ranks), so the job then fails
    on whatever died first: that is an interruption (SystemExit, no result for submitit to hand the launcher while
    the requeued job runs), not a failed run. Without SIGTERM the same error is a failure."""
    import signal

    from mfti_lightning.tasks.job import run_task

    cfg = cfg_factory("logger=none")
    seen = []

    from mfti_lightning.core.interrupt import lightning_stops

    def body(cfg, run_dir, record):
        with lightning_stops():  # inside trainer.fit the signal only sets a flag; what died first raises
            if sigterm:
                os.kill(os.getpid(), signal.SIGTERM)
            raise ConnectionResetError("[Errno 104] Connection reset by peer")

    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))  # as submitit's: it logs
    try:
        with pytest.raises(SystemExit if sigterm else ConnectionResetError) as e:
            run_task(cfg, body)
    finally:
        signal.signal(signal.SIGTERM, previous)
    rec = json.loads((Path(cfg.paths.output_dir) / "results.json").read_text())
    assert rec["status"] == ("interrupted" if sigterm else "failed") and "ConnectionResetError" in rec["error"]
    assert seen == ([signal.SIGTERM] if sigterm else [])  # the handler already in place still ran
    if sigterm:
        assert "interrupted by SIGTERM (ConnectionResetError" in str(e.value)


# ------------------------------------------------------------------------------------------------ srun itself
@pytest.mark.multinode
@pytest.mark.timeout(120)
def test_srun_ranks_on_two_nodes_know_their_global_and_local_rank(two_nodes):
    """Two tasks on each node: the global rank counts over the nodes, the local rank (the GPU) restarts on each."""
    code = (
        "import os; from mfti_lightning.core.distributed import global_rank, local_rank, srun_threads; "
        "print(os.uname().nodename, global_rank(), local_rank(), srun_threads())"
    )
    p = two_nodes.run(
        "srun", "-p", two_nodes.partition, "-N", "2", "--ntasks-per-node=2", "-c", "1", "-t", "2",
        sys.executable, "-c", code, timeout=100,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    assert sorted(p.stdout.strip().splitlines()) == ["mn1 0 0 1", "mn1 1 1 1", "mn2 2 0 1", "mn2 3 1 1"], p.stdout


# ------------------------------------------------------------------------------------------------ training
@pytest.mark.multinode
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_nodes_train_the_weights_of_one_node_with_two_processes(two_nodes, references, tmp_path):
    """DDP and FSDP2 with one rank on each of two nodes: training completes, results.json is written once (global
    rank 0), and the final weights equal the single-node two-process run's, bit for bit."""
    procs = {
        "ddp": submit(on_two_nodes(two_nodes, "ddp2", "trainer=ddp_cpu", *TRAIN), tmp_path, two_nodes,
                      tmp_path / "ddp.log"),
        "fsdp2": submit(on_two_nodes(two_nodes, "fsdp2", *FSDP2, *TRAIN), tmp_path, two_nodes, tmp_path / "fsdp2.log"),
    }  # fmt: skip
    for name, sweep in (("ddp", "ddp2"), ("fsdp2", "fsdp2")):
        sweep_dir = tmp_path / "train" / "sweeps" / sweep
        states = wait_for_sweep(sweep_dir, 1, 600, two_nodes, procs[name])
        ((jid, state),) = states.items()
        assert state["state"] == "COMPLETED" and state["nodes"] == "mn[1-2]", state
        assert finish(procs[name], 120) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
        ((run, rec),) = results(sweep_dir).items()
        assert rec["status"] == "completed" and rec["batch"]["world_size"] == 2 and rec["eval_world_size"] == 2, rec
        assert rec["training"]["steps"] == 12
        assert_one_rank_per_node(task_logs(sweep_dir, jid))
        assert_same_weights(weights(sweep_dir / run / FINAL), references[name].final_weights(), name)


@pytest.mark.multinode
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_requeued_two_node_job_resumes_on_both_nodes(two_nodes, references, tmp_path):
    """``scontrol requeue`` of the running two-node job after its first checkpoint: it runs again on both nodes,
    both ranks resume from that checkpoint, the W&B run continues under the same id, and the final weights are
    those of the uninterrupted single-node run."""
    proc = submit(on_two_nodes(two_nodes, "requeue", "trainer=ddp_cpu", *TRAIN, "logger=wandb"), tmp_path, two_nodes)
    sweep = tmp_path / "train" / "sweeps" / "requeue"
    try:
        jid = job_id(sweep, 120)
        end = time.time() + 300
        while not list(sweep.glob(f"{RUN}/checkpoints/periodic/step000004.ckpt")):
            assert time.time() < end, (tmp_path / "submit.log").read_text()[-3000:]
            time.sleep(0.2)
        requeue = two_nodes.run("scontrol", "requeue", jid)
        assert requeue.returncode == 0, requeue.stderr
        states = wait_for_sweep(sweep, 1, 600, two_nodes, proc)
    finally:
        code = finish(proc, 120)
    assert code == 0, (tmp_path / "submit.log").read_text()[-3000:]
    assert states[jid]["state"] == "COMPLETED" and states[jid]["nodes"] == "mn[1-2]", states
    assert "Restarts=1" in two_nodes.run("scontrol", "show", "job", jid).stdout
    logs = task_logs(sweep, jid)  # submitit appends the second run to the first one's log
    for t, text in logs.items():
        assert text.count(f"hostname=mn{t + 1},") == 2, text[-3000:]  # both runs of task t on node mn<t+1>
        assert re.search(r"Resuming from \S+/checkpoints/periodic/step0000(04|08)\.ckpt", last_run(text)), text[-3000:]
    assert_one_rank_per_node({t: last_run(text) for t, text in logs.items()})
    (run_dir,) = sweep.glob(RUN)
    rec = json.loads((run_dir / "results.json").read_text())
    assert rec["status"] == "completed" and rec["training"]["steps"] == 12
    run_id = (run_dir / "wandb_run_id.txt").read_text().strip()
    assert rec["wandb"]["id"] == run_id
    # one offline W&B run directory per start of the job, both of the same run
    assert len(list((run_dir / "wandb").glob(f"offline-run-*-{run_id}"))) == 2, sorted((run_dir / "wandb").iterdir())
    assert_same_weights(weights(run_dir / FINAL), references["ddp"].final_weights(), "requeued ddp")
    # mfti status shows the two-node job, its state and its requeue (SLURM's view through this cluster's sacct)
    p = mfti(["status", str(sweep), "--json"], tmp_path, 60, module="mfti_lightning.cli.main", cluster=two_nodes)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    (job,) = json.loads(p.stdout)["jobs"]
    assert (job["status"], job["run_state"], job["job_id"]) == ("completed", "completed", jid), job
    assert job["slurm_state"].startswith("COMPLETED") and job["requeues"] >= 1 and job["step"] == 12, job


# ------------------------------------------------------------------------------------------------ evaluation only
ICL = ["num_examples=n0", "logger=none", "optim.micro_batch_size=8", "lang_pairs.test_size=6", "eval.max_new_tokens=6",
       "eval.num_beams=1", "progress.mode=none"]  # fmt: skip


def translations(run_dir: Path) -> dict[str, list[str]]:
    return {
        f.stem: [json.loads(x)["hypothesis"] for x in f.read_text().splitlines()]
        for f in sorted((run_dir / "translations").glob("*.jsonl"))
    }


@pytest.mark.multinode
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_icl_evaluation_on_two_nodes_deals_the_sentences(two_nodes, tiny_model_dir, tmp_path):
    """An evaluation-only job (num_examples=n0) on two nodes: its two ranks form one process group across the nodes
    and deal the test sentences (a sentence translated twice or never is an error), with the translations of one
    process."""
    proc = submit(on_two_nodes(two_nodes, "icl", "trainer=ddp_cpu", *ICL), tmp_path, two_nodes)
    one = mfti(["trainer=cpu", *ICL, f"hydra.run.dir={tmp_path / 'one'}"], tmp_path, 300, env=ONE_THREAD)
    sweep = tmp_path / "train" / "sweeps" / "icl"
    ((jid, state),) = wait_for_sweep(sweep, 1, 400, two_nodes, proc).items()
    assert finish(proc, 120) == 0, (tmp_path / "submit.log").read_text()[-3000:]
    assert one.returncode == 0, one.stderr[-3000:]
    assert state["state"] == "COMPLETED" and state["nodes"] == "mn[1-2]", state
    logs = task_logs(sweep, jid)
    for t, text in logs.items():
        assert f"hostname=mn{t + 1}," in text and "Job completed successfully" in text, text[-3000:]
    ((run, rec),) = results(sweep).items()
    assert rec["status"] == "completed" and rec["eval_world_size"] == 2, rec.get("error")
    two = translations(sweep / run)
    assert two == translations(tmp_path / "one") and sum(map(len, two.values())) == 6 * len(two) > 0
