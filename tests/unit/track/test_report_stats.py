"""mfti-report over a hand-made seed sweep whose runs carry real translations: seed groups with intervals, error
bars and fitted trends on the scaling figures, the paired bootstrap per direction, the direction maps, the
summary that opens report.md, config warnings only within a figure's series, and the W&B report run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from wandb_records import read_run, run_files

from mfti_lightning.assets import ASSETS_DIR
from mfti_lightning.core.languages import parse_direction
from mfti_lightning.eval.metrics import score
from mfti_lightning.eval.partitions import partitions
from mfti_lightning.track import report, stats

FLORES = ASSETS_DIR / "flores101" / "devtest"
CODES = {"de": "deu", "en": "eng", "fr": "fra"}
DIRS = ["de-en", "en-de", "en-fr", "fr-en", "de-fr", "fr-de"]
TRAIN = ["de-en", "en-fr"]


def lines(lang: str) -> list[str]:
    return (FLORES / f"{CODES[lang]}.devtest").read_text(encoding="utf-8").splitlines()[:30]


def degrade(sentences: list[str], every: int) -> list[str]:
    return [" ".join(w for i, w in enumerate(s.split()) if i % every != every - 1) for s in sentences]


def make_run(root: Path, model: str, n: int, k: int, seed: int, every: int, beams: int = 4) -> dict:
    """A completed run: translations/ (references degraded by dropping every ``every``-th word) and the
    results.json a job would write for them (sacrebleu scores, partitions, the resolved config)."""
    run = root / f"{model}_n{n}_k{k}_s{seed}"
    (run / "translations").mkdir(parents=True)
    metrics, sigs = {}, {}
    for d in DIRS:
        s, t = d.split("-")
        refs = lines(t)
        hyps = degrade(refs, every + (DIRS.index(d) % 2))
        rows = [{"source": a, "reference": r, "hypothesis": h} for a, r, h in zip(lines(s), refs, hyps)]
        (run / "translations" / f"{d}.jsonl").write_text(
            "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows)
        )
        for metric, (value, sig) in score(hyps, refs, t, "lang_default").items():
            metrics[f"test/{metric}/{d}"], sigs[f"test/{metric}/{d}"] = value, sig
    for metric in ("bleu", "chrf", "chrf++"):
        metrics[f"test/{metric}/avg"] = sum(metrics[f"test/{metric}/{d}"] for d in DIRS) / len(DIRS)
    train = TRAIN if n else []
    rec = {
        "schema": 1, "status": "completed", "task": "train", "sweep_name": "s14",
        "run_name": f"{model}|custom|t1|k{k}|n{n}",
        "swept": {"model": model, "lang_pairs": "custom", "template": "t1_translation_src_tgt", "shots": k,
                  "num_examples": n, "seed": seed},
        "directions": {"train": train, "eval": DIRS}, "metrics": metrics, "signatures": sigs,
        "config": {"seed": seed, "model": {"name": model}, "shots": {"k": k, "seed": seed}, "num_examples": {"n": n},
                   "template": {"name": "t1_translation_src_tgt", "short": "t1"}, "eval": {"num_beams": beams},
                   "optim": {"max_steps": 2000}, "logger": {"project": "p14"}, "paths": {"output_dir": str(run)}},
    }  # fmt: skip
    if train:
        rec["partitions"] = partitions([parse_direction(d) for d in train], [parse_direction(d) for d in DIRS])
    (run / "results.json").write_text(json.dumps(rec))
    return rec


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("s14")
    runs = {}
    for seed in (1, 2):
        runs[("m564", 1000, seed)] = make_run(root, "xglm-564m", 1000, 0, seed, 6 + seed)
        runs[("m564", 100, seed)] = make_run(root, "xglm-564m", 100, 0, seed, 4 + seed)
        runs[("m1.7", 1000, seed)] = make_run(root, "xglm-1.7b", 1000, 0, seed, 9 + seed)
        runs[("icl", 0, seed)] = make_run(root, "xglm-564m", 0, 8, seed, 2)
    make_run(root, "custom-x", 0, 0, 1, 2, beams=1)  # unrelated: compared with nothing, so no warning for it
    return root, runs


@pytest.fixture(scope="module")
def rep(sweep):
    root, _ = sweep
    return report.make_report([root], root / "report", bootstrap_samples=300)


def avg(rec, metric="bleu"):
    return rec["metrics"][f"test/{metric}/avg"]


@pytest.mark.slow
def test_seed_groups_with_intervals(rep, sweep):
    _, runs = sweep
    assert sorted((g.label, tuple(g.seeds)) for g in rep["groups"]) == [
        ("custom-x|custom|t1|k0|n0", (1,)),
        ("xglm-1.7b|custom|t1|k0|n1000", (1, 2)),
        ("xglm-564m|custom|t1|k0|n100", (1, 2)),
        ("xglm-564m|custom|t1|k0|n1000", (1, 2)),
        ("xglm-564m|custom|t1|k8|n0", (1, 2)),
    ]
    row = next(
        r for r in rep["grouped_rows"] if r["group"] == "xglm-564m|custom|t1|k0|n1000" and r["direction"] == "avg"
    )
    iv = stats.interval([avg(runs[("m564", 1000, 1)]), avg(runs[("m564", 1000, 2)])])
    assert row["test/bleu"] == pytest.approx(iv.mean) and row["n_seeds"] == 2 and row["method"] == "mFTI"
    assert (row["test/bleu_ci_low"], row["test/bleu_ci_high"]) == (pytest.approx(iv.low), pytest.approx(iv.high))
    assert iv.low < iv.mean < iv.high
    out = Path(rep["out_dir"])
    assert (out / "table_grouped.csv").read_text().count("\n") == len(rep["grouped_rows"]) + 1


def test_scaling_figures_have_error_bars_and_fits(rep, sweep):
    _, runs = sweep
    size = rep["figures"]["bleu_vs_model_size"]
    ivs = size["intervals"]["mFTI n1000"]
    assert [(x, n) for x, _, _, n in ivs] == [(564e6, 2), (1.7e9, 2)]
    want = stats.interval([avg(runs[("m1.7", 1000, s)]) for s in (1, 2)])
    assert (ivs[1][1], ivs[1][2]) == (pytest.approx(want.low), pytest.approx(want.high))
    trend = next(t for t in rep["trends"] if t["figure"] == "bleu_vs_model_size" and t["direction"] == "avg")
    import math

    xs = [math.log10(x) for x in (564e6, 564e6, 1.7e9, 1.7e9)]
    ys = [avg(runs[(m, 1000, s)]) for m in ("m564", "m1.7") for s in (1, 2)]
    fit = stats.fit_line(xs, ys)
    assert trend["n_runs"] == 4 and trend["slope"] == pytest.approx(fit.slope) and trend["slope"] > 0
    assert trend["slope_ci_low"] == pytest.approx(fit.slope_low) and trend["slope_ci_low"] < trend["slope"]
    per_dir = {t["direction"] for t in rep["trends"] if t["figure"] == "bleu_vs_model_size"}
    assert per_dir == {"avg", *DIRS}  # a slope per direction
    assert rep["figures"]["bleu_vs_num_examples"]["intervals"]["mFTI xglm-564m"][0][3] == 2
    ref = rep["figures"]["bleu_vs_num_examples"]["intervals"]["reference: ICL k8"]  # the ICL line's band
    assert ref[0][3] == 2 and ref[0][1] == pytest.approx(avg(runs[("icl", 0, 1)]))  # both seeds score the same
    assert (Path(rep["out_dir"]) / "trends.csv").exists()


def test_paired_bootstrap_per_direction_and_summary(rep):
    sig = rep["significance"]
    pairs = {(r["system"], r["baseline"]) for r in sig}
    assert pairs == {
        ("xglm-564m|custom|t1|k0|n1000", "xglm-564m|custom|t1|k8|n0"),
        ("xglm-564m|custom|t1|k0|n100", "xglm-564m|custom|t1|k8|n0"),
    }
    one = [r for r in sig if r["system"].endswith("n1000") and r["metric"] == "chrf"]
    assert sorted((r["direction"], r["seed"]) for r in one) == sorted((d, s) for d in DIRS for s in (1, 2))
    assert all(r["better"] == "system" and r["diff_low"] > 0 and r["p_value"] < 0.05 for r in one)
    summary = next(s for s in rep["significance_summary"] if s["system"].endswith("n1000") and s["metric"] == "bleu")
    assert (summary["directions"], summary["matched_seeds"], summary["system_better"]) == (6, 2, 6)
    system, baseline, diff = rep["headline"]
    assert (system.label, baseline.label) == ("xglm-564m|custom|t1|k0|n1000", "xglm-564m|custom|t1|k8|n0")
    want = stats.welch(system.values("test/bleu/avg"), baseline.values("test/bleu/avg"))
    assert (diff.mean, diff.low) == (pytest.approx(want.mean), pytest.approx(want.low))


def test_the_reports_numbers_are_scipys_on_its_own_data(rep, sweep):
    """Every interval, Welch difference, trend and correlation of the report equals scipy.stats applied directly
    to the runs' scores (to 1e-9): the t-interval over seeds, ttest_ind(equal_var=False), linregress,
    pearsonr / spearmanr."""
    import math
    import warnings

    import numpy as np
    from scipy import stats as ss

    _, runs = sweep
    by_group = {g.label: g for g in rep["groups"]}
    checked = 0
    for row in rep["grouped_rows"]:
        g = by_group[row["group"]]
        for metric in ("bleu", "chrf"):
            vals = g.values(f"test/{metric}/{row['direction']}")
            if len(vals) < 2 or np.ptp(vals) == 0:
                continue
            low, high = ss.t.interval(0.95, len(vals) - 1, loc=np.mean(vals), scale=ss.sem(vals))
            assert row[f"test/{metric}_ci_low"] == pytest.approx(low, rel=1e-9)
            assert row[f"test/{metric}_ci_high"] == pytest.approx(high, rel=1e-9)
            checked += 1
    assert checked >= 40
    system, baseline, diff = rep["headline"]
    assert np.ptp(baseline.values("test/bleu/avg")) == 0  # the ICL seeds score the same: scipy warns, rightly not
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = ss.ttest_ind(system.values("test/bleu/avg"), baseline.values("test/bleu/avg"), equal_var=False)
    want = ci.confidence_interval(0.95)
    assert (diff.low, diff.high) == (pytest.approx(want.low, rel=1e-9), pytest.approx(want.high, rel=1e-9))
    trend = next(t for t in rep["trends"] if t["figure"] == "bleu_vs_model_size" and t["direction"] == "de-en")
    xs = [math.log10(x) for x in (564e6, 564e6, 1.7e9, 1.7e9)]
    ys = [runs[(m, 1000, s)]["metrics"]["test/bleu/de-en"] for m in ("m564", "m1.7") for s in (1, 2)]
    reg = ss.linregress(xs, ys)
    half = ss.t.ppf(0.975, 2) * reg.stderr
    assert (trend["slope"], trend["intercept"], trend["r2"]) == (
        pytest.approx(reg.slope, rel=1e-9), pytest.approx(reg.intercept, rel=1e-9),
        pytest.approx(reg.rvalue**2, rel=1e-9),
    )  # fmt: skip
    assert (trend["slope_ci_low"], trend["slope_ci_high"]) == (
        pytest.approx(reg.slope - half, rel=1e-9), pytest.approx(reg.slope + half, rel=1e-9)
    )  # fmt: skip
    for c in rep["correlations"]:
        series = rep["figures"][c["figure"]]["series"][c["series"]]
        xs = [math.log10(x) if c["x"].startswith("log10") else x for x, _, _ in series]
        ys = [y for _, y, _ in series]
        assert c["pearson"] == pytest.approx(ss.pearsonr(xs, ys).statistic, rel=1e-9, abs=1e-12)
        assert c["spearman"] == pytest.approx(ss.spearmanr(xs, ys).statistic, rel=1e-9, abs=1e-12)


def test_direction_maps(rep, sweep):
    maps = rep["maps"]
    assert set(maps) == {"direction_map", "direction_map_diff"}
    assert all(Path(m["path"]).read_bytes()[:4] == b"\x89PNG" for m in maps.values())
    best = maps["direction_map"]
    assert rep["best"].label == "xglm-1.7b|custom|t1|k0|n1000" and best["languages"] == ["en", "de", "fr"]
    _, runs = sweep
    assert best["values"]["fr-de"] == pytest.approx(
        sum(runs[("m1.7", 1000, s)]["metrics"]["test/bleu/fr-de"] for s in (1, 2)) / 2
    )
    diff = maps["direction_map_diff"]
    assert diff["trained"] == TRAIN and diff["marks"]["de-en"] == "S*" and diff["marks"]["en-de"] == "R*"
    d = "de-fr"
    want = sum(
        runs[("m564", 1000, s)]["metrics"][f"test/bleu/{d}"] - runs[("icl", 0, s)]["metrics"][f"test/bleu/{d}"]
        for s in (1, 2)
    )
    assert diff["values"][d] == pytest.approx(want / 2)


def test_report_md_opens_with_the_summary_and_warns_only_within_a_series(rep):
    md = (Path(rep["out_dir"]) / "report.md").read_text()
    order = [
        md.index(h)
        for h in (
            "## Summary",
            "## Runs grouped over seeds",
            "## Paired significance",
            "## Fitted trends",
            "## Direction maps",
            "## Runs\n",
        )
    ]
    assert order == sorted(order)
    assert "**Best configuration** by test bleu (avg): `xglm-1.7b|custom|t1|k0|n1000`" in md
    assert "**mFTI - ICL** (xglm-564m|custom|t1|k0|n1000 minus xglm-564m|custom|t1|k8|n0" in md and "95% CI" in md
    assert "significantly better in **6** of 6 directions" in md
    assert "![direction_map_diff](direction_map_diff.png)" in md and "p=" in md
    # the unrelated zero-shot run differs in eval.num_beams, but no figure joins it with another run
    assert rep["config_differences"] == {} and rep["figure_differences"] == {}


@pytest.mark.slow
def test_report_as_an_offline_wandb_run(rep):
    from mfti_lightning.track.publish import log_report

    info = log_report(rep, rep["records"], "auto")
    assert info["mode"] == "offline" and info["group"] == "s14" and info["project"] == "p14"
    files = run_files(Path(rep["out_dir"]))
    assert len(files) == 1
    run = read_run(files[0])
    assert (run.job_type, run.group, run.project, run.exit_code) == ("report", "s14", "p14", 0)
    logged = {k: v for row in run.history for k, v in row.items()}  # nested values come flattened: a/b/_type
    for fig in ("direction_map", "direction_map_diff", "bleu_vs_model_size", "bleu_vs_num_examples"):
        assert logged[f"report/figures/{fig}/_type"] == "image-file"
        assert (files[0].parent / "files" / logged[f"report/figures/{fig}/path"]).is_file()
    for table in ("grouped", "significance", "significance_summary", "trends", "table"):
        assert (
            logged.get(f"report/tables/{table}/_type", run.summary.get(f"report/tables/{table}/_type")) == "table-file"
        )
    assert run.summary["report/tables/significance/nrows"] == len(rep["significance"])
    assert run.summary["report/best"] == "xglm-1.7b|custom|t1|k0|n1000"
    assert run.summary["report/significant/bleu/system_better"] == 6
    assert run.summary["report/headline_diff"] == pytest.approx(rep["headline"][2].mean)


def test_a_pair_evaluated_differently_is_noted_even_without_the_bootstrap(tmp_path):
    make_run(tmp_path, "xglm-564m", 1000, 0, 1, 6)
    make_run(tmp_path, "xglm-564m", 0, 8, 1, 2, beams=1)
    rep = report.make_report([tmp_path], tmp_path / "report", bootstrap_samples=0)
    assert rep["significance"] == [] and rep["headline"] is not None
    md = (tmp_path / "report" / "report.md").read_text()
    summary = md[md.index("## Summary") : md.index("## Runs grouped")]
    assert "differ in eval.num_beams: 4 vs 1" in summary and "n=1: no interval" in summary
