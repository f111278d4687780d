"""The Claims section of mfti-report (track/claims.py): every verdict on sweeps whose outcome is known.

Multi-seed and model-size sweeps are synthesised (they would take hours to train): results.json records made as in
test_report.py and written by the product's own writer (core.results.write_results), scores chosen so the answer
is known. The comparison of a trained model with its untrained self is real: the tiny demo model trained by
mfti-train for a few dozen steps against the same model with in-context demonstrations and no training
(test_real_*, slow)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from conftest import run_cli
from test_report import DIRS, make_record

from mfti_lightning.core.languages import LANGUAGES
from mfti_lightning.core.results import read_results, write_results
from mfti_lightning.track import language_axes, report, runs, stats, table
from mfti_lightning.track.claims import test_claims as claims_of
from mfti_lightning.track.stats import interval, welch

SIM = language_axes.load_similarity()[0]


def scored(rec: dict, score, seed: int) -> dict:
    """``rec`` with ``test/bleu/<direction> = score(direction)`` plus a seed-dependent jitter, and its average."""
    rng = random.Random(seed * 1000 + len(rec["run_name"]))
    m = {f"test/bleu/{d}": score(d) + rng.uniform(-0.3, 0.3) for d in DIRS}
    m["test/bleu/avg"] = sum(m.values()) / len(DIRS)
    rec["metrics"] = {**{k: v for k, v in rec["metrics"].items() if "/bleu/" not in k}, **m}
    return rec


def write_sweep(root: Path, specs: list[tuple]) -> Path:
    """Runs ``(model, n, k, lang_pairs, seeds, score)`` written with the product's writer under ``root``."""
    for model, n, k, lp, seeds, score in specs:
        for seed in seeds:
            rec = make_record("xglm-564m", n, k, lp=lp, seed=seed, partitions=bool(n))
            rec["swept"]["model"] = rec["config"]["model"]["name"] = model  # any size, read off the name
            rec["run_name"] = rec["run_name"].replace("xglm-564m", model)
            rec = scored(rec, score, seed)
            write_results(root / f"{model}_{lp}_n{n}_k{k}_s{seed}", rec)
    return root


def claims(root: Path, metric: str = "bleu") -> dict[str, dict]:
    done, _, _ = runs.load_runs([root])
    rows = table.tidy_rows(done)
    return {c.claim.split(" (")[0]: c for c in claims_of(rows, metric, "test", SIM, stats.seed_groups(done))}


def by_prefix(cs: dict, prefix: str):
    (c,) = [c for k, c in cs.items() if k.startswith(prefix)]
    return c


def avg_of(root: Path, name: str) -> float:
    return read_results(root / name)["metrics"]["test/bleu/avg"]


# ---- mFTI against 8-shot ICL ------------------------------------------------------------------------------------
@pytest.mark.parametrize("gain, verdict", [(5.0, "supported"), (-5.0, "contradicted")])
def test_mfti_vs_icl_over_three_seeds(tmp_path, gain, verdict):
    seeds = (1, 2, 3)
    write_sweep(
        tmp_path,
        [
            ("xglm-564m", 1000, 0, "paper13", seeds, lambda d: 20 + gain),
            ("xglm-564m", 0, 8, "paper13", seeds, lambda d: 20.0),
        ],
    )
    c = by_prefix(claims(tmp_path), "mFTI beats")
    mfti = [avg_of(tmp_path, f"xglm-564m_paper13_n1000_k0_s{s}") for s in seeds]
    icl = [avg_of(tmp_path, f"xglm-564m_paper13_n0_k8_s{s}") for s in seeds]
    expect = welch(mfti, icl)
    assert (c.effect.mean, c.effect.low, c.effect.high) == pytest.approx((expect.mean, expect.low, expect.high))
    assert c.verdict == verdict and c.seeds == "3 seeds vs 3 seeds"
    assert c.test.startswith("paired t over 3 matched seeds") and "p=" in c.test
    assert ("lies above the paper's margin (+3)" in c.note) == (gain > 0)
    assert (
        c.compared
        == "mFTI n1000 xglm-564m paper13 t1_translation_src_tgt minus ICL k8 xglm-564m paper13 t1_translation_src_tgt"
    )


def test_one_seed_a_side_is_inconclusive_and_names_the_seeds(tmp_path):
    write_sweep(
        tmp_path,
        [
            ("xglm-564m", 1000, 0, "paper13", (1,), lambda d: 30.0),
            ("xglm-564m", 0, 8, "paper13", (1, 2), lambda d: 10.0),
        ],
    )
    c = by_prefix(claims(tmp_path), "mFTI beats")
    assert c.effect.mean > 15 and c.effect.low is None  # a large difference, but one seed: no interval
    assert c.verdict == "inconclusive (1 seed vs 2 seeds: no interval)" and c.test == ""


def test_nothing_to_compare_is_not_measured_and_names_the_sweep(tmp_path):
    write_sweep(tmp_path, [("xglm-564m", 1000, 0, "paper13", (1, 2), lambda d: 20.0)])
    cs = claims(tmp_path)
    assert by_prefix(cs, "mFTI beats").verdict == "not measured (sweeps/main_comparison.yaml)"
    assert by_prefix(cs, "quality grows log-linearly with model size").verdict == (
        "not measured (sweeps/model_scaling.yaml)"
    )
    assert by_prefix(cs, "quality grows log-linearly with training examples").verdict == (
        "not measured (sweeps/num_examples_scaling.yaml)"
    )
    assert by_prefix(cs, "more training directions").verdict == "not measured (sweeps/lang_pairs_scaling.yaml)"


def test_paired_is_scipys_ttest_rel():
    from scipy import stats as ss

    a, b = [21.0, 23.5, 22.0, 24.0], [20.0, 21.0, 21.5, 22.0]
    iv, p = stats.paired(a, b)
    ref = ss.ttest_rel(a, b)
    ci = ref.confidence_interval(0.95)
    assert (iv.mean, iv.low, iv.high, p) == pytest.approx((1.5, ci.low, ci.high, ref.pvalue))
    assert stats.paired([1.0], [0.0]) is None and stats.paired([2.0, 3.0], [1.0, 2.0])[1] == 0.0


def test_runs_alike_in_swept_values_but_not_in_config_are_not_seeds(tmp_path):
    """Two mFTI experiments share a run name (another optim.max_steps): the report's seed groups (config identity)
    keep them apart, so seed 1 is never counted twice."""
    write_sweep(tmp_path, [("xglm-564m", 0, 8, "paper13", (1, 2), lambda d: 20.0)])
    for seed, steps in ((1, 2000), (2, 2000), (1, 3000)):
        rec = scored(make_record("xglm-564m", 1000, 0, seed=seed, max_steps=steps), lambda d: 25.0, seed)
        write_results(tmp_path / f"mfti_{steps}_s{seed}", rec)
    c = by_prefix(claims(tmp_path), "mFTI beats")
    assert c.seeds == "2 seeds vs 2 seeds" and c.verdict == "supported"


# ---- unseen directions -------------------------------------------------------------------------------------------
def test_unseen_directions_measured_on_the_partitions_only(tmp_path):
    """make_record(partitions=True) marks sw-ta and ta-sw both_unseen: mFTI gains 2 there and loses 4 elsewhere, so
    the claim (on unseen directions) is supported while the average over directions is contradicted."""
    unseen = {"sw-ta", "ta-sw"}
    write_sweep(
        tmp_path,
        [
            ("xglm-564m", 1000, 0, "paper13", (1, 2), lambda d: 12.0 if d in unseen else 16.0),
            ("xglm-564m", 0, 8, "paper13", (1, 2), lambda d: 10.0 if d in unseen else 20.0),
        ],
    )
    cs = claims(tmp_path)
    c = by_prefix(cs, "finetuning improves unseen")
    assert c.verdict == "supported" and c.effect.mean == pytest.approx(2.0, abs=0.3)
    assert "2 unseen directions" in c.note and "both_unseen" in c.note
    assert by_prefix(cs, "mFTI beats").verdict == "contradicted"


# ---- per-language quality: similarity to English against pretraining tokens ---------------------------------------
@pytest.mark.parametrize("driver, verdict", [("similarity", "supported"), ("tokens", "contradicted")])
def test_similarity_against_pretraining_data(tmp_path, driver, verdict):
    """Per-language scores that follow similarity (or log tokens) exactly: Spearman 1 with that, below 1 with the
    other (de/zh swap places between the two orders), so the gap is +0.2 (or -0.2) in every seed."""
    x = SIM if driver == "similarity" else {c: math.log10(lang.cc100xl_tokens) for c, lang in LANGUAGES.items()}

    def score(d):
        return sum(100 * x[lang] for lang in d.split("-") if lang != "en") / 2

    write_sweep(tmp_path, [("xglm-564m", 1000, 0, "paper13", (1, 2, 3), score)])
    c = by_prefix(claims(tmp_path), "per-language quality")
    assert c.verdict == verdict and "over 4 languages" in c.compared
    assert c.effect.mean == pytest.approx(0.2 if driver == "similarity" else -0.2, abs=0.01)


# ---- trends: model size, training examples, training directions ----------------------------------------------------
SIZES = {"xglm-564m": 564e6, "xglm-1.7b": 1.7e9, "xglm-2.9b": 2.9e9}


def test_log_linear_in_model_size_and_examples(tmp_path):
    def score(p, n):  # 4 points per tenfold size, 3 per tenfold examples
        return lambda d: 10 + 4 * math.log10(p / 1e9) + 3 * math.log10(n / 1000)

    specs = [(m, 1000, 0, "paper13", (1, 2), score(p, 1000)) for m, p in SIZES.items()]
    specs += [("xglm-564m", n, 0, "paper13", (1, 2), score(564e6, n)) for n in (100, 250)]
    cs = claims(write_sweep(tmp_path, specs))
    size = by_prefix(cs, "quality grows log-linearly with model size")
    assert size.verdict == "supported" and size.effect.mean == pytest.approx(4.0, abs=0.6)
    assert size.seeds == "2 / 2 / 2 seeds per value" and size.effect.n == 6
    examples = by_prefix(cs, "quality grows log-linearly with training examples")
    assert examples.verdict == "supported" and examples.effect.mean == pytest.approx(3.0, abs=0.6)
    assert "mFTI n100" in examples.compared and "mFTI n1000" in examples.compared


def test_one_seed_per_size_is_inconclusive(tmp_path):
    specs = [(m, 1000, 0, "paper13", (1,), lambda d, p=p: 10 + 4 * math.log10(p / 1e9)) for m, p in SIZES.items()]
    c = by_prefix(claims(write_sweep(tmp_path, specs)), "quality grows log-linearly with model size")
    assert c.effect.low is not None  # 3 points give the fit an interval, but every size has one seed
    assert c.verdict == "inconclusive (1 / 1 / 1 seeds per value: no interval)"


def test_fewer_directions_doing_better_contradicts(tmp_path):
    write_sweep(
        tmp_path,
        [
            ("xglm-564m", 1000, 0, "paper13", (1, 2), lambda d: 18.0),  # 20 training directions
            ("xglm-564m", 1000, 0, "en_centric", (1, 2), lambda d: 21.0),  # 8 (those with English)
        ],
    )
    c = by_prefix(claims(tmp_path), "more training directions")
    assert c.verdict == "contradicted" and c.effect.mean == pytest.approx(-3.0, abs=0.4)
    assert "(20 vs 8 training directions)" in c.compared and c.test.startswith("paired t over 2 matched seeds")


def test_claims_open_report_md_and_the_cli_summary(tmp_path):
    write_sweep(
        tmp_path,
        [
            ("xglm-564m", 1000, 0, "paper13", (1, 2), lambda d: 25.0),
            ("xglm-564m", 0, 8, "paper13", (1, 2), lambda d: 20.0),
        ],
    )
    rep = report.make_report([tmp_path], tmp_path / "report", bootstrap_samples=0)
    md = (tmp_path / "report" / "report.md").read_text()
    assert md.index("## Claims") < md.index("## Summary") < md.index("## Runs")
    verdicts = {r["claim"]: r["verdict"] for r in rep["claims"]}
    assert verdicts["mFTI beats 8-shot ICL (average over directions)"] == "supported"
    assert "| **supported** |" in md and "**not measured (sweeps/model_scaling.yaml)**" in md
    row = next(r for r in rep["claims"] if r["verdict"] == "supported")
    assert row["ci_low"] > 0 and row["effect"] == pytest.approx(interval([5.0]).mean, abs=0.5)


# ---- real runs: the tiny demo model trained a few dozen steps against its untrained self with 2 shots -------------
REAL = [
    "lang_pairs.val_size=8",
    "lang_pairs.test_size=8",
    "eval.max_new_tokens=24",
    "logger=none",
    "seed=1",
    "sweep_name=claims",
    "lang_pairs.eval=[de-en,en-fr,zh-en,fr-en,en-de,de-fr]",  # fr-en and en-de: outside the demo's training set
]
TRAINED = ["optim.max_steps=30", "eval.val_every_n_steps=15", "checkpoint.every_n_steps=15", "checkpoint.export=false"]


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("claims")
    for extra in (TRAINED, ["num_examples=n0", "shots=k2"]):
        p = run_cli(["mfti_lightning.cli.train", *REAL, *extra], cwd=cwd, timeout=1200)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    root = cwd / "outputs" / "train" / "runs"
    recs = {r["swept"]["num_examples"]: r for r in (json.loads(f.read_text()) for f in root.glob("*/results.json"))}
    return root, recs[250], recs[0]


def _avg_over(rec: dict, dirs) -> float:
    return sum(rec["metrics"][f"test/chrf/{d}"] for d in dirs) / len(dirs)


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_real_runs_one_seed_each(real_sweep):
    """One seed a side: measured but inconclusive, the effects equal to the runs' own numbers; the partitions the
    product wrote decide the unseen directions; the scaling claims are not measured and name their sweeps."""
    root, mfti, icl = real_sweep
    rep = report.make_report([root], root / "report", metric="chrf", bootstrap_samples=0)
    cs = {r["claim"]: r for r in rep["claims"]}
    first = cs["mFTI beats 8-shot ICL (average over directions)"]
    assert first["verdict"] == "inconclusive (1 seed vs 1 seed: no interval)" and first["ci_low"] is None
    assert first["effect"] == pytest.approx(mfti["metrics"]["test/chrf/avg"] - icl["metrics"]["test/chrf/avg"])
    assert "ICL with 2 shots here (the paper: 8)" in first["note"] and "measured in chrf" in first["note"]
    unseen = sorted(d for p, ds in mfti["partitions"].items() if p != "seen" for d in ds)
    assert unseen == ["en-de", "fr-en"]  # reversed: each language seen in training, in the other role
    second = cs["finetuning improves unseen directions"]
    assert second["effect"] == pytest.approx(_avg_over(mfti, unseen) - _avg_over(icl, unseen))
    assert second["verdict"].startswith("inconclusive (1 seed vs 1 seed") and "reversed" in second["note"]
    third = cs["per-language quality follows similarity to English more than pretraining data"]
    assert "over 3 languages" in third["compared"] or third["verdict"] == "not measured (sweeps/main_comparison.yaml)"
    for claim, sweep in (
        ("quality grows log-linearly with model size", "model_scaling.yaml"),
        ("quality grows log-linearly with training examples", "num_examples_scaling.yaml"),
        ("more training directions help", "lang_pairs_scaling.yaml"),
    ):
        assert cs[claim]["verdict"] == f"not measured (sweeps/{sweep})"
    md = (root / "report" / "report.md").read_text()
    assert md.index("## Claims") < md.index("## Summary") and "ICL with 2 shots here" in md


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_real_claims_table_in_the_wandb_report_run(real_sweep):
    from wandb_records import read_run, run_files

    from mfti_lightning.track.publish import log_report

    root, _, _ = real_sweep
    rep = report.make_report([root], root / "wb", metric="chrf", bootstrap_samples=0)
    info = log_report(rep, rep["records"], "auto")
    assert info["mode"] == "offline"
    run = read_run(run_files(root / "wb")[0])
    logged = {k: v for row in run.history for k, v in row.items()}
    assert logged.get("report/tables/claims/_type", run.summary.get("report/tables/claims/_type")) == "table-file"
    assert run.summary["report/tables/claims/nrows"] == len(rep["claims"]) == 6
