"""``mfti-train``: a thin Hydra entry point over :func:`mfti_lightning.pipeline.train`.

Only hydra and omegaconf are imported here, so ``mfti-train --help`` and ``--cfg job`` return quickly;
torch, Lightning and transformers are imported when a job actually runs.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from mfti_lightning.config import conf_dir


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from mfti_lightning.pipeline import train

    return train(cfg)


if __name__ == "__main__":
    main()
