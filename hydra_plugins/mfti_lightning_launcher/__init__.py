"""Hydra only instantiates launchers defined in the ``hydra_plugins`` namespace, so mfti's SLURM launcher (implemented
in :mod:`mfti_lightning.launch.launcher`) is declared here: ``_target_: hydra_plugins.mfti_lightning_launcher.SlurmLauncher``.
Hydra imports every hydra_plugins module at start-up, before it composes a config: keep this light (no torch).
That is also where the run-directory resolvers (``${mfti_run_hash:}``, ``${mfti_ckpt_tag:...}``) and the typed
config schemas (ConfigStore) are registered, so every composition (entry points, the compose API, a SLURM job
re-composing its config) finds them, and the slurm_* presets' launcher schema (``hydra/launcher=mfti_slurm``)."""

from mfti_lightning.core import schema
from mfti_lightning.core.identity import register_resolvers
from mfti_lightning.launch.launcher import SlurmLauncher as _SlurmLauncher
from mfti_lightning.launch.launcher import register_schema

register_resolvers()
schema.register()
register_schema()


class SlurmLauncher(_SlurmLauncher):
    __doc__ = _SlurmLauncher.__doc__
