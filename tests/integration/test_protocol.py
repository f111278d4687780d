"""The paper's evaluation protocol (reference code NJUNLP/MFTI): the reference extraction next to the clean one,
strict spBLEU in the paper overlays, ICL results partitioned like the mFTI run they are compared with."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO, run_cli

from mfti_lightning.core.results_schema import problems

FAST = ["logger=none", "lang_pairs.test_size=6", "eval.max_new_tokens=16", "eval.num_beams=1"]


def test_reference_extraction_keeps_what_clean_cuts(tiny_tokenizer):
    """By token position: reference = everything up to EOS, clean = cut at a new template turn."""
    from conftest import compose

    from mfti_lightning.core.template import from_config

    t = from_config(compose([]).template)
    tok = tiny_tokenizer
    generated = tok(" Hallo Welt. Translation: [German]: more", add_special_tokens=False)["input_ids"]
    ids = [*generated, tok.eos_token_id, *tok(" after EOS", add_special_tokens=False)["input_ids"]]
    ref, clean = t.extract(ids, tok, "reference"), t.extract(ids, tok, "clean")
    assert clean == "Hallo Welt."
    assert ref.startswith(clean) and "Translation: [" in ref and "after EOS" not in ref
    assert t.cut(ref) == clean  # clean after the fact, from the same decode


def _translations(run_dir):
    out = {}
    for f in sorted((run_dir / "translations").glob("*.jsonl")):
        out[f.stem] = [json.loads(line) for line in f.read_text().splitlines()]
    return out


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_mfti_eval_reference_and_clean_extraction(tmp_path):
    runs = {}
    for mode in ("reference", "clean"):
        p = run_cli(
            ["mfti_lightning.cli.eval", *FAST, "shots=k1", f"eval.extraction={mode}"], cwd=tmp_path, timeout=300
        )
        assert p.returncode == 0, p.stderr[-3000:]
    for d in (tmp_path / "outputs" / "eval" / "runs").iterdir():
        r = json.loads((d / "results.json").read_text())
        runs[r["extraction"]] = (r, _translations(d))
    assert set(runs) == {"reference", "clean"}  # evaluation settings give evaluation runs their own directory
    (ref, ref_rows), (clean, clean_rows) = runs["reference"], runs["clean"]
    assert ref["config"]["eval"]["extraction"] == "reference"
    for d, rows in ref_rows.items():
        for a, b in zip(rows, clean_rows[d], strict=True):
            assert a["prompt"] == b["prompt"]
            assert len(a["hypothesis"]) >= len(b["hypothesis"])  # never shorter than clean
            assert a["hypothesis_clean"] == b["hypothesis"]  # greedy: cut after the fact = clean decoding
    for key, value in clean["metrics"].items():  # ... so the clean scores of the reference decode are the clean run's
        if key.startswith("test/") and "/rate_" not in key and key.count("/") == 2:  # per direction and avg
            assert ref["metrics"]["test_clean/" + key.split("/", 1)[1]] == pytest.approx(value), key


@pytest.mark.subprocess
def test_paper_overlay_requires_spbleu_before_anything_runs(tmp_path):
    p = subprocess.run([sys.executable, "-m", "mfti_lightning.cli.train", "experiment=mfti", "model=tiny",
                        "trainer=cpu", "logger=none"], capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert p.returncode != 0
    assert "SentencePiece" in p.stderr and "mfti-prefetch" in p.stderr, p.stderr[-3000:]
    assert not (tmp_path / "outputs" / "train" / "runs").exists() or not list(
        (tmp_path / "outputs" / "train" / "runs").rglob("checkpoints")
    )


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_icl_run_partitioned_by_train_directions(tmp_path):
    args = ["mfti_lightning.cli.train", *FAST, "num_examples=n0", "shots=k1", "lang_pairs.test_size=2",
            "train_directions=[de-en]"]  # fmt: skip
    p = run_cli(args, cwd=tmp_path, timeout=280)
    assert p.returncode == 0, p.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    r = json.loads((run_dir / "results.json").read_text())
    assert r["directions"]["train"] == [] and r["partitions"]["seen"] == ["de-en"]
    assert any(k.startswith("test/") and "/partition/" in k for k in r["metrics"])


@pytest.mark.subprocess
def test_plan_unseen_has_the_icl_baseline_on_the_same_partitions(tmp_path):
    from slurm_jobs import paper_inputs

    env = {**__import__("os").environ, "PYTHONPATH": str(REPO), **paper_inputs(tmp_path)}
    p = subprocess.run([sys.executable, "-m", "mfti_lightning.cli.plan", "unseen", "--json"], capture_output=True,
                       text=True, timeout=120, cwd=REPO, env=env)  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    jobs = [json.loads(line) for line in p.stdout.splitlines()]
    assert [j["overrides"] for j in jobs] == [["experiment=main_unseen"], ["experiment=main_icl_unseen"]]


SPANISH_FOR_CATALAN = [  # (English source, Catalan reference, Spanish hypothesis)
    ("The cat is sleeping in my mother's house.", "El gat dorm a la casa de la meva mare.",
     "El gato duerme en la casa de mi madre."),
    ("We went to the market yesterday to buy fresh bread.", "Ahir vam anar al mercat a comprar pa fresc.",
     "Ayer fuimos al mercado a comprar pan fresco."),
    ("The government announced new measures for the economy.", "El govern va anunciar noves mesures per a l'economia.",
     "El gobierno anunció nuevas medidas para la economía."),
    ("Children should drink more water during the summer.", "Els nens haurien de beure més aigua durant l'estiu.",
     "Los niños deberían beber más agua durante el verano."),
]  # fmt: skip


def _run_with(tmp_path, rows, direction="en-ca"):
    run = tmp_path / "run"
    (run / "translations").mkdir(parents=True)
    (run / "results.json").write_text(json.dumps({"status": "completed", "metrics": {},
                                                  "directions": {"eval": [direction]}}))  # fmt: skip
    lines = [json.dumps({"source": s, "reference": r, "hypothesis": h}) for s, r, h in rows]
    (run / "translations" / f"{direction}.jsonl").write_text("\n".join(lines) + "\n")
    return run


def _labels(run, direction="en-ca"):
    return [json.loads(x)["error"] for x in (run / "translations" / f"{direction}.jsonl").read_text().splitlines()]


@pytest.mark.subprocess
@pytest.mark.timeout(300)
def test_mfti_analyze_flags_spanish_for_catalan_with_every_language(tmp_path):
    run = _run_with(tmp_path, SPANISH_FOR_CATALAN)
    before = problems(json.loads((run / "results.json").read_text()))  # a hand-made record lacks keys of a run's
    p = run_cli(["mfti_lightning.cli.analyze", str(run), "--lid-languages", "all"], cwd=tmp_path, timeout=280)
    assert p.returncode == 0, p.stderr[-2000:]
    assert _labels(run) == ["off_target"] * len(SPANISH_FOR_CATALAN)
    rec = json.loads((run / "results.json").read_text())
    assert rec["error_analysis"]["test"]["lid_scope"] == "all" and rec["metrics"]["test/rate_off_target/en-ca"] == 1.0
    assert problems(rec) == before  # what mfti-analyze adds is documented (core/results_schema.py)
    # restricted to the run's languages (and the paper's 13), Spanish is not a candidate: not all are caught
    p = run_cli(["mfti_lightning.cli.analyze", str(run), "--lid-languages", "run"], cwd=tmp_path, timeout=280)
    assert p.returncode == 0 and _labels(run).count("off_target") < len(SPANISH_FOR_CATALAN)


@pytest.mark.timeout(300)
def test_mfti_analyze_reuses_the_settings_the_run_recorded(tmp_path):
    """A run made with eval.lid_languages=all, re-analysed without options, keeps the run's labels (the analysis
    settings come from its results.json config, not from mfti-analyze's own defaults), and says so."""
    from conftest import compose

    from mfti_lightning.eval.analysis import analysis_options, analyze
    from mfti_lightning.tasks.job import resolved_container

    cfg = compose(["eval.lid_languages=all", "lang_pairs.eval=[en-ca]"], tmp_path / "out", config_name="eval")
    rows = [{"source": s, "reference": r, "hypothesis": h} for s, r, h in SPANISH_FOR_CATALAN]
    analyze({"en-ca": rows}, "test", **analysis_options(cfg.eval))  # labels as the evaluation gives them
    run = _run_with(tmp_path, SPANISH_FOR_CATALAN)
    record = json.loads((run / "results.json").read_text()) | {"config": resolved_container(cfg)}
    (run / "results.json").write_text(json.dumps(record))
    p = run_cli(["mfti_lightning.cli.analyze", str(run)], cwd=tmp_path, timeout=280)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "eval.lid_languages=all (recorded by the run)" in p.stdout.splitlines()[0]
    assert _labels(run) == [r["error"] for r in rows] == ["off_target"] * len(rows)
    # without a recorded config: the schema's defaults, named as such
    (run / "results.json").write_text(json.dumps(record | {"config": {}}))
    p = run_cli(["mfti_lightning.cli.analyze", str(run), "--rule", "reference"], cwd=tmp_path, timeout=280)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (
        "eval.lid_languages=all (schema default)" in p.stdout
        and "eval.off_target_rule=reference (command line)" in p.stdout
    )


def test_reference_rule_judges_an_empty_half_as_fasttext_does():
    """The reference's fastText lid.176 labels empty text English (measured: scripts/measure_off_target_agreement.py):
    an empty hypothesis is then 'in the source language' of en-ca, and off-target for ca-fr; a one-word Catalan
    hypothesis (halves "" and "gat") is neither all English nor all Catalan."""
    from mfti_lightning.eval.analysis import EMPTY_TEXT_LANGUAGE, LanguageIdentifier, classify_direction

    class Catalan(LanguageIdentifier):  # a detector that calls every non-empty text Catalan
        def identify(self, texts):
            return ["ca" if t else None for t in texts]

    assert EMPTY_TEXT_LANGUAGE == "en"
    src, ref, _ = SPANISH_FOR_CATALAN[0]
    rows = [{"source": src, "reference": ref, "hypothesis": h} for h in ("", "gat")]
    lid = Catalan(["en", "ca", "fr"], "run", "low")
    assert classify_direction(rows, "en", "ca", lid, "reference") == ["under_translation", "off_target"]
    assert classify_direction(rows, "ca", "fr", lid, "reference")[0] == "off_target"
    assert "off_target" not in classify_direction(rows, "en", "ca", lid, "project")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_tiny_model_taught_to_continue_the_template_reference_keeps_what_clean_cuts(tmp_path):
    """The must-show, end to end on the tiny model. An untrained tiny model never writes the marker, so mfti-train
    first teaches it what 8-shot XGLM does: every target is followed by the next turn (``Translation: [German]:``;
    150 steps, loss on the target). Then mfti-eval with eval.extraction=reference keeps that marker text, clean cuts it, on the same prompts."""
    from mfti_lightning.data.corpora import read_flores

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    german = read_flores(None, "dev", "de")
    (corpus / "icl.de-en.de").write_text("\n".join(german) + "\n")
    (corpus / "icl.de-en.en").write_text("\n".join(["Yes. Translation: [German]:"] * len(german)) + "\n")
    pairs = ["lang_pairs=custom", "lang_pairs.train=[de-en]", "lang_pairs.eval=[de-en]"]
    train = ["mfti_lightning.cli.train", "logger=none", "data=pairs", f"data.corpora.0.path='{corpus}/icl.{{pair}}'",
             "data.filters.exclude_eval=false", "data.filters.max_len_ratio=null", "data.loss_on=target", *pairs,
             "num_examples.n=400", "optim.max_steps=150", "eval.val_every_n_steps=1000",
             "eval.score_before_training=false", "lang_pairs.test_size=1", "lang_pairs.val_size=1",
             "eval.max_new_tokens=4", "checkpoint.every_n_steps=150"]  # fmt: skip
    p = run_cli(train, cwd=tmp_path, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    runs = {}
    for mode in ("reference", "clean"):
        args = ["mfti_lightning.cli.eval", "logger=none", f"ckpt_path={run_dir / 'hf'}", *pairs, "lang_pairs.test_size=6",
                "eval.num_beams=1", "eval.max_new_tokens=40", f"eval.extraction={mode}", "eval.error_analysis=false"]  # fmt: skip
        p = run_cli(args, cwd=tmp_path, timeout=280)
        assert p.returncode == 0, p.stderr[-3000:]
    for d in (tmp_path / "outputs" / "eval" / "runs").iterdir():
        runs[json.loads((d / "results.json").read_text())["extraction"]] = _translations(d)["de-en"]
    ref, clean = runs["reference"], runs["clean"]
    marker = "Translation: ["
    for a, b in zip(ref, clean, strict=True):
        assert a["prompt"] == b["prompt"]
        assert len(a["hypothesis"]) >= len(b["hypothesis"])  # never shorter than clean
        assert a["hypothesis_clean"] == b["hypothesis"]  # greedy: the cut after the fact is the clean decode
        assert marker not in b["hypothesis"]
    assert any(marker in a["hypothesis"] for a in ref), [a["hypothesis"] for a in ref]
