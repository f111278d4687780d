"""``mfti-report <sweep dir or run dirs>...``: the paper's tables and figures from run directories alone.

Collects every run's ``results.json`` (a run directory, or any directory above run directories), writes one tidy
table (``table.csv`` and ``table.md``: one row per run and direction, the swept values as columns), a summary
(``report.md``: the paper's claims tested on the runs (track/claims.py), runs, failed or incomplete runs, config
differences, correlations, figures and skipped figures),
and PNG figures drawn with matplotlib (Agg):

- BLEU vs model size (mFTI and ICL lines, coloured by model family when there are several), vs number of examples (log x), vs number of training directions,
  vs shots; the template comparison; the template design space (templates with a ``template.factor``, ordered by
  score with 95 % intervals over seeds, named by the factor they change); seen/unseen partition bars (mFTI and ICL
  runs side by side); pivot alignment (English-centric vs all-direction training on the non-English directions);
  corpus quality (WikiMatrix threshold, misaligned fraction); error-type stacked bars;
- per-language BLEU against XGLM pretraining tokens (``languages.py``) and against similarity to English
  (``assets/lang_similarity.json``, URIEL via lang2vec), with Pearson and Spearman correlations.

A figure whose data is absent is skipped with a note, never faked. Runs scored with different ``eval.extraction``
modes are never averaged into one series: labels carry the mode and report.md warns. Runs that failed or never finished are listed,
not dropped silently. Works offline: W&B is not needed. No torch here.

The parts, one module each: finding runs (runs.py), per-run values (run_values.py), the tidy table (table.py),
config differences (config_diff.py), figure numbers (figure_data.py, comparison_data.py) apart from their drawing
(figure_drawing.py, figures.py), statistics (aggregate.py, stats.py, claims.py) and report.md (report_md.py).
"""

from __future__ import annotations

from pathlib import Path

from mfti_lightning.core.results_schema import RunResults
from mfti_lightning.track.aggregate import aggregate, summary_section
from mfti_lightning.track.claims import claims_markdown, test_claims
from mfti_lightning.track.config_diff import figure_differences, warn_differences
from mfti_lightning.track.figures import Figures
from mfti_lightning.track.language_axes import load_similarity
from mfti_lightning.track.report_md import statistics_markdown, summary_markdown
from mfti_lightning.track.run_values import SWEPT, bleu_metric, method_of, params_of
from mfti_lightning.track.runs import load_runs
from mfti_lightning.track.stats import grouped_rows
from mfti_lightning.track.table import markdown_table, tidy_rows, write_csv


def _group_base(rec: dict) -> dict:
    swept = RunResults.of(rec).swept
    return {
        "method": method_of(swept),
        **{k: getattr(swept, k) for k in SWEPT if k != "seed"},
        "params": params_of(rec),
    }


def _write_table(rows: list[dict], out: Path, name: str) -> None:
    write_csv(rows, out / f"{name}.csv")
    (out / f"{name}.md").write_text(markdown_table(rows), encoding="utf-8")


def _failed_rows(not_done: list[dict]) -> list[dict]:
    typed = [(rec, RunResults.of(rec)) for rec in not_done]
    return [
        {"run": r.run_name, "status": r.status, "error": (r.error or "")[:200], "run_dir": rec["_dir"]}
        for rec, r in typed
    ]  # fmt: skip


def _result(out: Path, metric: str, parts: dict, agg, figs, claims) -> dict:
    """What :func:`make_report` returns (``mfti-report --wandb`` logs it, the tests check it)."""
    return {
        "out_dir": str(out), "metric": metric, "rows": parts["rows"], "claims": [c.row() for c in claims],
        "grouped_rows": parts["grouped"], "groups": agg.groups, "significance": agg.significance,
        "significance_summary": agg.summary, "headline": agg.headline, "best": agg.best, "maps": agg.maps,
        "trends": figs.trends, "failed": parts["failed"], "problems": parts["problems"],
        "config_differences": parts["diffs"], "figure_differences": parts["fig_diffs"], "figures": figs.drawn,
        "skipped": figs.skipped, "correlations": figs.correlations, "num_runs": len(parts["done"]),
        "records": parts["done"],
    }  # fmt: skip


def make_report(
    paths: list[str | Path],
    out_dir: str | Path,
    metric: str = "auto",
    split: str = "test",
    similarity: str | None = None,
    bootstrap_samples: int = 1000,
    bootstrap_seed: int = 12345,
) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done, not_done, problems = load_runs(paths)
    metric = bleu_metric(done, split, metric)
    rows = tidy_rows(done, split)
    _write_table(rows, out, "table")
    figs = Figures(out, done, metric, split, similarity)
    figs.all()
    fig_diffs = figure_differences(figs)
    diffs = warn_differences(fig_diffs)
    agg = aggregate(done, out, split, metric, bootstrap_samples, bootstrap_seed)
    grouped = grouped_rows(agg.groups, split, _group_base)
    _write_table(grouped, out, "table_grouped")
    for name, table in (("significance", agg.significance), ("trends", figs.trends)):
        if table:
            write_csv(table, out / f"{name}.csv")
    failed_rows = _failed_rows(not_done)
    claims = test_claims(rows, metric, split, load_similarity(similarity)[0], agg.groups)
    head = summary_section(agg, split, metric) + statistics_markdown(agg, grouped, figs, metric, split)
    extra = {"head": claims_markdown(claims, metric, split) + head, "figure_differences": fig_diffs}
    md = summary_markdown(rows, failed_rows, problems, diffs, figs, metric, split, similarity, len(done), extra)
    (out / "report.md").write_text("".join(md), encoding="utf-8")
    parts = {"rows": rows, "grouped": grouped, "failed": failed_rows, "problems": problems, "diffs": diffs,
             "fig_diffs": fig_diffs, "done": done}  # fmt: skip
    return _result(out, metric, parts, agg, figs, claims)
