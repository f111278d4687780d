"""``mfti-eval``: a thin Hydra entry point over :func:`mfti_lightning.tasks.evaluate.evaluate_task` (translate FLORES
with a model or checkpoint and score it; see conf/eval.yaml). Only hydra and omegaconf are imported here."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from mfti_lightning.cli.exits import report_errors
from mfti_lightning.core import schema, validation
from mfti_lightning.core.config import conf_dir

schema.register()  # before Hydra composes: conf/eval.yaml's defaults list starts with the typed schema


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="eval")
def hydra_main(cfg: DictConfig) -> float | None:
    """The Hydra task function of mfti-eval."""
    from mfti_lightning.tasks.evaluate import evaluate_task

    return report_errors("mfti-eval", evaluate_task, cfg)


def main() -> float | None:
    """``mfti-eval``: ``shots=8``-style overrides exit 2 with the fix before Hydra parses the command line."""
    validation.exit_on_bad_group_override(sys.argv[1:], "mfti-eval")
    return hydra_main()


if __name__ == "__main__":
    main()
