"""Run identity: the run directory names the experiment, a sweep has one name, a run dir is reused only for the same
experiment (mfti_lightning/core/identity.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from conftest import compose

from mfti_lightning.core import identity
from mfti_lightning.core.errors import ConfigError


def slug(*overrides, config_name="train"):
    return str(compose(list(overrides), config_name=config_name).run_slug)


def test_values_that_change_the_trained_model_change_the_run_dir():
    base = slug()
    readable = base.rsplit("-", 1)[0]
    for ov in (
        "optim.optimizer.lr=1e-2",
        "optim.max_steps=7",
        "data.max_length=128",
        "data.loss_on=target",
        "model.build.d_model=64",
        "lang_pairs.train=[de-en]",
        "eval.val_every_n_steps=10",
        "+data.corpora.0.root=/elsewhere",
    ):
        other = slug(ov)
        assert other != base, ov
        if not ov.startswith(("lang_pairs.train",)):
            assert other.rsplit("-", 1)[0] == readable, ov  # the readable part names the swept groups only


@pytest.mark.slow
def test_values_that_do_not_change_results_keep_the_run_dir(monkeypatch, tmp_path):
    base = slug()
    for ov in (
        "logger=csv",
        "progress.mode=plain",
        "resume=never",
        "sweep_name=x",
        "checkpoint.keep=5",
        "data.num_workers=2",
        "trainer=gpu",
        "trainer.log_every_n_steps=1",
    ):
        assert slug(ov) == base, ov
    # the machine's cache dir is not part of the experiment (the tiny model lives there)
    monkeypatch.setenv("MFTI_CACHE_DIR", str(tmp_path / "other-cache"))
    assert slug() == base


def test_evaluation_settings_name_an_eval_run_but_not_a_training_run():
    assert slug("eval.num_beams=2") == slug()
    assert slug("eval.num_beams=2", config_name="eval") != slug(config_name="eval")
    assert slug("num_examples.n=0", "optim.optimizer.lr=1") != slug("num_examples.n=0")


def test_classify():
    assert identity.classify("optim.optimizer.lr") == "training"
    assert identity.classify("eval.num_beams") == "evaluation"
    assert identity.classify("eval.val_num_beams") == "training"  # picks the checkpoint
    assert identity.classify("trainer.precision") == "runtime"
    assert identity.classify("logger.mode") is None and identity.classify("paths.output_root") is None


def _completed(run_dir, cfg, **extra):
    from mfti_lightning.tasks.job import resolved_container

    run_dir.mkdir(parents=True, exist_ok=True)
    rec = {"status": "completed", "config": resolved_container(cfg), "metrics": {"test/bleu/avg": 1.0}, **extra}
    (run_dir / "results.json").write_text(json.dumps(rec))


def test_decide_reuse(tmp_path):
    run_dir = tmp_path / "run"
    cfg = compose([], output_dir=run_dir)
    assert identity.decide_reuse(run_dir, cfg).action == "new"
    ckpt = tmp_path / "best.ckpt"
    ckpt.write_text("x")
    _completed(run_dir, cfg, best_checkpoint=str(ckpt), directions={"train": ["de-en"]})
    assert identity.decide_reuse(run_dir, cfg).action == "skip"

    re = identity.decide_reuse(run_dir, compose(["eval.num_beams=3"], output_dir=run_dir))
    assert re.action == "reevaluate" and [k for k, _, _ in re.changed] == ["eval.num_beams"]

    with pytest.raises(ConfigError, match=r"optim\.optimizer\.lr: 0\.003 \(in the run dir\) -> 0\.01 \(now\)"):
        identity.decide_reuse(run_dir, compose(["optim.optimizer.lr=1e-2"], output_dir=run_dir))
    with pytest.raises(ConfigError, match=r"trainer\.precision"):
        identity.decide_reuse(run_dir, compose(["trainer.precision=bf16-mixed"], output_dir=run_dir))
    with pytest.raises(ConfigError, match="resume=never"):
        identity.decide_reuse(run_dir, compose(["resume=never"], output_dir=run_dir))

    ckpt.unlink()  # nothing to re-evaluate from: refused before anything changes
    with pytest.raises(ConfigError, match="best checkpoint .* is gone"):
        identity.decide_reuse(run_dir, compose(["eval.num_beams=3"], output_dir=run_dir))

    rec = json.loads((run_dir / "results.json").read_text())
    (run_dir / "results.json").write_text(json.dumps({**rec, "status": "failed"}))
    assert identity.decide_reuse(run_dir, compose(["optim.optimizer.lr=1e-2"], output_dir=run_dir)).action == "run"


class TickingClock(datetime):
    """datetime whose now() advances one second per call: every composition crosses a second boundary."""

    calls = 0

    @classmethod
    def now(cls, tz=None):
        cls.calls += 1
        return datetime(2026, 1, 1, 12, 0, 0) + timedelta(seconds=cls.calls)


@pytest.fixture
def ticking_clock(monkeypatch):
    import hydra.core.utils

    TickingClock.calls = 0
    monkeypatch.setattr(hydra.core.utils, "datetime", TickingClock)
    return TickingClock


@pytest.mark.slow
def test_a_sweep_has_one_name_even_when_composing_crosses_seconds(ticking_clock):
    from mfti_lightning.launch.sweep import plan

    jobs = plan(None, ["seed=" + ",".join(str(i) for i in range(1, 13))])
    assert len(jobs) == 12 and len({j.run_dir for j in jobs}) == 12
    assert len({j.run_dir.parent for j in jobs}) == 1, {str(j.run_dir.parent) for j in jobs}
    assert ticking_clock.calls >= 1  # the patched clock is the one ${now:} reads


def test_jobs_sharing_a_run_dir_are_refused_even_when_composing_crosses_seconds(ticking_clock, capsys):
    from mfti_lightning.cli.plan import main

    assert main(["-", "trainer=cpu,gpu"]) == 2
    assert "would share the run directory" in capsys.readouterr().err
