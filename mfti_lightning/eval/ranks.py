"""The processes of an evaluation: joining the ranks srun / torchrun started, or forking local ones.

Used by mfti-eval (:mod:`mfti_lightning.tasks.evaluate`) and by mfti-train's final test
(:mod:`mfti_lightning.tasks.train`). Each rank holds a full copy of the model (evaluation shards the sentences,
not the weights); torch and Lightning are imported inside the functions.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

log = logging.getLogger("mfti_lightning")


def srun_rendezvous() -> None:
    """srun started this process as one of several tasks but set no MASTER_ADDR/MASTER_PORT (Lightning derives
    them inside ``fit``, which an evaluation-only job never calls): set them as Lightning's SLURMEnvironment does
    (the first node of the job, a port from the job id), so that ``launched_ranks()`` sees the srun ranks. Each
    rank computes with the CPUs of its task, as in training (:func:`~mfti_lightning.core.distributed.use_srun_threads`)."""
    import torch  # noqa: F401  (use_srun_threads sets the threads of the loaded torch)

    from mfti_lightning.core.distributed import srun_started_ranks, use_srun_threads

    use_srun_threads()
    if not srun_started_ranks() or "MASTER_ADDR" in os.environ:
        return
    from pytorch_lightning.plugins.environments import SLURMEnvironment

    env = SLURMEnvironment(auto_requeue=False)
    os.environ["MASTER_ADDR"] = env.main_address
    os.environ.setdefault("MASTER_PORT", str(env.main_port))


def join_process_group(rank: int, world_size: int, gpu: bool) -> None:
    """This process joins the ranks' process group (NCCL on GPUs, else gloo), unless it has joined one already."""
    from datetime import timedelta

    import torch.distributed as dist

    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if gpu else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=timedelta(minutes=30))


def fork_ranks(devices: int, run_rank: Callable[[tuple[int, int, int]], object]):
    """``run_rank((rank, local rank, world size))`` on ``devices`` local ranks: ``devices - 1`` forked children
    (before any model or CUDA is touched) and this process as rank 0; returns rank 0's result. A child that fails
    makes this a RuntimeError with the children's exit codes."""
    import multiprocessing as mp
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["MASTER_PORT"] = str(port)
    ctx = mp.get_context("fork")
    children = [ctx.Process(target=run_child, args=(run_rank, (r, r, devices))) for r in range(1, devices)]
    for child in children:
        child.start()
    try:
        result = run_rank((0, 0, devices))
    finally:
        for child in children:
            child.join(timeout=600)
            if child.is_alive():
                child.kill()
    bad = [child.exitcode for child in children if child.exitcode != 0]
    if bad:
        raise RuntimeError(f"evaluation rank(s) failed with exit codes {bad}")
    return result


def run_child(run_rank: Callable[[tuple[int, int, int]], object], world: tuple[int, int, int]) -> None:
    """A forked rank: its exit status says whether it succeeded (``os._exit``: no inherited atexit handler runs)."""
    try:
        run_rank(world)
    except BaseException:
        log.exception("evaluation rank failed")
        os._exit(1)
    os._exit(0)
