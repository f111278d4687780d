"""Faults in a run's data lose nothing and change nothing (issue 19, items 4 and 9): the CSV curve across a SIGKILL,
a resume and a re-evaluation; a tokenizer larger than the model; an empty ``lang_pairs.train``; a damaged
prepared-data cache; a blank line in a FLORES file. Each case runs the real components (the tiny model, the shipped
FLORES data, real subprocesses) and asserts the message the user gets and that it comes before the model is built."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import REPO, compose, fake_flores_dir, run_cli

from mfti_lightning.core.results_schema import problems

# ---- logger=csv: one curve ---------------------------------------------------------------------------------------


def _rows(path: Path) -> list[dict]:
    """metrics.csv as a user reads it: csv.DictReader, empty cells dropped (and a row cut short by a kill)."""
    with open(path, encoding="utf-8", newline="") as f:
        return [{k: v for k, v in r.items() if v != ""} for r in csv.DictReader(f) if None not in r.values()]


def _steps(rows: list[dict], column: str) -> list[int]:
    return [int(r["step"]) for r in rows if column in r]


def test_curve_keeps_rows_across_a_cut_line_a_restart_and_a_tagged_evaluation(tmp_path):
    from mfti_lightning.track.curves import Curve

    path = tmp_path / "csv" / "metrics.csv"
    first = Curve(path)
    for step in range(5):
        first.add({"train/loss": 5.0 - step, "epoch": 0}, step)
        first.save()
    with open(path, "a", encoding="utf-8") as f:
        f.write("5,0,0.12")  # a kill in the middle of writing the row of step 5

    resumed = Curve(path)  # the resumed job: the cut row is gone, the others are there
    assert _steps(resumed.rows, "train/loss") == [0, 1, 2, 3, 4]
    resumed.restart_at(3)  # the checkpoint of step 3: rows 3 and 4 are logged again
    assert _steps(_rows(path), "train/loss") == [0, 1, 2]
    for step in range(3, 6):
        resumed.add({"train/loss": 5.0 - step, "epoch": 0}, step)
        resumed.save()
    resumed.add({"test/chrf/avg": 1.5}, 6)
    resumed.save()
    resumed.add({"test/chrf/avg": 1.75}, 6)  # the same measurement logged again (a test redone): replaces it
    resumed.save()
    reeval = Curve(path, {"evaluation": 1})  # a re-evaluation's writer
    reeval.add({"test/chrf/avg": 2.0}, 6)
    reeval.save()

    rows = _rows(path)
    assert _steps(rows, "train/loss") == [0, 1, 2, 3, 4, 5]
    assert [(r["step"], r["test/chrf/avg"], r.get("evaluation")) for r in rows if "test/chrf/avg" in r] == [
        ("6", "1.75", None),
        ("6", "2.0", "1"),
    ]
    assert path.read_text().splitlines()[0] == "step,epoch,evaluation,test/chrf/avg,train/loss"


def test_unreadable_curve_is_moved_aside_not_deleted(tmp_path, caplog):
    from mfti_lightning.track.curves import Curve

    path = tmp_path / "metrics.csv"
    path.write_bytes(b"step,train/loss\n0,\xff\xfe\n")
    with caplog.at_level(logging.WARNING, logger="mfti_lightning"):
        curve = Curve(path)
    assert (tmp_path / "metrics.csv.unreadable").read_bytes() == b"step,train/loss\n0,\xff\xfe\n"
    assert f"{path} is not a readable CSV; moved it to {path}.unreadable and starting the curve anew." in caplog.text
    curve.add({"train/loss": 1.0}, 0)
    curve.save()
    assert _rows(path) == [{"step": "0", "train/loss": "1.0"}]


CSV_ARGS = [
    "logger=csv",
    "num_examples.n=16",
    "optim.max_steps=10",
    "checkpoint.every_n_steps=3",
    "checkpoint.keep=5",
    "checkpoint.export=false",
    # validation at the checkpoint steps, as the presets have it: resuming from a checkpoint whose step has no
    # validation logs the next steps one too low in every logger (the restart state of train/checkpoint_callbacks.py)
    "eval.val_every_n_steps=3",
    "lang_pairs.val_size=2",
    "lang_pairs.test_size=2",
    "eval.max_new_tokens=4",
    "eval.score_before_training=false",
    "progress.mode=none",
    "trainer.log_every_n_steps=1",
]


def _train(cwd: Path, extra: list[str], log_name: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-m", "mfti_lightning.cli.train", *CSV_ARGS, *extra],
        cwd=cwd,
        env=env,
        stdout=open(cwd / log_name, "w"),
        stderr=subprocess.STDOUT,
    )


def _finish(p: subprocess.Popen, log: Path) -> str:
    try:
        p.wait(timeout=400)
    finally:
        if p.poll() is None:
            p.kill()
    out = log.read_text()
    assert p.returncode == 0, out[-4000:]
    return out


def _kill_after_a_checkpoint(p: subprocess.Popen, cwd: Path) -> tuple[Path, int]:
    """SIGKILL the job once it has logged a training row after its newest periodic checkpoint (e.g. step 7 after
    the checkpoint of step 6): those rows are logged again by the resumed job. Returns (run dir, checkpoint step)."""
    from mfti_lightning.track.curves import read_curve

    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        for ckpt_dir in cwd.glob("outputs/train/runs/*/checkpoints/periodic"):
            steps = [int(c.stem[4:]) for c in ckpt_dir.glob("step*.ckpt")]
            run_dir = ckpt_dir.parents[1]
            rows = read_curve(run_dir / "csv" / "metrics.csv")[0]
            if steps and any(int(r["step"]) >= max(steps) for r in rows if "train/loss" in r):
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=30)
                return run_dir, max(steps)
        time.sleep(0.05)
    p.kill()
    raise AssertionError(f"no checkpoint and later row before the job ended: {(cwd / 'first.txt').read_text()[-3000:]}")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_csv_curve_is_one_history_across_sigkill_resume_and_reevaluation(tmp_path):
    first = _train(tmp_path, [], "first.txt")
    run_dir, ckpt_step = _kill_after_a_checkpoint(first, tmp_path)
    curve = run_dir / "csv" / "metrics.csv"
    assert first.returncode == -signal.SIGKILL and not (run_dir / "results.json").exists()
    before_kill = _rows(curve)
    redone = [r for r in before_kill if int(r["step"]) >= ckpt_step]
    assert any("train/loss" in r for r in redone)  # rows after the checkpoint were on disk when it died

    out = _finish(_train(tmp_path, [], "resumed.txt"), tmp_path / "resumed.txt")
    assert f"Resuming from {run_dir}/checkpoints/periodic/step{ckpt_step:06d}.ckpt" in out
    assert "Previous log files" not in out  # Lightning's CSVLogger deleted metrics.csv here
    rows = _rows(curve)
    assert _steps(rows, "train/loss") == list(range(10)) and _steps(rows, "lr-AdamW") == list(range(10))
    assert _steps(rows, "val/chrf/avg") == [2, 5, 8]  # validation after steps 3, 6 and 9
    assert _steps(rows, "throughput/tokens_per_s") == [10] and _steps(rows, "test/chrf/avg") == [10]
    assert all(n == 1 for n in Counter((r["step"], frozenset(r)) for r in rows).values())
    kept = [r for r in before_kill if int(r["step"]) < ckpt_step]
    assert rows[: len(kept)] == kept  # the rows before the checkpoint, unchanged and first
    results = json.loads((run_dir / "results.json").read_text())
    (test_row,) = [r for r in rows if "test/chrf/avg" in r]
    assert float(test_row["test/chrf/avg"]) == results["metrics"]["test/chrf/avg"]

    out = _finish(_train(tmp_path, ["eval.num_beams=2"], "reevaluated.txt"), tmp_path / "reevaluated.txt")
    assert "re-evaluated without training (eval.num_beams 1 -> 2)" in out
    after = _rows(curve)
    assert after[: len(rows)] == rows  # the training curve and the first test row stay
    (new_row,) = after[len(rows) :]
    assert new_row["evaluation"] == "1" and new_row["step"] == "10"
    assert (
        float(new_row["test/chrf/avg"])
        == json.loads((run_dir / "results.json").read_text())["metrics"]["test/chrf/avg"]
    )
    previous = json.loads((run_dir / "previous_results" / "0.json").read_text())
    assert float(test_row["test/chrf/avg"]) == previous["metrics"]["test/chrf/avg"]
    assert not (run_dir / "csv" / "reevaluation-0").exists()


# ---- a tokenizer larger than the model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mismatched_model(tiny_model_dir, tmp_path_factory):
    """A tiny XGLM built with a 3000-piece vocabulary (3008 embeddings), given the demo model's 4008-token
    tokenizer: the tokenizer of another model."""
    from mfti_lightning.model.tiny import BUILD_FILE, ensure_tiny

    build = json.loads((tiny_model_dir / BUILD_FILE).read_text())
    path = tmp_path_factory.mktemp("mismatch") / "tiny-3000"
    ensure_tiny(path, {**build, "vocab_size": 3000}, "xglm")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_model_dir / name, path / name)
    return path


@pytest.mark.subprocess
@pytest.mark.timeout(300)
def test_tokenizer_larger_than_the_model_is_refused_before_the_model_is_built(mismatched_model, cfg_factory, tmp_path):
    from mfti_lightning.core.errors import ModelLoadError
    from mfti_lightning.tasks import train as task
    from mfti_lightning.tasks.job import resolved_container

    cfg = cfg_factory(
        f"model.name_or_path={mismatched_model}", "model.build.vocab_size=3000", "num_examples.n=16", "logger=none"
    )
    message = (
        f"The tokenizer in {mismatched_model} has 4008 tokens but the model there has only 3008 embeddings "
        "(config.json vocab_size): token ids 3008..4007 would fail inside the model (IndexError). Use the "
        "tokenizer the model was trained with (its tokenizer files next to its config.json), or a model with "
        "vocab_size >= 4008."
    )
    job = task.prepare_run(cfg, Path(cfg.paths.output_dir), {"config": resolved_container(cfg)})
    with pytest.raises(ModelLoadError) as e:
        task.prepare_data(job)  # phase 2: the model path and its tokenizer, no Lightning, no model
    assert str(e.value) == message
    assert job.module is None and job.tokenizer is None  # nothing built from the model

    # the job as the user runs it: the same message, in results.json too, before Lightning is even imported
    args = [f"model.name_or_path={mismatched_model}", "model.build.vocab_size=3000", "num_examples.n=16"]
    p = run_cli(["mfti_lightning.cli.train", *args, "logger=none"], tmp_path, 200, {"PYTHONPROFILEIMPORTTIME": "1"})
    assert p.returncode == 2 and f"mfti-train: error: {message}" in p.stderr, p.stdout + p.stderr[-3000:]
    assert "Traceback" not in p.stderr  # one message, no traceback (HYDRA_FULL_ERROR=1 shows it)
    imported = [line.split("|")[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")]
    assert "transformers" in imported and "pytorch_lightning" not in imported
    (results,) = [json.loads(r.read_text()) for r in tmp_path.glob("outputs/train/runs/*/results.json")]
    assert results["status"] == "failed" and results["error"] == f"ModelLoadError: {message}"
    assert problems(results) == []  # a failed record is the documented record too (error, traceback)
    assert not list(tmp_path.glob("outputs/train/runs/*/checkpoints"))


# ---- an empty lang_pairs.train with training pairs asked for -----------------------------------------------------

EMPTY_TRAIN = (
    "lang_pairs.train is empty but num_examples.n=16 asks for 16 training pairs per direction. List the directions "
    "to train on (lang_pairs.train=[de-en,en-fr]), or set num_examples=n0 to evaluate without finetuning."
)
NOTHING_TO_EVALUATE = (
    "Nothing to evaluate: lang_pairs.eval is null (the training directions: none). List the directions to "
    "evaluate: lang_pairs.eval=[de-en,en-de]."
)


@pytest.mark.subprocess
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "overrides, message",
    [(["'lang_pairs.eval=[de-en]'", "num_examples.n=16"], EMPTY_TRAIN), (["num_examples=n0"], NOTHING_TO_EVALUATE)],
    ids=["no_training_direction", "nothing_to_evaluate"],
)
def test_empty_direction_lists_fail_in_the_torch_free_checks(tmp_path, overrides, message):
    args = ["lang_pairs=custom", "'lang_pairs.train=[]'", *overrides]
    code = (
        "import sys\n"
        "from mfti_lightning.core.compose import compose\n"
        "from mfti_lightning.core.errors import ConfigError\n"
        "from mfti_lightning.tasks.checks import check_before_loading\n"
        f"cfg = compose('train', {[a.strip(chr(39)) for a in args]!r})\n"
        "try:\n    check_before_loading(cfg)\nexcept ConfigError as e:\n    print('ERROR', e)\n"
        "print('HEAVY', [m for m in ('torch', 'pytorch_lightning', 'transformers') if m in sys.modules])\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=100, cwd=tmp_path)
    assert f"ERROR {message}\nHEAVY []\n" in p.stdout, p.stdout + p.stderr[-3000:]

    # the job itself: the same message, before the run directory is touched
    p = run_cli(["mfti_lightning.cli.train", *[a.strip("'") for a in args], "logger=none"], tmp_path, timeout=100)
    assert p.returncode == 2 and f"mfti-train: error: {message}" in p.stderr, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    assert not list(tmp_path.glob("outputs/train/runs/*/results.json"))


@pytest.mark.timeout(300)
def test_examples_all_too_long_says_how_many_and_the_fix(cfg_factory):
    """The message an empty lang_pairs.train used to get, now only where it is true, with the count and the fix."""
    from mfti_lightning.core.errors import ConfigError
    from mfti_lightning.tasks import train as task
    from mfti_lightning.tasks.job import resolved_container

    cfg = cfg_factory("num_examples.n=16", "data.max_length=8", "logger=none")
    job = task.prepare_run(cfg, Path(cfg.paths.output_dir), {"config": resolved_container(cfg)})
    task.prepare_data(job)
    with pytest.raises(ConfigError) as e:
        task.build_module(job)
    assert str(e.value) == (
        "All 48 training examples are longer than data.max_length=8 tokens (data.overlong=drop): raise "
        "data.max_length, or set data.overlong=truncate_source to shorten their sources."
    )
    assert job.module is None


# ---- a damaged prepared-data cache -------------------------------------------------------------------------------


def _cut_mid_line(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _cut_at_line(path: Path) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:40]))


def _change_a_byte(path: Path) -> None:
    path.write_bytes(path.read_bytes().replace(b"Translation", b"Trenslation", 1))


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "damage, why",
    [
        (_cut_mid_line, "it has 24 lines where 48 examples were written"),
        (_cut_at_line, "it has 40 lines where 48 examples were written"),
        (_change_a_byte, "its contents differ from the checksum written with it"),
    ],
    ids=["cut_mid_line", "cut_at_line_boundary", "changed_byte"],
)
def test_damaged_cache_is_rebuilt_with_a_warning_naming_the_file(cfg_factory, tmp_path, caplog, damage, why):
    from mfti_lightning.core.template import from_config
    from mfti_lightning.data import cache, prepare

    cfg = cfg_factory("num_examples.n=16", f"data.cache_dir={tmp_path / 'cache'}")
    template = from_config(cfg.template)
    examples, report = prepare.load_or_prepare(cfg, template)
    entry = Path(report["cache"]["path"])
    damage(entry / cache.EXAMPLES_FILE)
    if damage is _cut_mid_line:
        why = why.replace("24", str(len((entry / cache.EXAMPLES_FILE).read_bytes().splitlines())))
    with caplog.at_level(logging.WARNING):
        again, report2 = prepare.load_or_prepare(cfg, template)
    assert (
        f"Prepared-data cache {entry / cache.EXAMPLES_FILE} is damaged: {why}. Rebuilding the entry from the "
        "corpora." in caplog.text
    )
    assert again == examples and report2["total"] == len(again) == 48 and not report2["cache"]["hit"]
    third, report3 = prepare.load_or_prepare(cfg, template)  # the rebuilt entry is whole again
    assert third == examples and report3["cache"]["hit"]
    assert sorted(p.name for p in entry.parent.iterdir()) == [entry.name]  # the damaged copy is gone


@pytest.mark.subprocess
@pytest.mark.timeout(120)
def test_mfti_prepare_rebuilds_a_cache_cut_at_a_line_boundary(tmp_path):
    """Before: the cut entry was a cache hit; train.jsonl held 40 examples while the report said 48."""
    env = {"MFTI_CACHE_DIR": str(tmp_path / "cache")}
    assert run_cli(["mfti_lightning.cli.prepare", "num_examples.n=16"], tmp_path, 100, env).returncode == 0
    (examples,) = (tmp_path / "cache" / "prepared").glob("*/train.jsonl")
    _cut_at_line(examples)
    p = run_cli(["mfti_lightning.cli.prepare", "num_examples.n=16"], tmp_path, 100, env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"Prepared-data cache {examples} is damaged: it has 40 lines where 48 examples were written" in p.stdout
    assert "total: 48 examples (16 requested per direction); cache written" in p.stdout
    (out,) = tmp_path.glob("outputs/prepare/runs/*/prepared/train.jsonl")
    assert len(out.read_text().splitlines()) == 48


# ---- a blank line in a FLORES file -------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_blank_flores_line_is_named_before_the_model_is_built(tmp_path, caplog, monkeypatch):
    from mfti_lightning.tasks import train as task
    from mfti_lightning.tasks.job import resolved_container

    flores = fake_flores_dir(tmp_path / "flores", {})  # the shipped files, as a user's $MFTI_FLORES_DIR
    devtest = flores / "devtest" / "eng.devtest"
    lines = devtest.read_text(encoding="utf-8").split("\n")
    lines[1] = ""  # sentence 2 lost, its line kept: the file still has as many lines as the others
    devtest.write_text("\n".join(lines), encoding="utf-8")
    monkeypatch.setenv("MFTI_FLORES_DIR", str(flores))
    cfg = compose(
        ["data.flores_root=${oc.env:MFTI_FLORES_DIR}", "num_examples=n0", "lang_pairs.test_size=3", "logger=none"],
        tmp_path / "run",
    )
    with caplog.at_level(logging.WARNING, logger="mfti_lightning.data.corpora"):
        job = task.prepare_run(cfg, tmp_path / "run", {"config": resolved_container(cfg)})
        task.prepare_data(job)  # reads the test sets, the k-shot pools and nothing of the model
    warnings = [r.getMessage() for r in caplog.records if r.name == "mfti_lightning.data.corpora"]
    assert warnings == [
        f"{devtest}: blank line 2. FLORES line i is sentence i in every language, so it would be evaluated as an "
        "empty sentence; restore the file from a FLORES release (data.flores_root is the copy in use)."
    ]  # once, though de-en and en-fr both read the file
    assert job.module is None
    assert [s.references[1] for s in job.test_sets if s.direction == ("de", "en")] == [""]
