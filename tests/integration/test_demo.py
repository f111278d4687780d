"""The embedded demo end to end, as a user runs it (console entry point in a subprocess), with fewer steps."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli
from quiet_output import assert_quiet

pytestmark = pytest.mark.slow

FAST = ["lang_pairs.val_size=8", "lang_pairs.test_size=8", "eval.max_new_tokens=24"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("demo")
    p = run_cli(["mfti_lightning.cli.train", *FAST], cwd=cwd, timeout=600)
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


def test_results_json_is_the_documented_record(demo_run):
    """Every key the demo's writers put in results.json is declared in core/results_schema.py, with its type: a
    writer adding a key fails here until the key is documented."""
    from mfti_lightning.core.results_schema import RunResults, problems

    run_dir, _ = demo_run
    r = json.loads((run_dir / "results.json").read_text())
    assert problems(r) == []
    typed = RunResults.read(run_dir)
    assert typed.training.steps == 150 and typed.throughput.params_total > 0 and typed.wandb.mode == "offline"
    assert typed.best_checkpoint == str(run_dir.resolve() / r["best_checkpoint"])


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


def test_demo_prints_only_explained_warnings(demo_run):
    _, p = demo_run
    assert_quiet(p.stdout + p.stderr, "the demo")


def test_rerun_of_completed_run_does_nothing(demo_run):
    run_dir, _ = demo_run
    before = (run_dir / "results.json").read_text()
    p = run_cli(["mfti_lightning.cli.train", *FAST], cwd=run_dir.parents[3], timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "already completed" in p.stdout + p.stderr
    assert (run_dir / "results.json").read_text() == before


# ---- a run directory is reused only for the same experiment (issue: a changed config returned the old results) ----
def test_changed_training_value_after_the_demo_runs_its_own_experiment(demo_run):
    run_dir, _ = demo_run
    before = (run_dir / "results.json").read_text()
    cwd = run_dir.parents[3]
    args = [
        "mfti_lightning.cli.train",
        *FAST,
        "optim.optimizer.lr=1e-2",
        "optim.max_steps=10",
        "eval.val_every_n_steps=5",
        "checkpoint.every_n_steps=5",
        "logger=none",
    ]
    p = run_cli(args, cwd=cwd, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert "already completed" not in p.stdout + p.stderr
    new = [d for d in run_dir.parent.iterdir() if d != run_dir]
    assert len(new) == 1 and new[0].name.rsplit("-", 1)[0] == run_dir.name.rsplit("-", 1)[0]
    r = json.loads((new[0] / "results.json").read_text())
    assert r["status"] == "completed" and r["config"]["optim"]["optimizer"]["lr"] == 1e-2
    assert r["training"]["steps"] == 10
    assert (run_dir / "results.json").read_text() == before  # the demo's run is untouched


def test_changed_trainer_of_a_completed_run_is_refused_naming_the_key(demo_run):
    run_dir, _ = demo_run
    before = (run_dir / "results.json").read_text()
    p = run_cli(
        ["mfti_lightning.cli.train", *FAST, "trainer.precision=bf16-mixed"], cwd=run_dir.parents[3], timeout=120
    )
    assert p.returncode != 0
    assert "trainer.precision: '32-true' (in the run dir) -> 'bf16-mixed' (now)" in p.stderr, p.stderr[-2000:]
    assert (run_dir / "results.json").read_text() == before


def test_changed_evaluation_setting_reevaluates_the_best_checkpoint_without_training(demo_run):
    run_dir, _ = demo_run
    before = json.loads((run_dir / "results.json").read_text())
    ckpts = {p: p.stat().st_mtime_ns for p in (run_dir / "checkpoints").rglob("*.ckpt")}
    p = run_cli(["mfti_lightning.cli.train", *FAST, "eval.num_beams=2"], cwd=run_dir.parents[3], timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert "re-evaluated without training (eval.num_beams 1 -> 2)" in p.stdout, p.stdout[-2000:]
    r = json.loads((run_dir / "results.json").read_text())
    assert r["status"] == "completed" and r["config"]["eval"]["num_beams"] == 2
    assert r["reevaluation"]["changed"] == {"eval.num_beams": {"before": 1, "now": 2}}
    assert r["best_checkpoint"] == before["best_checkpoint"] and r["training"] == before["training"]
    assert {p: p.stat().st_mtime_ns for p in (run_dir / "checkpoints").rglob("*.ckpt")} == ckpts  # no training
    assert json.loads((run_dir / "previous_results" / "0.json").read_text()) == before  # nothing lost
    assert all(k in r["metrics"] for k in ("test/bleu/avg", "test/chrf/avg", "val/chrf/avg"))
    # and the re-evaluated run is now complete for its new settings
    p = run_cli(["mfti_lightning.cli.train", *FAST, "eval.num_beams=2"], cwd=run_dir.parents[3], timeout=120)
    assert p.returncode == 0 and "already completed" in p.stdout + p.stderr
