"""Tiny training runs in subprocesses, killed at chosen points, and what must be identical to an uninterrupted run:
the weights, the best step, ``checkpoints/best/``, the ``hf/`` export and results.json (timings aside).

Used by tests/integration/test_resume.py and tests/integration/test_faults_checkpoints.py. Kill points inside a run come from
tests/faults/sitecustomize.py (``MFTI_TEST_KILL``), put first on the subprocess's PYTHONPATH.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

FAULTS = Path(__file__).resolve().parent / "faults"
# the schedule: a periodic checkpoint every 2 steps, validation every 4 (steps 4 and 8 are both), a warmup
# over all 8 steps so that a resumed learning-rate schedule that slipped by one step changes the weights
TINY = [
    "num_examples.n=16",
    "optim.max_steps=8",
    "optim.warmup_steps=8",
    "checkpoint.every_n_steps=2",
    "checkpoint.keep=5",
    "eval.val_every_n_steps=4",
    "lang_pairs.val_size=2",
    "lang_pairs.test_size=2",
    "eval.max_new_tokens=4",
    "eval.score_before_training=false",
    "progress.mode=none",
    "logger=csv",
    "sweep_name=faults",
    "trainer.log_every_n_steps=1",
]
# what differs between two attempts of the same run without changing a result (also between two uninterrupted runs)
TIMINGS = (
    "data.cache.hit",  # whether this attempt found the prepared training pairs already cached
    "wall_time_s",
    "provenance",
    "resumed_directions",  # test directions this attempt reloaded instead of translating (their scores are equal)
    "throughput",  # this attempt's tokens, seconds and rates
    "training.throughput",
    "training.train_time_s",
    "training.tokens_per_s_rank0",
)


def start(cwd: Path, extra: list[str] = (), kill: str = "", args: list[str] = TINY) -> subprocess.Popen:
    """``python -m mfti_lightning.cli.train <args> <extra>`` in ``cwd``; its output goes to ``proc.log``
    (``cwd/out-<n>.txt``, n counting the launches in ``cwd``)."""
    cwd.mkdir(parents=True, exist_ok=True)
    path = [str(FAULTS)] if kill else []
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([*path, str(REPO), os.environ.get("PYTHONPATH", "")]),
        "MFTI_TEST_KILL": kill,
    }
    log = cwd / f"out-{len(list(cwd.glob('out-*.txt')))}.txt"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mfti_lightning.cli.train", *args, *extra],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    proc.log = log
    return proc


def finish(p: subprocess.Popen, timeout: float = 400) -> tuple[int, str]:
    """Wait for ``p``; its return code and output."""
    try:
        p.wait(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=30)
    return p.returncode, p.log.read_text()


def train(cwd: Path, extra: list[str] = (), kill: str = "", timeout: float = 400) -> tuple[int, str]:
    return finish(start(cwd, extra, kill), timeout)


def run_dir(cwd: Path) -> Path:
    (d,) = list((cwd / "outputs" / "train" / "runs").iterdir())
    return d


def comparable_results(run: Path) -> dict:
    """results.json flattened, without :data:`TIMINGS`, the run directory written as ``<run>`` (absolute or
    relative paths alike)."""
    record = json.loads((run / "results.json").read_text())
    flat = {}

    def walk(node, prefix):
        for k, v in node.items():
            key = f"{prefix}{k}"
            if any(key == t or key.startswith(t + ".") for t in TIMINGS):
                continue
            if isinstance(v, dict):
                walk(v, key + ".")
            else:
                text = json.dumps(v, sort_keys=True)
                for prefix_path in (str(run.resolve()), str(run)):
                    text = text.replace(prefix_path, "<run>")
                flat[key] = text.replace(str(run.parent.parent.parent.parent), "<cwd>")

    walk(record, "")
    return flat


def hf_files(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((run / "hf").iterdir())}


def checkpoint_weights(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def best_files(run: Path) -> dict[str, int]:
    return {p.name: checkpoint_weights(p)["global_step"] for p in sorted((run / "checkpoints/best").iterdir())}


def assert_same_run(a: Path, b: Path) -> None:
    """The run in ``b`` ended as the run in ``a``: same best step and best/ files (weights too), same final weights
    and optimizer state, the same hf/ export byte for byte, the same results.json but for timings."""
    import torch

    ra, rb = comparable_results(a), comparable_results(b)
    assert ra["best_step"] == rb["best_step"], (ra["best_step"], rb["best_step"])
    assert best_files(a) == best_files(b), (best_files(a), best_files(b))
    for name in best_files(a):
        wa, wb = (checkpoint_weights(r / "checkpoints/best" / name)["state_dict"] for r in (a, b))
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name
    last = checkpoint_weights(a / "checkpoints/periodic/step000008.ckpt")
    other = checkpoint_weights(b / "checkpoints/periodic/step000008.ckpt")
    assert last["global_step"] == other["global_step"] == 8
    for k in last["state_dict"]:
        assert torch.equal(last["state_dict"][k], other["state_dict"][k]), k
    sa, sb = last["optimizer_states"][0]["state"], other["optimizer_states"][0]["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    assert hf_files(a) == hf_files(b), (hf_files(a), hf_files(b))
    diff = {k: (ra.get(k), rb.get(k)) for k in ra.keys() | rb.keys() if ra.get(k) != rb.get(k)}
    assert diff == {}, f"results.json differs (uninterrupted, resumed): {diff}"
