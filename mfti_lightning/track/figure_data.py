"""The numbers of the report's scaling figures (score against model size, examples, directions, shots), computed
apart from drawing: mean over seeds per series and x with its 95% interval, a baseline's level, and least-squares
trends on the scaling axes. :class:`FigureData` is what every figure's computation returns. No matplotlib here."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from mfti_lightning.core.metric_key import AVG, MetricKey
from mfti_lightning.track.run_values import run_label, varying
from mfti_lightning.track.stats import Interval, fit_line, interval, metrics_by_direction

FITTED = {"bleu_vs_model_size": "parameters", "bleu_vs_num_examples": "examples per direction"}
X_KEY = {  # the swept value each line figure puts on its x axis (never part of a series label)
    "bleu_vs_model_size": "model",
    "bleu_vs_num_examples": "num_examples",
    "bleu_vs_lang_pairs": "lang_pairs",
    "bleu_vs_shots": "shots",
}


@dataclass
class FigureData:
    """One figure's computed numbers: ``data`` (what the report returns and the tests check), ``draw`` (what only
    the drawing needs), the runs of each series (``used``: their config differences are reported), the trends and
    correlations it adds to the report."""

    data: dict
    draw: dict = field(default_factory=dict)
    used: list[list[dict]] | None = None
    trends: list[dict] = field(default_factory=list)
    correlations: list[dict] = field(default_factory=list)


@dataclass
class Scope:
    """What every figure plots: the runs and their ``split``/``metric`` score."""

    records: list[dict]
    metric: str
    split: str = "test"

    def avg(self, rec: dict) -> float | None:
        return rec.get("metrics", {}).get(str(MetricKey(self.split, self.metric, AVG)))

    def direction_scores(self, rec: dict) -> dict[str, float]:
        """``{direction: score}`` of the split and metric (no ``avg``)."""
        by_dir = metrics_by_direction(rec, self.split)
        return {d: m[self.metric] for d, m in by_dir.items() if d != "avg" and self.metric in m}


@dataclass
class Line:
    """A line figure: its name, title, x axis (``xfn(rec)``, log scale or not), the runs it draws (``select``), a
    baseline drawn as a level (``reference``) and a grouping that splits series and picks colours (``colour_by``)."""

    name: str
    title: str
    xlabel: str
    xfn: object
    select: object = lambda r: True
    logx: bool = False
    reference: object = None
    colour_by: object = None


def _series(scope: Scope, line: Line, pts: list) -> tuple[dict, dict, dict, list]:
    """Per series label: the scores at each x, the group (colour) of the label, the runs with their x."""
    vary = varying([r for r, _, _ in pts], exclude=(X_KEY.get(line.name, ""),))
    acc: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    groups = sorted({line.colour_by(r) for r, _, _ in pts}) if line.colour_by else []
    group_of: dict[str, str] = {}
    runs_of: dict[str, list[tuple[dict, float]]] = defaultdict(list)
    for r, x, y in pts:
        lab = run_label(r, vary, X_KEY.get(line.name, ""))
        if len(groups) > 1:
            lab = f"{lab} {line.colour_by(r)}"
            group_of[lab] = line.colour_by(r)
        acc[lab][x].append(y)
        runs_of[lab].append((r, x))
    return acc, group_of, runs_of, groups


def _references(scope: Scope, reference) -> dict[str, list[float]]:
    """The baseline runs' scores per label (a level across the figure)."""
    racc = defaultdict(list)
    if reference:
        refs = [r for r in scope.records if reference(r)]
        for r in scope.records:
            if reference(r) and scope.avg(r) is not None:
                racc[run_label(r, varying(refs, ()))].append(scope.avg(r))
    return racc


def trends(scope: Scope, name: str, label: str, runs: list[tuple[dict, float]], logx: bool):
    """Least squares of the score on (log10) x over every run of a series, per direction and for the average:
    ``(trend rows for trends.csv, the average's fit to draw)``."""
    per_dir: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r, x in runs:
        for d, m in metrics_by_direction(r, scope.split).items():
            if scope.metric in m:
                per_dir[d].append((math.log10(x) if logx else x, m[scope.metric]))
    rows, avg_fit = [], None
    for d in sorted(per_dir, key=lambda d: (d != "avg", d)):
        fit = fit_line([x for x, _ in per_dir[d]], [y for _, y in per_dir[d]])
        if fit is None:
            continue
        avg_fit = fit if d == "avg" else avg_fit
        rows.append(
            {"figure": name, "series": label, "direction": d, "x": ("log10 " if logx else "") + FITTED[name],
             "n_runs": fit.n, "slope": fit.slope, "slope_ci_low": fit.slope_low, "slope_ci_high": fit.slope_high,
             "intercept": fit.intercept, "r2": fit.r2}
        )  # fmt: skip
    return rows, avg_fit


def _intervals(acc: dict, racc: dict) -> tuple[dict, dict[str, Interval]]:
    """Each series' mean and 95% t-interval per x; each baseline's interval over seeds (drawn as a band)."""
    intervals = {lab: [(x, iv.low, iv.high, iv.n) for x, iv in sorted((x, interval(v)) for x, v in acc[lab].items())]
                 for lab in sorted(acc)}  # fmt: skip
    bands = {}
    for lab, vals in racc.items():
        riv = interval(vals)
        if riv is not None and riv.low is not None:
            bands[lab] = riv
            intervals[f"reference: {lab}"] = [(None, riv.low, riv.high, riv.n)]
    return intervals, bands


def line_data(scope: Scope, line: Line) -> FigureData | str:
    """Mean over seeds of the average score per (series, x); series labelled by method and varying values, split
    by ``line.colour_by`` (the model family) when runs of two or more groups are drawn. A str: why it is skipped."""
    pts = [(r, line.xfn(r), scope.avg(r)) for r in scope.records if line.select(r)]
    pts = [(r, x, y) for r, x, y in pts if x is not None and y is not None and (not line.logx or x > 0)]
    xs = {x for _, x, _ in pts}
    if len(xs) < 2:
        return f"needs runs at 2 or more values of {line.xlabel} with {scope.split}/{scope.metric}/avg; found {len(xs)}"
    acc, group_of, runs_of, groups = _series(scope, line, pts)
    series = {lab: sorted((x, sum(v) / len(v)) for x, v in d.items()) for lab, d in sorted(acc.items())}
    racc = _references(scope, line.reference)
    refs = {lab: sum(v) / len(v) for lab, v in racc.items()}
    intervals, bands = _intervals(acc, racc)
    rows, fits = [], {}
    for lab in series if line.name in FITTED else []:
        lab_rows, fits[lab] = trends(scope, line.name, lab, runs_of[lab], line.logx)
        rows += lab_rows
    data = {"series": series, "reference": refs, "intervals": intervals, **({"groups": group_of} if group_of else {})}
    draw = {"line": line, "by_x": acc, "groups": groups, "group_of": group_of, "fits": fits, "bands": bands,
            "xs": {lab: [x for _, x in runs_of[lab]] for lab in series}}  # fmt: skip
    return FigureData(data, draw, used=[[r for r, _ in runs] for runs in runs_of.values()], trends=rows)
