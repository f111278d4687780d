"""The few private parts of other libraries the project uses, one owning module each, and where a public API
replaced one. Each test fails loudly, naming the owning module and the version it was checked against, when the
library changes what that module relies on (like tests/unit/model/test_sdpa.py for transformers' XGLM attention)."""

from __future__ import annotations

import pytest

from mfti_lightning.assets import FLORES101_DIR


def _lines(stem: str, n: int) -> list[str]:
    return (FLORES101_DIR / "devtest" / f"{stem}.devtest").read_text(encoding="utf-8").splitlines()[:n]


def test_omegaconf_typed_leaf_nodes_of_the_open_root():
    """core/schema.py's composed_node keeps the root's typed leaf nodes (OmegaConf's private ``_get_node``):
    the root takes keys the schema lacks, and its leaves still refuse a wrong type."""
    from omegaconf.errors import ValidationError

    from mfti_lightning.core import schema

    node = schema.composed_node(schema.TrainConfig)
    node.cluster = {"partition": "gpu"}  # open root: machine-local keys pass
    where = f"mfti_lightning/core/schema.py, checked against omegaconf {schema.OMEGACONF_CHECKED_WITH}"
    assert hasattr(node, "_get_node"), f"DictConfig._get_node is gone: update composed_node ({where})"
    with pytest.raises(ValidationError):
        node.seed = "many"  # an int leaf taken with _get_node
    node.seed = 7
    assert node.seed == 7


@pytest.mark.parametrize("name", ["bleu", "chrf", "ter"])
def test_sacrebleu_sufficient_statistics_sum_to_the_corpus_score(name):
    """track/significance.py sums sacrebleu's private per-sentence statistics over bootstrap resamples: their
    sum must give the corpus score (the contract sacrebleu's own significance module relies on)."""
    import numpy as np

    from mfti_lightning.eval.metrics import metric_for
    from mfti_lightning.track import significance

    refs = _lines("eng", 40)
    hyps = [" ".join(r.split()[::-1][:12]) for r in refs]  # a poor but non-trivial system
    metric = metric_for(name, "en")
    where = f"mfti_lightning/track/significance.py, checked against sacrebleu {significance.SACREBLEU_CHECKED_WITH}"
    try:
        stats = np.array(metric._extract_corpus_statistics(hyps, [refs]), dtype="float32")
        summed = metric._compute_score_from_stats(stats.sum(0)).score
    except (AttributeError, TypeError) as e:
        raise AssertionError(f"sacrebleu's sufficient-statistics methods changed ({e}): update {where}") from e
    assert stats.shape[0] == len(hyps), where
    assert summed == pytest.approx(metric.corpus_score(hyps, [refs]).score, abs=1e-3), where


def test_lightning_wandb_logger_private_attributes(tmp_path):
    """track/wandb_run.py drops ``anonymous`` from WandbLogger's ``_wandb_init`` and ends a forked rank's run
    through ``_experiment``: both must still be what WandbLogger creates its run from / keeps it in."""
    from pytorch_lightning.loggers import WandbLogger

    from mfti_lightning.track import wandb_run

    where = f"mfti_lightning/track/wandb_run.py, checked against pytorch-lightning {wandb_run.LIGHTNING_CHECKED_WITH}"
    logger = WandbLogger(mode="disabled", save_dir=str(tmp_path), project="internals")
    assert isinstance(getattr(logger, "_wandb_init", None), dict), f"WandbLogger._wandb_init is gone: update {where}"
    assert "anonymous" in logger._wandb_init, f"Lightning no longer passes anonymous: drop the pop in {where}"
    assert logger._wandb_init["project"] == "internals", where  # it is the wandb.init arguments
    assert getattr(logger, "_experiment", "gone") is None, f"WandbLogger._experiment changed: update {where}"
    run = logger.experiment
    assert logger._experiment is run, f"WandbLogger no longer keeps its run in _experiment: update {where}"


def test_attached_trainer_is_public_lightning(tiny_model_dir):
    """train/module.py asks Lightning's public ``trainer`` property (which raises when none is attached) instead
    of reading ``LightningModule._trainer``."""
    import pytorch_lightning as pl

    from mfti_lightning.core.template import Template
    from mfti_lightning.train.module import MFTIModule

    t1 = Template(name="t1", prefix="Translation: [<srclang>]: <input> [<tgtlang>]:", paper_id=1)
    module = MFTIModule(model_path=str(tiny_model_dir), template=t1.to_dict(), optimizer=None)
    assert module.attached_trainer is None
    assert module.throughput_report()  # one process without a trainer: no collective
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False)
    module.trainer = trainer
    assert module.attached_trainer is trainer
