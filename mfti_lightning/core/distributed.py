"""Which process this is and who started it, without importing torch: the one place that reads the launcher's
environment (torchrun, srun, Lightning) and the one list of how each strategy starts its ranks."""

from __future__ import annotations

import os
import sys


def global_rank() -> int:
    """This process's global rank: from torch.distributed once it is initialised, else from the launcher's
    environment (torchrun/Lightning: RANK; srun: SLURM_PROCID when the job has several tasks; LSF:
    JSM_NAMESPACE_RANK; Lightning's script-launched children: LOCAL_RANK); 0 for a single process."""
    dist = sys.modules.get("torch.distributed")  # never imported here: if torch is not loaded, no group exists
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    for var in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK", "LOCAL_RANK"):
        value = os.environ.get(var, "")
        if not value.isdigit():
            continue
        if var == "SLURM_PROCID" and int(os.environ.get("SLURM_NTASKS", "1") or 1) <= 1:
            continue  # one task per job: Lightning launches the ranks itself
        return int(value)
    return 0


# How a Lightning strategy starts ranks > 0 when nothing else (srun, torchrun) did:
REEXEC_STRATEGIES = ("ddp", "fsdp", "fsdp2")  # re-executes the command line (script launcher)
FORKING_STRATEGIES = ("ddp_fork", "ddp_spawn", "ddp_notebook")  # forks or spawns from the running process


def slurm_tasks() -> int | None:
    """SLURM_NTASKS of a batch job step (None outside SLURM and in an interactive allocation)."""
    if os.environ.get("SLURM_JOB_NAME") in ("bash", "interactive"):
        return None
    n = os.environ.get("SLURM_NTASKS")
    return int(n) if n and n.isdigit() else None


def srun_started_ranks() -> bool:
    """srun started several tasks: each task is one rank, nothing is to be spawned."""
    return int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1


def torchelastic() -> bool:
    """torchrun (or any torchelastic launcher) set up this process as one rank."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"))


def ranks_started_outside() -> bool:
    """torchrun (``WORLD_SIZE > 1``) or srun (several tasks) started this process as one of several ranks: they
    join one another (Lightning's ``ddp``); nothing is to be started here."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 or srun_started_ranks()


def local_rank() -> int:
    """This process's rank on its node (the GPU it uses): LOCAL_RANK (torchrun, Lightning's own launchers), else
    SLURM_LOCALID when srun started the ranks (Lightning sets no LOCAL_RANK for them: rank 2 of a job with two
    tasks per node is GPU 0 of the second node, not GPU 2 and not GPU 0 of the first)."""
    value = os.environ.get("LOCAL_RANK", "")
    if value.isdigit():
        return int(value)
    if srun_started_ranks():
        return int(os.environ.get("SLURM_LOCALID", 0) or 0)
    return 0


def srun_threads() -> int | None:
    """Intra-op threads for a rank that srun started: the CPUs SLURM gave its task (SLURM_CPUS_PER_TASK); None
    outside srun, for a single task, or when OMP_NUM_THREADS already says. Lightning divides the CPUs among the
    ranks it launches itself, but leaves srun's ranks at torch's default, every core of the node: without CPU
    binding, N ranks per node run N x cores threads, and a rank computes with another thread count (so other
    floating-point sums) than the same rank launched by Lightning."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if not srun_started_ranks() or "OMP_NUM_THREADS" in os.environ or not cpus.isdigit() or int(cpus) < 1:
        return None
    return int(cpus)


def use_srun_threads() -> int | None:
    """Apply :func:`srun_threads` to torch (already imported by the caller) and to OMP_NUM_THREADS (read by the
    libraries and processes started later); returns the thread count set, or None when nothing was changed."""
    n = srun_threads()
    torch = sys.modules.get("torch")
    if n is None or torch is None:
        return None
    torch.set_num_threads(n)
    os.environ["OMP_NUM_THREADS"] = str(n)
    return n
