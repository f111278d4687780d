"""The one compose helper: a config exactly as an entry point would compose it, outside ``@hydra.main``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mfti_lightning.core import schema
from mfti_lightning.core.config import conf_dir
from mfti_lightning.core.identity import register_resolvers


def search_path_overrides(config_dir: str | Path | None) -> list[str]:
    """What puts conf/ on the search path when the primary config lives elsewhere (sweeps/), as
    ``mfti-train --config-dir sweeps`` does."""
    config_dir = Path(config_dir) if config_dir is not None else conf_dir()
    return [] if config_dir.resolve() == conf_dir() else [f"hydra.searchpath=[file://{conf_dir()}]"]


@contextmanager
def config_loader(config_dir: str | Path | None = None) -> Iterator:
    """Hydra's own ``ConfigLoader`` for ``config_dir`` (default conf/), the object Hydra's sweeper and launchers
    compose with (``load_configuration`` for a multirun's primary config, ``load_sweep_config`` for each job).
    Pass :func:`search_path_overrides` with the overrides."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    schema.register()
    register_resolvers()
    config_dir = Path(config_dir) if config_dir is not None else conf_dir()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir.resolve()), version_base="1.3"):
        yield GlobalHydra.instance().config_loader()


def compose(config_name: str = "train", overrides: list[str] | tuple = (), config_dir: str | Path | None = None):
    """The config ``mfti-train`` (``config_name="eval"``: ``mfti-eval``) would run with for these overrides, with its
    ``hydra`` node, composed outside ``@hydra.main`` (the one compose helper: mfti-plan, the SLURM launcher's
    checks, mfti-prefetch, tests). ``config_dir`` other than conf/ (e.g. sweeps/) keeps conf/ on the search path,
    as ``mfti-train --config-dir sweeps --config-name X`` does."""
    from hydra import compose as hydra_compose

    with config_loader(config_dir):
        extra = search_path_overrides(config_dir)
        return hydra_compose(config_name=config_name, overrides=extra + list(overrides), return_hydra_config=True)
