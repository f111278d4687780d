"""The one results format: ``results.json`` in every run directory. No torch here.

The record, every key with its type and meaning, and its typed read (``RunResults.read``):
:mod:`mfti_lightning.core.results_schema`. This module writes and reads the plain JSON object.

Metric keys (``<split>/<metric>/<scope>``: the splits, metrics and scopes): :mod:`mfti_lightning.core.metric_key`.

Paths: on disk, every path in :data:`RUN_PATHS` that lies inside the run directory is written relative to it
(``"best_checkpoint": "checkpoints/best/step000004.ckpt"``, ``"run_dir": "."``); :func:`read_results` gives them
back absolute, under the directory the file was read from. A moved or copied run directory therefore refers to its
own files. Paths outside the run directory (a checkpoint evaluated by ``mfti-eval``) stay absolute.
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
from mfti_lightning.core.metric_key import AVG, MetricKey

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


# the keys of results.json that hold paths (a tuple per nested key): relative to the run directory on disk
RUN_PATHS = (
    ("run_dir",),
    ("best_checkpoint",),
    ("export_dir",),
    ("reevaluation", "previous_results"),
    ("reevaluation", "best_checkpoint"),
)


def relative_to_run(path, run_dir: str | Path):
    """``path`` relative to ``run_dir`` (posix, ``"."`` for the directory itself) when it lies inside it, else
    ``path`` unchanged (None stays None)."""
    if path in (None, ""):
        return path
    root, p = Path(run_dir).resolve(), Path(str(path))
    p = p.resolve() if p.is_absolute() else p
    try:
        return p.relative_to(root).as_posix() or "."
    except ValueError:
        return str(path)


def _map_paths(record: dict, fn) -> dict:
    out = dict(record)
    for key in RUN_PATHS:
        node = out
        for part in key[:-1]:
            if not isinstance(node.get(part), dict):
                break
            node[part] = node = dict(node[part])
        else:
            if isinstance(node.get(key[-1]), str):
                node[key[-1]] = fn(node[key[-1]])
    return out


def write_results(run_dir: str | Path, record: dict, path: str | Path | None = None) -> Path:
    """Write a results record of ``run_dir`` atomically (to its results.json, or to ``path``: an archived copy
    inside the run directory), its paths relative to the run directory."""
    path = Path(path) if path is not None else Path(run_dir) / RESULTS_FILE
    return write_json_atomic(path, _map_paths(record, lambda p: relative_to_run(p, run_dir)))


def read_results(run_dir: str | Path, path: str | Path | None = None) -> dict | None:
    """The results record of a run directory (its results.json, or an archived copy at ``path``) with its paths
    absolute under ``run_dir`` (None when there is none; ValueError when the file does not parse)."""
    root = Path(run_dir).resolve()
    path = Path(path) if path is not None else root / RESULTS_FILE
    if not path.exists():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(record, dict):
        raise ValueError(f"{path}: not a JSON object")
    return _map_paths(record, lambda p: p if Path(p).is_absolute() else str((root / p).resolve()))


def set_aside_unreadable(run_dir: str | Path, log) -> Path | None:
    """A results.json that does not parse is moved aside (``results.json.unreadable-<n>``, never deleted) with a
    warning, so that the run proceeds as one without results; returns the new path, None when it was readable."""
    path = Path(run_dir) / RESULTS_FILE
    try:
        read_results(run_dir)
        return None
    except (ValueError, UnicodeDecodeError) as e:
        n = len(list(path.parent.glob(f"{RESULTS_FILE}.unreadable-*")))
        aside = path.with_name(f"{RESULTS_FILE}.unreadable-{n}")
        os.replace(path, aside)
        log.warning("%s does not parse (%s); kept as %s. The run goes on as one without results.", path, e, aside)
        return aside


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
    for metric in ("spbleu", "bleu", "chrf"):
        if (key := str(MetricKey("test", metric, AVG))) in metrics:
            return float(metrics[key])
    return None
