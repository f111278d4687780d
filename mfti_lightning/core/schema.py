"""The typed schema of the ``mfti-train`` and ``mfti-eval`` configs, and :func:`validate`. No torch here.

Every key of ``conf/`` is declared here with its type, its default, a one-line comment and, for enumerated and
numeric keys, its allowed values (``field(metadata=...)``: ``choices``, ``gt`` / ``ge``). Two layers use it:

- composition: :func:`register` stores the schema in Hydra's ConfigStore as ``mfti_train_schema`` and
  ``mfti_eval_schema``, first in the defaults lists of ``conf/train.yaml`` / ``conf/eval.yaml``, so a value of the
  wrong type (``optim.max_steps=many``) or a YAML key that the schema lacks fails while Hydra composes, naming the
  key. The root stays open (``cluster:`` and other machine-local keys from ``conf/local``; Hydra's ``hydra``);
  ``trainer`` and ``lang_pairs`` are open for the keys only some options have (``trainer.fsdp``,
  ``lang_pairs.languages`` / ``split``), so the composed configs have exactly the keys of the YAML files (a
  resumed run compares them with its saved training config). Nodes with open-ended content (``optim.optimizer``
  for any torch optimizer, ``data.corpora``, ``logger``, ``trainer.fsdp``) are plain dicts there.
- :func:`validate`: allowed values, ranges, and the known keys of the open nodes, with messages that name the key,
  the bad value and the allowed values (``resume='Auto': allowed values: auto, never``). It is the first check of
  a job (``pipeline.check_before_loading``, mfti-eval's job, ``mfti-plan`` and the SLURM launcher before
  submitting).

Enumerated keys are plain ``str`` (not Enum): the code compares ``cfg.resume == "auto"`` and dumps configs to JSON.
:func:`check_group_overrides` catches ``shots=8`` / ``num_examples=1000`` on a command line before Hydra parses it.
"""

import dataclasses
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union, get_args, get_origin

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mfti_lightning.core.errors import ConfigError
from mfti_lightning.core.families import FAMILIES, check_attention
from mfti_lightning.core.languages import NAME_STYLES

# ---- allowed values (one place; the consuming code is named) ---------------------------------------------------
RESUME_MODES = ("auto", "never")  # pipeline.run_task
ACCELERATORS = ("cpu", "gpu", "cuda", "auto")  # trainer.build_trainer, eval_cli._rank_main
STRATEGIES = ("auto", "ddp", "ddp_fork", "ddp_spawn", "ddp_notebook", "fsdp", "fsdp2")  # trainer.build_strategy
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true", "32", "bf16", "16", "64")
FSDP_SHARDING = ("FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD", "_HYBRID_SHARD_ZERO2")
FSDP_STATE_DICT = ("sharded", "full")
MODEL_DTYPES = ("float32", "fp32", "bfloat16", "bf16", "float16", "fp16")  # modeling.load_model
PEFT_METHODS = (None, "lora")  # modeling.peft_settings
LOSS_ON = ("full", "target")  # datamodule.encode_examples
OVERLONG = ("drop", "truncate_source")  # datamodule.encode_examples
FLORES_LAYOUTS = ("flores101", "flores200")  # corpora.flores_file
HF_LAYOUTS = (None, "flores101", "flores200")  # corpora.read_hf_flores
FLORES_SPLITS = ("dev", "devtest")
DIRECTION_KEYWORDS = ("all", "en_centric", "split")  # directions.resolve_spec (or a list of src-tgt)
LOGGERS = ("wandb", "csv", "tensorboard", "none")  # tracking.make_loggers
WANDB_MODES = ("auto", "online", "offline", "disabled")  # tracking.wandb_mode_reason
WANDB_CONSOLE = ("auto", "off", "wrap", "redirect")
PROGRESS_MODES = ("auto", "rich", "plain", "none")  # progress.choose_mode
EVAL_SPLITS = ("devtest", "dev")  # eval_cli.SPLITS
BLEU_SETTINGS = ("auto", "lang_default", "flores101", "spm", "flores200")  # metrics.resolve_bleu
CORPUS_FORMATS = ("flores", "moses", "wikimatrix", "hf")  # corpora.iter_corpus
EXTRACTION_MODES = ("reference", "clean")  # generation.translate, template.extract
ENGINES = ("hf", "ctranslate2")  # eval.ct2_engine (ctranslate2: pip install 'mfti-lightning[ct2]')
CT2_COMPUTE_TYPES = ("auto", "float32", "int8", "float16", "bfloat16", "int8_float16")  # model.ct2.COMPUTE_TYPES
LID_SCOPES = ("all", "run")  # analysis.LanguageIdentifier: every language lingua knows | the run's and the paper's
LID_ACCURACY = ("high", "low")  # lingua's modes: low = trigrams only (about 0.1 GB and 0.5 s to load for all)
SELECT_MODES = ("reference", "mean")  # train.module / tasks.train: the checkpoint choice (see TrainEvalConfig.select)
OFF_TARGET_RULES = ("reference", "project")  # analysis.halves: the reference's halves (empty = wrong) | project
ATTN_IMPLEMENTATIONS = ("eager", "sdpa")  # modeling.load_model (sdpa: model/xglm_sdpa.py for XGLM)
MODEL_FAMILIES = tuple(FAMILIES)  # core/families.py: LoRA targets, BOS, SDPA per family
LANG_NAME_STYLES = NAME_STYLES  # template.render_prefix, languages.name


def bleu_tokenizers() -> tuple:
    """Allowed ``eval.bleu_tokenize`` values: mfti's settings plus sacrebleu's tokenizers (sacrebleu is torch-free)."""
    from sacrebleu.metrics import BLEU

    return BLEU_SETTINGS + tuple(t for t in sorted(BLEU.TOKENIZERS) if t not in BLEU_SETTINGS)


def opt(default=MISSING, *, factory=None, choices=None, gt=None, ge=None, le=None, schema=None, optional_key=False):
    """A schema field: ``choices`` (a tuple or a function returning one), ``gt``/``ge`` bounds for numbers,
    ``le`` an upper bound, ``schema`` (a dataclass describing the known keys of an open dict node), ``optional_key`` (a key that only
    some config options have: left out of the composed schema, checked when present)."""
    given = (("choices", choices), ("gt", gt), ("ge", ge), ("le", le), ("schema", schema))
    meta = {k: v for k, v in given if v is not None}
    meta["optional_key"] = optional_key
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# ---- groups ----------------------------------------------------------------------------------------------------
@dataclass
class PathsConfig:
    output_root: str = "outputs"  # root of train/ and eval/ run and sweep directories
    cache_dir: str = "~/.cache/mfti-lightning"  # built tiny models, prepared data
    corpora_dir: str = "data/corpora"  # parallel corpora for data=wikimatrix
    output_dir: str = "${hydra:runtime.output_dir}"  # this run's directory (set by Hydra)


@dataclass
class TinyBuildConfig:
    vocab_size: int = opt(4000, gt=0)  # SentencePiece vocabulary of the built tokenizer
    d_model: int = opt(128, gt=0)  # hidden size
    ffn_dim: int = opt(512, gt=0)  # feed-forward size
    num_layers: int = opt(2, gt=0)  # decoder layers
    attention_heads: int = opt(4, gt=0)  # attention heads
    max_position_embeddings: int = opt(512, gt=0)  # longest sequence
    tokenizer_lines_per_language: int = opt(400, gt=0)  # FLORES lines per language to train the tokenizer on
    seed: int = 0  # seed of the random init


@dataclass
class LoraConfig:
    r: int = opt(16, gt=0)  # LoRA rank
    alpha: int = opt(32, gt=0)  # LoRA scaling numerator
    dropout: float = opt(0.05, ge=0)  # dropout on the LoRA path
    target_modules: List[str] = opt(factory=list)  # wrapped layers; [] = the family's (core/families.py)


@dataclass
class ShapeConfig:
    num_layers: int = opt(2, gt=0)  # decoder layers (FLOPs / GPU-hour estimates without loading the model)
    d_model: int = opt(128, gt=0)  # hidden size
    attention_heads: int = opt(4, gt=0)  # attention heads
    ffn_dim: int = opt(512, gt=0)  # feed-forward size
    vocab_size: int = opt(4008, gt=0)  # vocabulary size
    kv_heads: Optional[int] = opt(None, gt=0)  # key/value heads (grouped-query attention); null = attention_heads
    ffn_matrices: int = opt(2, gt=0)  # weight matrices of the feed-forward block: 2 (GELU MLP), 3 (SwiGLU)


@dataclass
class ModelConfig:
    name: str = "tiny"  # short name used in run names
    name_or_path: str = MISSING  # hub name or local directory for from_pretrained
    family: str = opt("xglm", choices=MODEL_FAMILIES)  # architecture family: LoRA targets, BOS, SDPA (families.py)
    build: Optional[TinyBuildConfig] = None  # how to build a tiny model when name_or_path does not exist (tiny only)
    dtype: str = opt("float32", choices=MODEL_DTYPES)  # dtype of the loaded weights
    attn_implementation: str = opt("sdpa", choices=ATTN_IMPLEMENTATIONS)  # attention kernel
    peft: Optional[str] = opt(None, choices=PEFT_METHODS)  # optional parameter-efficient finetuning
    lora: LoraConfig = opt(factory=LoraConfig)  # LoRA settings (model.peft=lora)
    shape: Optional[ShapeConfig] = None  # architecture numbers for MFU and GPU-hour estimates


@dataclass
class LangSplitConfig:
    seen_both: List[str] = opt(factory=list)  # seen as source and as target
    src_only: List[str] = opt(factory=list)  # seen only as source
    tgt_only: List[str] = opt(factory=list)  # seen only as target
    unseen: List[str] = opt(factory=list)  # never in the instruction data


@dataclass
class LangPairsConfig:
    name: str = "demo"  # short name used in run names
    languages: Optional[List[str]] = opt(None, optional_key=True)  # languages for the all / en_centric keywords
    split: Optional[LangSplitConfig] = opt(None, optional_key=True)  # the unseen experiment's language split
    train: Any = MISSING  # training directions: a list [de-en, ...] or all | en_centric | split
    eval: Any = None  # evaluation directions: a list, a keyword, or null = the training directions
    val_size: Optional[int] = opt(None, ge=0)  # dev sentences per direction for validation; null = all
    test_size: Optional[int] = opt(None, ge=0)  # devtest sentences per direction for the test; null = all


@dataclass
class TemplateConfig:
    name: str = MISSING  # template name (t1_translation_src_tgt, ...)
    paper_id: Optional[int] = None  # number in the paper
    short: str = ""  # short label for run names (t1)
    prefix: str = MISSING  # the prompt with <srclang>, <tgtlang>, <input>
    shot_separator: str = " "  # between k-shot demonstrations
    target_separator: str = " "  # between the prefix and the target
    stop_markers: List[str] = opt(factory=list)  # text that starts a new turn during generation; [] = derived
    lang_names: str = opt("english", choices=LANG_NAME_STYLES)  # <srclang>/<tgtlang>: English (paper) | native | code
    factor: str = ""  # what this template varies against its base (sweeps/template_space.yaml; reports)


@dataclass
class ShotsConfig:
    k: int = opt(0, ge=0)  # in-context demonstrations before each test prompt
    pool: str = opt("dev", choices=FLORES_SPLITS)  # FLORES split the demonstrations come from
    seed: int = 42  # seed of the demonstration draw (default ${seed})


@dataclass
class NumExamplesConfig:
    n: int = opt(250, ge=0)  # training pairs per direction (0 = no finetuning)
    allow_fewer: bool = False  # fewer pairs than n after filtering: warning instead of error


@dataclass
class CorpusConfig:
    format: str = opt(MISSING, choices=CORPUS_FORMATS)  # corpus reader
    root: Optional[str] = None  # flores: directory of a FLORES copy (null = shipped)
    split: str = "dev"  # flores / hf: split to read
    layout: Optional[str] = opt(None, choices=HF_LAYOUTS)  # flores / hf: file stems / config names
    path: Optional[str] = None  # moses / wikimatrix: path with {pair}, {src}, {tgt}
    name: Optional[str] = None  # hf: dataset name on the hub
    min_score: Optional[float] = None  # wikimatrix: LASER margin threshold


@dataclass
class FiltersConfig:
    max_len_ratio: Optional[float] = opt(3.0, ge=0)  # drop pairs whose length ratio exceeds this (0/null = off)
    max_tokens: Optional[int] = opt(200, ge=0)  # drop pairs with a longer side (0/null = off)
    dedup: bool = True  # drop duplicate pairs
    exclude_eval: bool = True  # drop pairs that occur in the validation or test sets


@dataclass
class NoiseConfig:
    misaligned: float = opt(0.0, ge=0, le=1)  # fraction of training targets replaced by another line's (seeded)


@dataclass
class DataConfig:
    corpora: List[Any] = opt(factory=list, schema=CorpusConfig)  # where training pairs come from
    flores_root: Optional[str] = None  # evaluation sets: a FLORES directory; null = shipped copy
    flores_layout: str = opt("flores101", choices=FLORES_LAYOUTS)  # file stems of the evaluation sets
    max_length: int = opt(256, gt=0)  # tokens per training example
    loss_on: str = opt("full", choices=LOSS_ON)  # loss on prompt and target, or on the target only
    overlong: str = opt("drop", choices=OVERLONG)  # what to do with an example longer than max_length
    filters: FiltersConfig = opt(factory=FiltersConfig)  # pair filters
    noise: NoiseConfig = opt(factory=NoiseConfig)  # controlled corruption of the sampled pairs (data quality)
    length_group_chunk: int = opt(64, gt=0)  # batches sorted by length inside chunks of this many
    num_workers: int = opt(0, ge=0)  # DataLoader workers
    cache_dir: Optional[str] = None  # prepared data cache; null = no cache


@dataclass
class FsdpConfig:
    activation_checkpointing: bool = False  # recompute decoder layers in backward
    sharding_strategy: str = opt("FULL_SHARD", choices=FSDP_SHARDING)  # torch FSDP sharding strategy
    state_dict_type: str = opt("sharded", choices=FSDP_STATE_DICT)  # checkpoint format


@dataclass
class TrainerConfig:
    accelerator: str = opt("cpu", choices=ACCELERATORS)  # Lightning accelerator
    devices: Any = 1  # devices per node: a positive number or a list of device ids
    num_nodes: int = opt(1, gt=0)  # nodes
    strategy: str = opt("auto", choices=STRATEGIES)  # parallelism
    precision: str = opt("32-true", choices=PRECISIONS)  # Lightning precision (-mixed falls back to 32 on CPU)
    log_every_n_steps: int = opt(10, gt=0)  # Lightning logging interval
    fsdp: Optional[Dict[str, Any]] = opt(None, schema=FsdpConfig, optional_key=True)  # trainer=fsdp settings


@dataclass
class LoggerConfig:
    """The known keys of ``logger`` (an open node: each logger has its own keys)."""

    name: str = opt("wandb", choices=LOGGERS)  # experiment logger
    project: str = "mfti-lightning"  # wandb: project
    entity: Optional[str] = None  # wandb: user or team
    mode: str = opt("auto", choices=WANDB_MODES)  # wandb: online / offline decision
    network_check_timeout: float = opt(3.0, ge=0)  # wandb: seconds for the server check (0 = skip)
    init_timeout: float = opt(60.0, gt=0)  # wandb: seconds wandb.init may take online
    console: str = opt("auto", choices=WANDB_CONSOLE)  # wandb: console capture
    log_samples: int = opt(3, ge=0)  # wandb: sample translations per direction


@dataclass
class OptimizerConfig:
    """The known keys of ``optim.optimizer`` (an open node: any torch optimizer and its arguments)."""

    _target_: str = "torch.optim.AdamW"  # optimizer class
    _partial_: bool = opt(True, choices=(True,))  # must be true: the module binds the parameters
    lr: float = opt(5e-6, gt=0)  # learning rate
    weight_decay: float = opt(0.0, ge=0)  # weight decay


@dataclass
class OptimConfig:
    optimizer: Dict[str, Any] = opt(
        factory=lambda: {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 5e-6}, schema=OptimizerConfig
    )  # hydra.utils.instantiate
    warmup_steps: int = opt(0, ge=0)  # linear warmup steps
    global_batch_size: int = opt(80, gt=0)  # sequences per optimizer step over all devices and nodes
    micro_batch_size: int = opt(10, gt=0)  # sequences per device and forward pass
    max_steps: Optional[int] = opt(2000, gt=0)  # optimizer steps; null = train by optim.max_epochs
    max_epochs: Optional[float] = opt(None, gt=0)  # passes over the training data (null = by max_steps); one of the two
    gradient_clip_val: Optional[float] = opt(1.0, ge=0)  # gradient norm clipping; null = off
    gradient_checkpointing: bool = False  # recompute activations in backward


@dataclass
class CheckpointConfig:
    every_n_steps: int = opt(250, gt=0)  # periodic checkpoint interval (optimizer steps)
    keep: int = opt(2, gt=0)  # newest periodic checkpoints kept
    export: bool = True  # write the best checkpoint as a Hugging Face directory


@dataclass
class TrainEvalConfig:
    val_every_n_steps: int = opt(250, gt=0)  # validation interval (optimizer steps)
    val_num_beams: int = opt(1, gt=0)  # beams for validation
    num_beams: int = opt(4, gt=0)  # beams for the final test
    max_new_tokens: int = opt(150, gt=0)  # generated tokens per sentence
    batch_tokens: Any = "auto"  # token budget of a generation batch: a number > 0, or auto (eval.budget)
    engine: str = opt("hf", choices=ENGINES)  # decoder of the final test / mfti-eval: hf | ctranslate2
    ct2_compute_type: str = opt("auto", choices=CT2_COMPUTE_TYPES)  # auto: float32 on CPU, bfloat16 on CUDA
    bleu_tokenize: str = opt("auto", choices=bleu_tokenizers)  # sacrebleu tokenizer for BLEU
    extraction: str = opt("clean", choices=EXTRACTION_MODES)  # hypothesis: reference (up to EOS) | clean (cut)
    lid_languages: str = opt("all", choices=LID_SCOPES)  # off-target language ID over all lingua languages | run's
    lid_accuracy: str = opt("low", choices=LID_ACCURACY)  # lingua mode: high (1.3 GB for all languages) | low
    off_target_rule: str = opt("project", choices=OFF_TARGET_RULES)  # reference: the reference's halves (empty = "en")
    select: str = opt("mean", choices=SELECT_MODES)  # checkpoint choice: reference (beam, first dev, pooled) | mean
    monitor: Optional[str] = None  # metric that picks the best checkpoint; null = the one eval.select names
    score_before_training: bool = True  # also score the model before finetuning


@dataclass
class EvalEvalConfig(TrainEvalConfig):
    max_prompt_tokens: Optional[int] = opt(None, gt=0)  # keep only the last N prompt tokens; null = all
    error_analysis: bool = True  # label every translation with the paper's error taxonomy
    comet_model: Optional[str] = None  # COMET model name; null = no COMET
    score_before_training: bool = False  # unused by mfti-eval


@dataclass
class ProgressConfig:
    mode: str = opt("auto", choices=PROGRESS_MODES)  # rich bar in a terminal, plain lines otherwise
    every_n_steps: int = opt(50, ge=0)  # plain lines: one every n optimizer steps (0 = time only)
    every_s: float = opt(60.0, ge=0)  # ... or every this many seconds


# ---- roots -----------------------------------------------------------------------------------------------------
@dataclass
class CommonConfig:
    task_name: str = MISSING  # train | eval: the first directory level of the outputs
    seed: int = 42  # seed for init, sampling, shuffling, demonstrations
    resume: str = opt("auto", choices=RESUME_MODES)  # reuse of an existing run directory
    trust_checkpoint: bool = False  # load checkpoints that need more than plain types (unpickling may run code)
    sweep_name: str = MISSING  # W&B group, sweep directory
    run_name: str = MISSING  # human-readable run name
    run_slug: str = MISSING  # directory-safe run name (the run directory)
    trainer: TrainerConfig = opt(factory=TrainerConfig)  # hardware and parallelism
    model: ModelConfig = opt(factory=ModelConfig)  # the model
    data: DataConfig = opt(factory=DataConfig)  # training data and evaluation sets
    lang_pairs: LangPairsConfig = opt(factory=LangPairsConfig)  # directions
    shots: ShotsConfig = opt(factory=ShotsConfig)  # k-shot demonstrations
    num_examples: NumExamplesConfig = opt(factory=NumExamplesConfig)  # training pairs per direction
    template: TemplateConfig = opt(factory=TemplateConfig)  # the instruction template
    logger: Dict[str, Any] = opt(factory=lambda: {"name": "wandb"}, schema=LoggerConfig)  # experiment logger
    paths: PathsConfig = opt(factory=PathsConfig)  # where things go


@dataclass
class TrainConfig(CommonConfig):
    optim: OptimConfig = opt(factory=OptimConfig)  # optimizer and batch sizes
    checkpoint: CheckpointConfig = opt(factory=CheckpointConfig)  # periodic and best checkpoints
    eval: TrainEvalConfig = opt(factory=TrainEvalConfig)  # validation and final test
    progress: ProgressConfig = opt(factory=ProgressConfig)  # training progress output
    train_directions: Any = None  # ICL runs (n0): partition by these training directions (a list or an mFTI run dir)


@dataclass
class EvalConfig(CommonConfig):
    ckpt_path: Optional[str] = None  # a .ckpt or a Hugging Face directory; null = evaluate `model` as it is
    split: str = opt("devtest", choices=EVAL_SPLITS)  # FLORES split
    train_directions: Any = "auto"  # directions for the partitions: auto | none | a list
    eval: EvalEvalConfig = opt(factory=EvalEvalConfig)  # generation and scoring


OMEGACONF_CHECKED_WITH = "2.3.1"  # omegaconf version whose private DictConfig._get_node composed_node uses

# Classes whose composed node accepts keys the schema does not declare (the root: conf/local, hydra).
OPEN_ROOTS = (TrainConfig, EvalConfig)
SCHEMA_NAMES = {"train": ("mfti_train_schema", TrainConfig), "eval": ("mfti_eval_schema", EvalConfig)}


# ---- composition -----------------------------------------------------------------------------------------------
def _is_dataclass_type(tp) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _unwrap_optional(tp):
    if get_origin(tp) is Union:
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else Any
    return tp


def _has_optional_keys(cls) -> bool:
    return any(f.metadata.get("optional_key") for f in dataclasses.fields(cls))


def composed_node(cls) -> DictConfig:
    """The node Hydra composes into: typed (struct) for a closed dataclass; an open dict of typed children for the
    roots and for groups with optional keys (those keys are left out; :func:`validate` checks them)."""
    typed = OmegaConf.structured(cls)
    if cls not in OPEN_ROOTS and not _has_optional_keys(cls):
        return typed
    children = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("optional_key"):
            continue
        tp = _unwrap_optional(f.type)
        if _is_dataclass_type(tp) and _has_optional_keys(tp):
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


# ---- validation ------------------------------------------------------------------------------------------------
def _fmt(v) -> str:
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def _allowed(f: dataclasses.Field) -> str:
    """The allowed values of a field, in words (``auto, never``; ``an integer > 0``; ``true, false``)."""
    meta, tp = f.metadata, _unwrap_optional(f.type)
    choices = meta.get("choices")
    if choices is not None:
        choices = choices() if callable(choices) else choices
        return ", ".join(_fmt(c) for c in choices)
    if tp is bool:
        return "true, false"
    if tp in (int, float):
        kind = "an integer" if tp is int else "a number"
        bound = f" > {meta['gt']}" if "gt" in meta else f" >= {meta['ge']}" if "ge" in meta else ""
        bound += f" and <= {meta['le']}" if "le" in meta else ""
        return kind + bound + (" (or null)" if tp is not f.type else "")
    return "a string" if tp is str else "any value"


def _value_ok(value, f: dataclasses.Field) -> bool:
    meta, tp = f.metadata, _unwrap_optional(f.type)
    choices = meta.get("choices")
    if choices is not None:
        return value in (choices() if callable(choices) else choices)
    if value is None:
        return tp is not f.type  # Optional[...]
    if tp is bool:
        return isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, int if tp is int else (int, float)):
            return False
        return (
            ("gt" not in meta or value > meta["gt"])
            and ("ge" not in meta or value >= meta["ge"])
            and ("le" not in meta or value <= meta["le"])
        )
    return True


def _check_value(key: str, value, f: dataclasses.Field) -> str | None:
    """``key=value: allowed values: ...`` when the schema refuses ``value``, else None."""
    if _value_ok(value, f):
        return None
    return f"{key}={value!r}: allowed values: {_allowed(f)}"


def _needs_value(f: dataclasses.Field) -> bool:
    tp = _unwrap_optional(f.type)
    return bool(
        f.metadata.get("choices") is not None
        or {"gt", "ge", "le", "schema"} & set(f.metadata)
        or tp in (int, float, bool)
        or _is_dataclass_type(tp)
    )


def _walk(cls, node, prefix: str, problems: list, extra_keys_ok: bool) -> None:
    known = {f.name: f for f in dataclasses.fields(cls)}
    if not extra_keys_ok:
        for k in node.keys():
            if k not in known:
                problems.append(f"{prefix}{k}: unknown key; known keys: {', '.join(known)}")
    for name, f in known.items():
        if name not in node or not _needs_value(f):
            continue
        key = prefix + name
        try:
            value = node[name]
        except OmegaConfBaseException as e:
            problems.append(f"{key}: cannot be resolved ({type(e).__name__}: {str(e).splitlines()[0]})")
            continue
        tp = _unwrap_optional(f.type)
        sub = f.metadata.get("schema")
        if sub is not None and value is not None:
            items = list(enumerate(value)) if isinstance(value, (ListConfig, list)) else [(None, value)]
            for i, item in items:
                where = key if i is None else f"{key}[{i}]"
                if not isinstance(item, (DictConfig, dict)):
                    problems.append(f"{where}={item!r}: must be a mapping of {', '.join(_field_names(sub))}")
                    continue
                _walk(
                    sub,
                    item if isinstance(item, DictConfig) else OmegaConf.create(item),
                    f"{where}.",
                    problems,
                    extra_keys_ok=True,
                )
            continue
        if _is_dataclass_type(tp):
            if value is not None:
                _walk(tp, value, f"{key}.", problems, extra_keys_ok=False)
            continue
        problem = _check_value(key, value, f)
        if problem:
            problems.append(problem)


def _field_names(cls) -> list:
    return [f.name for f in dataclasses.fields(cls)]


def _check_devices(cfg, problems: list) -> None:
    devices = OmegaConf.select(cfg, "trainer.devices")
    ok = (
        (isinstance(devices, int) and not isinstance(devices, bool) and devices > 0)
        or (isinstance(devices, str) and devices.isdigit() and int(devices) > 0)
        or (isinstance(devices, (list, ListConfig)) and len(devices) > 0)
    )
    if not ok:
        problems.append(
            f"trainer.devices={devices!r}: allowed values: a number of devices per node > 0, or a list of device ids"
        )


def _check_batch_tokens(cfg, problems: list) -> None:
    value = OmegaConf.select(cfg, "eval.batch_tokens")
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return
    problems.append(
        f"eval.batch_tokens={value!r}: allowed values: auto (the largest budget that fits the accelerator's free "
        "memory; the fixed 4096 on a CPU) or an integer > 0"
    )


def _check_directions(cfg, problems: list) -> None:
    for key in ("train", "eval"):
        spec = OmegaConf.select(cfg, f"lang_pairs.{key}", throw_on_missing=False)
        if isinstance(spec, str) and spec != "???" and spec not in DIRECTION_KEYWORDS:
            problems.append(
                f"lang_pairs.{key}={spec!r}: allowed values: a list like [de-en,en-fr], or "
                f"{', '.join(DIRECTION_KEYWORDS)}"
            )


def schema_of(cfg):
    """``EvalConfig`` for an mfti-eval config (it has ``ckpt_path``), else ``TrainConfig``."""
    return EvalConfig if "ckpt_path" in cfg else TrainConfig


def problems(cfg, keys: tuple | None = None) -> list[str]:
    """Every value of ``cfg`` that the schema refuses, most relevant first (``keys``: only these root keys)."""
    cls = schema_of(cfg)
    found: list[str] = []
    if keys is not None:
        fields_ = {f.name: f for f in dataclasses.fields(cls)}
        for k in keys:
            if k in cfg and k in fields_:
                p = _check_value(k, cfg[k], fields_[k])
                if p:
                    found.append(p)
        return found
    _walk(cls, cfg, "", found, extra_keys_ok=True)
    if "trainer" in cfg:
        _check_devices(cfg, found)
    if "lang_pairs" in cfg:
        _check_directions(cfg, found)
    if "model" in cfg and not found:
        try:  # a valid family and attention kernel, but not together (BLOOM has no SDPA)
            check_attention(cfg.model.family, cfg.model.attn_implementation)
        except ConfigError as e:
            found.append(str(e))
    if "eval" in cfg:
        _check_batch_tokens(cfg, found)
    return found


def validate(cfg, keys: tuple | None = None) -> None:
    """Raise :class:`ConfigError` for the first value the schema refuses (the others are listed after it).
    Torch-free and fast: run before any data, model or GPU is touched."""
    found = problems(cfg, keys)
    if not found:
        return
    more = f"\n(also: {'; '.join(found[1:])})" if len(found) > 1 else ""
    raise ConfigError(found[0] + more)


# ---- command lines ---------------------------------------------------------------------------------------------
INT_GROUPS = {"shots": "k", "num_examples": "n"}  # group -> its number key; options are named <key><number>


def check_group_overrides(overrides: list[str]) -> None:
    """``shots=8`` / ``num_examples=1000`` (a number where a config group option is expected): raise
    :class:`ConfigError` naming ``shots=k8`` and ``shots.k=8``, before Hydra's own less helpful error."""
    from mfti_lightning.core.config import conf_dir

    for ov in overrides:
        m = re.fullmatch(r"(\+{0,2})(shots|num_examples)=(\d+(?:,\d+)*)", ov.strip())
        if not m:
            continue
        group, numbers = m.group(2), m.group(3).split(",")
        key = INT_GROUPS[group]
        options = sorted((p.stem for p in (conf_dir() / group).glob("*.yaml")), key=lambda s: int(s[1:]))
        presets = [f"{key}{n}" for n in numbers]
        hint = (
            f"{group}={','.join(presets)} (the preset{'s' if len(presets) > 1 else ''}), or "
            if all(p in options for p in presets)
            else ""
        )
        raise ConfigError(
            f"{ov}: {group} is a config group and its options are named {', '.join(options)}, not numbers. "
            f"Use {hint}{group}.{key}={','.join(numbers)} (any number)."
        )


def exit_on_bad_group_override(argv: list[str], prog: str) -> None:
    """For the Hydra entry points: :func:`check_group_overrides` on ``argv``; print and exit 2 on a problem."""
    try:
        check_group_overrides(list(argv))
    except ConfigError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        raise SystemExit(2) from None
