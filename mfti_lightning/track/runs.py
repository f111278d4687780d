"""Finding and loading runs for ``mfti-report`` and ``mfti-score``: every ``results.json`` under the given run or
sweep directories, with one problem line per path or job directory that has none (never dropped silently)."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

from mfti_lightning.core.results import RESULTS_FILE
from mfti_lightning.core.results_schema import RunResults
from mfti_lightning.track.run_values import extraction_of

log = logging.getLogger("mfti_lightning.track.report")

SKIP_DIRS = {"wandb", "checkpoints", ".submitit", "tokenizer", "translations", "val", "eval_state", ".hydra"}


def _walk(root: Path, found: list[Path], jobs: list[Path], depth: int = 0) -> None:
    if (root / RESULTS_FILE).is_file():
        found.append(root)
        return
    if (root / ".hydra").is_dir() or (root / "wandb_run_id.txt").exists():
        jobs.append(root)  # a job directory without results.json: never started properly, or killed early
        return
    if depth > 6:
        return
    for child in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in SKIP_DIRS):
        _walk(child, found, jobs, depth + 1)


def _read(d: Path, records: list[dict], problems: list[str]) -> None:
    """Append the record of run directory ``d`` (with ``_dir``), or a problem line when it is unreadable."""
    try:
        rec = json.loads((d / RESULTS_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        problems.append(f"{d / RESULTS_FILE}: unreadable ({e})")
        return
    rec["_dir"] = str(d)
    records.append(rec)


def collect(paths: list[str | Path]) -> tuple[list[dict], list[str]]:
    """The results records under ``paths`` (each with ``_dir``), and one problem line per path or job directory
    without a readable results.json."""
    records, problems, seen = [], [], set()
    for p in map(Path, paths):
        if not p.exists():
            problems.append(f"{p}: does not exist")
            continue
        if not p.is_dir():
            p = p.parent if p.name == RESULTS_FILE else p
        found, jobs = [], []
        _walk(p, found, jobs)
        for job in jobs:
            problems.append(f"{job}: no {RESULTS_FILE} (the job never started, or died before writing it)")
        if not found and not jobs:
            problems.append(f"{p}: no {RESULTS_FILE} in it or below it (is this a run or sweep directory?)")
        for d in found:
            if d.resolve() not in seen:
                seen.add(d.resolve())
                _read(d, records, problems)
    return records, problems


def extraction_note(records: list[dict]) -> str:
    """A warning line for report.md when the runs were scored with different ``eval.extraction`` modes."""
    modes = defaultdict(int)
    for r in records:
        modes[extraction_of(r)] += 1
    if len(modes) < 2:
        return f"Extraction: {next(iter(modes), 'none')} (every run).\n\n"
    counts = ", ".join(f"{m}: {n} run(s)" for m, n in sorted(modes.items()))
    return (
        f"**Warning: the runs use different extraction modes ({counts}).** Their scores are not comparable; every "
        "figure labels each series with its extraction (`[extraction ...]`) instead of mixing them.\n\n"
    )


def load_runs(paths) -> tuple[list[dict], list[dict], list[str]]:
    """Completed runs, the other runs, and the problems found (all logged); SystemExit when there is nothing."""
    records, problems = collect(paths)
    for p in problems:
        log.warning("%s", p)
    if not records:
        raise SystemExit(
            "mfti-report: no results.json found.\n  "
            + "\n  ".join(problems)
            + "\nGive run directories (with results.json) or the sweep directories above them."
        )
    done = [r for r in records if RunResults.of(r).completed]
    not_done = [r for r in records if not RunResults.of(r).completed]
    for rec in not_done:
        r = RunResults.of(rec)
        log.warning("%s: status %s%s", rec["_dir"], r.status, f" ({r.error})" if r.error else "")
    if len({extraction_of(r) for r in done}) > 1:
        log.warning("%s", extraction_note(done).strip().replace("**", ""))
    return done, not_done, problems
