"""``mfti-analyze <run dir>``: re-run the paper's error analysis on a run's saved translations
(:mod:`mfti_lightning.eval.analysis`) and update its results.json. The language-ID settings are those the run
recorded (``eval.lid_languages``, ``eval.lid_accuracy``, ``eval.off_target_rule``) unless the command line names
others; the first line of output says which it used."""

from __future__ import annotations

import argparse
import logging

from mfti_lightning.cli.exits import report_errors
from mfti_lightning.core.keys import declarations
from mfti_lightning.core.lease import RunLease
from mfti_lightning.core.results_schema import RunResults
from mfti_lightning.eval.analysis import CATEGORIES, analyze_run

# the run's settings that re-analysis reuses: (key under eval, command-line flag, analysis.analyze()'s option)
SETTINGS = (
    ("lid_languages", "--lid-languages", "lid_scope"),
    ("lid_accuracy", "--lid-accuracy", "lid_accuracy"),
    ("off_target_rule", "--rule", "rule"),
)


def chosen_settings(record: RunResults, args) -> tuple[dict, list[str]]:
    """The options of :func:`analysis.analyze` for each of :data:`SETTINGS`: the command line's, else the value the
    run recorded (results.json's config), else the schema's default; and a ``key=value (source)`` line per
    setting, so the output says which labels these are."""
    recorded = record.config_value("eval") or {}
    options, said = {}, []
    for key, _, option in SETTINGS:
        if getattr(args, key) is not None:
            value, source = getattr(args, key), "command line"
        elif recorded.get(key) is not None:
            value, source = recorded[key], "recorded by the run"
        else:
            value, source = declarations()[f"eval.{key}"].field.default, "schema default"
        options[option] = value
        said.append(f"eval.{key}={value} ({source})")
    return options, said


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
    for key, flag, _ in SETTINGS:
        declared = declarations()[f"eval.{key}"]
        ap.add_argument(
            flag,
            dest=key,
            choices=declared.field.metadata["choices"],
            default=None,
            help=f"eval.{key}: {declared.doc} (default: the run's recorded value, else the schema's)",
        )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    options, said = chosen_settings(RunResults.read(args.run_dir) or RunResults(), args)
    print("mfti-analyze: " + ", ".join(said))
    with RunLease(args.run_dir):  # it rewrites the run's translations and results.json: never beside a live job
        errors = analyze_run(args.run_dir, args.split, use_lid=not args.no_lid, **options)
    print(f"{'direction':<10} " + " ".join(f"{c[:12]:>12}" for c in CATEGORIES))
    for d, e in errors.items():
        print(f"{d:<10} " + " ".join(f"{e['counts'][c] / max(e['n'], 1):>12.3f}" for c in CATEGORIES))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``mfti-analyze``: :func:`run`, ending as :mod:`mfti_lightning.cli.exits` says (errors: one line, exit status 2)."""
    return report_errors("mfti-analyze", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
