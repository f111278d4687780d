"""The embedded demo end to end, as a user runs it (console entry point in a subprocess), with fewer steps."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

pytestmark = pytest.mark.slow

FAST = ["lang_pairs.val_size=8", "lang_pairs.test_size=8",
        "eval.max_new_tokens=24"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("demo")
    p = run_cli(["mfti_lightning.train", *FAST], cwd=cwd, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    run_dirs = list((cwd / "outputs" / "train" / "runs").iterdir())
    assert len(run_dirs) == 1
    return run_dirs[0], p


def test_results_json(demo_run):
    run_dir, _ = demo_run
    r = json.loads((run_dir / "results.json").read_text())
    assert r["status"] == "completed"
    m = r["metrics"]
    for d in ("de-en", "en-fr", "zh-en", "avg"):
        for metric in ("bleu", "chrf", "chrf++"):
            assert isinstance(m[f"test/{metric}/{d}"], float)
    for d in ("de-en", "en-fr", "zh-en"):
        assert "tok:13a" in r["signatures"][f"test/bleu/{d}"] and "version:" in r["signatures"][f"test/bleu/{d}"]
    assert abs(m["test/chrf/avg"] - sum(m[f"test/chrf/{d}"] for d in ("de-en", "en-fr", "zh-en")) / 3) < 1e-9
    prov = r["provenance"]
    assert {"git_commit", "git_dirty", "packages"} <= prov.keys() and prov["packages"]["torch"]
    assert r["config"]["model"]["name"] == "tiny" and r["wall_time_s"] > 0


def test_learning_happens(demo_run):
    run_dir, _ = demo_run
    r = json.loads((run_dir / "results.json").read_text())
    t = r["training"]
    assert t["steps"] == 150
    assert t["loss_last_10pct"] < t["loss_first_10pct"] - 1.0
    assert r["metrics"]["val/chrf/avg"] > r["metrics"]["val_init/chrf/avg"]


def test_outputs_and_summary(demo_run):
    run_dir, p = demo_run
    assert (run_dir / "template.json").exists()
    assert len((run_dir / "translations" / "de-en.jsonl").read_text().splitlines()) == 8
    runs = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    assert "direction" in p.stdout and "avg" in p.stdout and "dev chrF before -> after" in p.stdout


def test_rerun_of_completed_run_does_nothing(demo_run):
    run_dir, _ = demo_run
    before = (run_dir / "results.json").read_text()
    p = run_cli(["mfti_lightning.train", *FAST], cwd=run_dir.parents[3], timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "already completed" in p.stdout + p.stderr
    assert (run_dir / "results.json").read_text() == before
