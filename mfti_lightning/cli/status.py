"""``mfti status``: where a sweep stands, job by job, without torch, Hydra or log parsing.

    mfti status three                    # a sweep name: <output root>/train/sweeps/three (or eval/sweeps/three)
    mfti status outputs/train/sweeps/three
    mfti status three --watch            # a live table, refreshed every --interval seconds, until no job runs
    mfti status three --json             # one JSON object: {"sweep_dir", "jobs": [...], "totals": {...}, ...}

Per job: its SLURM job id and SLURM's state (one squeue and one sacct call for the whole sweep, from the job ids in
``submissions.jsonl``), the run directory's own state (results.json, progress.json, lease.json), step / max steps,
last training loss, last validation score, the training ETA, requeues, and GPU-hours used (progress.json's
attempts) against ``mfti plan``'s estimate recorded at submission. Failed and interrupted jobs follow the table
with their first error line and log file; totals close it. A sweep run without SLURM (a local multirun: no
``submissions.jsonl``) is read from its run directories alone.

The output root is ``MFTI_OUTPUT_ROOT`` when set, else ``outputs`` under the current directory (conf/paths).

Exit status: 0 when no job failed (every job completed, pending or running); 1 when a job failed or was
interrupted and is not running again (a job whose state is unknown, e.g. SLURM did not answer, is listed with the
reason but does not count as failed); 2 when the sweep is not found or its manifest cannot be read.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from mfti_lightning.core.errors import MftiError
from mfti_lightning.core.metric_key import MetricKey
from mfti_lightning.launch.status import SweepStatus, resolve_sweep, sweep_status

STYLE = {
    "completed": "green",
    "running": "cyan",
    "pending": "blue",
    "failed": "bold red",
    "interrupted": "red",
    "unknown": "yellow",
}


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="mfti status",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    ap.add_argument("sweep", help="a sweep name (its sweep_name) or a sweep directory")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--json", action="store_true", help="print one JSON object (jobs and totals) for scripts")
    mode.add_argument("--watch", action="store_true", help="refresh a live table until no job is pending or running")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between refreshes of --watch (default 10)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        sweep_dir = resolve_sweep(args.sweep)
        if args.watch:
            return watch(sweep_dir, max(args.interval, 1.0))
        state = sweep_status(sweep_dir)
    except MftiError as e:
        print(f"mfti status: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(as_json(state)))
    else:
        console().print(render(state))
    return exit_code(state)


def exit_code(state: SweepStatus) -> int:
    return 1 if state.ended_badly else 0


def as_json(state: SweepStatus) -> dict:
    return {
        "sweep_dir": str(state.sweep_dir),
        "at": state.at,
        "submitted": state.submitted,
        "slurm": {
            "queue_ok": state.slurm.queue_ok,
            "accounting_ok": state.slurm.accounting_ok,
            "errors": state.slurm.errors,
        },
        "jobs": [dataclasses.asdict(j) for j in state.jobs],
        "totals": state.totals(),
        "exit_code": exit_code(state),
    }


def watch(sweep_dir, interval: float) -> int:
    """A live table (rich), refreshed every ``interval`` seconds until no job is pending or running (or Ctrl+C)."""
    from rich.live import Live

    state = sweep_status(sweep_dir)
    with Live(render(state), console=console(), auto_refresh=False) as live:
        try:
            while not state.finished:
                time.sleep(interval)
                state = sweep_status(sweep_dir)
                live.update(render(state), refresh=True)
        except KeyboardInterrupt:
            pass
    if not live.console.is_terminal:  # Live leaves its last frame without a line end outside a terminal
        live.console.line()
    return exit_code(state)


def console():
    from rich.console import Console

    # piped or redirected: rich would wrap at 80 columns; a table line stays one line instead
    return Console(width=None if sys.stdout.isatty() else 220, highlight=False)


# ---------------------------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------------------------
def hours(h: float | None) -> str:
    if h is None:
        return "?"
    if h == 0:
        return "0"
    if h >= 0.01:
        return f"{h:.1f}" if h >= 10 else f"{h:.2f}"
    return f"{h * 60:.1f}m" if h * 60 >= 0.1 else f"{h * 3600:.0f}s" if h * 3600 >= 1 else "<1s"


def duration(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def cells(j) -> list[str]:
    """One job's row: job, run, status, SLURM, run dir, step, loss, val, ETA, requeues, GPU-h used / estimate."""
    status = f"{j.status} ({j.why})" if j.status == "pending" and j.why else j.status
    step = (
        f"{j.step}/{j.max_steps}" if j.step is not None and j.max_steps else str(j.step if j.step is not None else "-")
    )
    val = "-"
    if j.val and j.val.get("value") is not None:
        name = str(j.val.get("metric") or "")
        key = MetricKey.find(name)  # eval.monitor may name any logged value
        val = f"{key.metric if key else name} {float(j.val['value']):.2f} @{j.val.get('step')}"
    gpu = hours(j.gpu_hours) + (f" / {hours(j.gpu_hours_estimate)}" if j.gpu_hours_estimate is not None else "")
    return [
        j.job_id or "local",
        j.run,
        f"[{STYLE.get(j.status, '')}]{status}[/]",
        j.slurm_state or "-",
        j.run_state or "-",
        step,
        f"{j.loss:.3f}" if j.loss is not None else "-",
        val,
        duration(j.eta_s) if j.status == "running" else "-",
        str(j.requeues),
        gpu,
    ]


def render(state: SweepStatus):
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("job", "run", "status", "SLURM", "run dir", "step", "loss", "val", "ETA", "req", "GPU-h used/est"):
        table.add_column(name, no_wrap=name not in ("run", "run dir"), justify="right" if name == "req" else "left")
    for j in state.jobs:
        row = cells(j)
        table.add_row(*[c if i == 2 else escape(c) for i, c in enumerate(row)])
    when = time.strftime("%H:%M:%S", time.localtime(state.at))
    head = Text(f"sweep {state.sweep_dir}  ({when})", style="bold")
    return Group(head, table, *[Text(line) for line in footer(state)])


def footer(state: SweepStatus) -> list[str]:
    """The jobs that ended badly (or whose state is unknown) with their error line and log, then the totals."""
    lines = []
    for j in state.jobs:
        if j.status in ("failed", "interrupted", "unknown"):
            lines.append(
                f"{j.status}: {j.run}" + (f" (job {j.job_id}, SLURM {j.slurm_state or '?'})" if j.job_id else "")
            )
            lines.append(f"    error: {j.error}" if j.error else f"    {j.why}" if j.why else "    (nothing recorded)")
            if j.log:
                lines.append(f"    log:   {j.log}")
            if j.log_error:
                lines.append(f"    its last error line: {j.log_error}")
    t = state.totals()
    counts = ", ".join(
        f"{t[s]} {s}" for s in ("completed", "running", "pending", "failed", "interrupted", "unknown") if t[s]
    )
    est = f" of ~{hours(t['gpu_hours_estimate'])} estimated" if t["gpu_hours_estimate"] is not None else ""
    if t["gpu_hours_estimate"] is not None and t["jobs_with_estimate"] < t["jobs"]:
        est += f" ({t['jobs_with_estimate']} of {t['jobs']} jobs estimated)"
    lines.append(
        f"{t['jobs']} job(s): {counts or 'none'}; GPU-hours {hours(t['gpu_hours'])} used{est}; {t['requeues']} requeue(s)"
    )
    lines.append(slurm_line(state))
    return lines


def slurm_line(state: SweepStatus) -> str:
    if not state.submitted:
        return "no submissions.jsonl: a local sweep, read from its run directories"
    asked = [name for name, ok in (("squeue", state.slurm.queue_ok), ("sacct", state.slurm.accounting_ok)) if ok]
    said = f"SLURM states from {' and '.join(asked)}" if asked else "SLURM did not answer"
    return said + (f" ({'; '.join(state.slurm.errors)})" if state.slurm.errors else "")


if __name__ == "__main__":
    sys.exit(main())
