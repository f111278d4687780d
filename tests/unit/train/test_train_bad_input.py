"""Bad training input gets a clear error before any model loading."""

from __future__ import annotations

import json

import pytest

from mfti_lightning.core.errors import ConfigError, ModelLoadError


def test_batch_math_that_does_not_divide(cfg_factory):
    from mfti_lightning.tasks.train import train

    cfg = cfg_factory("optim.global_batch_size=10", "optim.micro_batch_size=4", "logger=none")
    with pytest.raises(ConfigError, match=r"global_batch_size=10 is not divisible.*Micro batch sizes that work"):
        train(cfg)


def test_fsdp_on_cpu_says_use_fsdp2(cfg_factory, monkeypatch):
    from mfti_lightning.model import modeling
    from mfti_lightning.tasks.train import train

    monkeypatch.setattr(modeling, "load_model", lambda *a, **k: pytest.fail("model loaded"))
    cfg = cfg_factory(
        "trainer=fsdp", "trainer.accelerator=cpu", "trainer.devices=2", "optim.global_batch_size=32", "logger=none"
    )
    with pytest.raises(ConfigError, match="fsdp2"):
        train(cfg)


def test_model_not_loadable_offline(cfg_factory):
    from mfti_lightning.model.modeling import check_loadable

    cfg = cfg_factory("model=xglm-564m")
    with pytest.raises(ModelLoadError, match=r"facebook/xglm-564M.*huggingface-cli download"):
        check_loadable(cfg.model)


def test_resume_with_changed_training_config_is_refused(cfg_factory, tmp_path):
    from mfti_lightning.tasks.job import resolved_container
    from mfti_lightning.train.trainer import check_resume_config

    run_dir = tmp_path / "run"
    base = resolved_container(cfg_factory("logger=none"))
    check_resume_config(base, run_dir, "auto")  # first start: saves the training config
    assert json.loads((run_dir / "training_config.json").read_text())["optim.optimizer.lr"] == 3e-3
    (run_dir / "checkpoints" / "periodic").mkdir(parents=True)
    (run_dir / "checkpoints" / "periodic" / "step000050.ckpt").write_bytes(b"x")
    # eval, logging and max_steps may change on resume
    check_resume_config(
        resolved_container(
            cfg_factory("logger=csv", "eval.num_beams=4", "optim.max_steps=300", "lang_pairs.test_size=5")
        ),
        run_dir,
        "auto",
    )
    changed = resolved_container(cfg_factory("logger=none", "optim.optimizer.lr=1e-4", "seed=1"))
    with pytest.raises(ConfigError, match=r"optim.optimizer.lr: 0.003 \(checkpoint\) -> 0.0001 \(now\)") as e:
        check_resume_config(changed, run_dir, "auto")
    assert "seed: 42 (checkpoint) -> 1 (now)" in str(e.value)


def test_newest_checkpoint_skips_partial_writes(tmp_path):
    from mfti_lightning.model.checkpoint_files import newest_checkpoint

    d = tmp_path / "checkpoints"
    (d / "periodic").mkdir(parents=True)
    (d / "best").mkdir()
    (d / "periodic" / "step000004.ckpt").write_bytes(b"x")
    (d / "best" / "step000004.ckpt").write_bytes(b"x")
    (d / "periodic" / "step000008.ckpt.tmp").write_bytes(b"x")  # killed while saving
    (d / "periodic" / "step000012.ckpt").mkdir()  # a sharded checkpoint without its metadata yet
    assert newest_checkpoint(tmp_path) == d / "periodic" / "step000004.ckpt"
    assert newest_checkpoint(tmp_path / "nothing") is None


def test_local_multirun_with_spawning_ddp_stops(cfg_factory, monkeypatch):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict, read_write

    from mfti_lightning.train.trainer import check_launch

    cfg = cfg_factory("trainer=ddp_cpu", "trainer.strategy=ddp")
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
    HydraConfig.instance().set_config(cfg)
    with pytest.raises(ConfigError, match="ddp_fork"):
        check_launch(cfg)
    with open_dict(cfg):
        cfg.trainer.strategy = "ddp_fork"
    check_launch(cfg)  # forks: fine inside a sweep


def test_slurm_tasks_must_match_devices(cfg_factory, monkeypatch):
    from mfti_lightning.train.trainer import check_launch, lightning_spawns

    cfg = cfg_factory("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=4", "optim.global_batch_size=64")
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    check_launch(cfg)
    assert not lightning_spawns(cfg)  # srun started the ranks
    monkeypatch.setenv("SLURM_NTASKS", "2")
    with pytest.raises(ConfigError, match="tasks_per_node == trainer.devices"):
        check_launch(cfg)
