"""Drawing helpers for the report's statistics (matplotlib, Agg): error bars over seeds, a fitted trend with its
band, and the source x target direction map. Each takes an axes or a path and the numbers to draw; the numbers
come from :mod:`mfti_lightning.track.stats`. No torch here."""

from __future__ import annotations

import math
from pathlib import Path

from mfti_lightning.core.languages import LANGUAGES
from mfti_lightning.track.stats import Fit, Interval, interval

PARTITION_MARKS = {
    "seen": "S",
    "reversed": "R",
    "one_side_reversed": "O",
    "src_unseen": "s",
    "tgt_unseen": "t",
    "both_unseen": "u",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def errorbar_series(ax, label: str, by_x: dict[float, list[float]], **style) -> list[tuple[float, Interval]]:
    """Mean over seeds at each x with its 95% t-interval as error bars; the legend says how many seeds.
    ``style``: matplotlib line keywords (colour, line style) for the series."""
    pts = sorted((x, interval(v)) for x, v in by_x.items())
    ns = sorted({iv.n for _, iv in pts})
    seeds = f"n={ns[0]}" if len(ns) == 1 else f"n={ns[0]}-{ns[-1]}"
    yerr = [
        [iv.mean - iv.low if iv.low is not None else 0 for _, iv in pts],
        [iv.high - iv.mean if iv.high is not None else 0 for _, iv in pts],
    ]
    ax.errorbar(
        [x for x, _ in pts],
        [iv.mean for _, iv in pts],
        yerr=yerr,
        marker="o",
        capsize=4,
        label=f"{label} ({seeds})",
        **style,
    )
    return pts


def draw_fit(ax, fit: Fit, xs: list[float], logx: bool, color=None) -> None:
    """The least-squares line (in log10 x when ``logx``) over the range of ``xs`` and its 95% band."""
    lo, hi = min(xs), max(xs)
    grid = [lo + (hi - lo) * i / 40 for i in range(41)]
    if logx:
        grid = [10 ** (math.log10(lo) + (math.log10(hi) - math.log10(lo)) * i / 40) for i in range(41)]
    tx = [math.log10(x) if logx else x for x in grid]
    label = f"fit: {fit.slope:+.2f} per {'decade' if logx else 'unit'}"
    if fit.slope_low is not None:
        label += f" [{fit.slope_low:+.2f}, {fit.slope_high:+.2f}]"
    (line,) = ax.plot(grid, [fit.predict(t) for t in tx], linestyle="--", linewidth=1, color=color, label=label)
    bands = [fit.band(t) for t in tx]
    if all(b is not None for b in bands):
        ax.fill_between(grid, [b[0] for b in bands], [b[1] for b in bands], color=line.get_color(), alpha=0.15)


def language_order(directions) -> list[str]:
    """The languages of ``directions`` in the registry's order (the paper's table order)."""
    langs = {lang for d in directions for lang in d.split("-")}
    order = list(LANGUAGES)
    return sorted(langs, key=lambda c: (order.index(c) if c in order else len(order), c))


def direction_map(
    path: Path, values: dict[str, float], title: str, label: str, marks: dict[str, str] | None = None,
    trained: set[str] | frozenset = frozenset(), diverging: bool = False,
) -> dict:  # fmt: skip
    """An n x n heatmap, source languages as rows and targets as columns; every cell holds its value, a marked
    direction (``marks``: its partition's letter, :data:`PARTITION_MARKS`) gets its letter, a trained one a black
    frame."""
    plt = _plt()
    langs = language_order(values)
    n = len(langs)
    grid = [[values.get(f"{s}-{t}", math.nan) for t in langs] for s in langs]
    finite = [v for row in grid for v in row if not math.isnan(v)]
    fig, ax = plt.subplots(figsize=(1.2 + 0.62 * n, 0.9 + 0.55 * n))
    kw = {"cmap": "viridis"}
    if diverging:
        lim = max([abs(v) for v in finite] + [1e-9])
        kw = {"cmap": "RdBu", "vmin": -lim, "vmax": lim}
    ax.set_facecolor("#e8e8e8")  # not evaluated (and the diagonal): grey
    im = ax.imshow(grid, **kw)
    fig.colorbar(im, ax=ax, label=label, fraction=0.046, pad=0.04)
    digits = 1 if max([abs(v) for v in finite] + [0]) >= 10 else 2
    for i, s in enumerate(langs):
        for j, t in enumerate(langs):
            v = grid[i][j]
            if math.isnan(v):
                continue
            mark = (marks or {}).get(f"{s}-{t}", "")
            r, g, b, _ = im.cmap(im.norm(v))
            ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
            ax.text(j, i, f"{v:.{digits}f}" + (f"\n{mark}" if mark else ""), ha="center", va="center", fontsize=7,
                    color=ink)  # fmt: skip
            if f"{s}-{t}" in trained:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2))
    ax.set_xticks(range(n), langs)
    ax.set_yticks(range(n), langs)
    ax.set_xlabel("target language")
    ax.set_ylabel("source language")
    present = set("".join((marks or {}).values()))
    legend = "  ".join(f"{m}={p}" for p, m in PARTITION_MARKS.items() if m in present)
    legend += "  *=significant (p<0.05, every seed)" if "*" in present else ""
    legend += "  (framed: trained)" if trained else ""
    ax.set_title(title + (f"\n{legend}" if legend else ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return {"path": str(path), "languages": langs, "values": dict(values), "marks": dict(marks or {}),
            "trained": sorted(trained)}  # fmt: skip
