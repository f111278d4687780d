"""The experiments beyond the paper's main tables: pivot alignment, corpus quality, languages beyond the 13, and the
report's handling of them (and of mixed extraction modes)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO, fake_flores_dir, run_cli
from test_report import DIRS, make_record

from mfti_lightning.core.languages import LANGUAGES
from mfti_lightning.track import report


def _write(root, records: dict):
    for name, rec in records.items():
        (root / name).mkdir(parents=True)
        (root / name / "results.json").write_text(json.dumps(rec))
    return root


def _avg_over(rec, keep) -> float:
    vals = [v for k, v in rec["metrics"].items() if k.startswith("test/bleu/") and k.count("/") == 2
            and not k.endswith("/avg") and keep(k.split("/")[2])]  # fmt: skip
    return sum(vals) / len(vals)


def _with_data(rec, min_score=None, misaligned=0.0):
    corpora = [{"format": "wikimatrix", "min_score": min_score}] if min_score is not None else []
    rec["config"]["data"] = {"corpora": corpora, "noise": {"misaligned": misaligned}}
    rec["metrics"]["test/bleu/avg"] = 30.0 - 20 * misaligned + 10 * ((min_score or 1.04) - 1.04)
    return rec


@pytest.mark.slow
def test_pivot_figure_compares_english_centric_and_all_direction_training_on_non_english(tmp_path):
    recs = {"enc": make_record("xglm-564m", 1000, 0, lp="en_centric"), "all": make_record("xglm-564m", 1000, 0)}
    rep = report.make_report([_write(tmp_path / "sw", recs)], tmp_path / "out")
    series = rep["figures"]["pivot"]["series"]
    non_en = lambda d: "en" not in d.split("-")  # noqa: E731
    assert series == {
        "English-centric training: mFTI en_centric": {
            "non-English directions": pytest.approx(_avg_over(recs["enc"], non_en)),
            "English-centric directions": pytest.approx(_avg_over(recs["enc"], lambda d: not non_en(d))),
        },
        "all-direction training: mFTI paper13": {
            "non-English directions": pytest.approx(_avg_over(recs["all"], non_en)),
            "English-centric directions": pytest.approx(_avg_over(recs["all"], lambda d: not non_en(d))),
        },
    }
    only_one = report.make_report([tmp_path / "sw" / "all"], tmp_path / "out1")
    assert "pivot" in only_one["skipped"] and "English-centric" in only_one["skipped"]["pivot"]


@pytest.mark.slow
def test_data_quality_figure_plots_score_against_threshold_and_noise(tmp_path):
    recs = {}
    for thr in (1.04, 1.08):
        for noise in (0.0, 0.2):
            rec = _with_data(make_record("xglm-564m", 1000, 0), thr, noise)
            rec["run_name"] += f"|{thr}|{noise}"
            recs[f"t{thr}-n{noise}"] = rec
    rep = report.make_report([_write(tmp_path / "sw", recs)], tmp_path / "out")
    data = rep["figures"]["data_quality"]
    assert data["by_threshold"]["misaligned 0"] == [(1.04, pytest.approx(30.0)), (1.08, pytest.approx(30.4))]
    assert data["by_threshold"]["misaligned 0.2"] == [(1.04, pytest.approx(26.0)), (1.08, pytest.approx(26.4))]
    assert data["by_noise"]["min_score 1.04"] == [(0.0, pytest.approx(30.0)), (0.2, pytest.approx(26.0))]
    plain = report.make_report([tmp_path / "sw" / "t1.04-n0.0"], tmp_path / "out1")
    assert "data_quality" in plain["skipped"]


def test_partition_figure_shows_icl_and_mfti(tmp_path):
    mfti, icl = make_record("xglm-564m", 1000, 0, partitions=True), make_record("xglm-564m", 0, 8, partitions=True)
    icl["metrics"]["test/bleu/partition/seen"] = 12.0
    rep = report.make_report([_write(tmp_path / "sw", {"mfti": mfti, "icl": icl})], tmp_path / "out")
    assert rep["figures"]["partitions"]["series"] == {
        "mFTI n1000": {"seen": 20.0, "both_unseen": 5.0},
        "ICL k8": {"seen": 12.0, "both_unseen": 5.0},
    }


@pytest.mark.slow
def test_report_never_mixes_extraction_modes_silently(tmp_path):
    recs = {}
    for name, extraction, n, k in (("rm", "reference", 1000, 0), ("cm", "clean", 1000, 0),
                                   ("ri", "reference", 0, 8), ("ci", "clean", 0, 8)):  # fmt: skip
        rec = make_record("xglm-564m", n, k)
        rec["extraction"] = extraction
        rec["metrics"]["test/bleu/avg"] = {"rm": 30.0, "cm": 31.0, "ri": 10.0, "ci": 20.0}[name]
        recs[name] = rec
    big = make_record("xglm-1.7b", 0, 8)
    big["extraction"] = "reference"
    recs["big"] = big
    rep = report.make_report([_write(tmp_path / "sw", recs)], tmp_path / "out")
    size = rep["figures"]["bleu_vs_model_size"]["series"]
    assert size["ICL k8 [extraction reference]"] == [
        (564e6, 10.0),
        (1.7e9, pytest.approx(big["metrics"]["test/bleu/avg"])),
    ]
    assert size["ICL k8 [extraction clean]"] == [(564e6, 20.0)]  # never averaged with the reference runs
    assert all("[extraction " in lab for lab in rep["figures"]["per_language_vs_pretraining_tokens"]["series"])
    md = (tmp_path / "out" / "report.md").read_text()
    assert "different extraction modes (clean: 2 run(s), reference: 3 run(s))" in md
    same = report.make_report([tmp_path / "sw" / "rm", tmp_path / "sw" / "ri"], tmp_path / "out1")
    assert all("[extraction" not in lab for f in same["figures"].values() for lab in f.get("series", {}))
    assert "Extraction: reference (every run)" in (tmp_path / "out1" / "report.md").read_text()


def test_per_language_figures_include_languages_beyond_the_13(tmp_path):
    rec = make_record("xglm-564m", 1000, 0)
    for d, v in (("en-es", 25.0), ("en-ja", 9.0), ("en-th", 3.0)):
        rec["metrics"][f"test/bleu/{d}"] = v
    rep = report.make_report([_write(tmp_path / "sw", {"r": rec})], tmp_path / "out")
    pts = rep["figures"]["per_language_vs_pretraining_tokens"]["series"]["mFTI | into language"]
    by_lang = {lang: (x, y) for x, y, lang in pts}
    assert by_lang["es"] == (float(LANGUAGES["es"].cc100xl_tokens), 25.0)
    assert by_lang["th"] == (float(LANGUAGES["th"].cc100xl_tokens), 3.0)
    assert len(pts) == len({d.split("-")[1] for d in DIRS}) + 3


# ---- languages beyond the 13, from a FLORES directory the user points to ---------------------------------------
@pytest.mark.subprocess
def test_missing_language_file_names_the_directory_and_the_file(tmp_path):
    flores = fake_flores_dir(tmp_path / "flores", {"es": "ca"})
    (flores / "devtest" / "spa.devtest").unlink()
    args = ["mfti_lightning.cli.eval", "logger=none", f"data.flores_root={flores}", "lang_pairs=custom",
            "lang_pairs.train=[en-es]", "lang_pairs.eval=[en-es]"]  # fmt: skip
    p = run_cli(args, cwd=tmp_path, timeout=120)
    assert p.returncode != 0
    assert f"FLORES devtest for es not found: {flores}/devtest/spa.devtest" in p.stderr, p.stderr[-2000:]
    assert "Loading weights" not in p.stderr


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_mfti_eval_on_a_language_beyond_the_13(tmp_path):
    """Catalan lines under Spanish's FLORES-101 file stem: the run evaluates en-es from the user's directory."""
    flores = fake_flores_dir(tmp_path / "flores", {"es": "ca"})
    args = ["mfti_lightning.cli.eval", "logger=none", f"data.flores_root={flores}", "lang_pairs=custom",
            "lang_pairs.train=[en-de]", "lang_pairs.eval=[en-es]", "lang_pairs.test_size=3", "eval.max_new_tokens=8",
            "eval.num_beams=1", "train_directions=[en-de]"]  # fmt: skip
    p = run_cli(args, cwd=tmp_path, timeout=350)
    assert p.returncode == 0, p.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "eval" / "runs").iterdir()
    r = json.loads((run_dir / "results.json").read_text())
    assert "test/bleu/en-es" in r["metrics"] and r["partitions"]["tgt_unseen"] == ["en-es"]
    rows = [json.loads(line) for line in (run_dir / "translations" / "en-es.jsonl").read_text().splitlines()]
    catalan = (flores / "devtest" / "cat.devtest").read_text().splitlines()[:3]
    assert [row["reference"] for row in rows] == catalan
    assert "Spanish" in rows[0]["prompt"]


@pytest.mark.subprocess
def test_new_sweep_files_are_listed_by_mfti_plan(tmp_path):
    from slurm_jobs import paper_inputs

    env = {**__import__("os").environ, "PYTHONPATH": str(REPO), **paper_inputs(tmp_path)}
    out = {}
    for name in ("pivot", "data_quality", "more_languages"):
        p = subprocess.run([sys.executable, "-m", "mfti_lightning.cli.plan", name, "--json"], capture_output=True,
                           text=True, timeout=120, cwd=REPO, env=env)  # fmt: skip
        assert p.returncode == 0, p.stderr[-3000:]
        out[name] = [json.loads(line)["overrides"] for line in p.stdout.splitlines()]
    assert out["pivot"] == [
        ["experiment=main_mfti", "lang_pairs=en_centric"],
        ["experiment=main_mfti", "lang_pairs=paper13"],
    ]
    assert len(out["data_quality"]) == 9 and ["experiment=main_mfti", "data.corpora.0.min_score=1.08",
                                              "data.noise.misaligned=0.4"] in out["data_quality"]  # fmt: skip
    assert [o[0] for o in out["more_languages"]] == ["experiment=main_mfti", "experiment=main_icl"]
    no_flores = {k: v for k, v in env.items() if k != "MFTI_FLORES_DIR"}
    p = subprocess.run([sys.executable, "-m", "mfti_lightning.cli.plan", "more_languages"], capture_output=True,
                       text=True, timeout=120, cwd=REPO, env=no_flores)  # fmt: skip
    assert (
        p.returncode != 0
        and "spa.devtest not found" in p.stderr + p.stdout
        and "data.flores_root" in p.stderr + p.stdout
    )
