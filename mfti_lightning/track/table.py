"""The report's tidy table: one row per (run, direction) plus one ``avg`` row per run, the swept values and
metrics as columns; written as CSV and as a markdown table."""

from __future__ import annotations

import csv
from pathlib import Path

from mfti_lightning.core.results_schema import RunResults
from mfti_lightning.track.run_values import SWEPT, method_of, params_of
from mfti_lightning.track.stats import metrics_by_direction


def _run_columns(rec: dict) -> dict:
    r = RunResults.of(rec)
    return {
        "run": r.run_name,
        "status": r.status,
        "method": method_of(r.swept),
        **{k: getattr(r.swept, k) for k in SWEPT},
        "params": params_of(r),
        "num_train_directions": len(r.directions.train),
        "sweep": r.sweep_name,
        "run_dir": rec.get("_dir"),
    }


def tidy_rows(records: list[dict], split: str = "test") -> list[dict]:
    """One row per (run, direction) plus one ``avg`` row per run; swept values and metrics as columns."""
    rows = []
    for rec in records:
        r = RunResults.of(rec)
        trained = set(r.directions.train)
        part_of = {d: n for n, ds in r.partitions.items() for d in ds}
        by_dir = metrics_by_direction(rec, split)
        base = _run_columns(rec)
        for d in sorted(by_dir, key=lambda d: (d == "avg", d)):
            row = dict(
                base,
                direction=d,
                src=d.split("-")[0] if d != "avg" else "",
                tgt=d.split("-")[1] if d != "avg" else "",
                trained=(d in trained) if d != "avg" else "",
                partition=part_of.get(d, ""),
            )
            row.update({f"{split}/{k}": v for k, v in sorted(by_dir[d].items())})
            rows.append(row)
    return rows


def columns(rows: list[dict]) -> list[str]:
    """Every key of ``rows``, in the order they first appear."""
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    return cols


def write_csv(rows: list[dict], path: Path) -> None:
    cols = columns(rows)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) >= 1e5 else f"{v:.2f}"
    return "" if v is None else str(v).replace("|", "\\|")


def markdown_table(rows: list[dict], cols: list[str] | None = None) -> str:
    if not rows:
        return "_(none)_\n"
    cols = cols or columns(rows)
    out = ["| " + " | ".join(c.replace("|", "\\|") for c in cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"
