"""Test setup: hermetic environment (no network, W&B offline), config composition, a shared tiny model."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Set before anything imports wandb, sacrebleu or huggingface_hub; subprocesses inherit it.
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="mfti-tests-"))
os.environ.update(
    {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_CACHE_DIR": str(_SESSION_TMP / "wandb-cache"),
        "WANDB_CONFIG_DIR": str(_SESSION_TMP / "wandb-config"),
        "SACREBLEU": str(_SESSION_TMP / "sacrebleu"),  # empty: no FLORES SPM model, like an offline node
        "MFTI_CACHE_DIR": os.environ.get("MFTI_TEST_CACHE_DIR", str(_SESSION_TMP / "cache")),
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONHASHSEED": "0",
    }
)
os.environ.pop("WANDB_API_KEY", None)

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


def compose(overrides: list[str] | None = None, output_dir: str | Path | None = None, config_name: str = "train"):
    """The config ``mfti-train <overrides>`` would run with (core.config.compose), as the job sees it: with its
    run directory set in the hydra node (``output_dir``) and HydraConfig set."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from mfti_lightning.core.compose import compose as compose_config

    cfg = compose_config(config_name, list(overrides or []), CONF)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
            cfg.paths.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg


def pytest_report_header(config):
    """Which tier runs: a bare ``pytest`` selects the fast one (pyproject's addopts), ``-m ""`` every test."""
    expr = config.option.markexpr
    return f"tests marked: -m {expr!r}" + (' (pytest -m "" runs every test)' if expr else " (every test)")


@pytest.fixture
def cfg_factory(tmp_path):
    def make(*overrides, output_dir=None):
        return compose(list(overrides), output_dir or tmp_path / "run")

    return make


@pytest.fixture(scope="session")
def tiny_model_dir():
    """The demo's tiny model, built once per test session through the real build path."""
    from mfti_lightning.model.modeling import resolve_model_path

    cfg = compose([], output_dir=_SESSION_TMP / "compose")
    return Path(resolve_model_path(cfg.model))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from mfti_lightning.model.modeling import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


def run_cli(args: list[str], cwd: Path, timeout: float = 600, env: dict | None = None):
    """Run a console script of this package in a subprocess with a timeout; returns CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def fake_flores_dir(root: Path, extra: dict[str, str]) -> Path:
    """A FLORES-101 directory made from the shipped copy: the 13 languages, plus each ``extra`` code's files copied
    from the shipped files of another language (``{"es": "ca"}``: Catalan lines under Spanish's file stem)."""
    from mfti_lightning.core.languages import get
    from mfti_lightning.data.corpora import FLORES101_DIR

    root = Path(root)
    for split in ("dev", "devtest"):
        (root / split).mkdir(parents=True, exist_ok=True)
        for f in (FLORES101_DIR / split).iterdir():
            shutil.copy(f, root / split / f.name)
        for code, source in extra.items():
            shutil.copy(
                FLORES101_DIR / split / f"{get(source).flores101}.{split}",
                root / split / f"{get(code).flores101}.{split}",
            )
    return root


def pytest_collection_modifyitems(items):
    """Under pytest-xdist (scripts/test.sh: ``-n auto --dist loadgroup``) the tests that submit to a local SLURM run
    on one worker, one after another: the clusters have two CPUs, and jobs of two workers at once would queue behind
    each other until their tests time out. Without xdist the group marker does nothing."""
    for item in items:
        if item.get_closest_marker("slurm") or item.get_closest_marker("multinode"):
            item.add_marker(pytest.mark.xdist_group("slurm"))


@pytest.fixture(scope="session")
def slurm():
    """The local SLURM cluster, started if needed (root + apt), else a skip with the reason."""
    if (
        shutil.which("scontrol")
        and subprocess.run(["scontrol", "ping"], capture_output=True, timeout=20).returncode == 0
    ):
        return
    from slurm_jobs import start_cluster

    start_cluster("local_slurm.sh")
