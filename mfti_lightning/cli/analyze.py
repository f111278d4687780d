"""``mfti-analyze <run dir>``: re-run the paper's error analysis on a run's saved translations
(:mod:`mfti_lightning.eval.analysis`) and update its results.json."""

from __future__ import annotations

import argparse
import logging

from mfti_lightning.eval.analysis import CATEGORIES, analyze_run


def main(argv=None) -> int:
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
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    errors = analyze_run(args.run_dir, args.split, use_lid=not args.no_lid)
    print(f"{'direction':<10} " + " ".join(f"{c[:12]:>12}" for c in CATEGORIES))
    for d, e in errors.items():
        print(f"{d:<10} " + " ".join(f"{e['counts'][c] / max(e['n'], 1):>12.3f}" for c in CATEGORIES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
