"""Two CPU processes: DDP (ddp_fork) and FSDP2 (fully_shard through ModelParallelStrategy, gloo) fit the tiny
model end to end through the console entry point; FSDP2's sharded checkpoint is consolidated into an HF export."""

from __future__ import annotations

import json
import os
import sys

import pytest
from conftest import REPO

pytestmark = [pytest.mark.slow]

COMMON = [
    "num_examples.n=16",
    "optim.global_batch_size=16",
    "optim.micro_batch_size=8",
    "optim.max_steps=3",
    "checkpoint.every_n_steps=3",
    "eval.val_every_n_steps=3",
    "lang_pairs.val_size=2",
    "lang_pairs.test_size=2",
    "eval.max_new_tokens=4",
    "eval.score_before_training=false",
    "logger=none",
    "progress.mode=none",
    "trainer.devices=2",
]


def _run(tmp_path, extra):
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run(
        [sys.executable, "-m", "mfti_lightning.cli.train", *COMMON, *extra],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    (run_dir,) = list((tmp_path / "outputs" / "train" / "runs").iterdir())
    return run_dir, json.loads((run_dir / "results.json").read_text())


def _check(run_dir, r):
    assert r["status"] == "completed" and r["training"]["steps"] == 3
    assert r["batch"] == {"world_size": 2, "micro_batch_size": 8, "accumulate": 1, "global_batch_size": 16}
    tp = r["throughput"]
    assert tp["world_size"] == 2 and tp["tokens_per_s"] > 0 and 0 < tp["padding_efficiency"] <= 1
    assert tp["params_total"] == tp["params_trainable"] == 909824
    assert isinstance(r["metrics"]["test/chrf/avg"], float)


@pytest.mark.timeout(300)
def test_ddp_cpu_two_processes(tmp_path):
    run_dir, r = _run(tmp_path, ["trainer=ddp_cpu"])
    _check(run_dir, r)
    assert (run_dir / "checkpoints" / "periodic" / "step000003.ckpt").is_file()


@pytest.mark.timeout(300)
def test_fsdp2_two_processes_and_export(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    run_dir, r = _run(tmp_path, ["trainer=fsdp2", "trainer.accelerator=cpu"])
    _check(run_dir, r)
    ckpt = run_dir / "checkpoints" / "periodic" / "step000003.ckpt"
    assert ckpt.is_dir() and (ckpt / "meta.pt").exists()  # sharded: one file per rank
    from mfti_lightning.model.checkpoint_files import load_checkpoint, model_state

    state = model_state(load_checkpoint(ckpt)["state_dict"])
    hf = AutoModelForCausalLM.from_pretrained(run_dir / "hf")
    for k, v in hf.state_dict().items():
        if k in state:
            assert torch.equal(v, state[k]), k
    assert (run_dir / "hf" / "template.json").exists() and (run_dir / "hf" / "tokenizer.json").exists()
