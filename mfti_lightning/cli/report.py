"""``mfti-report <sweep dir or run dirs>...``: tables and figures from run directories alone
(:mod:`mfti_lightning.track.report` has what it collects and draws)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mfti_lightning.track import report
from mfti_lightning.track.report import make_report


def main(argv: list[str] | None = None) -> int:
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
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    out = args.out or str(Path(args.paths[0]) / "report")
    rep = make_report(args.paths, out, args.metric, args.split, args.similarity)
    print(
        f"mfti-report: {rep['num_runs']} runs, {len(rep['failed'])} failed/incomplete, "
        f"{len(rep['problems'])} without results.json -> {rep['out_dir']}/report.md, table.csv, "
        f"{len(rep['figures'])} figures ({len(rep['skipped'])} skipped: {', '.join(rep['skipped']) or '-'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
