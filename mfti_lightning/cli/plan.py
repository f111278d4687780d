"""``mfti-plan``: list the jobs of a sweep without running, submitting or importing torch.

    mfti-plan model_scaling                      # a file in sweeps/ (or a path to one)
    mfti-plan main_comparison hydra/launcher=slurm_8gpu trainer=fsdp
    mfti-plan - model=tiny,xglm-564m seed=1,2    # no sweep file: the jobs `mfti-train -m <overrides>` would run

The jobs are the ones ``mfti-train -m`` would run: Hydra's own sweeper expands ``hydra.sweeper.params`` and the
command line (a key given on the command line replaces the same key of the sweep file). For each job: its
overrides, run directory, status (new / completed / failed / interrupted ...: completed jobs are skipped when the
sweep runs again; ``running (job 1234_5)`` / ``pending (job ...)``: submitted before and still pending or running in
SLURM, or its run directory held by a live process, so neither submitted again nor counted in the GPU-hours to
run), devices x nodes, and an estimate of GPU-hours from the model shape (``model.shape``) and token
counts; the assumptions are printed and can be changed with the options below. Every job is composed and checked
exactly as the SLURM launcher checks it before submitting: a job that would fail (a missing corpus, model, FLORES
file ...) is listed and marked, the problems follow the table, and the exit status is 2 (the launcher submits
nothing while a job of the sweep would fail).
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from mfti_lightning.core.errors import MftiError

THROUGHPUT_HINT = "run benchmarks/gpu_all.py on a GPU to write mfti_lightning/assets/throughput.json"


def _fmt_hours(h: float) -> str:
    return f"{h:,.1f}" if h >= 0.1 else f"{h * 60:.1f} min"


def parse_args(argv: list[str] | None):
    """The command line: the sweep, its overrides, the cost model's assumptions."""
    from mfti_lightning.launch.cost import CostModel

    d = CostModel()
    ap = argparse.ArgumentParser(
        prog="mfti-plan",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    ap.add_argument("sweep", help="a sweep file in sweeps/ (name or path), or - for none")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, as for mfti-train -m")
    ap.add_argument("--json", action="store_true", help="one JSON object per job instead of the table")
    ap.add_argument("--tokens-per-example", type=float, default=d.tokens_per_example)
    ap.add_argument("--tokens-per-sentence", type=float, default=d.tokens_per_sentence)
    ap.add_argument("--gpu-tflops", type=float, default=d.gpu_tflops, help="peak bf16 TFLOP/s of one GPU")
    ap.add_argument("--train-mfu", type=float, default=d.train_mfu)
    ap.add_argument("--generate-mfu", type=float, default=d.generate_mfu)
    ap.add_argument(
        "--throughput",
        default=None,
        help="measured throughput JSON (default: the package's assets/throughput.json when it exists; none: assumed"
        " MFUs)",
    )
    args = ap.parse_args(argv)
    from mfti_lightning.launch.cost import load_throughput

    measured, path = ({}, "") if args.throughput == "none" else load_throughput(args.throughput)
    cost = CostModel(
        measured=measured,
        measured_path=path,
        tokens_per_example=args.tokens_per_example,
        tokens_per_sentence=args.tokens_per_sentence,
        gpu_tflops=args.gpu_tflops,
        train_mfu=args.train_mfu,
        generate_mfu=args.generate_mfu,
    )
    return args, cost


def main(argv: list[str] | None = None) -> int:
    from mfti_lightning.launch.sweep import failure_report, plan

    try:
        args, cost = parse_args(argv)
        from mfti_lightning.core.validation import check_group_overrides

        check_group_overrides(args.overrides)  # shots=8: name shots=k8 / shots.k=8 before Hydra's error
        jobs = plan(None if args.sweep == "-" else args.sweep, args.overrides, cost)
    except MftiError as e:
        print(f"mfti-plan: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # Hydra's own errors (unknown option, bad override) are already clear
        print(f"mfti-plan: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    if args.json:
        for j in jobs:
            nodes = int(j.cfg.trainer.num_nodes)
            row = {"num": j.num, "overrides": j.overrides, "run_dir": str(j.run_dir), "status": status_label(j),
                   "devices": j.estimate["world_size"] // nodes, "nodes": nodes, "problems": j.problems,
                   **j.estimate}  # fmt: skip
            print(json.dumps(row))
    else:
        print_table(jobs, cost)
    failing = [(f"{j.label}:", j.problems) for j in jobs if j.problems]
    if failing:
        print(f"mfti-plan: {failure_report(failing, len(jobs), outcome='the SLURM launcher would submit nothing')}",
              file=sys.stderr)  # fmt: skip
        return 2
    return 0


def status_label(job) -> str:
    if job.active:  # pending or running: the launcher does not submit it again
        return job.active
    if job.action == "reevaluate":
        return "completed, evaluation changed: re-evaluate"
    return job.status


def short_problem(problem: str) -> str:
    """What is missing, without the why and the fix: the text before the first ': ' or ', ' outside parentheses."""
    return re.split(r": |, (?![^(]*\))", problem, maxsplit=1)[0][:100]


def skipped(job) -> bool:
    """Not run by the sweep: completed with this config, or pending or running in SLURM already."""
    return job.action == "skip" or bool(job.active)


def print_job(j) -> None:
    """The block of one job: overrides, run dir and status, devices, size, estimate, what would fail."""
    e = j.estimate
    nodes = int(j.cfg.trainer.num_nodes)
    print(f"#{j.num:<3} {' '.join(j.overrides) or '(no overrides)'}")
    print(f"     run dir {j.run_dir}  [{status_label(j)}{': skipped' if skipped(j) else ''}]")
    print(
        f"     {e['world_size'] // nodes} device(s) x {nodes} node(s), {params_text(e['params'])} params, "
        f"{e['train_directions']} train / {e['eval_directions']} eval directions, "
        f"{e['train_tokens'] / 1e6:,.1f}M train tokens, ~{_fmt_hours(e['gpu_hours'])} GPU-h "
        f"(~{_fmt_hours(e['wall_hours'])} wall)"
    )
    if not e["train_directions"] and e["world_size"] > 1:
        print(f"     evaluation only: {e['world_size']} ranks deal the sentences, each translated once")
    if j.problems:
        shown = "; ".join(short_problem(p) for p in j.problems[:3])
        more = f"; +{len(j.problems) - 3} more" if len(j.problems) > 3 else ""
        print(f"     WOULD FAIL, {len(j.problems)} problem(s): {shown}{more} (all listed after the table)")


def print_totals(jobs: list, cost) -> None:
    """Jobs and GPU-hours to run (skipped jobs not counted), the cost model's assumptions and the throughput used."""
    total = sum((0 if skipped(j) else j.estimate["gpu_hours"] for j in jobs), 0.0)
    todo = sum(not skipped(j) for j in jobs)
    failing = sum(bool(j.problems) for j in jobs)
    active = sum(bool(j.active) for j in jobs)
    print(
        f"{len(jobs)} job(s), {todo} to run{f', {active} pending or running' if active else ''}, "
        f"~{_fmt_hours(total)} GPU-hours to run"
        f"{f', {failing} would fail (marked WOULD FAIL)' if failing else ''}. Assumptions: "
        f"{cost.tokens_per_example:g} tokens/training example, {cost.tokens_per_sentence:g} tokens/sentence, "
        f"{cost.gpu_tflops:g} TFLOP/s/GPU at {cost.train_mfu:.0%} MFU (training), {cost.generate_mfu:.0%} "
        f"(generation) where nothing was measured; estimates, not measurements."
    )
    used = sorted({j.estimate["train_rate"] for j in jobs} | {j.estimate["generate_rate"] for j in jobs})
    measured = [u for u in used if "measured" in u]
    print(
        "Throughput used: "
        + ("; ".join(used) if used else "-")
        + ("" if measured else f" (no measured throughput: {THROUGHPUT_HINT})")
    )


def print_table(jobs: list, cost) -> None:
    """One block per job (:func:`print_job`), then the totals (:func:`print_totals`)."""
    launcher = str(jobs[0].cfg.hydra.launcher.get("_target_", "")).rsplit(".", 2)[-2:] if jobs else ""
    print(f"sweep dir: {jobs[0].run_dir.parent if jobs else '-'}   launcher: {'.'.join(launcher)}")
    for j in jobs:
        print_job(j)
    print_totals(jobs, cost)


def params_text(n: float) -> str:
    """Matmul parameters in the unit that shows them: 7.49B, 564M, 1.6M (the tiny demo model is not 0.00B)."""
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.0f}M" if n >= 1e7 else f"{n / 1e6:.1f}M"


if __name__ == "__main__":
    sys.exit(main())
