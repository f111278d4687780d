"""track/stats.py: Student's t, intervals over seeds, the Welch interval, least-squares trends (against scipy and
on data with a known answer) and seed groups (run identity without the seed, not names)."""

from __future__ import annotations

import math

import pytest
from scipy import stats as ss

from mfti_lightning.track import stats


@pytest.mark.parametrize("df", [1, 2, 3, 4.5, 9, 30, 200])
def test_t_distribution_matches_scipy(df):
    for p in (0.6, 0.9, 0.975, 0.995):
        assert stats.t_quantile(p, df) == pytest.approx(ss.t.ppf(p, df), rel=1e-9)
    assert stats.t_quantile(0.025, df) == pytest.approx(ss.t.ppf(0.025, df), rel=1e-9)
    for t in (-3.0, -0.4, 0.0, 1.7):
        assert stats.t_cdf(t, df) == pytest.approx(ss.t.cdf(t, df), abs=1e-12)
    with pytest.raises(ValueError):
        stats.t_quantile(1.0, df)


def test_interval_over_seeds():
    iv = stats.interval([1.0, 2.0, 3.0])
    half = ss.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert (iv.mean, iv.std, iv.n) == (2.0, 1.0, 3)
    assert (iv.low, iv.high) == (pytest.approx(2 - half), pytest.approx(2 + half)) and iv.half == pytest.approx(half)
    one = stats.interval([4.2, None])
    assert (one.mean, one.std, one.low, one.n) == (4.2, None, None, 1)  # one seed: no interval, not a fake one
    assert stats.interval([]) is None


def test_welch_interval_matches_scipy():
    a, b = [20.1, 21.3, 19.8, 20.9], [17.2, 18.9, 16.1]
    iv = stats.welch(a, b)
    ci = ss.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert iv.mean == pytest.approx(sum(a) / 4 - sum(b) / 3)
    assert (iv.low, iv.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert stats.welch([1.0], [2.0]).low is None and stats.welch([], [1.0]) is None


def test_fit_recovers_a_known_line_and_matches_scipy():
    xs = [math.log10(x) for x in (564e6, 1.7e9, 2.9e9, 4.5e9, 7.5e9)]
    exact = stats.fit_line(xs, [3.0 + 4.0 * x for x in xs])
    assert exact.slope == pytest.approx(4.0) and exact.intercept == pytest.approx(3.0) and exact.r2 == 1.0
    assert exact.slope_low == pytest.approx(4.0) and exact.band(9.5) == pytest.approx((41.0, 41.0))
    ys = [3.0 + 4.0 * x + e for x, e in zip(xs, (0.3, -0.5, 0.2, 0.4, -0.3))]
    fit, ref = stats.fit_line(xs, ys), ss.linregress(xs, ys)
    half = ss.t.ppf(0.975, 3) * ref.stderr
    assert fit.slope == pytest.approx(ref.slope) and fit.intercept == pytest.approx(ref.intercept)
    assert (fit.slope_low, fit.slope_high) == (pytest.approx(ref.slope - half), pytest.approx(ref.slope + half))
    assert fit.r2 == pytest.approx(ref.rvalue**2)
    x0 = 9.0  # the band of the fitted mean: t * s * sqrt(1/n + (x0 - xbar)^2 / Sxx)
    s = math.sqrt(sum((y - fit.predict(x)) ** 2 for x, y in zip(xs, ys)) / 3)
    xbar = sum(xs) / 5
    h = ss.t.ppf(0.975, 3) * s * math.sqrt(1 / 5 + (x0 - xbar) ** 2 / sum((x - xbar) ** 2 for x in xs))
    assert fit.band(x0) == (pytest.approx(fit.predict(x0) - h), pytest.approx(fit.predict(x0) + h))
    two = stats.fit_line([1, 2], [1, 3])
    assert two.slope == pytest.approx(2.0) and two.slope_low is None and two.band(1.5) is None
    assert stats.fit_line([1, 1, 1], [1, 2, 3]) is None  # no spread in x: no slope


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
