"""track/stats.py: Student's t, intervals over seeds, the Welch interval, least-squares trends and correlations
(scipy.stats inside; checked against closed forms, textbook formulas and data with a known answer) and seed groups
(run identity without the seed, not names)."""

from __future__ import annotations

import math
import statistics

import pytest

from mfti_lightning.track import stats


@pytest.mark.parametrize("p", [0.6, 0.9, 0.975, 0.995, 0.025])
def test_t_quantile_matches_the_closed_forms(p):
    # df = 1 (Cauchy) and df = 2 have closed-form quantiles: an answer that does not come from scipy
    assert stats.t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)
    assert stats.t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)
    with pytest.raises(ValueError):
        stats.t_quantile(1.0, 3)


def test_interval_over_seeds():
    iv = stats.interval([1.0, 2.0, 3.0])
    half = stats.t_quantile(0.975, 2) * 1.0 / math.sqrt(3)
    assert (iv.mean, iv.std, iv.n) == (2.0, 1.0, 3)
    assert (iv.low, iv.high) == (pytest.approx(2 - half), pytest.approx(2 + half)) and iv.half == pytest.approx(half)
    vals = [20.1, 21.3, 19.8, 20.9, 22.4, 18.7, 20.0, 21.1, 19.5, 20.6, 21.9]  # 11 seeds: the exact t, not 1.96
    iv = stats.interval(vals)
    sd = statistics.stdev(vals)
    assert iv.std == pytest.approx(sd, rel=1e-12)
    assert iv.half == pytest.approx(stats.t_quantile(0.975, 10) * sd / math.sqrt(11), rel=1e-12)
    assert iv.half / (1.96 * sd / math.sqrt(11)) == pytest.approx(1.1368, abs=1e-4)  # 1.96 is 12 % short
    one = stats.interval([4.2, None])
    assert (one.mean, one.std, one.low, one.n) == (4.2, None, None, 1)  # one seed: no interval, not a fake one
    assert stats.interval([]) is None


def test_welch_interval_is_the_satterthwaite_formula():
    a, b = [20.1, 21.3, 19.8, 20.9], [17.2, 18.9, 16.1]
    iv = stats.welch(a, b)
    va, vb = statistics.variance(a) / 4, statistics.variance(b) / 3
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 2)
    half = stats.t_quantile(0.975, df) * math.sqrt(va + vb)
    assert iv.mean == pytest.approx(sum(a) / 4 - sum(b) / 3) and iv.std == pytest.approx(math.sqrt(va + vb))
    assert (iv.low, iv.high) == (pytest.approx(iv.mean - half, rel=1e-12), pytest.approx(iv.mean + half, rel=1e-12))
    assert stats.welch([1.0], [2.0]).low is None and stats.welch([], [1.0]) is None
    same = stats.welch([2.0, 2.0], [1.0, 1.0])  # neither varies: the difference is exact
    assert (same.mean, same.low, same.high) == (1.0, 1.0, 1.0)


def test_fit_recovers_a_known_line_and_the_textbook_formulas():
    xs = [math.log10(x) for x in (564e6, 1.7e9, 2.9e9, 4.5e9, 7.5e9)]
    exact = stats.fit_line(xs, [3.0 + 4.0 * x for x in xs])
    assert exact.slope == pytest.approx(4.0) and exact.intercept == pytest.approx(3.0)
    assert exact.r2 == pytest.approx(1.0) and exact.slope_low == pytest.approx(4.0)
    assert exact.band(9.5) == (pytest.approx(41.0), pytest.approx(41.0))
    ys = [3.0 + 4.0 * x + e for x, e in zip(xs, (0.3, -0.5, 0.2, 0.4, -0.3))]
    fit = stats.fit_line(xs, ys)
    xbar, ybar = sum(xs) / 5, sum(ys) / 5
    sxx = sum((x - xbar) ** 2 for x in xs)
    slope = sum((x - xbar) * (y - ybar) for x, y in zip(xs, ys)) / sxx
    sse = sum((y - ybar - slope * (x - xbar)) ** 2 for x, y in zip(xs, ys))
    s, t = math.sqrt(sse / 3), stats.t_quantile(0.975, 3)
    assert fit.slope == pytest.approx(slope, rel=1e-12) and fit.intercept == pytest.approx(ybar - slope * xbar)
    assert fit.slope_high - fit.slope == pytest.approx(t * s / math.sqrt(sxx), rel=1e-12)
    assert fit.r2 == pytest.approx(1 - sse / sum((y - ybar) ** 2 for y in ys), rel=1e-12)
    x0 = 9.0  # the band of the fitted mean: t * s * sqrt(1/n + (x0 - xbar)^2 / Sxx)
    h = t * s * math.sqrt(1 / 5 + (x0 - xbar) ** 2 / sxx)
    assert fit.band(x0) == (pytest.approx(fit.predict(x0) - h, rel=1e-12), pytest.approx(fit.predict(x0) + h))
    two = stats.fit_line([1, 2], [1, 3])
    assert two.slope == pytest.approx(2.0) and two.slope_low is None and two.band(1.5) is None
    assert stats.fit_line([1, 1, 1], [1, 2, 3]) is None  # no spread in x: no slope
    assert stats.fit_line([1, 2, 3], [5, 5, 5]).r2 is None  # nothing to explain: no r2 rather than a fake one


def test_correlations_pearson_and_spearman_with_ties():
    c = stats.correlation([1, 2, 3, 4], [10, 20, 30, 25])
    assert c.spearman == pytest.approx(0.8) and c.n == 4  # ranks 1 2 4 3: 1 - 6 * 2 / (4 * 15)
    xs, ys = [3.0, 1.0, 3.0, 7.0, 2.0], [0.5, 0.1, 0.9, 1.2, 0.1]
    mx, my = sum(xs) / 5, sum(ys) / 5
    r = sum((a - mx) * (b - my) for a, b in zip(xs, ys))
    r /= math.sqrt(sum((a - mx) ** 2 for a in xs) * sum((b - my) ** 2 for b in ys))
    tied = stats.correlation(xs, ys)
    assert tied.pearson == pytest.approx(r, rel=1e-12)
    # ties share their mean rank: x ranks 3.5 1 3.5 5 2, y ranks 3 1.5 4 5 1.5
    assert tied.spearman == pytest.approx(stats.correlation([3.5, 1, 3.5, 5, 2], [3, 1.5, 4, 5, 1.5]).pearson)
    assert stats.correlation([1, 2], [1, 2]).pearson is None  # too few points: no number rather than a fake one
    assert stats.correlation([1, 2, 3], [4, 4, 4]).spearman is None  # a constant side has no correlation


def record(seed, lr=5e-6, build_seed=0, name="tiny|demo|t1|k2|n0", bleu=1.0, task="train"):
    cfg = {
        "seed": seed,
        "shots": {"k": 2, "seed": seed},  # follows the seed (${seed}): not an identity of its own
        "model": {"name": "tiny", "build": {"seed": build_seed}},
        "optim": {"optimizer": {"lr": lr}},
        "run_name": name,
        "paths": {"output_dir": f"/out/{seed}"},
        "logger": {"name": "wandb"},
    }
    return {
        "task": task,
        "run_name": name,
        "swept": {"model": "tiny", "shots": 2, "num_examples": 0, "seed": seed},
        "config": cfg,
        "metrics": {"test/bleu/de-en": bleu, "test/bleu/en-fr": 2 * bleu, "test/bleu/avg": 1.5 * bleu},
        "_dir": f"/runs/{name}/{seed}-{lr}-{build_seed}",
    }


def test_seed_groups_use_the_identity_without_the_seed():
    recs = [
        record(2, bleu=3.0),
        record(1, bleu=1.0),
        record(3, lr=1e-3),
        record(1, build_seed=7),
        record(1, task="eval"),
        record(2, lr=1e-3),
    ]
    groups = stats.seed_groups(recs)
    assert [len(g.records) for g in groups] == [2, 2, 1, 1]
    first = groups[0]
    assert first.seeds == [1, 2] and first.values("test/bleu/de-en") == [1.0, 3.0]  # sorted by seed
    assert groups[1].seeds == [2, 3]  # lr 1e-3: its own group although run_name is the same ...
    labels = [g.label for g in groups]
    assert len(set(labels)) == 4 and all(lab.startswith("tiny|demo|t1|k2|n0 #") for lab in labels)  # ... told apart
    assert stats.group_identity(recs[0]) == stats.group_identity(recs[1])
    assert "model.build.seed" in stats.group_identity(recs[0])  # a fixed seed of its own is identity


def test_grouped_rows_have_mean_std_interval_and_seed_count():
    groups = stats.seed_groups([record(1, bleu=1.0), record(2, bleu=2.0), record(3, bleu=4.0)])
    rows = stats.grouped_rows(groups, "test", lambda r: {"method": "ICL"})
    assert [r["direction"] for r in rows] == ["de-en", "en-fr", "avg"]
    avg = rows[-1]
    iv = stats.interval([1.5, 3.0, 6.0])
    assert avg["test/bleu"] == pytest.approx(3.5) and avg["test/bleu_std"] == pytest.approx(iv.std)
    assert (avg["test/bleu_ci_low"], avg["test/bleu_ci_high"]) == (pytest.approx(iv.low), pytest.approx(iv.high))
    assert (avg["n_seeds"], avg["seeds"], avg["method"], avg["group"]) == (3, "1,2,3", "ICL", "tiny|demo|t1|k2|n0")
