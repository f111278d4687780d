"""``mfti-report --wandb``: the report's tables and figures as one W&B run of the sweep's group (job type
``report``), so the dashboard that compares a sweep's runs holds the aggregated curves too.

The run follows the rules of every run (:mod:`mfti_lightning.track.wandb_mode`): ``WANDB_MODE`` wins, ``auto``
goes offline without an API key or a reachable server, a failed online init continues offline. Its id is derived
from the report directory, so re-running the report continues the same run. wandb is imported only here.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from mfti_lightning.track.wandb_mode import wandb_mode_reason

log = logging.getLogger("mfti_lightning.track.publish")


def _common(records: list[dict], getter, default):
    values = {getter(r) for r in records} - {None, ""}
    return next(iter(values)) if len(values) == 1 else default


def _table(wandb, rows: list[dict]):
    """A wandb.Table of ``rows``; a column whose values mix types (``trained``: True or "" on avg rows) is
    written as text, as wandb requires one type per column."""
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    scalar = (int, float, str, bool)
    mixed = set()
    for c in cols:
        kinds = {"number" if isinstance(v, (int, float)) and not isinstance(v, bool) else type(v).__name__
                 for v in (r.get(c) for r in rows) if v is not None}  # fmt: skip
        if len(kinds) > 1 or not kinds <= {"number", "str", "bool"}:
            mixed.add(c)
    data = [
        [(str(v) if v is not None else None) if c in mixed else (v if isinstance(v, scalar) else None)
         for c, v in ((c, r.get(c)) for c in cols)]
        for r in rows
    ]  # fmt: skip
    return wandb.Table(columns=cols, data=data)


def report_summary(rep: dict) -> dict:
    """Summary fields of the report run: the best configuration, the headline difference, significant counts."""
    out = {"report/num_runs": rep["num_runs"], "report/metric": rep["metric"], "report/groups": len(rep["groups"])}
    if rep.get("best") is not None:
        out["report/best"] = rep["best"].label
    if rep.get("headline"):
        system, baseline, diff = rep["headline"]
        out.update({"report/headline": f"{system.label} - {baseline.label}", "report/headline_diff": diff.mean})
        if diff.low is not None:
            out.update({"report/headline_ci_low": diff.low, "report/headline_ci_high": diff.high})
    headline = rep["headline"][0].label if rep.get("headline") else None
    for s in (x for x in rep.get("significance_summary", []) if x["system"] == headline):  # the headline pair
        out[f"report/significant/{s['metric']}/system_better"] = s["system_better"]
        out[f"report/significant/{s['metric']}/baseline_better"] = s["baseline_better"]
    return out


def _init(wandb, mode: str, kwargs: dict):
    try:
        return wandb.init(mode=mode, **kwargs), mode
    except Exception as e:
        if mode != "online":
            raise
        log.warning("W&B online init failed (%s: %s); logging the report offline.", type(e).__name__, e)
        return wandb.init(mode="offline", **kwargs), "offline"


def log_report(rep: dict, records: list[dict], mode_setting: str = "auto", check_timeout: float = 3.0) -> dict:
    """Log ``rep`` (what :func:`mfti_lightning.track.report.make_report` returns) as a report run; returns
    ``{mode, reason, id, group, project, dir}`` (``mode`` ``disabled``: nothing logged)."""
    mode, why = wandb_mode_reason(mode_setting, check_timeout)
    out_dir = Path(rep["out_dir"])
    group = _common(records, lambda r: r.get("sweep_name"), "mfti-report")
    project = _common(records, lambda r: ((r.get("config") or {}).get("logger") or {}).get("project"), "mfti-lightning")
    entity = _common(records, lambda r: ((r.get("config") or {}).get("logger") or {}).get("entity"), None)
    info = {"mode": mode, "reason": why, "group": group, "project": project}
    if mode == "disabled":
        return info
    import wandb

    run_id = "report-" + hashlib.sha1(str(out_dir.resolve()).encode()).hexdigest()[:10]
    kwargs = dict(
        project=project, entity=entity, group=group, job_type="report", name=f"report|{group}", id=run_id,
        resume="allow", dir=str(out_dir), config={"metric": rep["metric"], "runs": [r.get("_dir") for r in records]},
        settings=wandb.Settings(silent=True, init_timeout=60),
    )  # fmt: skip
    run, mode = _init(wandb, mode, kwargs)
    try:
        tables = {
            "table": rep["rows"], "grouped": rep["grouped_rows"], "significance": rep["significance"],
            "significance_summary": rep["significance_summary"], "trends": rep["trends"], "claims": rep.get("claims"),
        }  # fmt: skip
        payload = {f"report/tables/{k}": _table(wandb, v) for k, v in tables.items() if v}
        figures = {**rep["figures"], **rep["maps"]}
        payload.update({f"report/figures/{k}": wandb.Image(d["path"]) for k, d in figures.items()})
        run.log(payload)
        for k, v in report_summary(rep).items():
            run.summary[k] = v
    finally:
        run.finish()
    info.update(mode=mode, id=run_id, dir=str(out_dir / "wandb"))
    log.info("W&B %s (%s): report run %s in group %s of project %s", mode, why, run_id, group, project)
    return info
