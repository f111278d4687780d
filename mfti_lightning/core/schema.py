"""The typed schema of the ``mfti-train`` and ``mfti-eval`` configs: their roots, the swept values, and their
registration in Hydra's ConfigStore. No torch here.

Every key of ``conf/`` is declared with its type, its default, a one-line comment, its role and, for enumerated and
numeric keys, its allowed values (:func:`~mfti_lightning.core.fields.config_field`; the allowed values live in
:mod:`~mfti_lightning.core.choices`). The groups are declared by concern: :mod:`~mfti_lightning.core.schema_experiment`
(model, data, directions, template, shots, num_examples), :mod:`~mfti_lightning.core.schema_training` (trainer,
optim, checkpoint), :mod:`~mfti_lightning.core.schema_evaluation` (eval, logger, progress, paths). Two layers use it:

- composition: :func:`register` stores the schema in Hydra's ConfigStore as ``mfti_train_schema`` and
  ``mfti_eval_schema``, first in the defaults lists of ``conf/train.yaml`` / ``conf/eval.yaml``, so a value of the
  wrong type (``optim.max_steps=many``) or a YAML key that the schema lacks fails while Hydra composes, naming the
  key. The root stays open (``cluster:`` and other machine-local keys from ``conf/local``; Hydra's ``hydra``);
  ``trainer`` and ``lang_pairs`` are open for the keys only some options have (``trainer.fsdp``,
  ``lang_pairs.languages`` / ``split``), so the composed configs have exactly the keys of the YAML files (a
  resumed run compares them with its saved training config). Nodes with open-ended content (``optim.optimizer``
  for any torch optimizer, ``data.corpora``, ``logger``, ``trainer.fsdp``) are plain dicts there.
- :mod:`~mfti_lightning.core.validation`: allowed values, ranges, and the known keys of the open nodes, with
  messages that name the key, the bad value and the allowed values (``resume='Auto': allowed values: auto,
  never``). It is the first check of a job (``tasks.checks.check_before_loading``, mfti-eval's job, ``mfti-plan``
  and the SLURM launcher before submitting).
"""

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional

from omegaconf import MISSING, DictConfig, OmegaConf

from mfti_lightning.core.choices import EVAL_SPLITS, RESUME_MODES
from mfti_lightning.core.fields import EVALUATION, IGNORED, TRAINING, config_field, is_dataclass_type, unwrap_optional
from mfti_lightning.core.schema_evaluation import (
    LoggerConfig,
    PathsConfig,
    ProgressConfig,
    StandaloneEvalConfig,
    TrainEvalConfig,
)
from mfti_lightning.core.schema_experiment import (
    DataConfig,
    LangPairsConfig,
    ModelConfig,
    NumExamplesConfig,
    ShotsConfig,
    TemplateConfig,
)
from mfti_lightning.core.schema_training import CheckpointConfig, OptimConfig, TrainerConfig


@dataclass(frozen=True)
class Swept:
    """A value that sweeps vary: its ``name`` (results.json's ``swept``, report columns, W&B tags), its config ``key``
    and its ``label`` in run names and tags (``${...}`` names config keys); ``tagged``: a W&B tag of the run."""

    name: str
    key: str
    label: str
    tagged: bool = True


# ---- roots -----------------------------------------------------------------------------------------------------
@dataclass
class CommonConfig:
    task_name: str = config_field(MISSING, role=IGNORED, doc="train | eval: the first directory level of the outputs")
    seed: int = config_field(
        42, role=TRAINING, doc="seed for model init, data sampling, shuffling and k-shot demonstrations"
    )
    resume: str = config_field(
        "auto",
        choices=RESUME_MODES,
        role=IGNORED,
        doc="auto: skip a completed run, resume an interrupted one from its newest checkpoint (mfti-eval: keep finished directions), else start fresh | never: refuse a run directory that already holds checkpoints or results",
    )
    trust_checkpoint: bool = config_field(
        False,
        role=IGNORED,
        doc="false: every checkpoint read must hold only tensors and plain containers, as mfti-train writes them (torch.load weights_only=True); true: also load one whose pickle names other objects (unpickling it can run arbitrary code: only for a source you trust)",
    )
    sweep_name: str = config_field(
        MISSING,
        role=IGNORED,
        doc="name of the sweep (W&B group, sweep directory); set it for every multirun you may want to re-run",
    )
    run_name: str = config_field(
        MISSING, role=IGNORED, doc="human-readable run name made of the swept values (W&B run name)"
    )
    run_slug: str = config_field(
        MISSING,
        role=IGNORED,
        doc="the deterministic run directory: run_name made directory-safe, the seed, and a short hash of the run's identity (the keys of role training; for mfti-eval also evaluation), so a changed value never reuses another experiment's run directory",
    )
    trainer: TrainerConfig = config_field(factory=TrainerConfig, doc="hardware and parallelism (conf/trainer)")
    model: ModelConfig = config_field(factory=ModelConfig, doc="the model (conf/model)")
    data: DataConfig = config_field(factory=DataConfig, doc="training data and evaluation sets (conf/data)")
    lang_pairs: LangPairsConfig = config_field(factory=LangPairsConfig, doc="directions (conf/lang_pairs)")
    shots: ShotsConfig = config_field(
        factory=ShotsConfig, resume=True, doc="k-shot demonstrations at evaluation (conf/shots)"
    )
    num_examples: NumExamplesConfig = config_field(
        factory=NumExamplesConfig, doc="training pairs per direction (conf/num_examples)"
    )
    template: TemplateConfig = config_field(factory=TemplateConfig, doc="the instruction template (conf/template)")
    logger: Dict[str, Any] = config_field(
        factory=lambda: {"name": "wandb"}, schema=LoggerConfig, role=IGNORED, doc="experiment logger (conf/logger)"
    )
    paths: PathsConfig = config_field(factory=PathsConfig, role=IGNORED, doc="where things go (conf/paths)")
    # keys some configs add at the root, declared for their role (left out of the composed schema)
    hydra: Optional[Dict[str, Any]] = config_field(None, optional_key=True, role=IGNORED, doc="Hydra's own settings")
    cluster: Optional[Dict[str, Any]] = config_field(
        None,
        optional_key=True,
        role=IGNORED,
        doc="machine-local SLURM settings for the hydra/launcher=slurm_* presets (conf/local)",
    )
    debug: Any = config_field(None, optional_key=True, role=IGNORED, doc="notes of a debugging preset")


@dataclass
class TrainConfig(CommonConfig):
    optim: OptimConfig = config_field(factory=OptimConfig, doc="optimizer, batch sizes and training length")
    checkpoint: CheckpointConfig = config_field(
        factory=CheckpointConfig, resume=True, doc="periodic and best checkpoints"
    )
    eval: TrainEvalConfig = config_field(
        factory=TrainEvalConfig, resume=True, doc="validation during training and the final test"
    )
    progress: ProgressConfig = config_field(factory=ProgressConfig, role=IGNORED, doc="training progress output")
    train_directions: Any = config_field(
        None,
        role=EVALUATION,
        doc="ICL runs (num_examples=n0): the training directions to partition the results by (seen / unseen ...): a list [de-en,...] or the run directory of the mFTI run they are compared with; null = no partitions",
    )


@dataclass
class EvalConfig(CommonConfig):
    ckpt_path: Optional[str] = config_field(
        None,
        role=EVALUATION,
        doc="a training checkpoint to evaluate: a Lightning .ckpt (the base model comes from `model`, then its state dict is loaded) or a directory saved with save_pretrained (e.g. by mfti-export); null = evaluate `model` as it is",
    )
    split: str = config_field(
        "devtest",
        choices=EVAL_SPLITS,
        role=EVALUATION,
        doc="FLORES split: devtest (the paper's test set; lang_pairs.test_size sentences from its start; metrics test/...) | dev (lang_pairs.val_size sentences from its end; metrics val/...)",
    )
    train_directions: Any = config_field(
        "auto",
        role=EVALUATION,
        doc="training directions for the partitions: auto = those recorded in the checkpoint's run (results.json), else lang_pairs.train; or a list [de-en,...]; or none",
    )
    eval: StandaloneEvalConfig = config_field(factory=StandaloneEvalConfig, resume=True, doc="generation and scoring")


# The values a sweep varies, in the order of results.json's "swept", the report's columns and the W&B tags: (name,
# config key, label in run names and tags). conf/train.yaml's run_name and run_slug join the labels
# (tests/unit/core/test_keys.py checks that they do).
SWEPT = (
    Swept("model", "model.name", "${model.name}"),
    Swept("lang_pairs", "lang_pairs.name", "${lang_pairs.name}"),
    Swept("template", "template.name", "${template.short}"),
    Swept("shots", "shots.k", "k${shots.k}"),
    Swept("num_examples", "num_examples.n", "n${num_examples.n}"),
    Swept("seed", "seed", "s${seed}", tagged=False),  # a tag per seed would split what the seeds average
)

OMEGACONF_CHECKED_WITH = "2.3.1"  # omegaconf version whose private DictConfig._get_node composed_node uses

# Classes whose composed node accepts keys the schema does not declare (the root: conf/local, hydra).
OPEN_ROOTS = (TrainConfig, EvalConfig)
SCHEMA_NAMES = {"train": ("mfti_train_schema", TrainConfig), "eval": ("mfti_eval_schema", EvalConfig)}


# ---- composition -----------------------------------------------------------------------------------------------
def _has_optional_keys(cls) -> bool:
    return any(f.metadata.get("optional_key") for f in dataclasses.fields(cls))


def composed_node(cls) -> DictConfig:
    """The node Hydra composes into: typed (struct) for a closed dataclass; an open dict of typed children for the
    roots and for groups with optional keys (those keys are left out; :func:`mfti_lightning.core.validation.validate` checks them)."""
    typed = OmegaConf.structured(cls)
    if cls not in OPEN_ROOTS and not _has_optional_keys(cls):
        return typed
    children = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("optional_key"):
            continue
        tp = unwrap_optional(f.type)
        if is_dataclass_type(tp) and _has_optional_keys(tp):
            children[f.name] = composed_node(tp)
        else:
            # the typed child node itself (keeps its type check). OmegaConf has no public accessor for it
            # (masked_copy and item access return untyped values): the one private OmegaConf call of the project,
            # checked against OMEGACONF_CHECKED_WITH; tests/unit/test_library_internals.py fails, naming this, if a
            # leaf of the composed root stops refusing a wrong type.
            children[f.name] = typed._get_node(f.name)
    return OmegaConf.create(children)


_registered = False


def register() -> None:
    """Store the train and eval schemas in Hydra's ConfigStore (idempotent). Call before composing."""
    global _registered
    if _registered:
        return
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for name, cls in SCHEMA_NAMES.values():
        cs.store(name=name, node=composed_node(cls))
    _registered = True
