"""The torch-free checks of a training job, run by the job itself before it looks at its run directory and by the
SLURM launcher and ``mfti-plan`` on every job of a sweep before anything is submitted."""

from __future__ import annotations

from omegaconf import DictConfig

from mfti_lightning.core.config import BatchPlan, training_length
from mfti_lightning.core.errors import ConfigError
from mfti_lightning.core.template import from_config as template_from_config
from mfti_lightning.core.validation import validate
from mfti_lightning.data.prepare import check_directions, check_languages
from mfti_lightning.tasks.inputs import require_inputs


def check_engine(cfg: DictConfig) -> None:
    """``eval.engine=ctranslate2``: the package is installed and ``eval.ct2_compute_type`` fits the accelerator
    (ConfigError naming ``pip install 'mfti-lightning[ct2]'`` / the allowed types), before any model is loaded."""
    from omegaconf import OmegaConf

    if OmegaConf.select(cfg, "eval.engine") != "ctranslate2":
        return
    from mfti_lightning.model.ct2_conversion import require_ctranslate2, resolve_compute_type

    require_ctranslate2()
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator") or "auto")
    if accelerator != "auto":  # auto: checked once the device is known
        resolve_compute_type(str(cfg.eval.ct2_compute_type), "cuda" if accelerator in ("gpu", "cuda") else "cpu")


def check_before_loading(cfg: DictConfig):
    """Torch-free checks of a training job, most relevant first: types and allowed values (core.validation),
    strategy vs accelerator, languages, template, batch math, and every input it reads (mfti_lightning.tasks.inputs).
    Run by the job itself (:func:`run_task`, before it looks at the run directory) and, for sweeps, by the launcher
    and mfti-plan before anything is submitted (sweep.check_job). Returns ``(template, batch math)``."""
    validate(cfg)
    if cfg.trainer.strategy == "fsdp" and cfg.trainer.accelerator == "cpu":
        raise ConfigError(
            "trainer=fsdp needs GPUs (Lightning's FSDPStrategy refuses CPUs). On CPU use "
            "trainer=fsdp2 trainer.accelerator=cpu, or run on a GPU node."
        )
    check_engine(cfg)
    check_languages(cfg)
    check_directions(cfg)  # an empty lang_pairs.train with num_examples.n > 0, nothing to evaluate
    template = template_from_config(cfg.template)
    batches = BatchPlan.from_config(cfg)
    training_length(cfg)  # optim.max_steps or optim.max_epochs, not both
    require_inputs(
        cfg
    )  # corpora, FLORES files, model, SPM model: every missing one at once (mfti_lightning.tasks.inputs)
    return template, batches
