"""mfti-score: metrics added to an existing results.json from the saved translations alone (no model, no torch),
with sacrebleu signatures, averages and partition means; already-scored keys skipped (a second run writes
nothing); the translations untouched."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sacrebleu.metrics import CHRF, TER

from mfti_lightning.assets import ASSETS_DIR
from mfti_lightning.core.results_schema import Rescore, problems
from mfti_lightning.track import score

FLORES = ASSETS_DIR / "flores101" / "devtest"
REPO = Path(__file__).resolve().parents[3]


def make_run(root: Path, clean: bool = False) -> Path:
    """A completed run as a training job leaves it: results.json (bleu and chrf only), translations/, eval_state/."""
    run = root / "sweep" / "tiny_demo_t1_k0_n100_s1-abc"
    (run / "translations").mkdir(parents=True)
    (run / "eval_state" / "test").mkdir(parents=True)
    src = {"de": "deu", "en": "eng", "fr": "fra"}
    metrics = {}
    for d in ("de-en", "en-fr"):
        s, t = d.split("-")
        sources = (FLORES / f"{src[s]}.devtest").read_text(encoding="utf-8").splitlines()[:25]
        refs = (FLORES / f"{src[t]}.devtest").read_text(encoding="utf-8").splitlines()[:25]
        hyps = [" ".join(r.split()[: max(1, len(r.split()) // 2)]) for r in refs]
        rows = [{"source": a, "reference": r, "prompt": "p", "hypothesis": h} for a, r, h in zip(sources, refs, hyps)]
        if clean:
            for row in rows:
                row["hypothesis_clean"] = row["hypothesis"].split(" ")[0]
            metrics[f"test_clean/chrf/{d}"] = 1.0
        (run / "translations" / f"{d}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        )
        (run / "eval_state" / "test" / f"{d}.json").write_text("{}")
        metrics[f"test/chrf/{d}"] = CHRF().corpus_score(hyps, [refs]).score
    metrics["test/chrf/avg"] = (metrics["test/chrf/de-en"] + metrics["test/chrf/en-fr"]) / 2
    record = {
        "schema": 1,
        "status": "completed",
        "task": "train",
        "run_name": "tiny|demo|t1|k0|n100",
        "swept": {"model": "tiny", "shots": 0, "num_examples": 100, "seed": 1},
        "metrics": metrics,
        "signatures": {"test/chrf/de-en": "x"},
        "partitions": {"seen": ["de-en"], "reversed": [], "src_unseen": ["en-fr"]},
        "directions": {"train": ["de-en"], "eval": ["de-en", "en-fr"]},
    }
    (run / "results.json").write_text(json.dumps(record))
    return run


def digests(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((run / "translations").iterdir())}


def cli(*args, cwd=REPO) -> subprocess.CompletedProcess:
    code = (
        "import sys; from mfti_lightning.cli.score import main; rc = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; sys.exit(rc)"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd
    )


@pytest.mark.subprocess
def test_mfti_score_adds_ter_with_signatures_and_a_second_run_does_nothing(tmp_path):
    run = make_run(tmp_path)
    before = digests(run)
    p = cli(tmp_path / "sweep", "--metrics", "ter,chrf,chrf++")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "added 4 scores" in p.stdout  # ter and chrf++ for 2 directions; chrf was there already
    rec = json.loads((run / "results.json").read_text())
    m, sig = rec["metrics"], rec["signatures"]
    for d in ("de-en", "en-fr"):
        rows = [json.loads(x) for x in (run / "translations" / f"{d}.jsonl").read_text().splitlines()]
        hyps, refs = [r["hypothesis"] for r in rows], [r["reference"] for r in rows]
        ter = TER()
        assert m[f"test/ter/{d}"] == pytest.approx(ter.corpus_score(hyps, [refs]).score)
        assert m[f"test/chrf++/{d}"] == pytest.approx(CHRF(word_order=2).corpus_score(hyps, [refs]).score)
        assert sig[f"test/ter/{d}"] == str(ter.get_signature()) and "tok:tercom" in sig[f"test/ter/{d}"]
        assert "nw:2" in sig[f"test/chrf++/{d}"]
    assert sig["test/chrf/de-en"] == "x"  # what was scored stays as it was
    assert m["test/ter/avg"] == pytest.approx((m["test/ter/de-en"] + m["test/ter/en-fr"]) / 2)
    assert (
        m["test/ter/partition/seen"] == m["test/ter/de-en"]
        and m["test/ter/partition/src_unseen"] == m["test/ter/en-fr"]
    )
    assert sorted(rec["rescored"][0]["keys"]) == sorted(
        f"test/{k}/{d}" for k in ("ter", "chrf++") for d in ("de-en", "en-fr")
    )
    assert digests(run) == before  # translations untouched
    assert problems(rec["rescored"][0], Rescore) == []  # the documented entry (core/results_schema.py)

    stamp = (run / "results.json").stat().st_mtime_ns, (run / "results.json").read_bytes()
    again = cli(run, "--metrics", "ter,chrf++")
    assert again.returncode == 0 and "nothing to do" in again.stdout and "0 scores added" in again.stdout
    assert ((run / "results.json").stat().st_mtime_ns, (run / "results.json").read_bytes()) == stamp


def test_the_clean_split_is_scored_from_hypothesis_clean(tmp_path):
    run = make_run(tmp_path, clean=True)
    added = score.score_run(run, ["ter"])
    assert sorted(added) == ["test/ter/de-en", "test/ter/en-fr", "test_clean/ter/de-en", "test_clean/ter/en-fr"]
    rows = [json.loads(x) for x in (run / "translations" / "de-en.jsonl").read_text().splitlines()]
    m = json.loads((run / "results.json").read_text())["metrics"]
    want = TER().corpus_score([r["hypothesis_clean"] for r in rows], [[r["reference"] for r in rows]]).score
    assert m["test_clean/ter/de-en"] == pytest.approx(want) and m["test_clean/ter/de-en"] != m["test/ter/de-en"]


@pytest.mark.subprocess
def test_bad_metrics_fail_before_anything_is_written(tmp_path):
    run = make_run(tmp_path)
    before = (run / "results.json").read_bytes()
    for args, msg in (
        (("--metrics", "bleurt"), "unknown metric 'bleurt'"),
        (("--metrics", "comet"), "--comet-model"),
        (("--metrics", "comet", "--comet-model", str(tmp_path / "nope")), "no COMET checkpoint"),
    ):
        p = cli(run, *args)
        assert p.returncode == 2 and msg in p.stderr, (args, p.stderr)
    assert (run / "results.json").read_bytes() == before


def test_metric_for_scores_as_the_evaluation_does():
    from mfti_lightning.eval.metrics import metric_for
    from mfti_lightning.eval.metrics import score as evaluation_score

    refs = (FLORES / "zho_simpl.devtest").read_text(encoding="utf-8").splitlines()[:20]
    hyps = [r[: len(r) // 2] for r in refs]
    done = evaluation_score(hyps, refs, "zh", "lang_default")
    for name in ("bleu", "chrf", "chrf++"):
        m = metric_for(name, "zh")
        assert (m.corpus_score(hyps, [refs]).score, str(m.get_signature())) == done[name]
    assert "tok:zh" in done["bleu"][1]
    ter = metric_for("ter", "zh")
    ter.corpus_score(hyps, [refs])
    assert "asian:yes" in str(ter.get_signature())
