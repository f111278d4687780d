"""mfti-report for the architecture and template-space sweeps: the model-size figure coloured by family, and
templates ordered by score with 95 % intervals over seeds, named by the factor they change."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from test_report import make_record

from mfti_lightning.assets import ASSETS_DIR
from mfti_lightning.track import report

FLORES = ASSETS_DIR / "flores101" / "devtest"


def _with(rec, *, model=None, family=None, template=None, factor=None, avg=None):
    rec = json.loads(json.dumps(rec))
    if model:
        rec["swept"]["model"] = rec["config"]["model"]["name"] = model
    if family:
        rec["config"]["model"]["family"] = family
    if template:
        rec["swept"]["template"] = rec["config"]["template"]["name"] = template
        rec["config"]["template"].update({"short": template.split("_")[0], "factor": factor})
    if avg is not None:
        rec["metrics"]["test/bleu/avg"] = avg
    return rec


def _write(root, records):
    for i, rec in enumerate(records):
        (root / f"r{i}").mkdir(parents=True)
        (root / f"r{i}" / "results.json").write_text(json.dumps(rec))
    return root


def test_model_size_figure_colours_by_family(tmp_path):
    recs = [
        make_record("xglm-564m", 1000, 0),  # no model.family: an XGLM run from before families existed
        make_record("xglm-1.7b", 1000, 0),
        _with(make_record("xglm-564m", 1000, 0), model="bloom-560m", family="bloom", avg=7.0),
        _with(make_record("xglm-1.7b", 1000, 0), model="bloom-1b7", family="bloom", avg=9.0),
        _with(make_record("xglm-564m", 0, 8), model="bloom-560m", family="bloom", avg=3.0),
    ]
    rep = report.make_report([_write(tmp_path / "sw", recs)], tmp_path / "out")
    fig = rep["figures"]["bleu_vs_model_size"]
    bloom = next(k for k, v in fig["groups"].items() if v == "BLOOM" and k.startswith("mFTI"))
    assert fig["series"][bloom] == [(560e6, 7.0), (1.7e9, 9.0)]
    assert {fig["groups"][k] for k in fig["series"]} == {"XGLM", "BLOOM"}
    xglm = next(k for k, v in fig["groups"].items() if v == "XGLM")
    assert [x for x, _ in fig["series"][xglm]] == [564e6, 1.7e9]


def test_template_space_figure_orders_templates_with_intervals(tmp_path):
    scores = {("ts01_base", "base"): [10.0, 11.0, 12.0], ("ts05_quoted", 'quoting: "input"'): [14.0, 14.0, 14.0],
              ("ts10_native_names", "language names: native"): [6.0, 8.0, 7.0]}  # fmt: skip
    recs = [
        _with(make_record("xglm-564m", 1000, 0, seed=seed), template=t, factor=f, avg=v)
        for (t, f), vals in scores.items()
        for seed, v in zip((1, 2, 3), vals)
    ]
    recs.append(make_record("xglm-564m", 1000, 0))  # a paper template (no factor): not in this figure
    rep = report.make_report([_write(tmp_path / "sw", recs)], tmp_path / "out")
    order = rep["figures"]["template_space"]["order"]
    assert [o["template"] for o in order] == ["ts10", "ts01", "ts05"]  # ascending: the best is drawn on top
    assert [o["factor"] for o in order] == ["language names: native", "base", 'quoting: "input"']
    base = order[1]
    assert base["mean"] == pytest.approx(11.0) and base["n"] == 3
    assert base["interval"] == pytest.approx(stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3), rel=1e-9)  # t x sd / sqrt(n)
    assert order[2]["interval"] == 0.0


def _flores_bleu(seed: int, every: int) -> float:
    """Corpus BLEU (sacrebleu) of 40 FLORES de-en references with one word in ``every`` dropped, where the
    dropping starts depends on the seed: a real score that varies over seeds."""
    from mfti_lightning.eval.metrics import score

    refs = (FLORES / "eng.devtest").read_text(encoding="utf-8").splitlines()[:40]
    hyps = [" ".join(w for i, w in enumerate(r.split()) if (i + seed) % every) for r in refs]
    return score(hyps, refs, "en", "lang_default")["bleu"][0]


def test_template_space_over_eleven_seeds_uses_the_exact_t(tmp_path):
    """More than 10 seeds: the interval is Student's t with n - 1 degrees of freedom, as in every other figure
    (the former table fell back to the normal 1.96 beyond 9 degrees of freedom: about 12 % too narrow)."""
    scores = {("ts01_base", "base", 5): [], ("ts05_quoted", 'quoting: "input"', 7): []}
    recs = []
    for (t, f, every), vals in scores.items():
        for seed in range(1, 12):
            vals.append(_flores_bleu(seed, every))
            recs.append(_with(make_record("xglm-564m", 1000, 0, seed=seed), template=t, factor=f, avg=vals[-1]))
    rep = report.make_report([_write(tmp_path / "sw", recs)], tmp_path / "out")
    for o in rep["figures"]["template_space"]["order"]:
        vals = next(v for (t, *_), v in scores.items() if t.startswith(o["template"]))
        low, high = stats.t.interval(0.95, 10, loc=np.mean(vals), scale=stats.sem(vals))
        assert o["n"] == 11 and o["mean"] == pytest.approx(np.mean(vals), rel=1e-12)
        assert o["interval"] == pytest.approx((high - low) / 2, rel=1e-9) and o["interval"] > 0
        normal = 1.96 * stats.sem(vals)  # what the former table gave for 11 seeds
        assert o["interval"] / normal == pytest.approx(stats.t.ppf(0.975, 10) / 1.96, rel=1e-9)


def test_template_space_is_skipped_without_factors(tmp_path):
    rep = report.make_report([_write(tmp_path / "sw", [make_record("xglm-564m", 1000, 0)])], tmp_path / "out")
    assert "template_space" in rep["skipped"] and "template.factor" in rep["skipped"]["template_space"]
