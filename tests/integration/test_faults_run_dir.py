"""Faults around a run directory, through the real entry point on the tiny model (issue "Faults lose nothing and
change nothing"): a refused invocation changes nothing, a failed attempt never replaces a completed result, an
unreadable results.json is kept aside, a moved or copied run uses its own files, SIGTERM exits non-zero with one
line, two processes never share a run directory, and user errors print one line without a traceback.

One tiny run is trained once per module (``completed``); each test works on its own copy of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

from mfti_lightning.core.results_schema import problems

FAST = [
    "logger=none",
    "num_examples.n=16",
    "optim.global_batch_size=4",
    "optim.micro_batch_size=4",
    "optim.max_steps=4",
    "checkpoint.every_n_steps=2",
    "eval.val_every_n_steps=2",
    "eval.max_new_tokens=4",
    "eval.score_before_training=false",
    "lang_pairs.val_size=2",
    "lang_pairs.test_size=2",
    "progress.mode=none",
]


def _env(root: Path, **extra) -> dict:
    env = {**os.environ, "MFTI_OUTPUT_ROOT": str(root), "PYTHONPATH": str(REPO), **extra}
    env.pop("HYDRA_FULL_ERROR", None)
    env.update(extra)
    return env


def train(root: Path, *args: str, timeout: float = 400, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mfti_lightning.cli.train", *FAST, *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(root, **env),
    )


def start(root: Path, *args: str, log: str = "out.txt") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mfti_lightning.cli.train", *FAST, *args],
        cwd=root,
        stdout=open(root / log, "w"),
        stderr=subprocess.STDOUT,
        env=_env(root),
    )


def run_dir_under(root: Path) -> Path:
    (d,) = (root / "train" / "runs").iterdir()
    return d


def digest(run_dir: Path) -> dict[str, str]:
    """md5 of every file of a run directory, by relative path (what `md5sum` of the whole directory compares)."""
    return {
        str(p.relative_to(run_dir)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def completed(tmp_path_factory, tiny_model_dir) -> Path:
    """An output root holding one completed tiny run (trained once for the module)."""
    root = tmp_path_factory.mktemp("completed")
    p = train(root)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return root


@pytest.fixture
def copy(completed, tmp_path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(completed, root)
    return root


# ---- refusals change nothing, and say so in one line ----------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_refused_invocation_changes_nothing_in_a_completed_run(copy):
    run_dir = run_dir_under(copy)
    before = digest(run_dir)
    p = train(copy, "eval.num_beams=0")
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines == [lines[0]] and lines[0].startswith("mfti-train: error: ") and "eval.num_beams" in lines[0], lines
    assert "Traceback" not in p.stderr + p.stdout
    assert digest(run_dir) == before  # .hydra/config.yaml, overrides.yaml, the log: all untouched
    p = train(copy)  # the same command again: a skip, which writes nothing either
    assert p.returncode == 0 and "already completed" in p.stdout, p.stdout[-2000:]
    assert digest(run_dir) == before


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_refusal_of_another_experiment_changes_nothing_and_traceback_only_on_request(copy):
    run_dir = run_dir_under(copy)
    before = digest(run_dir)
    other = ["optim.optimizer.lr=1e-3", f"hydra.run.dir={run_dir}"]  # another experiment into this directory
    p = train(copy, *other)
    assert p.returncode == 2 and "holds a completed run of another experiment" in p.stderr, p.stderr[-2000:]
    assert "Traceback" not in p.stderr and digest(run_dir) == before
    p = train(copy, *other, HYDRA_FULL_ERROR="1")
    assert p.returncode != 0 and "Traceback" in p.stderr and "ConfigError" in p.stderr
    assert digest(run_dir) == before


# ---- a failed attempt never replaces a completed result --------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_failed_reevaluation_keeps_the_completed_results(copy):
    run_dir = run_dir_under(copy)
    results = (run_dir / "results.json").read_bytes()
    (best,) = (run_dir / "checkpoints" / "best").glob("*.ckpt")
    best.write_bytes(b"")  # a zero-byte best checkpoint (a full disk, a killed copy)
    p = train(copy, "eval.num_beams=2")  # evaluation settings changed: re-evaluate the best checkpoint
    assert p.returncode != 0
    assert (run_dir / "results.json").read_bytes() == results  # reports keep reading the completed result
    attempt = json.loads((run_dir / "failed_attempts" / "0.json").read_text())
    assert attempt["status"] == "failed" and attempt["error"]
    assert problems(attempt) == [] and attempt["reevaluation"]["changed"]  # the documented record, reevaluation too
    assert "the completed results.json is kept" in p.stdout + p.stderr


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_unreadable_results_json_is_kept_aside_with_a_warning(copy):
    run_dir = run_dir_under(copy)
    (run_dir / "results.json").write_text('{"status": "comp')  # cut mid-write by something else
    p = train(copy)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert "results.json does not parse" in p.stdout and "results.json.unreadable-0" in p.stdout
    assert (run_dir / "results.json.unreadable-0").read_text() == '{"status": "comp'
    assert json.loads((run_dir / "results.json").read_text())["status"] == "completed"


# ---- a moved or copied run refers to its own files ---------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_results_paths_are_relative_to_the_run_dir(completed):
    raw = json.loads((run_dir_under(completed) / "results.json").read_text())
    assert raw["run_dir"] == "."
    assert raw["best_checkpoint"].startswith("checkpoints/best/step") and raw["export_dir"] == "hf"
    assert str(completed) not in json.dumps({k: raw[k] for k in ("best_checkpoint", "export_dir", "run_dir")})


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_moved_run_reevaluates_from_its_own_files(copy, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.move(copy, moved)
    p = train(moved, "eval.num_beams=2")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert "re-evaluated without training" in p.stdout
    raw = json.loads((run_dir_under(moved) / "results.json").read_text())
    assert raw["reevaluation"]["previous_results"] == "previous_results/0.json"
    assert raw["reevaluation"]["best_checkpoint"] == raw["best_checkpoint"]


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_copied_run_reevaluates_its_own_checkpoint_not_the_originals(completed, tmp_path):
    original = tmp_path / "original"
    shutil.copytree(completed, original)
    copied = tmp_path / "copied"
    shutil.copytree(original, copied)
    shutil.rmtree(run_dir_under(original) / "checkpoints")  # if the copy read the original's, it would fail
    p = train(copied, "eval.num_beams=2")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    state = next((run_dir_under(copied) / "eval_state" / "test").glob("*.json"))
    assert json.loads(state.read_text())["settings"]["checkpoint"].startswith("checkpoints/best/")


# ---- SIGTERM: non-zero, one line, resumable -------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(500)
def test_sigterm_during_training_exits_non_zero_with_one_line_then_resumes(tmp_path, tiny_model_dir):
    args = ["optim.max_steps=40", "checkpoint.every_n_steps=2", "eval.val_every_n_steps=20"]
    proc = start(tmp_path, *args)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if list(tmp_path.glob("train/runs/*/checkpoints/periodic/step000002.ckpt")):
            break
        time.sleep(0.1)
    assert proc.poll() is None, (tmp_path / "out.txt").read_text()[-3000:]
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    out = (tmp_path / "out.txt").read_text()
    assert proc.returncode == 143, out[-3000:]
    lines = [ln for ln in out.splitlines() if "interrupted by SIGTERM" in ln]
    assert len(lines) == 1 and lines[0].startswith("mfti-train: interrupted by SIGTERM at step "), out[-3000:]
    assert "run the same command again to resume" in lines[0] and "Traceback" not in out
    run_dir = run_dir_under(tmp_path)
    record = json.loads((run_dir / "results.json").read_text())
    assert record["status"] == "interrupted" and not (run_dir / "lease.json").exists()
    p = train(tmp_path, *args)
    assert p.returncode == 0 and "Resuming from" in p.stdout, p.stdout[-3000:]
    assert json.loads((run_dir / "results.json").read_text())["training"]["steps"] == 40


# ---- one run directory, one owner -------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_launches_at_once_one_refuses_at_once_naming_the_holder(tmp_path, tiny_model_dir):
    a, b = start(tmp_path, log="a.txt"), start(tmp_path, log="b.txt")
    a.wait(timeout=500), b.wait(timeout=500)
    outs = {p.returncode: (tmp_path / name).read_text() for p, name in ((a, "a.txt"), (b, "b.txt"))}
    assert sorted(outs) == [0, 2], outs
    refused = outs[2]
    assert "is in use by another process (pid " in refused and "Traceback" not in refused, refused[-2000:]
    assert "Resuming" not in refused and "step" not in refused.split("is in use")[0]  # refused before any work
    run_dir = run_dir_under(tmp_path)
    assert json.loads((run_dir / "results.json").read_text())["status"] == "completed"
    assert [p.name for p in (run_dir / "checkpoints" / "periodic").iterdir()] == sorted(
        p.name for p in (run_dir / "checkpoints" / "periodic").iterdir()
    )
    assert not [p for p in run_dir.rglob("*-v1.ckpt")]  # no duplicate checkpoints of a second trainer


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_lease_of_a_killed_holder_is_taken_over(tmp_path, tiny_model_dir):
    proc = start(tmp_path, "optim.max_steps=6")
    deadline = time.time() + 300
    while time.time() < deadline and not list(tmp_path.glob("train/runs/*/lease.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert list(tmp_path.glob("train/runs/*/lease.json"))  # left behind by the killed holder
    p = train(tmp_path, "optim.max_steps=6")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert f"took over the lease of a process that is gone (pid {proc.pid}" in p.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_killed_run_moved_to_another_filesystem_path_resumes_from_its_own_checkpoint(tmp_path, tiny_model_dir):
    """Scratch -> project storage: a run killed mid-training is moved, then resumed where it now lies."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc = start(scratch, "optim.max_steps=6")
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if list(scratch.glob("train/runs/*/checkpoints/periodic/step000002.ckpt")):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    moved = tmp_path / "project"
    shutil.move(scratch, moved)
    p = train(moved, "optim.max_steps=6")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    run_dir = run_dir_under(moved)
    assert f"Resuming from {run_dir}/checkpoints/periodic/step" in p.stdout, p.stdout[-3000:]
    raw = json.loads((run_dir / "results.json").read_text())
    assert raw["status"] == "completed" and raw["best_checkpoint"].startswith("checkpoints/best/")
    assert (run_dir / raw["best_checkpoint"]).is_file()
    assert str(scratch) not in (run_dir / "results.json").read_text()
