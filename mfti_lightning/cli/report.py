"""``mfti-report <sweep dir or run dirs>...``: tables and figures from run directories alone
(:mod:`mfti_lightning.track.report` has what it collects and draws)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mfti_lightning.cli.exits import report_errors
from mfti_lightning.track import report


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="mfti-report",
        description=report.__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("paths", nargs="+", help="run directories or sweep directories (searched for results.json)")
    ap.add_argument("-o", "--out", default=None, help="output directory (default: <first path>/report)")
    ap.add_argument(
        "--metric", default="auto", help="bleu | spbleu | chrf | chrf++ | comet; auto = spbleu if present, else bleu"
    )
    ap.add_argument("--split", default="test", help="test (devtest, default) | val | val_init")
    ap.add_argument(
        "--similarity",
        default=None,
        help="syntactic (default) | phonological | inventory | featural | genetic (lang_similarity.json)",
    )
    ap.add_argument(
        "--bootstrap-samples",
        type=int,
        default=1000,
        help="paired bootstrap resamples per direction (sacrebleu --paired-bs-n; 0 = no significance tests)",
    )
    ap.add_argument(
        "--bootstrap-seed", type=int, default=12345, help="the bootstrap's seed (sacrebleu's SACREBLEU_SEED)"
    )
    ap.add_argument(
        "--wandb",
        action="store_true",
        help="also log the tables and figures as a W&B run of the sweep's group (job type report)",
    )
    ap.add_argument(
        "--wandb-mode",
        default="auto",
        help="auto (as every run: offline without an API key or a reachable server) | online | offline",
    )
    return ap


def _summary(rep: dict) -> str:
    """The one line that says what the report holds and where it went."""
    return (
        f"mfti-report: {rep['num_runs']} runs, {len(rep['failed'])} failed/incomplete, "
        f"{len(rep['problems'])} without results.json -> {rep['out_dir']}/report.md, table.csv, "
        f"{len(rep['figures'])} figures ({len(rep['skipped'])} skipped: {', '.join(rep['skipped']) or '-'})"
    )


def run(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    out = args.out or str(Path(args.paths[0]) / "report")
    rep = report.make_report(
        args.paths, out, args.metric, args.split, args.similarity, args.bootstrap_samples, args.bootstrap_seed
    )
    print(_summary(rep))
    if args.wandb:
        from mfti_lightning.track.publish import log_report

        info = log_report(rep, rep["records"], args.wandb_mode)
        print(f"mfti-report: W&B {info['mode']} ({info['reason']}): group {info['group']}, {info.get('dir', '')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``mfti-report``: :func:`run`, ending as :mod:`mfti_lightning.cli.exits` says (errors: one line, exit status 2)."""
    return report_errors("mfti-report", run, argv)


if __name__ == "__main__":
    sys.exit(main())
