"""Read an offline W&B run back from its ``run-<id>.wandb`` file (wandb's own protobuf records).

The file is a LevelDB-style log: a 7-byte header (``:W&B`` + magic + version), then 32 KiB blocks of chunks, each
with a 7-byte header (crc32, length, type: FULL=1, FIRST=2, MIDDLE=3, LAST=4). Each record is a
``wandb.proto.wandb_internal_pb2.Record``. (Checked on wandb 0.31.)
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

BLOCK = 32768


def records(path: str | Path):
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a .wandb file"
    pos, buf = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:
            pos += left
            continue
        _crc, n, typ = struct.unpack("<IHB", data[pos : pos + 7])
        pos += 7
        if typ == 0 and n == 0:
            pos += left - 7
            continue
        chunk = data[pos : pos + n]
        pos += n
        if typ == 1:
            yield pb.Record.FromString(chunk)
        elif typ == 2:
            buf = chunk
        elif typ == 3:
            buf += chunk
        elif typ == 4:
            yield pb.Record.FromString(buf + chunk)
            buf = b""


def _items(items) -> dict:
    return {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in items}


@dataclass
class WandbRun:
    path: Path
    run_id: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    project: str = ""
    tags: list = field(default_factory=list)
    resumed: bool = False
    config: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    exit_code: int | None = None
    metrics_defined: dict = field(default_factory=dict)

    def series(self, key: str, step_key: str = "trainer/global_step") -> list[tuple]:
        return [(row.get(step_key), row[key]) for row in self.history if key in row]


def read_run(path: str | Path, wait_for_exit_s: float = 30.0) -> WandbRun:
    """Everything of one ``run-<id>.wandb`` file: run identity, config, history rows, summary, exit code.

    wandb-core may still be flushing the last records when ``wandb.finish()`` has returned, so this re-reads the
    file until its exit record is there (at most ``wait_for_exit_s``)."""
    deadline = time.monotonic() + wait_for_exit_s
    while True:
        run = _read_run(path)
        if run.exit_code is not None or time.monotonic() > deadline:
            return run
        time.sleep(0.2)


def _read_run(path: str | Path) -> WandbRun:
    run = WandbRun(Path(path))
    for r in records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.name, run.group = r.run.run_id, r.run.display_name, r.run.run_group
            run.job_type, run.project, run.tags = r.run.job_type, r.run.project, list(r.run.tags)
            run.resumed = bool(r.run.resumed)
            run.config.update({i.key: json.loads(i.value_json) for i in r.run.config.update})
        elif kind == "config":
            run.config.update({i.key: json.loads(i.value_json) for i in r.config.update})
        elif kind == "history":
            run.history.append(_items(r.history.item))
        elif kind == "summary":
            run.summary.update(_items(r.summary.update))
        elif kind == "exit":
            run.exit_code = r.exit.exit_code
        elif kind == "metric":
            run.metrics_defined[r.metric.name or r.metric.glob_name] = r.metric.step_metric
    return run


def run_files(run_dir: str | Path) -> list[Path]:
    """The ``.wandb`` files of a run directory, oldest first (a resumed job adds one)."""
    return sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"), key=lambda p: p.parent.name)
