"""The one compose helper: a config exactly as an entry point would compose it, outside ``@hydra.main``."""

from __future__ import annotations

from pathlib import Path

from mfti_lightning.core import schema
from mfti_lightning.core.config import conf_dir
from mfti_lightning.core.identity import register_resolvers


def compose(config_name: str = "train", overrides: list[str] | tuple = (), config_dir: str | Path | None = None):
    """The config ``mfti-train`` (``config_name="eval"``: ``mfti-eval``) would run with for these overrides, with its
    ``hydra`` node, composed outside ``@hydra.main`` (the one compose helper: mfti-plan, the SLURM launcher's
    checks, mfti-prefetch, tests). ``config_dir`` other than conf/ (e.g. sweeps/) keeps conf/ on the search path,
    as ``mfti-train --config-dir sweeps --config-name X`` does."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    schema.register()
    register_resolvers()
    config_dir = Path(config_dir) if config_dir is not None else conf_dir()
    extra = [] if config_dir.resolve() == conf_dir() else [f"hydra.searchpath=[file://{conf_dir()}]"]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir.resolve()), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=extra + list(overrides), return_hydra_config=True)
