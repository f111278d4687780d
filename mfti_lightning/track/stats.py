"""The report's statistics: seed groups, t-intervals over seeds, Welch intervals of a difference, least-squares
trends with their intervals, correlations: the one statistics module of the report, on ``scipy.stats`` (no torch).

A *seed group* is the set of runs that are the same experiment except for the seed: the run identity of
:mod:`mfti_lightning.core.identity` (training and evaluation keys) without ``seed`` and without the keys that
merely follow it (``shots.seed: ${seed}``). Names never decide it, so two runs with the same ``run_name`` but another
learning rate are two groups.
"""

from __future__ import annotations

import json
import math
import statistics
import warnings
from collections import defaultdict
from dataclasses import dataclass, field

from mfti_lightning.core.identity import digest, identity
from mfti_lightning.core.metric_key import AVG, MetricKey
from mfti_lightning.core.results_schema import RunResults

LEVEL = 0.95


# ---- intervals (scipy.stats: Student's t, Welch's test, least squares, correlations) ------------------------
# scipy is imported inside the functions: ``mfti-report --help`` and the modules that only group runs stay fast.
@dataclass
class Interval:
    """Mean of ``n`` values, their sample standard deviation and a t-interval of the mean (None for n < 2)."""

    mean: float
    std: float | None
    low: float | None
    high: float | None
    n: int

    @property
    def half(self) -> float | None:
        return None if self.low is None else (self.high - self.low) / 2


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (``scipy.stats.t.ppf``)."""
    from scipy import stats as ss

    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    return float(ss.t.ppf(p, df))


def interval(values, level: float = LEVEL) -> Interval | None:
    """Mean, sample standard deviation and the t-interval of the mean, ``mean ± t(n - 1) * sd / sqrt(n)`` with the
    quantile from ``scipy.stats.t``, over the values that are not None."""
    vals = [float(v) for v in values if v is not None]
    n = len(vals)
    if n == 0:
        return None
    mean = sum(vals) / n
    if n < 2:
        return Interval(mean, None, None, None, n)
    std = statistics.stdev(vals)  # not scipy's tstd: it warns on seeds that score the same (a real case)
    half = t_quantile(0.5 + level / 2, n - 1) * std / math.sqrt(n)
    return Interval(mean, std, mean - half, mean + half, n)


def welch(a, b, level: float = LEVEL) -> Interval | None:
    """``mean(a) - mean(b)`` with a Welch t-interval (``scipy.stats.ttest_ind(equal_var=False)``: unequal
    variances, Welch-Satterthwaite degrees of freedom); ``std`` holds the difference's standard error. ``n`` is
    the smaller sample; no interval when either side has fewer than 2 values; a zero-width one when neither
    varies (scipy has no interval there: its statistic is 0/0)."""
    from scipy import stats as ss

    ia, ib = interval(a, level), interval(b, level)
    if ia is None or ib is None:
        return None
    diff, n = ia.mean - ib.mean, min(ia.n, ib.n)
    if ia.std is None or ib.std is None:
        return Interval(diff, None, None, None, n)
    se = math.sqrt(ia.std**2 / ia.n + ib.std**2 / ib.n)
    if se == 0:
        return Interval(diff, 0.0, diff, diff, n)
    xa, xb = ([float(v) for v in side if v is not None] for side in (a, b))
    with warnings.catch_warnings():  # one side's seeds scoring the same is exact (variance 0), not precision loss
        warnings.filterwarnings("ignore", "Precision loss occurred in moment calculation", RuntimeWarning)
        ci = ss.ttest_ind(xa, xb, equal_var=False).confidence_interval(level)
    return Interval(diff, se, float(ci.low), float(ci.high), n)


@dataclass
class Correlation:
    """Pearson's r and Spearman's rho (``scipy.stats.pearsonr`` / ``spearmanr``, ties at their mean rank) of
    ``n`` points; None with fewer than 3 points or when either side is constant (scipy would say nan)."""

    pearson: float | None
    spearman: float | None
    n: int


def correlation(xs, ys) -> Correlation:
    from scipy import stats as ss

    x, y = [float(v) for v in xs], [float(v) for v in ys]
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return Correlation(None, None, len(x))
    return Correlation(float(ss.pearsonr(x, y).statistic), float(ss.spearmanr(x, y).statistic), len(x))


# ---- least-squares trends ------------------------------------------------------------------------------------
@dataclass
class Fit:
    """``y = intercept + slope * x`` by ordinary least squares (``scipy.stats.linregress``), with the t-interval
    of the slope and the band of the fitted mean (None with fewer than 3 points: no residual degrees of freedom)."""

    slope: float
    intercept: float
    n: int
    r2: float | None
    slope_low: float | None = None
    slope_high: float | None = None
    x_mean: float = 0.0
    sxx: float = 0.0  # sum of squared deviations of x
    slope_se: float | None = None  # standard error of the slope
    t: float | None = None  # the t quantile of the intervals (n - 2 degrees of freedom)

    def predict(self, x: float) -> float:
        return self.intercept + self.slope * x

    def band(self, x: float) -> tuple[float, float] | None:
        """The interval of the fitted mean at ``x``: ``t * s * sqrt(1/n + (x - mean x)^2 / Sxx)``, with the
        residual standard deviation ``s = slope_se * sqrt(Sxx)``."""
        if self.t is None:
            return None
        half = self.t * self.slope_se * math.sqrt(self.sxx / self.n + (x - self.x_mean) ** 2)
        return self.predict(x) - half, self.predict(x) + half


def fit_line(xs, ys, level: float = LEVEL) -> Fit | None:
    """The least-squares line through the points whose x and y are not None; None with fewer than 2 points or no
    spread in x. ``r2`` is None when y does not vary (no variance to explain)."""
    from scipy import stats as ss

    pts = [(float(x), float(y)) for x, y in zip(xs, ys) if x is not None and y is not None]
    n = len(pts)
    if n < 2 or len({x for x, _ in pts}) < 2:
        return None
    x, y = [p[0] for p in pts], [p[1] for p in pts]
    reg = ss.linregress(x, y)
    mx = math.fsum(x) / n
    fit = Fit(
        float(reg.slope),
        float(reg.intercept),
        n,
        float(reg.rvalue) ** 2 if len(set(y)) > 1 else None,
        x_mean=mx,
        sxx=math.fsum((v - mx) ** 2 for v in x),
    )
    if n >= 3:
        fit.slope_se, fit.t = float(reg.stderr), t_quantile(0.5 + level / 2, n - 2)
        fit.slope_low, fit.slope_high = fit.slope - fit.t * fit.slope_se, fit.slope + fit.t * fit.slope_se
    return fit


# ---- seed groups -----------------------------------------------------------------------------------------------
def group_identity(rec: dict) -> dict:
    """What a run is apart from its seed: its task plus the training and evaluation identity of its config,
    without ``seed`` and without any ``*.seed`` key that holds the run's seed."""
    cfg = rec.get("config") or {}
    seed = cfg.get("seed", RunResults.of(rec).swept.seed)
    ident = identity(cfg)
    keys = {**ident["training"], **{f"eval:{k}": v for k, v in ident["evaluation"].items()}}
    out = {"task": rec.get("task")}
    for k, v in keys.items():
        last = k.split(".")[-1]
        if k in ("seed", "eval:seed") or (last == "seed" and v == seed):
            continue
        out[k] = v
    if not cfg:  # a record without its config: fall back to the swept values (the best that is known)
        out.update({k: v for k, v in (rec.get("swept") or {}).items() if k != "seed"})
    return out


@dataclass
class SeedGroup:
    key: str
    label: str
    records: list[dict] = field(default_factory=list)

    @property
    def seeds(self) -> list:
        return [RunResults.of(r).swept.seed for r in self.records]

    @property
    def first(self) -> dict:
        return self.records[0]

    def values(self, metric_key: str) -> list[float]:
        metrics = (RunResults.of(r).metrics for r in self.records)
        return [m[metric_key] for m in metrics if metric_key in m]

    def interval(self, metric_key: str) -> Interval | None:
        return interval(self.values(metric_key))


def seed_groups(records: list[dict]) -> list[SeedGroup]:
    """Completed runs grouped over seeds (in the order first seen), runs in a group sorted by seed."""
    groups: dict[str, SeedGroup] = {}
    for rec in records:
        key = digest(group_identity(rec))
        if key not in groups:
            groups[key] = SeedGroup(key, str(RunResults.of(rec).run_name or rec.get("_dir")))
        groups[key].records.append(rec)
    by_label = defaultdict(list)
    for g in groups.values():
        g.records.sort(key=lambda r: json.dumps(RunResults.of(r).swept.seed, default=str))
        by_label[g.label].append(g)
    for same in by_label.values():  # one run_name, several experiments (a non-swept value differs): tell apart
        if len(same) > 1:
            for g in same:
                g.label = f"{g.label} #{g.key[:6]}"
    return list(groups.values())


def metrics_by_direction(rec: dict, split: str) -> dict[str, dict[str, float]]:
    """``{direction or 'avg': {metric: value}}`` of one split."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for name, value in RunResults.of(rec).metrics.items():
        key = MetricKey.find(name)
        if key and key.split == split and (key.scope == AVG or key.is_direction):
            out[key.scope][key.metric] = value
    return out


def grouped_rows(groups: list[SeedGroup], split: str, base_fn=None) -> list[dict]:
    """One row per (seed group, direction) and per group ``avg``: for every metric its mean over seeds,
    ``_std``, ``_ci_low``/``_ci_high`` (95% t-interval over seeds) and ``n_seeds``. ``base_fn(record)`` adds the
    descriptive columns (method, swept values)."""
    rows = []
    for g in groups:
        per_run = [metrics_by_direction(r, split) for r in g.records]
        dirs = sorted({d for m in per_run for d in m}, key=lambda d: (d == "avg", d))
        for d in dirs:
            row = {"group": g.label, **(base_fn(g.first) if base_fn else {})}
            row.update(direction=d, n_seeds=len(g.records), seeds=",".join(str(s) for s in g.seeds))
            metrics = sorted({k for m in per_run for k in m.get(d, {})})
            for metric in metrics:
                iv = interval([m[d][metric] for m in per_run if metric in m.get(d, {})])
                col = f"{split}/{metric}"
                row[col], row[f"{col}_std"], row[f"{col}_ci_low"], row[f"{col}_ci_high"] = (
                    iv.mean,
                    iv.std,
                    iv.low,
                    iv.high,
                )
            rows.append(row)
    return rows


# ---- paired differences (added for track/claims.py: the same seed on both sides of a comparison) ---------------
def paired(a, b, level: float = LEVEL) -> tuple[Interval, float | None] | None:
    """``mean(a - b)`` over matched pairs (``a[i]`` with ``b[i]``: the same seed) with the t-interval of the
    differences and the two-sided p-value of ``scipy.stats.ttest_rel``; None with fewer than 2 pairs. Differences
    that do not vary give a zero-width interval and p 0 (or 1 when they are all 0): scipy's statistic is x/0 there."""
    from scipy import stats as ss

    pairs = [(float(x), float(y)) for x, y in zip(a, b) if x is not None and y is not None]
    if len(pairs) < 2:
        return None
    iv = interval([x - y for x, y in pairs], level)
    if iv.std == 0:
        return Interval(iv.mean, 0.0, iv.mean, iv.mean, iv.n), (1.0 if iv.mean == 0 else 0.0)
    res = ss.ttest_rel([x for x, _ in pairs], [y for _, y in pairs])
    return iv, float(res.pvalue)
