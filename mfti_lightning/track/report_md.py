"""Writing ``report.md``: the statistics sections (seed groups, paired significance, trends, direction maps) and
the summary around them (runs, failed runs, directories without results, config differences, correlations,
figures drawn and skipped)."""

from __future__ import annotations

from pathlib import Path

from mfti_lightning.track.aggregate import direction_table
from mfti_lightning.track.language_axes import load_similarity
from mfti_lightning.track.run_values import SWEPT
from mfti_lightning.track.runs import extraction_note
from mfti_lightning.track.table import markdown_table


def _differences_md(diffs, extra: dict) -> list[str]:
    """One line per figure and non-swept key that differs among the runs it compares."""
    return [
        f"- {fig}: `{k}`: " + "; ".join(f"`{v}` in {', '.join(n)}" for v, n in vals.items()) + "\n"
        for fig, fd in (extra.get("figure_differences") or {"all runs": diffs} if diffs else {}).items()
        for k, vals in fd.items()
    ] or ["_(none)_\n"]


def _figures_md(figs, similarity) -> list[str]:
    """Correlations, the figures drawn and those skipped (with why)."""
    cols = ("figure", "series", "x", "n", "pearson", "spearman")
    md = [
        "\n## Correlations (per-language scores)\n",
        markdown_table([{k: c[k] for k in cols} for c in figs.correlations]) if figs.correlations else "_(none)_\n",
        f"\nSimilarity to English: {load_similarity(similarity)[1]}; pretraining tokens: XGLM model card "
        "(CC100-XL), from mfti_lightning/core/languages.py.\n",
        "\n## Figures\n",
    ]
    md += [f"- {n}: ![{n}]({Path(d['path']).name})\n" for n, d in figs.drawn.items()]
    return md + ["\n## Figures skipped (no data)\n"] + [f"- {n}: {why}\n" for n, why in figs.skipped.items()]


def summary_markdown(
    rows, failed_rows, problems, diffs, figs, metric, split, similarity, n_done, extra=None
) -> list[str]:
    """report.md: the summary (best configuration, mFTI - ICL, significant directions), the seed groups, the
    paired significance, the trends and the figures first; then the runs' averages, failed runs, directories
    without results, non-swept differences of runs compared in one figure, and correlations."""
    extra = extra or {}
    summary_rows = [row for row in rows if row["direction"] == "avg"]
    cols = ["run", "method", *SWEPT, "params", "num_train_directions"] + sorted(
        {c for r in summary_rows for c in r if c.startswith(f"{split}/")}
    )
    md = [
        "# mfti-report\n",
        f"Metric: **{split} {metric}** (averages over directions). Runs: {n_done} completed, "
        f"{len(failed_rows)} failed or incomplete, {len(problems)} directories without a results.json.\n",
        extraction_note(figs.records),
    ]
    md += extra.get("head", [])
    md += [
        "## Runs\n",
        markdown_table(summary_rows, cols),
        "\n## Failed or incomplete runs\n",
        markdown_table(failed_rows) if failed_rows else "_(none)_\n",
        "\n## Directories without results.json\n",
        "".join(f"- {p}\n" for p in problems) or "_(none)_\n",
        "\n## Config values that differ between runs compared in one figure (not swept)\n",
    ]
    return md + _differences_md(diffs, extra) + _figures_md(figs, similarity)


def _significance_md(agg) -> list[str]:
    if not agg.significance:
        return ["_(no mFTI group with an ICL or zero-shot group of the same model and template)_\n"]
    return [
        markdown_table(agg.summary),
        "\n`diff` = system - baseline; 95% interval from the bootstrap resamples; p-value from "
        f"sacrebleu.significance (signature {agg.significance[0]['signature']}); also in significance.csv.\n\n",
        markdown_table(direction_table(agg.significance)),
        "\n▲: the system (first of the pair) significantly better (p < 0.05), ▼: the baseline. The interval is "
        "the percentile interval of the resampled differences, the p-value sacrebleu's test: two conventions that "
        "can disagree near the threshold; identical outputs are never counted (sacrebleu then prints p = 0.001).\n",
    ]


def statistics_markdown(agg, grouped, figs, metric: str, split: str) -> list[str]:
    """The sections that follow the summary: seed groups, paired significance, trends, direction maps."""
    metrics = [metric] + (["chrf"] if metric != "chrf" else [])
    stat_cols = [f"{split}/{m}{s}" for m in metrics for s in ("", "_std", "_ci_low", "_ci_high")]
    avg_rows = [r for r in grouped if r["direction"] == "avg"]
    base = ["group", "method", *(k for k in SWEPT if k != "seed"), "n_seeds", "seeds"]
    md = [
        "## Runs grouped over seeds\n",
        "Mean over the seeds of each group (runs that differ only in `seed`), sample standard deviation and "
        "95% t-interval of the mean; per direction in table_grouped.csv.\n\n",
        markdown_table(avg_rows, base + [c for c in stat_cols if any(c in r for r in avg_rows)]),
        "\n## Paired significance per direction (sacrebleu paired bootstrap)\n",
    ]
    md += _significance_md(agg)
    md += ["\n## Fitted trends (least squares on log10 x, 95% interval of the slope)\n"]
    trend_avg = [t for t in figs.trends if t["direction"] == "avg"]
    md.append(markdown_table(trend_avg) + "\nPer direction: trends.csv.\n" if trend_avg else "_(none)_\n")
    md += ["\n## Direction maps\n"] + [f"- {n}: ![{n}]({Path(d['path']).name})\n" for n, d in agg.maps.items()]
    return md + (["_(none)_\n"] if not agg.maps else []) + ["\n"]
