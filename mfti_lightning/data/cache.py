"""The files of a prepared-data cache entry (``data.cache_dir/<key>/``, filled by
:func:`mfti_lightning.data.prepare.load_or_prepare`): written together in a temporary directory that is renamed
into place, with ``check.json`` (the example count and each file's sha256); read back only when they match it.

A damaged entry (a file cut short, edited, missing) is reported with a warning naming the file and rebuilt, so a
job never trains silently on fewer examples than its results.json records. No torch here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from mfti_lightning.core.results import write_jsonl_atomic

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: check.json, verified on every read (part of the cache key: older entries are not read)
EXAMPLES_FILE = "train.jsonl"
REPORT_FILE = "report.json"
KEY_FILE = "key.json"  # what the entry was prepared from (data_key), for people
CHECK_FILE = "check.json"  # the example count and the sha256 of EXAMPLES_FILE and REPORT_FILE


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_cache(entry: Path, examples: list[dict], report: dict, key: dict) -> None:
    """The entry's files and their check, in a temporary directory renamed to ``entry`` (the first rename wins)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        write_jsonl_atomic(tmp / EXAMPLES_FILE, examples)
        (tmp / KEY_FILE).write_text(json.dumps(key, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        check = {"examples": len(examples), "sha256": {}}
        for name in (EXAMPLES_FILE, REPORT_FILE):
            check["sha256"][name] = _sha256((tmp / name).read_bytes())
        (tmp / CHECK_FILE).write_text(json.dumps(check, indent=1) + "\n", encoding="utf-8")
        try:
            os.rename(tmp, entry)
        except OSError:  # another job renamed its copy first: identical content, keep theirs
            pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_cache(entry: Path) -> tuple[list[dict], dict] | None:
    """The cached examples and report when every file matches ``check.json`` (the example count, then each
    file's sha256); otherwise None, after a warning naming the damaged file."""
    try:
        check = json.loads((entry / CHECK_FILE).read_text(encoding="utf-8"))
        expected, sums = int(check["examples"]), dict(check["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        return _damaged(entry / CHECK_FILE, f"missing or unreadable ({type(e).__name__})")
    data = {}
    for name in (EXAMPLES_FILE, REPORT_FILE):
        try:
            data[name] = (entry / name).read_bytes()
        except OSError as e:
            return _damaged(entry / name, f"missing or unreadable ({type(e).__name__})")
    lines = [line for line in data[EXAMPLES_FILE].decode("utf-8", "replace").split("\n") if line.strip()]
    if len(lines) != expected:
        return _damaged(entry / EXAMPLES_FILE, f"it has {len(lines)} lines where {expected} examples were written")
    for name, blob in data.items():
        if _sha256(blob) != sums.get(name):
            return _damaged(entry / name, "its contents differ from the checksum written with it")
    return [json.loads(line) for line in lines], json.loads(data[REPORT_FILE])


def _damaged(path: Path, why: str) -> None:
    log.warning("Prepared-data cache %s is damaged: %s. Rebuilding the entry from the corpora.", path, why)
    return None


def discard(entry: Path) -> None:
    """Delete a damaged entry: renamed out of the way first, so no job ever sees it half deleted."""
    aside = entry.with_name(f".{entry.name}.damaged.{os.getpid()}")
    try:
        os.rename(entry, aside)
    except OSError:  # another job moved it first (or rebuilt it: then this job's copy is discarded on rename)
        return
    shutil.rmtree(aside, ignore_errors=True)
