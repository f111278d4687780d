"""The ranks of mfti-eval through Lightning Fabric (tasks.evaluate.run_ranks, train.trainer.eval_fabric): forked
CPU ranks (gloo) that form one process group, rank 0's result back in the calling process, a user error raised as
itself, and any other failure of a rank as one error naming it. The full evaluation on two ranks is
tests/unit/eval/test_eval_cli.py::test_two_local_ranks_translate_each_sentence_once."""

from __future__ import annotations

import os

import pytest
from omegaconf import OmegaConf

from mfti_lightning.core.errors import ConfigError
from mfti_lightning.tasks.evaluate import run_ranks

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(180)]

TWO_CPU_RANKS = OmegaConf.create({"trainer": {"accelerator": "cpu", "devices": 2, "num_nodes": 1}})


def _who(fabric):
    """Every rank's (global rank, local rank, world size, pid), gathered over the process group on every rank."""
    import torch.distributed as dist

    out = [None] * fabric.world_size
    dist.all_gather_object(out, (fabric.global_rank, fabric.local_rank, dist.get_world_size(), os.getpid()))
    return out


def _user_error(fabric):
    raise ConfigError(f"eval.batch_tokens too small on rank {fabric.global_rank}: set eval.batch_tokens=4096.")


def _rank_1_breaks(fabric):
    if fabric.global_rank == 1:
        raise ValueError("rank 1 broke")
    return "rank 0 done"


@pytest.fixture(autouse=True)
def _no_inherited_ranks(monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "SLURM_NTASKS", "MASTER_PORT"):
        monkeypatch.setenv(k, "unset")  # set then delete: restored to absent after the test
        monkeypatch.delenv(k)


def test_two_forked_ranks_form_one_process_group():
    record = {}
    who = run_ranks(TWO_CPU_RANKS, record, _who)
    assert record["world_size"] == 2
    assert [w[:3] for w in who] == [(0, 0, 2), (1, 1, 2)]
    assert len({w[3] for w in who} | {os.getpid()}) == 3  # two forked processes; this one starts no group
    import torch.distributed as dist

    assert not dist.is_initialized()


def test_a_user_error_on_the_ranks_is_raised_as_itself():
    with pytest.raises(ConfigError, match=r"on rank 0: set eval.batch_tokens=4096\.$"):
        run_ranks(TWO_CPU_RANKS, {}, _user_error)


def test_a_failing_rank_fails_the_evaluation_naming_the_rank():
    with pytest.raises(
        RuntimeError, match=r"(?s)^evaluation rank 1 of 2 failed \(ValueError: rank 1 broke\).*in _rank_1_breaks"
    ):
        run_ranks(TWO_CPU_RANKS, {}, _rank_1_breaks)


def test_one_device_runs_in_this_process():
    record = {}
    assert run_ranks(OmegaConf.create({"trainer": {"accelerator": "cpu", "devices": 1, "num_nodes": 1}}), record,
                     lambda fabric: (fabric.global_rank, fabric.world_size, os.getpid())) == (0, 1, os.getpid())  # fmt: skip
    assert record["world_size"] == 1
