"""Drawing the report's figures with matplotlib (Agg) from numbers computed beforehand
(:mod:`~mfti_lightning.track.figure_data`, :mod:`~mfti_lightning.track.comparison_data`): one function per
figure, each taking a :class:`~mfti_lightning.track.figure_data.FigureData` and the axis labels' split and metric,
returning the matplotlib figure; :func:`save` writes it. Nothing here computes a reported number."""

from __future__ import annotations

from pathlib import Path

from mfti_lightning.eval.analysis import CATEGORIES as ERROR_CATEGORIES
from mfti_lightning.track.figure_data import FigureData
from mfti_lightning.track.stat_figures import draw_fit, errorbar_series
from mfti_lightning.track.stats import interval


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> None:
    """Write ``fig`` as PNG; a crowded legend moves to the right of its axes, the figure widened to hold it."""
    import matplotlib.pyplot as plt

    for ax in fig.axes:
        handles, labels = ax.get_legend_handles_labels()
        if len(labels) > 4:
            ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
            fig.set_size_inches(fig.get_size_inches()[0] + 4.5, fig.get_size_inches()[1])
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def draw_line(fd: FigureData, split: str, metric: str):
    """Mean over seeds with its 95% t-interval per series (coloured by group, ICL dashed, when there are groups),
    a fitted trend on the scaling axes, and each baseline as a grey level with its band."""
    d, line = fd.draw, fd.draw["line"]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    palette = plt.get_cmap("tab10")
    for lab in fd.data["series"]:
        style = {}
        if lab in d["group_of"]:
            style = {"color": palette(d["groups"].index(d["group_of"][lab]) % 10),
                     "linestyle": "--" if "ICL" in lab else "-"}  # fmt: skip
        errorbar_series(ax, lab, d["by_x"][lab], **style)
        if d["fits"].get(lab) is not None:
            draw_fit(ax, d["fits"][lab], d["xs"][lab], line.logx, ax.lines[-1].get_color())
    for lab, y in fd.data["reference"].items():
        ax.axhline(y, linestyle="--", color="grey", linewidth=1)
        if lab in d["bands"]:
            ax.axhspan(d["bands"][lab].low, d["bands"][lab].high, color="grey", alpha=0.12)
        ax.annotate(
            f"{lab} ({y:.1f})", (0.01, y), xycoords=("axes fraction", "data"), fontsize=8, va="bottom", color="grey"
        )
    if line.logx:
        ax.set_xscale("log")
    ax.set_xlabel(line.xlabel)
    ax.set_ylabel(f"{split} {metric} (avg over directions)")
    ax.set_title(line.title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def draw_templates(fd: FigureData, split: str, metric: str):
    by, temps, series = fd.draw["by"], fd.draw["templates"], fd.data["series"]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    width = 0.8 / max(1, len(series))
    for i, (lab, d) in enumerate(series.items()):
        ivs = [interval(by[lab][t]) for t in d]  # error bars: 95% t-interval over seeds
        yerr = [[iv.mean - iv.low if iv.low is not None else 0 for iv in ivs] for _ in (0, 1)]
        ns = "/".join(str(iv.n) for iv in ivs)
        ax.bar([temps.index(t) + i * width for t in d], list(d.values()), width=width, label=f"{lab} (n={ns})",
               yerr=yerr, capsize=4)  # fmt: skip
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(temps))], temps)
    ax.set_ylabel(f"{split} {metric} (avg)")
    ax.set_title("Template comparison")
    ax.legend(fontsize=8)
    return fig


def draw_template_space(fd: FigureData, split: str, metric: str):
    """Horizontal bars ordered by score, coloured by the kind of factor each template changes."""
    rows, factor = fd.draw["rows"], fd.draw["factor"]
    kinds = sorted({factor[t].split(":")[0] for _, t, *_ in rows})
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(rows) + 1.5))
    palette = plt.get_cmap("tab10")
    many = len({lab for lab, *_ in rows}) > 1
    for i, (_, t, mean, half, n) in enumerate(rows):
        colour = palette(kinds.index(factor[t].split(":")[0]) % 10)
        ax.barh(i, mean, xerr=half if n > 1 else None, color=colour, capsize=3)
    ax.set_yticks(
        range(len(rows)), [f"{f'{lab} ' if many else ''}{t}: {factor[t]} (n={n})" for lab, t, _, _, n in rows]
    )
    ax.set_xlabel(f"{split} {metric} (avg over directions; mean and 95% interval over seeds)")
    ax.set_title("Template design space, ordered by score")
    ax.grid(alpha=0.3, axis="x")
    return fig


def draw_partitions(fd: FigureData, split: str, metric: str):
    series, parts = fd.data["series"], fd.draw["parts"]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    width = 0.8 / len(series)
    for i, (lab, d) in enumerate(series.items()):
        ax.bar([parts.index(p) + i * width for p in d], list(d.values()), width=width, label=lab)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(parts))], parts, rotation=20)
    ax.set_ylabel(f"{split} {metric}")
    ax.set_title("Seen and unseen directions")
    ax.legend(fontsize=8)
    return fig


def draw_errors(fd: FigureData, split: str, metric: str):
    """Stacked bars: the fraction of translations of each error type, per run."""
    series = fd.data["series"]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    labels = list(series)
    bottom = [0.0] * len(labels)
    for c in ERROR_CATEGORIES:
        vals = [series[lab][c] for lab in labels]
        ax.bar(range(len(labels)), vals, bottom=bottom, label=c)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("fraction of translations")
    ax.set_title(f"Error types ({split})")
    ax.legend(fontsize=7)
    return fig


def _fmt_corr(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def draw_per_language(fd: FigureData, split: str, metric: str):
    """A scatter per series, each point named by its language, the legend giving Pearson's r and Spearman's ρ."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.8))
    for lab, pts in fd.data["series"].items():
        c = fd.data["correlations"][lab]
        ys = [y for _, y, _ in pts]
        ax.scatter(
            [x for x, _, _ in pts], ys, label=f"{lab} (r={_fmt_corr(c['pearson'])}, ρ={_fmt_corr(c['spearman'])})"
        )
        for x, y, lang in pts:
            ax.annotate(lang, (x, y), fontsize=7, xytext=(2, 2), textcoords="offset points")
    if fd.draw["logx"]:
        ax.set_xscale("log")
    ax.set_xlabel(fd.draw["xlabel"])
    ax.set_ylabel(f"{split} {metric} (mean over the language's directions)")
    ax.set_title(f"Per-language {metric}")
    ax.legend(fontsize=7)
    return fig


def draw_bars(fd: FigureData, split: str, metric: str):
    """Grouped bars: one bar per series in each group (pivot alignment)."""
    series = fd.data["series"]
    groups = list(dict.fromkeys(g for d in series.values() for g in d))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    width = 0.8 / max(1, len(series))
    for i, (lab, d) in enumerate(series.items()):
        ax.bar([groups.index(g) + i * width for g in d], list(d.values()), width=width, label=lab)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))], groups)
    ax.set_ylabel(f"{split} {metric} (mean over directions)")
    ax.set_title(fd.draw["title"])
    ax.legend(fontsize=7)
    return fig


def draw_data_quality(fd: FigureData, split: str, metric: str):
    """Two panels: score against the WikiMatrix threshold, and against the misaligned fraction."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.2))
    for ax, (key, xlabel) in zip(axes, (("by_threshold", "WikiMatrix margin score threshold"),
                                        ("by_noise", "fraction of misaligned targets"))):  # fmt: skip
        for lab, s in sorted(fd.data[key].items()):
            ax.plot([x for x, _ in s], [y for _, y in s], marker="o", label=lab)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{split} {metric} (avg)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Corpus quality")
    return fig
