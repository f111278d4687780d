"""Kill a training run with SIGKILL after a checkpoint, resume it: the final weights equal an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

ARGS = [
    "num_examples.n=16",
    "optim.max_steps=8",
    "checkpoint.every_n_steps=4",
    "checkpoint.keep=5",
    "checkpoint.export=false",
    "eval.val_every_n_steps=6",
    "lang_pairs.val_size=2",
    "lang_pairs.test_size=2",
    "eval.max_new_tokens=4",
    "eval.score_before_training=false",
    "progress.mode=none",
    "trainer.log_every_n_steps=1",
]


def _start(cwd: Path, extra: list[str]) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-m", "mfti_lightning.cli.train", *ARGS, *extra],
        cwd=cwd,
        env=env,
        stdout=open(cwd / "stdout.txt", "w"),
        stderr=subprocess.STDOUT,
    )


def _run_dir(cwd: Path) -> Path:
    (d,) = list((cwd / "outputs" / "train" / "runs").iterdir())
    return d


def _wait(p: subprocess.Popen, cwd: Path, timeout: float) -> None:
    try:
        p.wait(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, (cwd / "stdout.txt").read_text()[-4000:]


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("batch", [[], ["optim.global_batch_size=32"]], ids=["accumulate1", "accumulate2"])
def test_sigkill_then_resume_gives_identical_weights(tmp_path, batch):
    import torch

    full = _start(tmp_path / "full", ["logger=none", *batch])
    killed = _start(tmp_path / "killed", ["logger=csv", *batch])
    first = None
    deadline = time.time() + 240
    while time.time() < deadline and killed.poll() is None:
        found = list((tmp_path / "killed").glob("outputs/train/runs/*/checkpoints/periodic/step000004.ckpt"))
        if found:
            first = found[0]
            break
        time.sleep(0.2)
    if killed.poll() is None:
        os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    assert first is not None and killed.returncode == -signal.SIGKILL, (tmp_path / "killed/stdout.txt").read_text()
    run_dir = _run_dir(tmp_path / "killed")
    assert not (run_dir / "results.json").exists()  # it really died mid-training
    assert not (run_dir / "checkpoints/periodic/step000008.ckpt").exists()

    resumed = _start(tmp_path / "killed", ["logger=csv", *batch])
    _wait(resumed, tmp_path / "killed", 500)
    _wait(full, tmp_path / "full", 500)
    assert "Resuming from" in (tmp_path / "killed/stdout.txt").read_text()

    a = torch.load(_run_dir(tmp_path / "full") / "checkpoints/periodic/step000008.ckpt", weights_only=False)
    b = torch.load(run_dir / "checkpoints/periodic/step000008.ckpt", weights_only=False)
    assert a["global_step"] == b["global_step"] == 8
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    sa, sb = a["optimizer_states"][0]["state"], b["optimizer_states"][0]["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)

    r = json.loads((run_dir / "results.json").read_text())
    assert r["status"] == "completed" and r["training"]["steps"] == 8
    metrics = (run_dir / "csv" / "metrics.csv").read_text()
    assert "train/loss" in metrics


def test_wandb_run_id_is_stored_and_reused(tmp_path):
    from mfti_lightning.track.tracking import wandb_run_id

    rid = wandb_run_id(tmp_path)
    assert (tmp_path / "wandb_run_id.txt").read_text().strip() == rid
    (tmp_path / "wandb_run_id.txt").write_text("abc123\n")  # e.g. moved run dir: the stored id wins
    assert wandb_run_id(tmp_path) == "abc123"
