"""The report's statistics: seed groups, t-intervals over seeds, Welch intervals of a difference, least-squares
trends with their intervals. Plain Python (math only: no numpy, scipy or torch), so ``mfti-report`` stays light.

A *seed group* is the set of runs that are the same experiment except for the seed: the run identity of
:mod:`mfti_lightning.core.identity` (training and evaluation keys) without ``seed`` and without the keys that
merely follow it (``shots.seed: ${seed}``). Names never decide it, so two runs with the same ``run_name`` but another
learning rate are two groups.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field

from mfti_lightning.core.identity import digest, identity
from mfti_lightning.core.languages import DIRECTION_PATTERN

LEVEL = 0.95


# ---- Student's t distribution (for intervals over a handful of seeds) ------------------------------------------
def _beta_cf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_cf(a, b, x) / a
    return 1.0 - front * _beta_cf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on :func:`t_cdf`)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# ---- intervals -------------------------------------------------------------------------------------------------
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


def interval(values, level: float = LEVEL) -> Interval | None:
    vals = [float(v) for v in values if v is not None]
    n = len(vals)
    if n == 0:
        return None
    mean = sum(vals) / n
    if n < 2:
        return Interval(mean, None, None, None, n)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = t_quantile(0.5 + level / 2, n - 1) * std / math.sqrt(n)
    return Interval(mean, std, mean - half, mean + half, n)


def welch(a, b, level: float = LEVEL) -> Interval | None:
    """``mean(a) - mean(b)`` with a Welch t-interval (unequal variances; Welch-Satterthwaite degrees of freedom).
    ``n`` is the smaller sample; no interval when either side has fewer than 2 values or neither varies."""
    ia, ib = interval(a, level), interval(b, level)
    if ia is None or ib is None:
        return None
    diff = ia.mean - ib.mean
    if ia.std is None or ib.std is None:
        return Interval(diff, None, None, None, min(ia.n, ib.n))
    va, vb = ia.std**2 / ia.n, ib.std**2 / ib.n
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(diff, 0.0, diff, diff, min(ia.n, ib.n))
    df = (va + vb) ** 2 / (va**2 / (ia.n - 1) + vb**2 / (ib.n - 1))
    half = t_quantile(0.5 + level / 2, df) * se
    return Interval(diff, se, diff - half, diff + half, min(ia.n, ib.n))


# ---- least-squares trends ------------------------------------------------------------------------------------
@dataclass
class Fit:
    """``y = intercept + slope * x`` by ordinary least squares, with the t-interval of the slope and the band of
    the fitted mean (None with fewer than 3 points or no spread in x)."""

    slope: float
    intercept: float
    n: int
    r2: float | None
    slope_low: float | None = None
    slope_high: float | None = None
    _x_mean: float = 0.0
    _sxx: float = 0.0
    _s: float | None = None
    _t: float | None = None

    def predict(self, x: float) -> float:
        return self.intercept + self.slope * x

    def band(self, x: float) -> tuple[float, float] | None:
        """The interval of the fitted mean at ``x``."""
        if self._s is None:
            return None
        half = self._t * self._s * math.sqrt(1.0 / self.n + (x - self._x_mean) ** 2 / self._sxx)
        return self.predict(x) - half, self.predict(x) + half


def fit_line(xs, ys, level: float = LEVEL) -> Fit | None:
    pts = [(float(x), float(y)) for x, y in zip(xs, ys) if x is not None and y is not None]
    n = len(pts)
    if n < 2:
        return None
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in pts) / sxx
    intercept = my - slope * mx
    sse = sum((y - intercept - slope * x) ** 2 for x, y in pts)
    syy = sum((y - my) ** 2 for _, y in pts)
    fit = Fit(slope, intercept, n, 1.0 - sse / syy if syy > 0 else None, _x_mean=mx, _sxx=sxx)
    if n >= 3:
        fit._s = math.sqrt(sse / (n - 2))
        fit._t = t_quantile(0.5 + level / 2, n - 2)
        half = fit._t * fit._s / math.sqrt(sxx)
        fit.slope_low, fit.slope_high = slope - half, slope + half
    return fit


# ---- seed groups -----------------------------------------------------------------------------------------------
def group_identity(rec: dict) -> dict:
    """What a run is apart from its seed: its task plus the training and evaluation identity of its config,
    without ``seed`` and without any ``*.seed`` key that holds the run's seed."""
    cfg = rec.get("config") or {}
    seed = cfg.get("seed", (rec.get("swept") or {}).get("seed"))
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
        return [r.get("swept", {}).get("seed") for r in self.records]

    @property
    def first(self) -> dict:
        return self.records[0]

    def values(self, metric_key: str) -> list[float]:
        return [r["metrics"][metric_key] for r in self.records if metric_key in (r.get("metrics") or {})]

    def interval(self, metric_key: str) -> Interval | None:
        return interval(self.values(metric_key))


def seed_groups(records: list[dict]) -> list[SeedGroup]:
    """Completed runs grouped over seeds (in the order first seen), runs in a group sorted by seed."""
    groups: dict[str, SeedGroup] = {}
    for rec in records:
        key = digest(group_identity(rec))
        if key not in groups:
            groups[key] = SeedGroup(key, str(rec.get("run_name") or rec.get("_dir")))
        groups[key].records.append(rec)
    by_label = defaultdict(list)
    for g in groups.values():
        g.records.sort(key=lambda r: json.dumps(r.get("swept", {}).get("seed"), default=str))
        by_label[g.label].append(g)
    for same in by_label.values():  # one run_name, several experiments (a non-swept value differs): tell apart
        if len(same) > 1:
            for g in same:
                g.label = f"{g.label} #{g.key[:6]}"
    return list(groups.values())


def metrics_by_direction(rec: dict, split: str) -> dict[str, dict[str, float]]:
    """``{direction or 'avg': {metric: value}}`` of one split."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for key, value in (rec.get("metrics") or {}).items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == split and (parts[2] == "avg" or DIRECTION_PATTERN.match(parts[2])):
            out[parts[2]][parts[1]] = value
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
