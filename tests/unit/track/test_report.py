"""mfti-report over hand-made run directories (results.json as a job writes it): table rows, every figure's
plotted series, correlations, failed/incomplete runs, directories without results, config differences."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mfti_lightning.core.languages import LANGUAGES
from mfti_lightning.track import language_axes, report

LANGS = ["en", "de", "zh", "sw", "ta"]
DIRS = [f"{s}-{t}" for s in LANGS for t in LANGS if s != t]
SIZE = {"xglm-564m": 564e6, "xglm-1.7b": 1.7e9}


def bleu(model: str, n: int, k: int, template: str, lp: str, direction: str) -> float:
    """A made-up but structured score: bigger models, more data and t1 score higher; per language it follows
    the target's pretraining tokens (so the correlations are known to be positive)."""
    s, t = direction.split("-")
    base = {"xglm-564m": 10.0, "xglm-1.7b": 14.0}[model] + (3.0 if n >= 1000 else 1.0 if n else 0.0)
    base += 0.5 * k + (1.0 if template == "t1_translation_src_tgt" else 0.0) + (0.7 if lp == "en_centric" else 0)
    return round(base + LANGUAGES[t].cc100xl_tokens / 1e11 + 0.1 * LANGS.index(s), 4)


def make_record(
    model,
    n,
    k,
    template="t1_translation_src_tgt",
    lp="paper13",
    seed=1,
    status="completed",
    max_steps=2000,
    errors=False,
    partitions=False,
) -> dict:
    train = ([d for d in DIRS if "en" in d] if lp == "en_centric" else DIRS) if n else []
    m = {}
    for d in DIRS:
        m[f"test/bleu/{d}"] = bleu(model, n, k, template, lp, d)
        m[f"test/chrf/{d}"] = 2 * m[f"test/bleu/{d}"]
    for metric in ("bleu", "chrf"):
        m[f"test/{metric}/avg"] = sum(m[f"test/{metric}/{d}"] for d in DIRS) / len(DIRS)
    short = template.split("_")[0]
    rec = {
        "schema": 1,
        "status": status,
        "task": "train",
        "run_name": f"{model}|{lp}|{short}|k{k}|n{n}",
        "sweep_name": "sw",
        "swept": {"model": model, "lang_pairs": lp, "template": template, "shots": k, "num_examples": n, "seed": seed},
        "directions": {"train": train, "eval": DIRS},
        "metrics": m if status == "completed" else {},
        "config": {
            "model": {"name": model},
            "lang_pairs": {"name": lp},
            "template": {"name": template, "short": short},
            "shots": {"k": k},
            "num_examples": {"n": n},
            "seed": seed,
            "optim": {"max_steps": max_steps},
            "eval": {"num_beams": 4},
            "run_name": "x",
            "paths": {"output_dir": "/x"},
        },
    }
    if status != "completed":
        rec["error"] = "RuntimeError: CUDA out of memory"
    if partitions:
        rec["partitions"] = {"seen": ["de-en", "en-de"], "both_unseen": ["sw-ta", "ta-sw"]}
        m["test/bleu/partition/seen"] = 20.0
        m["test/bleu/partition/both_unseen"] = 5.0
    if errors:
        rec["errors"] = {
            "test": {d: {"n": 10, "counts": {"off_target": 2, "source_copy": 1, "other": 7}} for d in DIRS}
        }
    return rec


RUNS = {  # dir name -> record
    "a": make_record("xglm-564m", 1000, 0, partitions=True, errors=True),
    "b": make_record("xglm-1.7b", 1000, 0, errors=True),
    "c": make_record("xglm-564m", 0, 8),
    "d": make_record("xglm-1.7b", 0, 8),
    "e": make_record("xglm-564m", 100, 0),
    "f": make_record("xglm-564m", 1000, 0, template="t2_translation_tgt"),
    "g": make_record("xglm-564m", 1000, 0, lp="en_centric"),
    "h": make_record("xglm-564m", 0, 1),
    "k": make_record("xglm-564m", 1000, 0, seed=2, max_steps=3000),
    "failed": make_record("xglm-1.7b", 4000, 0, status="failed"),
}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep") / "sw"
    for name, rec in RUNS.items():
        (root / name).mkdir(parents=True)
        (root / name / "results.json").write_text(json.dumps(rec))
    (root / "killed" / ".hydra").mkdir(parents=True)  # a job that never wrote results.json
    return root


@pytest.fixture(scope="module")
def rep(sweep, tmp_path_factory):
    missing = tmp_path_factory.mktemp("empty")
    return report.make_report([sweep, missing], sweep / "report")


@pytest.mark.slow
def test_table_rows(rep, sweep):
    done = [r for r in RUNS.values() if r["status"] == "completed"]
    assert rep["num_runs"] == len(done) == 9
    assert len(rep["rows"]) == 9 * (len(DIRS) + 1)
    with open(sweep / "report" / "table.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(rep["rows"])
    row = next(r for r in rows if r["run"] == "xglm-1.7b|paper13|t1|k8|n0" and r["direction"] == "zh-sw")
    assert (row["model"], row["shots"], row["num_examples"], row["method"], row["template"]) == (
        "xglm-1.7b",
        "8",
        "0",
        "ICL",
        "t1_translation_src_tgt",
    )
    assert float(row["test/bleu"]) == pytest.approx(
        bleu("xglm-1.7b", 0, 8, "t1_translation_src_tgt", "paper13", "zh-sw")
    )
    assert float(row["params"]) == 1.7e9 and row["src"] == "zh" and row["tgt"] == "sw"
    part = next(
        r
        for r in rows
        if r["run"] == "xglm-564m|paper13|t1|k0|n1000" and r["direction"] == "sw-ta" and r["seed"] == "1"
    )
    assert part["partition"] == "both_unseen" and part["trained"] == "True"
    md = (sweep / "report" / "table.md").read_text()
    assert md.count("\n") == len(rep["rows"]) + 2 and "xglm-1.7b\\|paper13\\|t1\\|k8\\|n0" in md


def test_failed_missing_and_config_differences(rep, sweep):
    assert [f["run"] for f in rep["failed"]] == ["xglm-1.7b|paper13|t1|k0|n4000"]
    assert "out of memory" in rep["failed"][0]["error"]
    assert any(str(sweep / "killed") in p and "no results.json" in p for p in rep["problems"])
    assert any("empty" in p and "no results.json in it or below" in p for p in rep["problems"])
    assert set(rep["config_differences"]) == {"optim.max_steps"}  # swept groups, names and paths don't count
    assert rep["config_differences"]["optim.max_steps"]["3000"] == ["xglm-564m|paper13|t1|k0|n1000"]
    md = (sweep / "report" / "report.md").read_text()
    assert "optim.max_steps" in md and "n4000" in md and "killed" in md


def _png(path: str) -> bool:
    data = Path(path).read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def _mean(*vals):
    return sum(vals) / len(vals)


def avg(key):
    return RUNS[key]["metrics"]["test/bleu/avg"]


def test_every_figure_is_drawn_with_the_expected_series(rep):
    figs = rep["figures"]
    assert set(figs) == {
        "bleu_vs_model_size",
        "bleu_vs_num_examples",
        "bleu_vs_lang_pairs",
        "bleu_vs_shots",
        "template_comparison",
        "partitions",
        "pivot",
        "error_types",
        "per_language_vs_pretraining_tokens",
        "per_language_vs_similarity",
    }, rep["skipped"]
    assert all(_png(f["path"]) for f in figs.values())
    assert rep["metric"] == "bleu"

    size = figs["bleu_vs_model_size"]["series"]
    mfti = "mFTI n1000 paper13 t1"
    assert size[mfti] == [(564e6, pytest.approx(_mean(avg("a"), avg("k")))), (1.7e9, pytest.approx(avg("b")))]
    assert size["ICL k8 paper13 t1"] == [(564e6, pytest.approx(avg("c"))), (1.7e9, pytest.approx(avg("d")))]

    ne = figs["bleu_vs_num_examples"]
    assert ne["series"]["mFTI xglm-564m paper13 t1"] == [
        (100, pytest.approx(avg("e"))),
        (1000, pytest.approx(_mean(avg("a"), avg("k")))),
    ]
    assert ne["reference"]["ICL k8 xglm-564m"] == pytest.approx(avg("c"))  # the ICL baseline as a line

    lp = figs["bleu_vs_lang_pairs"]["series"]
    assert lp["mFTI n1000 xglm-564m t1"] == [
        (8, pytest.approx(avg("g"))),
        (20, pytest.approx(_mean(avg("a"), avg("k")))),
    ]

    shots = figs["bleu_vs_shots"]["series"]
    assert shots["ICL xglm-564m paper13 t1"] == [(1, pytest.approx(avg("h"))), (8, pytest.approx(avg("c")))]
    assert shots["mFTI n1000 xglm-564m paper13 t1"] == [(0, pytest.approx(_mean(avg("a"), avg("k"))))]

    tc = figs["template_comparison"]["series"]
    assert tc["mFTI n1000 xglm-564m paper13"] == {
        "t1": pytest.approx(_mean(avg("a"), avg("k"))),
        "t2": pytest.approx(avg("f")),
    }

    assert list(figs["partitions"]["series"].values()) == [{"seen": 20.0, "both_unseen": 5.0}]

    err = figs["error_types"]["series"]
    assert len(err) == 2 and all(
        v["off_target"] == 0.2 and v["source_copy"] == 0.1 and v["other"] == 0.7 and v["template_leakage"] == 0.0
        for v in err.values()
    )


def test_per_language_correlations(rep):
    from scipy import stats

    tok = rep["figures"]["per_language_vs_pretraining_tokens"]
    key = "ICL k8 xglm-1.7b paper13 t1 | into language"
    pts = tok["series"][key]
    assert [lang for _, _, lang in pts] == sorted(LANGS, key=lambda c: LANGUAGES[c].cc100xl_tokens)
    import math

    xs = [math.log10(x) for x, _, _ in pts]
    ys = [y for _, y, _ in pts]
    c = tok["correlations"][key]
    assert c["pearson"] == pytest.approx(stats.pearsonr(xs, ys)[0], rel=1e-9, abs=1e-12)
    assert c["spearman"] == pytest.approx(stats.spearmanr(xs, ys)[0], rel=1e-9, abs=1e-12) and c["spearman"] > 0.5
    sim = rep["figures"]["per_language_vs_similarity"]["series"][key]
    assert "en" not in [lang for _, _, lang in sim] and len(sim) == 4  # similarity of English to itself left out
    shipped = json.loads(language_axes.SIMILARITY_FILE.read_text())
    assert {lang: x for x, _, lang in sim} == {
        c: shipped["languages"][c]["syntactic"] for c in ("de", "zh", "sw", "ta")
    }
    assert any(c["figure"] == "per_language_vs_similarity" for c in rep["correlations"])


def test_absent_data_is_skipped_with_a_note(tmp_path):
    run = tmp_path / "one"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(make_record("xglm-564m", 0, 8)))
    rep = report.make_report([run], tmp_path / "out")
    assert "bleu_vs_model_size" in rep["skipped"] and "found 1" in rep["skipped"]["bleu_vs_model_size"]
    assert "partitions" in rep["skipped"] and "error_types" in rep["skipped"]
    assert set(rep["figures"]) == {"per_language_vs_pretraining_tokens", "per_language_vs_similarity"}
    assert "## Figures skipped" in (tmp_path / "out" / "report.md").read_text()


def test_nothing_to_report_names_the_directories(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no results.json") as e:
        report.make_report([tmp_path / "empty", tmp_path / "nope"], tmp_path / "out")
    assert "empty" in str(e.value) and "nope: does not exist" in str(e.value)


@pytest.mark.subprocess
def test_cli_is_torch_free_and_writes_report(sweep, tmp_path):
    code = (
        "import sys; from mfti_lightning.cli.report import main; rc = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules and 'pytorch_lightning' not in sys.modules and 'wandb' not in "
        "sys.modules; sys.exit(rc)"
    )
    p = subprocess.run(
        [sys.executable, "-c", code, str(sweep), "-o", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert "9 runs, 1 failed/incomplete" in p.stdout and (tmp_path / "r" / "bleu_vs_shots.png").exists()
    assert "optim.max_steps" in p.stderr  # the config-difference warning
