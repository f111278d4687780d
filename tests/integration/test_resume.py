"""Kill a training run with SIGKILL after a checkpoint, resume it: it ends as the uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from resume_runs import assert_same_run, finish, run_dir, start


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "batch, kill_at",
    [([], 4), (["optim.global_batch_size=32"], 6)],
    ids=["accumulate1-kill-at-step4", "accumulate2-kill-at-step6"],
)
def test_sigkill_then_resume_gives_the_same_run(tmp_path, batch, kill_at):
    """The issue's run (checkpoints every 2 steps, validation every 4, a constant learning rate), killed with
    SIGKILL from outside as soon as the periodic checkpoint of step ``kill_at`` exists, then resumed: the same
    weights, best step, checkpoints/best/, hf/ export and results.json (but timings) as the uninterrupted run
    (tests/resume_runs.assert_same_run). Step 4 is validated: its checkpoint used to be written before that
    validation, so the resumed run never validated step 4 and picked step 8."""
    batch = [*batch, "optim.warmup_steps=0"]
    full = start(tmp_path / "full", batch)
    killed = start(tmp_path / "killed", batch)
    first = None
    deadline = time.time() + 400
    while time.time() < deadline and killed.poll() is None:
        found = list((tmp_path / "killed").glob(f"outputs/train/runs/*/checkpoints/periodic/step{kill_at:06d}.ckpt"))
        if found:
            first = found[0]
            break
        time.sleep(0.05)
    if killed.poll() is None:
        os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    log = killed.log.read_text()
    assert first is not None and killed.returncode == -signal.SIGKILL, log[-4000:]
    run = run_dir(tmp_path / "killed")
    assert not (run / "results.json").exists()  # it really died mid-training
    assert not (run / "checkpoints/periodic/step000008.ckpt").exists()
    newest = max((run / "checkpoints/periodic").glob("step*.ckpt"))

    rc, out = finish(start(tmp_path / "killed", batch), 500)
    assert rc == 0, out[-4000:]
    assert f"Resuming from {newest}" in out
    rc, out = finish(full, 500)
    assert rc == 0, out[-4000:]
    # the case the issue found: the best step (4) lies before the kill, and step 8 does not beat it
    assert json.loads((run_dir(tmp_path / "full") / "results.json").read_text())["best_step"] == 4
    assert_same_run(run_dir(tmp_path / "full"), run)
    r = json.loads((run / "results.json").read_text())
    assert r["status"] == "completed" and r["training"]["steps"] == 8
    assert [s for s, _ in r["training"]["loss_history"]] == list(range(8))  # the whole curve, across the kill
    assert "train/loss" in (run / "csv" / "metrics.csv").read_text()


def test_wandb_run_id_is_stored_and_reused(tmp_path):
    from mfti_lightning.track.wandb_run import wandb_run_id

    rid = wandb_run_id(tmp_path)
    assert (tmp_path / "wandb_run_id.txt").read_text().strip() == rid
    (tmp_path / "wandb_run_id.txt").write_text("abc123\n")  # e.g. moved run dir: the stored id wins
    assert wandb_run_id(tmp_path) == "abc123"
