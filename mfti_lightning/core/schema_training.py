"""The config groups of the training run: the hardware layout (``trainer``, FSDP), the optimizer and training
length (``optim``) and checkpoints (one dataclass per node of ``conf/``; the root is
:mod:`mfti_lightning.core.schema`). No torch."""

from dataclasses import dataclass
from typing import Any, Dict, Optional

from mfti_lightning.core.choices import ACCELERATORS, FSDP_SHARDING, FSDP_STATE_DICT, PRECISIONS, STRATEGIES
from mfti_lightning.core.fields import IGNORED, RUNTIME, TRAINING, config_field


@dataclass
class FsdpConfig:
    activation_checkpointing: bool = config_field(
        False, doc="recompute decoder layers in backward (saves memory, costs about 30% time)"
    )
    sharding_strategy: str = config_field("FULL_SHARD", choices=FSDP_SHARDING, doc="torch FSDP sharding strategy")
    state_dict_type: str = config_field(
        "sharded",
        choices=FSDP_STATE_DICT,
        doc="checkpoint format: sharded (a directory per checkpoint; mfti-export consolidates) | full",
    )


@dataclass
class TrainerConfig:
    accelerator: str = config_field("cpu", choices=ACCELERATORS, role=RUNTIME, doc="Lightning accelerator")
    devices: Any = config_field(1, role=RUNTIME, doc="devices per node: a positive number or a list of device ids")
    num_nodes: int = config_field(1, gt=0, role=RUNTIME, doc="nodes")
    strategy: str = config_field("auto", choices=STRATEGIES, role=RUNTIME, doc="parallelism")
    precision: str = config_field(
        "32-true", choices=PRECISIONS, role=RUNTIME, doc="Lightning precision (-mixed falls back to 32 on CPU)"
    )
    log_every_n_steps: int = config_field(10, gt=0, role=IGNORED, doc="Lightning logging interval")
    fsdp: Optional[Dict[str, Any]] = config_field(
        None, schema=FsdpConfig, optional_key=True, role=RUNTIME, doc="trainer=fsdp settings"
    )


@dataclass
class OptimizerConfig:
    """The known keys of ``optim.optimizer`` (an open node: any torch optimizer and its arguments)."""

    _target_: str = config_field("torch.optim.AdamW", doc="optimizer class")
    _partial_: bool = config_field(True, choices=(True,), doc="must be true: the module binds the parameters")
    lr: float = config_field(
        5e-6, gt=0, varies_with="model", doc="learning rate (paper: 5e-6; each model preset sets its own)"
    )
    weight_decay: float = config_field(0.0, ge=0, doc="weight decay")


@dataclass
class OptimConfig:
    optimizer: Dict[str, Any] = config_field(
        factory=lambda: {
            "_target_": "torch.optim.AdamW", "_partial_": True, "lr": 5.0e-6, "weight_decay": 0.0,
            "betas": [0.9, 0.999],
        },
        schema=OptimizerConfig,
        role=TRAINING,
        doc="built with hydra.utils.instantiate (`_partial_`: the module binds its parameters); Adam(W) as in the paper",
    )  # fmt: skip
    warmup_steps: int = config_field(
        0, ge=0, role=TRAINING, doc="linear warmup steps, then constant (paper: no warmup)"
    )
    global_batch_size: int = config_field(
        80,
        gt=0,
        role=TRAINING,
        doc="sequences per optimizer step over all devices and nodes (paper: 80) = micro_batch_size x accumulation x devices x num_nodes",
    )
    micro_batch_size: int = config_field(
        10, gt=0, role=TRAINING, doc="sequences per device and forward pass; the gradient accumulation is derived"
    )
    max_steps: Optional[int] = config_field(
        2000,
        gt=0,
        role=TRAINING,
        resume=True,
        doc="training length in optimizer steps (paper: 2000); null = train by optim.max_epochs",
    )
    max_epochs: Optional[float] = config_field(
        None,
        gt=0,
        role=TRAINING,
        resume=True,
        doc="training length in passes over the sampled training data; set one of max_steps / max_epochs, the other null",
    )
    gradient_clip_val: Optional[float] = config_field(
        1.0, ge=0, role=TRAINING, doc="gradient norm clipping; null = off"
    )
    gradient_checkpointing: bool = config_field(False, role=TRAINING, doc="recompute activations in backward")


@dataclass
class CheckpointConfig:
    every_n_steps: int = config_field(
        250,
        gt=0,
        role=TRAINING,
        doc="periodic checkpoints in <run dir>/checkpoints/periodic every this many optimizer steps (paper: 250); resume=auto continues from the newest",
    )
    keep: int = config_field(
        2,
        gt=0,
        role=IGNORED,
        doc="newest periodic checkpoints kept (the best one is kept besides, in checkpoints/best)",
    )
    export: bool = config_field(
        True,
        role=IGNORED,
        doc="at the end of training, write the best checkpoint as a Hugging Face directory: <run dir>/hf",
    )
