"""The numbers of the report's comparison figures, computed apart from drawing: templates, the template design
space, seen/unseen partitions, error types, per-language scores against a language property (with correlations),
pivot alignment and corpus quality. Each returns :class:`~mfti_lightning.track.figure_data.FigureData`, or a str
saying why the figure is skipped. No matplotlib here."""

from __future__ import annotations

import math
from collections import defaultdict

from mfti_lightning.core.metric_key import MetricKey
from mfti_lightning.core.results_schema import RunResults
from mfti_lightning.eval.analysis import CATEGORIES as ERROR_CATEGORIES
from mfti_lightning.eval.partitions import PARTITIONS
from mfti_lightning.track.figure_data import FigureData, Scope
from mfti_lightning.track.run_values import method_of, run_label, short_template, template_factor, varying
from mfti_lightning.track.stats import correlation, interval


def _mean(values) -> float:
    return sum(values) / len(values)


def templates_data(scope: Scope) -> FigureData | str:
    by: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    recs = [r for r in scope.records if scope.avg(r) is not None]
    temps = sorted({short_template(r) for r in recs})
    if len(temps) < 2:
        return f"needs runs with 2 or more templates; found {len(temps)}"
    vary = varying(recs, exclude=("template",))
    for r in recs:
        by[run_label(r, vary)][short_template(r)].append(scope.avg(r))
    used = [[r for r in recs if run_label(r, vary) == lab] for lab in by]
    series = {lab: {t: _mean(v) for t, v in d.items()} for lab, d in sorted(by.items())}
    return FigureData({"series": series}, {"by": by, "templates": temps}, used=used)


def template_space_data(scope: Scope) -> FigureData | str:
    """Templates of the design space (runs whose template names a ``factor``) ordered by mean score, with 95 % t
    intervals over seeds, each labelled with the factor it changes."""
    recs = [r for r in scope.records if scope.avg(r) is not None and template_factor(r)]
    by: dict[tuple[str, str], list[float]] = defaultdict(list)
    vary = varying(recs, exclude=("template", "seed"))
    for r in recs:
        by[(run_label(r, vary), short_template(r))].append(scope.avg(r))
    if len({t for _, t in by}) < 2:
        return f"needs runs of 2 or more templates with a template.factor; found {len(by)}"
    factor = {short_template(r): template_factor(r) for r in recs}
    ivs = {key: interval(v) for key, v in by.items()}  # mean and 95% t-interval over seeds (half 0 for one)
    rows = sorted(((lab, t, iv.mean, iv.half or 0.0, iv.n) for (lab, t), iv in ivs.items()), key=lambda x: x[2])
    order = [{"label": lab, "template": t, "factor": factor[t], "mean": m, "interval": h, "n": n}
             for lab, t, m, h, n in rows]  # fmt: skip
    return FigureData({"order": order}, {"rows": rows, "factor": factor})


def partitions_data(scope: Scope) -> FigureData | str:
    series = {}
    vary = varying(scope.records, exclude=())
    for r in scope.records:
        m = RunResults.of(r).metrics
        keys = {p: str(MetricKey.partition(scope.split, scope.metric, p)) for p in PARTITIONS}
        vals = {p: m[k] for p, k in keys.items() if k in m}
        if vals:
            label = run_label(r, vary)
            series[label if label not in series else f"{label} ({r.get('run_name')})"] = vals
    if not series:
        return (
            f"no run has {scope.split}/{scope.metric}/partition/* metrics (needs training "
            "directions and an evaluation beyond them)"
        )
    parts = [p for p in PARTITIONS if any(p in v for v in series.values())]
    return FigureData({"series": series}, {"parts": parts})


def errors_data(scope: Scope) -> FigureData | str:
    recs = [r for r in scope.records if RunResults.of(r).errors.get(scope.split)]
    if not recs:
        return f"no run has an error analysis for {scope.split} (results.json 'errors')"
    vary = varying(recs, exclude=())
    series = {}
    for r in recs:
        counts, n = defaultdict(int), 0
        for e in r["errors"][scope.split].values():
            n += int(e.get("n", 0))
            for c, k in (e.get("counts") or {}).items():
                counts[c] += int(k)
        label = run_label(r, vary)
        if label in series:
            label = f"{label} ({r.get('run_name')})"
        series[label] = {c: counts.get(c, 0) / n if n else 0.0 for c in ERROR_CATEGORIES}
    return FigureData({"series": series})


def _language_means(scope: Scope) -> dict[str, dict[str, list[float]]]:
    """Per ``<series> | into/from language`` label: each language's mean over its directions, per run."""
    recs = [r for r in scope.records if RunResults.of(r).completed]
    vary = varying(recs, exclude=())
    acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in recs:
        lab = run_label(r, vary)
        per: dict[tuple[str, str], list[float]] = defaultdict(list)
        for d, v in scope.direction_scores(r).items():
            s, t = d.split("-")
            per[("into", t)].append(v)
            per[("from", s)].append(v)
        for (side, lang), vals in per.items():
            acc[f"{lab} | {side} language"][lang].append(_mean(vals))
    return acc


def per_language_data(
    scope: Scope, name: str, xvalues: dict[str, float], xlabel: str, logx: bool, exclude: tuple[str, ...] = ()
) -> FigureData | str:
    """Per-language score (mean over directions into / out of the language) against a language property, with
    Pearson and Spearman correlations per series."""
    series = {}
    for lab, d in sorted(_language_means(scope).items()):
        pts = sorted(
            (xvalues[lang], _mean(v), lang) for lang, v in d.items() if lang in xvalues and lang not in exclude
        )
        if len(pts) >= 3:
            series[lab] = pts
    if not series:
        return f"needs per-direction {scope.split}/{scope.metric} scores for 3 or more languages with a known {xlabel}"
    corr = {}
    for lab, pts in series.items():
        r = correlation([math.log10(x) if logx else x for x, _, _ in pts], [y for _, y, _ in pts])
        corr[lab] = {"series": lab, "figure": name, "n": r.n, "pearson": r.pearson, "spearman": r.spearman,
                     "x": ("log10 " if logx else "") + xlabel}  # fmt: skip
    data = {"series": series, "correlations": corr}
    return FigureData(data, {"xlabel": xlabel, "logx": logx}, correlations=list(corr.values()))


def pivot_data(scope: Scope) -> FigureData | str:
    """sweeps/pivot.yaml: English-centric training against all-direction training, scored on the non-English
    directions (zero-shot for the English-centric model) and, for context, the English-centric ones."""
    recs = [r for r in scope.records if method_of(RunResults.of(r).swept) == "mFTI"]
    vary = varying(recs, exclude=())
    acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    kinds = set()
    for r in recs:
        train = RunResults.of(r).directions.train
        scores = scope.direction_scores(r)
        non_en = [v for d, v in scores.items() if "en" not in d.split("-")]
        en = [v for d, v in scores.items() if "en" in d.split("-")]
        if not train or not non_en:
            continue
        kind = "English-centric" if all("en" in d.split("-") for d in train) else "all-direction"
        kinds.add(kind)
        label = f"{kind} training: {run_label(r, vary)}"  # seeds of one setting: averaged
        acc[label]["non-English directions"].append(_mean(non_en))
        if en:
            acc[label]["English-centric directions"].append(_mean(en))
    if kinds != {"English-centric", "all-direction"}:
        return (
            "needs an mFTI run trained English-centric and one trained with non-English directions, both "
            f"scored on non-English directions; found {sorted(kinds) or 'none'}"
        )
    series = {lab: {g: _mean(v) for g, v in d.items()} for lab, d in sorted(acc.items())}
    return FigureData({"series": series}, {"title": "Pivot alignment: English-centric vs all-direction training"})


def _quality_points(scope: Scope) -> list[tuple[float | None, float, float]]:
    """``(WikiMatrix min_score or None, misaligned fraction, score)`` of every scored mFTI run."""
    pts = []
    for r in scope.records:
        cfg_data = RunResults.of(r).config_value("data") or {}
        thr = next((c.get("min_score") for c in cfg_data.get("corpora") or [] if c.get("format") == "wikimatrix"), None)
        noise = float((cfg_data.get("noise") or {}).get("misaligned") or 0.0)
        if method_of(RunResults.of(r).swept) == "mFTI" and scope.avg(r) is not None:
            pts.append((thr, noise, scope.avg(r)))
    return pts


def data_quality_data(scope: Scope) -> FigureData | str:
    """sweeps/data_quality.yaml: score against the WikiMatrix margin threshold and the misaligned fraction."""
    pts = _quality_points(scope)
    thresholds = sorted({t for t, _, _ in pts if t is not None})
    noises = sorted({n for _, n, _ in pts})
    if len(thresholds) < 2 and len(noises) < 2:
        return (
            "needs mFTI runs at 2 or more WikiMatrix min_score thresholds or data.noise.misaligned fractions; "
            f"found thresholds {thresholds}, fractions {noises}"
        )
    by_thr, by_noise = defaultdict(lambda: defaultdict(list)), defaultdict(lambda: defaultdict(list))
    for t, n, y in pts:
        by_noise[f"min_score {t}"][n].append(y)
        if t is not None:
            by_thr[f"misaligned {n:g}"][t].append(y)
    mean = lambda d: {lab: sorted((x, _mean(v)) for x, v in xs.items()) for lab, xs in d.items()}  # noqa: E731
    return FigureData({"by_threshold": mean(by_thr), "by_noise": mean(by_noise)})
