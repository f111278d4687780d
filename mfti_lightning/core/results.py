"""The one results format: ``results.json`` in every run directory. No torch here.

Layout (``schema`` 1)::

    {
      "schema": 1,
      "status": "completed" | "failed" | "running",
      "task": "train" | "eval",
      "run_name": "...", "run_dir": "...", "sweep_name": "...",
      "swept": {"model": ..., "lang_pairs": ..., "template": ..., "shots": ..., "num_examples": ...},
      "metrics": {"<split>/<metric>/<src>-<tgt>": float, "<split>/<metric>/avg": float, ...},
      "signatures": {"<split>/<metric>/<src>-<tgt>": "<sacrebleu signature>", ...},
      "training": {"steps", "loss_first", "loss_last", ...},
      "data": {per-direction counts and what the filters dropped},
      "config": {the resolved config},
      "provenance": {"git_commit", "git_dirty", "packages", "python", "hostname", "started_at"},
      "wall_time_s": float,
      "error": "..." (failed runs only)
    }

Splits: ``val_init`` (dev subset before finetuning), ``val`` (dev subset, last validation), ``test`` (devtest).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from mfti_lightning.core.layout import RESULTS_FILE

SCHEMA = 1
PACKAGES = (
    "mfti-lightning",
    "torch",
    "pytorch-lightning",
    "transformers",
    "tokenizers",
    "sentencepiece",
    "hydra-core",
    "omegaconf",
    "sacrebleu",
    "wandb",
    "submitit",
    "hydra-submitit-launcher",
)


def atomic_write(path: str | Path, write) -> Path:
    """Call ``write(f)`` on a temp file in the same directory, fsync, then rename it over ``path``: readers see
    the old file or the new one, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | Path, obj) -> Path:
    def write(f):
        json.dump(obj, f, indent=2, ensure_ascii=False, default=str)
        f.write("\n")

    return atomic_write(path, write)


def write_jsonl_atomic(path: str | Path, items: list[dict]) -> Path:
    return atomic_write(path, lambda f: f.writelines(json.dumps(i, ensure_ascii=False) + "\n" for i in items))


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_results(run_dir: str | Path) -> dict | None:
    path = Path(run_dir) / RESULTS_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def git_state(start: str | Path | None = None) -> dict:
    """Commit and dirty flag of the source tree this package runs from (None outside a git checkout)."""
    here = Path(start or Path(__file__).resolve().parent)
    try:
        commit = (
            subprocess.run(
                ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or None
        )
        status = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = bool(status.stdout.strip()) if commit and status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"git_commit": commit, "git_dirty": dirty}


def package_versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance() -> dict:
    return {
        **git_state(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }


def objective(metrics: dict) -> float | None:
    """The value a job returns to Hydra (a sweeper's objective): the averaged test BLEU, else chrF."""
    for key in ("test/spbleu/avg", "test/bleu/avg", "test/chrf/avg"):
        if key in metrics:
            return float(metrics[key])
    return None
