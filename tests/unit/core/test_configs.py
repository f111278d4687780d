"""Every option of every config group composes; bad choices fail with Hydra's list of options."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import CONF, REPO, compose, run_cli

GROUPS = [
    "model",
    "lang_pairs",
    "template",
    "shots",
    "num_examples",
    "data",
    "trainer",
    "logger",
    "paths",
    "experiment",
    "debug",
]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes(group, option, tmp_path):
    cfg = compose([f"{group}={option}"], tmp_path)
    from omegaconf import OmegaConf

    # resolve everything except values that are mandatory by design (custom lang_pairs, pairs corpus path)
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert container["model"]["name"]
    assert cfg.hydra.runtime.choices[group] == option


def test_groups_exist_with_options():
    for g in GROUPS:
        assert options(g), f"config group {g} has no options"
    assert {"tiny", "xglm-564m", "xglm-1.7b", "xglm-2.9b", "xglm-4.5b", "xglm-7.5b"} <= set(options("model"))
    assert {"k0", "k1", "k2", "k4", "k8"} <= set(options("shots"))
    assert {"n0", "n100", "n250", "n500", "n1000", "n2000", "n4000"} <= set(options("num_examples"))


def test_model_hub_names(tmp_path):
    for size, hub in [("564m", "564M"), ("1.7b", "1.7B"), ("2.9b", "2.9B"), ("4.5b", "4.5B"), ("7.5b", "7.5B")]:
        assert compose([f"model=xglm-{size}"], tmp_path).model.name_or_path == f"facebook/xglm-{hub}"


def test_default_is_the_embedded_demo(tmp_path):
    cfg = compose([], tmp_path)
    assert cfg.model.name == "tiny" and cfg.lang_pairs.name == "demo"
    assert cfg.trainer.accelerator == "cpu" and cfg.logger.name == "wandb"


def test_cluster_command_composes(tmp_path):
    cfg = compose(["model=xglm-7.5b", "trainer=fsdp", "lang_pairs=paper13", "num_examples=n1000"], tmp_path)
    assert cfg.optim.optimizer.lr == 5e-6 and cfg.optim.global_batch_size == 80 and cfg.optim.max_steps == 2000
    assert cfg.trainer.strategy == "fsdp" and cfg.trainer.precision == "bf16-mixed"


def _cli(*args, timeout=60):
    return run_cli(["mfti_lightning.cli.train", *args], cwd=REPO, timeout=timeout)


@pytest.mark.subprocess
def test_unknown_model_lists_options():
    p = _cli("model=xglm-9b")
    assert p.returncode != 0
    assert "xglm-9b" in p.stderr and "xglm-7.5b" in p.stderr and "tiny" in p.stderr


@pytest.mark.subprocess
@pytest.mark.parametrize("args", [["--help"], ["--cfg", "job"]])
def test_config_commands_are_torch_free(args):
    """No heavy import for a config command (its start-up time is measured in benchmarks/bench_cli_startup.py)."""
    code = (
        "import sys, runpy; sys.argv = ['mfti-train', *%r];\n"
        "try:\n    runpy.run_module('mfti_lightning.cli.train', run_name='__main__')\n"
        "except SystemExit: pass\n"
        "heavy = [m for m in ('torch', 'pytorch_lightning', 'transformers', 'wandb') if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)" % (args,)
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert "HEAVY []" in p.stderr, p.stderr[-2000:]
    assert "model" in p.stdout
