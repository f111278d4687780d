"""Hydra only instantiates launchers defined in the ``hydra_plugins`` namespace, so mfti's SLURM launcher (implemented
in :mod:`mfti_lightning.launcher`) is declared here: ``_target_: hydra_plugins.mfti_lightning_launcher.SlurmLauncher``.
Hydra imports every hydra_plugins module at start-up: keep this light (no torch)."""

from mfti_lightning.launcher import SlurmLauncher as _SlurmLauncher


class SlurmLauncher(_SlurmLauncher):
    __doc__ = _SlurmLauncher.__doc__
