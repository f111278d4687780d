"""``mfti-train``: a thin Hydra entry point over :func:`mfti_lightning.tasks.train.train`.

Only hydra and omegaconf are imported here, so ``mfti-train --help`` and ``--cfg job`` return quickly;
torch, Lightning and transformers are imported when a job actually runs.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from mfti_lightning.cli.exits import report_errors
from mfti_lightning.core import schema, validation
from mfti_lightning.core.config import conf_dir

schema.register()  # before Hydra composes: conf/train.yaml's defaults list starts with the typed schema


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """The Hydra task function (also what the SLURM launcher runs for each job)."""
    from mfti_lightning.tasks.train import train

    return report_errors("mfti-train", train, cfg)


def main() -> float | None:
    """``mfti-train``: ``shots=8``-style overrides exit 2 with the fix before Hydra parses the command line."""
    validation.exit_on_bad_group_override(sys.argv[1:], "mfti-train")
    return hydra_main()


if __name__ == "__main__":
    main()
