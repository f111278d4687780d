"""``mfti-analyze <run dir>``: re-run the paper's error analysis on a run's saved translations
(:mod:`mfti_lightning.eval.analysis`) and update its results.json."""

from __future__ import annotations

import argparse
import logging

from mfti_lightning.cli.exits import report_errors
from mfti_lightning.core.lease import RunLease
from mfti_lightning.core.schema import LID_ACCURACY, LID_SCOPES, OFF_TARGET_RULES
from mfti_lightning.eval.analysis import CATEGORIES, analyze_run


def run(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="mfti-analyze",
        description=(
            "Re-run the paper's error analysis (oscillatory hallucination, template leakage, source copy, off-target, "
            "under-/over-translation, other) on the saved translations of an mfti run and update its results.json."
        ),
    )
    ap.add_argument("run_dir", help="a run directory of mfti-train or mfti-eval (holds results.json, translations/)")
    ap.add_argument("--split", default=None, help="metric split name (default: test, or val for split=dev runs)")
    ap.add_argument("--no-lid", action="store_true", help="skip the language-identification (off-target) rule")
    ap.add_argument(
        "--lid-languages",
        choices=LID_SCOPES,
        default="run",
        help="all: every language lingua knows (flags Spanish for Catalan); run: the run's and the paper's",
    )
    ap.add_argument("--lid-accuracy", choices=LID_ACCURACY, default="high", help="lingua's accuracy mode")
    ap.add_argument(
        "--rule",
        choices=OFF_TARGET_RULES,
        default="project",
        help="reference: both halves as the reference cuts them, an empty half judged English as fastText lid.176 does",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with RunLease(args.run_dir):  # it rewrites the run's translations and results.json: never beside a live job
        errors = analyze_run(args.run_dir, args.split, use_lid=not args.no_lid, lid_scope=args.lid_languages,
                             lid_accuracy=args.lid_accuracy, rule=args.rule)  # fmt: skip
    print(f"{'direction':<10} " + " ".join(f"{c[:12]:>12}" for c in CATEGORIES))
    for d, e in errors.items():
        print(f"{d:<10} " + " ".join(f"{e['counts'][c] / max(e['n'], 1):>12.3f}" for c in CATEGORIES))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``mfti-analyze``: :func:`run`, ending as :mod:`mfti_lightning.cli.exits` says (errors: one line, exit status 2)."""
    return report_errors("mfti-analyze", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
