"""``mfti-score <run or sweep dirs>... --metrics ter,chrf++``: add metrics to existing results.json files from the
saved translations, without loading the translation model (:mod:`mfti_lightning.track.score`)."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from mfti_lightning.cli.exits import report_errors
from mfti_lightning.core.errors import ConfigError
from mfti_lightning.track import score


def run(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="mfti-score",
        description=score.__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("paths", nargs="+", help="run directories or sweep directories (searched for results.json)")
    ap.add_argument(
        "--metrics",
        required=True,
        help="comma-separated: ter, chrf, chrf++, bleu, bleu-<tokenizer>, spbleu (needs its SPM model), comet",
    )
    ap.add_argument("--comet-model", default=None, help="local COMET checkpoint (.ckpt or model dir) for comet")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    t0 = time.perf_counter()
    try:
        metrics = score.parse_metrics(args.metrics)
        done = score.score_paths(args.paths, metrics, args.comet_model)
    except ConfigError as e:
        print(f"mfti-score: {e}", file=sys.stderr)
        return 2
    for run_dir, keys in done.items():
        print(f"{run_dir}: " + (f"added {len(keys)} scores" if keys else "nothing to do (already scored)"))
    total = sum(len(k) for k in done.values())
    print(f"mfti-score: {len(done)} runs, {total} scores added in {time.perf_counter() - t0:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``mfti-score``: :func:`run`, ending as :mod:`mfti_lightning.cli.exits` says (errors: one line, exit status 2)."""
    return report_errors("mfti-score", run, argv)


if __name__ == "__main__":
    sys.exit(main())
