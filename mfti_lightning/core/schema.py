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
LOGGERS = ("wandb", "csv", "tensorboard", "none")  # loggers.make_loggers
WANDB_MODES = ("auto", "online", "offline", "disabled")  # wandb_mode.wandb_mode_reason
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


# ---- key roles: what a change of the key changes (core/keys.py derives identity, resume checks, report, tags) ----
TRAINING = "training"  # the trained model: hashed into run_slug; a changed value is another run directory
EVALUATION = "evaluation"  # only the final evaluation: a completed run re-evaluates its best checkpoint
RUNTIME = "runtime"  # the hardware layout: not hashed, but a run directory is never reused under another one
IGNORED = "ignored"  # never changes a result (names, paths, logging, progress, workers, caches)
ROLES = (TRAINING, EVALUATION, RUNTIME, IGNORED)


def opt(
    default=MISSING,
    *,
    doc: str,
    role: str | None = None,
    resume: bool | None = None,
    factory=None,
    choices=None,
    gt=None,
    ge=None,
    le=None,
    schema=None,
    optional_key=False,
    varies_with: str | None = None,
):
    """A schema field and its documentation (``doc``: what ``mfti-train --help`` and the docs show).

    ``role`` (:data:`ROLES`): what changing the key changes; a field without one takes its enclosing field's (keys
    inside an open node, e.g. ``optim.optimizer.betas``, take the node's). ``resume``: true when a training resumed
    from a checkpoint may run with another value (the weights so far do not depend on it); inherited like
    ``role``, false at the root. ``choices`` (a tuple or a function returning one), ``gt``/``ge``/``le`` bounds
    for numbers, ``schema`` (a dataclass describing the known keys of an open dict node), ``optional_key`` (a key
    that only some config options have: left out of the composed schema, checked when present), ``varies_with``
    (the swept group whose options set this key, e.g. each model preset its learning rate: the report does not
    count it as an unswept difference)."""
    given = (
        ("choices", choices), ("gt", gt), ("ge", ge), ("le", le), ("schema", schema), ("role", role),
        ("resume", resume), ("varies_with", varies_with),
    )  # fmt: skip
    meta = {k: v for k, v in given if v is not None}
    meta["optional_key"] = optional_key
    meta["doc"] = doc
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Swept:
    """A value that sweeps vary: its ``name`` (results.json's ``swept``, report columns, W&B tags), its config ``key``
    and its ``label`` in run names and tags (``${...}`` names config keys); ``tagged``: a W&B tag of the run."""

    name: str
    key: str
    label: str
    tagged: bool = True


# ---- groups ----------------------------------------------------------------------------------------------------
@dataclass
class PathsConfig:
    output_root: str = opt(
        "outputs",
        doc="root of the train/ and eval/ run and sweep directories (conf/paths: $MFTI_OUTPUT_ROOT, else outputs)",
    )
    cache_dir: str = opt(
        "~/.cache/mfti-lightning",
        doc="built tiny models and prepared data, shared by every run on this machine (conf/paths: $MFTI_CACHE_DIR)",
    )
    corpora_dir: str = opt(
        "data/corpora",
        doc="parallel corpora (WikiMatrix, MultiCCAligned, ...) for data=wikimatrix (conf/paths: $MFTI_CORPORA_DIR)",
    )
    output_dir: str = opt("${hydra:runtime.output_dir}", doc="this run's directory (set by Hydra)")


@dataclass
class TinyBuildConfig:
    vocab_size: int = opt(4000, gt=0, doc="SentencePiece vocabulary of the built tokenizer")
    d_model: int = opt(128, gt=0, doc="hidden size")
    ffn_dim: int = opt(512, gt=0, doc="feed-forward size")
    num_layers: int = opt(2, gt=0, doc="decoder layers")
    attention_heads: int = opt(4, gt=0, doc="attention heads")
    max_position_embeddings: int = opt(512, gt=0, doc="longest sequence")
    tokenizer_lines_per_language: int = opt(400, gt=0, doc="FLORES lines per language to train the tokenizer on")
    seed: int = opt(0, doc="seed of the random init")


@dataclass
class LoraConfig:
    r: int = opt(16, gt=0, doc="LoRA rank")
    alpha: int = opt(32, gt=0, doc="LoRA scaling numerator")
    dropout: float = opt(0.05, ge=0, doc="dropout on the LoRA path")
    target_modules: List[str] = opt(factory=list, doc="wrapped layers; [] = the family's (core/families.py)")


@dataclass
class ShapeConfig:
    num_layers: int = opt(2, gt=0, doc="decoder layers (FLOPs / GPU-hour estimates without loading the model)")
    d_model: int = opt(128, gt=0, doc="hidden size")
    attention_heads: int = opt(4, gt=0, doc="attention heads")
    ffn_dim: int = opt(512, gt=0, doc="feed-forward size")
    vocab_size: int = opt(4008, gt=0, doc="vocabulary size")
    kv_heads: Optional[int] = opt(None, gt=0, doc="key/value heads (grouped-query attention); null = attention_heads")
    ffn_matrices: int = opt(2, gt=0, doc="weight matrices of the feed-forward block: 2 (GELU MLP), 3 (SwiGLU)")


@dataclass
class ModelConfig:
    name: str = opt("tiny", role=TRAINING, doc="short name used in run names")
    name_or_path: str = opt(MISSING, role=TRAINING, doc="hub name or local directory for from_pretrained")
    family: str = opt(
        "xglm",
        choices=MODEL_FAMILIES,
        role=TRAINING,
        doc="architecture family: LoRA targets, BOS, SDPA (core/families.py)",
    )
    build: Optional[TinyBuildConfig] = opt(
        None, role=TRAINING, doc="how to build a tiny model when name_or_path does not exist yet (tiny models only)"
    )
    dtype: str = opt("float32", choices=MODEL_DTYPES, role=TRAINING, doc="dtype of the loaded weights")
    attn_implementation: str = opt("sdpa", choices=ATTN_IMPLEMENTATIONS, role=TRAINING, doc="attention kernel")
    peft: Optional[str] = opt(
        None,
        choices=PEFT_METHODS,
        role=TRAINING,
        doc="parameter-efficient finetuning: null | lora (pip install 'mfti-lightning[lora]'; merged on export)",
    )
    lora: LoraConfig = opt(factory=LoraConfig, role=TRAINING, doc="LoRA settings (model.peft=lora)")
    shape: Optional[ShapeConfig] = opt(
        None, role=IGNORED, doc="architecture numbers for FLOPs/MFU and GPU-hour estimates without loading the model"
    )


@dataclass
class LangSplitConfig:
    seen_both: List[str] = opt(factory=list, doc="seen as source and as target")
    src_only: List[str] = opt(factory=list, doc="seen only as source")
    tgt_only: List[str] = opt(factory=list, doc="seen only as target")
    unseen: List[str] = opt(factory=list, doc="never in the instruction data")


@dataclass
class LangPairsConfig:
    name: str = opt("demo", role=TRAINING, doc="short name used in run names")
    languages: Optional[List[str]] = opt(
        None, optional_key=True, role=TRAINING, doc="languages for the all / en_centric keywords"
    )
    split: Optional[LangSplitConfig] = opt(
        None,
        optional_key=True,
        role=TRAINING,
        doc="the unseen experiment's language split: training directions are every (src, tgt) with src in seen_both+src_only and tgt in seen_both+tgt_only",
    )
    train: Any = opt(MISSING, role=TRAINING, doc="training directions: a list [de-en, ...] or all | en_centric | split")
    eval: Any = opt(
        None,
        role=EVALUATION,
        resume=True,
        doc="evaluation directions: a list, a keyword, or null = the training directions",
    )
    val_size: Optional[int] = opt(
        None,
        ge=0,
        role=TRAINING,
        resume=True,
        doc="FLORES dev sentences per direction for validation during training (from the end of dev); null = all",
    )
    test_size: Optional[int] = opt(
        None,
        ge=0,
        role=EVALUATION,
        resume=True,
        doc="FLORES devtest sentences per direction for the final test (from its start); null = all",
    )


@dataclass
class TemplateConfig:
    name: str = opt(MISSING, role=TRAINING, doc="template name (t1_translation_src_tgt, ...)")
    paper_id: Optional[int] = opt(None, role=TRAINING, doc="number in the paper")
    short: str = opt("", role=TRAINING, doc="short label for run names (t1)")
    prefix: str = opt(
        MISSING,
        role=TRAINING,
        doc="the prompt with <srclang>, <tgtlang>, <input>; training text = prefix + target_separator + target + EOS",
    )
    shot_separator: str = opt(" ", role=TRAINING, doc="between k-shot demonstrations")
    target_separator: str = opt(" ", role=TRAINING, doc="between the prefix and the target")
    stop_markers: List[str] = opt(
        factory=list,
        role=TRAINING,
        doc="text that starts a new template turn during generation; [] = derived from the prefix",
    )
    lang_names: str = opt(
        "english",
        choices=LANG_NAME_STYLES,
        role=TRAINING,
        doc="<srclang>/<tgtlang>: English names (paper) | native | code",
    )
    factor: str = opt(
        "",
        role=IGNORED,
        doc="what this template varies against its base (sweeps/template_space.yaml; a label for reports)",
    )


@dataclass
class ShotsConfig:
    k: int = opt(
        0,
        ge=0,
        role=EVALUATION,
        doc="in-context demonstrations before each test prompt (0 = zero-shot; the paper's ICL baseline: 8)",
    )
    pool: str = opt(
        "dev",
        choices=FLORES_SPLITS,
        role=EVALUATION,
        doc="FLORES split the demonstrations come from (the same direction, never the test sentence)",
    )
    seed: int = opt(42, role=EVALUATION, doc="seed of the demonstration draw, per test sentence (conf/shots: ${seed})")


@dataclass
class NumExamplesConfig:
    n: int = opt(250, ge=0, role=TRAINING, doc="training pairs per direction (0 = no finetuning: the ICL baseline)")
    allow_fewer: bool = opt(
        False,
        role=TRAINING,
        doc="fewer pairs than n after filtering: a warning (the real count is recorded) instead of an error",
    )


@dataclass
class CorpusConfig:
    format: str = opt(MISSING, choices=CORPUS_FORMATS, doc="corpus reader")
    root: Optional[str] = opt(None, doc="flores: directory of a FLORES copy (null = shipped)")
    split: str = opt("dev", doc="flores / hf: split to read")
    layout: Optional[str] = opt(None, choices=HF_LAYOUTS, doc="flores / hf: file stems / config names")
    path: Optional[str] = opt(None, doc="moses / wikimatrix: path with {pair}, {src}, {tgt}")
    name: Optional[str] = opt(None, doc="hf: dataset name on the hub")
    min_score: Optional[float] = opt(None, doc="wikimatrix: LASER margin threshold")


@dataclass
class FiltersConfig:
    max_len_ratio: Optional[float] = opt(
        3.0, ge=0, role=TRAINING, doc="drop pairs whose character-length ratio exceeds this (0/null = off)"
    )
    max_tokens: Optional[int] = opt(
        200,
        ge=0,
        role=TRAINING,
        doc="drop pairs with a side longer than this many whitespace tokens, characters/3 for zh/ja (0/null = off)",
    )
    dedup: bool = opt(True, role=TRAINING, doc="drop duplicate pairs")
    exclude_eval: bool = opt(
        True, role=TRAINING, doc="drop pairs whose source or target occurs in the validation or test sets"
    )


@dataclass
class NoiseConfig:
    misaligned: float = opt(
        0.0,
        ge=0,
        le=1,
        role=TRAINING,
        doc="fraction of each direction's sampled pairs given the target of another sampled line (seeded; the data-quality sweep); 0 = clean",
    )


@dataclass
class DataConfig:
    corpora: List[Any] = opt(
        factory=list, schema=CorpusConfig, role=TRAINING, doc="where training pairs come from (conf/data)"
    )
    flores_root: Optional[str] = opt(
        None,
        role=TRAINING,
        doc="evaluation sets: a FLORES-101 or FLORES-200 directory ({dev,devtest}/<code>.{dev,devtest}); null = the shipped copy",
    )
    flores_layout: str = opt(
        "flores101", choices=FLORES_LAYOUTS, role=TRAINING, doc="file stems of the evaluation sets"
    )
    max_length: int = opt(256, gt=0, role=TRAINING, doc="tokens per training example (paper: 256)")
    loss_on: str = opt(
        "full",
        choices=LOSS_ON,
        role=TRAINING,
        doc="full: loss on prompt and target (the reference code) | target: on the target only",
    )
    overlong: str = opt(
        "drop",
        choices=OVERLONG,
        role=TRAINING,
        doc="an example longer than max_length: drop it | truncate_source (never cut the target)",
    )
    filters: FiltersConfig = opt(factory=FiltersConfig, doc="pair filters")
    noise: NoiseConfig = opt(factory=NoiseConfig, doc="controlled corruption of the sampled pairs (data quality)")
    length_group_chunk: int = opt(
        64,
        gt=0,
        role=TRAINING,
        doc="training batches are sorted by length inside shuffled chunks of this many batches, then shuffled",
    )
    num_workers: int = opt(0, ge=0, role=IGNORED, doc="DataLoader workers")
    cache_dir: Optional[str] = opt(
        None,
        role=IGNORED,
        doc="prepared (sampled + rendered) data is cached here, keyed by a hash of the data config; null = no cache",
    )


@dataclass
class FsdpConfig:
    activation_checkpointing: bool = opt(
        False, doc="recompute decoder layers in backward (saves memory, costs about 30% time)"
    )
    sharding_strategy: str = opt("FULL_SHARD", choices=FSDP_SHARDING, doc="torch FSDP sharding strategy")
    state_dict_type: str = opt(
        "sharded",
        choices=FSDP_STATE_DICT,
        doc="checkpoint format: sharded (a directory per checkpoint; mfti-export consolidates) | full",
    )


@dataclass
class TrainerConfig:
    accelerator: str = opt("cpu", choices=ACCELERATORS, role=RUNTIME, doc="Lightning accelerator")
    devices: Any = opt(1, role=RUNTIME, doc="devices per node: a positive number or a list of device ids")
    num_nodes: int = opt(1, gt=0, role=RUNTIME, doc="nodes")
    strategy: str = opt("auto", choices=STRATEGIES, role=RUNTIME, doc="parallelism")
    precision: str = opt(
        "32-true", choices=PRECISIONS, role=RUNTIME, doc="Lightning precision (-mixed falls back to 32 on CPU)"
    )
    log_every_n_steps: int = opt(10, gt=0, role=IGNORED, doc="Lightning logging interval")
    fsdp: Optional[Dict[str, Any]] = opt(
        None, schema=FsdpConfig, optional_key=True, role=RUNTIME, doc="trainer=fsdp settings"
    )


@dataclass
class LoggerConfig:
    """The known keys of ``logger`` (an open node: each logger has its own keys)."""

    name: str = opt("wandb", choices=LOGGERS, doc="experiment logger")
    project: str = opt("mfti-lightning", doc="wandb: project")
    entity: Optional[str] = opt(None, doc="wandb: user or team; null = the API key's default entity")
    mode: str = opt(
        "auto",
        choices=WANDB_MODES,
        doc="wandb: auto = online when an API key is configured and the server answers within network_check_timeout, else offline (upload later with wandb sync)",
    )
    network_check_timeout: float = opt(
        3.0, ge=0, doc="wandb: seconds for the server check before going online (0 = skip it)"
    )
    init_timeout: float = opt(
        60.0, gt=0, doc="wandb: seconds wandb.init may take online before falling back to offline"
    )
    console: str = opt("auto", choices=WANDB_CONSOLE, doc="wandb: console capture")
    log_samples: int = opt(3, ge=0, doc="wandb: sample translations per direction in the samples table (0 = none)")


@dataclass
class OptimizerConfig:
    """The known keys of ``optim.optimizer`` (an open node: any torch optimizer and its arguments)."""

    _target_: str = opt("torch.optim.AdamW", doc="optimizer class")
    _partial_: bool = opt(True, choices=(True,), doc="must be true: the module binds the parameters")
    lr: float = opt(5e-6, gt=0, varies_with="model", doc="learning rate (paper: 5e-6; each model preset sets its own)")
    weight_decay: float = opt(0.0, ge=0, doc="weight decay")


@dataclass
class OptimConfig:
    optimizer: Dict[str, Any] = opt(
        factory=lambda: {
            "_target_": "torch.optim.AdamW", "_partial_": True, "lr": 5.0e-6, "weight_decay": 0.0,
            "betas": [0.9, 0.999],
        },
        schema=OptimizerConfig,
        role=TRAINING,
        doc="built with hydra.utils.instantiate (`_partial_`: the module binds its parameters); Adam(W) as in the paper",
    )  # fmt: skip
    warmup_steps: int = opt(0, ge=0, role=TRAINING, doc="linear warmup steps, then constant (paper: no warmup)")
    global_batch_size: int = opt(
        80,
        gt=0,
        role=TRAINING,
        doc="sequences per optimizer step over all devices and nodes (paper: 80) = micro_batch_size x accumulation x devices x num_nodes",
    )
    micro_batch_size: int = opt(
        10, gt=0, role=TRAINING, doc="sequences per device and forward pass; the gradient accumulation is derived"
    )
    max_steps: Optional[int] = opt(
        2000,
        gt=0,
        role=TRAINING,
        resume=True,
        doc="training length in optimizer steps (paper: 2000); null = train by optim.max_epochs",
    )
    max_epochs: Optional[float] = opt(
        None,
        gt=0,
        role=TRAINING,
        resume=True,
        doc="training length in passes over the sampled training data; set one of max_steps / max_epochs, the other null",
    )
    gradient_clip_val: Optional[float] = opt(1.0, ge=0, role=TRAINING, doc="gradient norm clipping; null = off")
    gradient_checkpointing: bool = opt(False, role=TRAINING, doc="recompute activations in backward")


@dataclass
class CheckpointConfig:
    every_n_steps: int = opt(
        250,
        gt=0,
        role=TRAINING,
        doc="periodic checkpoints in <run dir>/checkpoints/periodic every this many optimizer steps (paper: 250); resume=auto continues from the newest",
    )
    keep: int = opt(
        2,
        gt=0,
        role=IGNORED,
        doc="newest periodic checkpoints kept (the best one is kept besides, in checkpoints/best)",
    )
    export: bool = opt(
        True,
        role=IGNORED,
        doc="at the end of training, write the best checkpoint as a Hugging Face directory: <run dir>/hf",
    )


@dataclass
class TrainEvalConfig:
    val_every_n_steps: int = opt(
        250,
        gt=0,
        role=TRAINING,
        doc="validation interval in optimizer steps (paper: a checkpoint every 250 steps, the best picked on dev)",
    )
    val_num_beams: int = opt(
        1, gt=0, role=TRAINING, doc="beams for validation (greedy on lang_pairs.val_size dev sentences per direction)"
    )
    num_beams: int = opt(4, gt=0, role=EVALUATION, doc="beams for the final test (paper: 4; 1 = greedy)")
    max_new_tokens: int = opt(150, gt=0, role=EVALUATION, doc="generated tokens per sentence (paper: 150)")
    batch_tokens: Any = opt(
        "auto",
        role=EVALUATION,
        doc="generation batches are built under this budget of (prompt + new tokens) x beams: a number > 0, or auto (the largest that fits the GPU's free memory; 4096 on CPU)",
    )
    engine: str = opt(
        "hf",
        choices=ENGINES,
        role=EVALUATION,
        doc="the final test's decoder: hf (transformers generate) | ctranslate2 (pip install 'mfti-lightning[ct2]'; converted once per checkpoint into paths.cache_dir/ct2/)",
    )
    ct2_compute_type: str = opt(
        "auto",
        choices=CT2_COMPUTE_TYPES,
        role=EVALUATION,
        doc="ctranslate2 only: auto (float32 on CPU, bfloat16 on CUDA) | float32 | int8 (CPU) | float16 | bfloat16 | int8_float16 (CUDA)",
    )
    bleu_tokenize: str = opt(
        "auto",
        choices=bleu_tokenizers,
        role=EVALUATION,
        doc="sacrebleu tokenizer for BLEU: auto = spBLEU (flores101) when its SPM model is available, else the per-language default (13a; zh for Chinese; ko-mecab for Korean), named in the metric key",
    )
    extraction: str = opt(
        "clean",
        choices=EXTRACTION_MODES,
        role=EVALUATION,
        doc="the hypothesis: reference = the whole continuation up to EOS or max_new_tokens (the reference code's; also scored cut after the fact as test_clean/...) | clean = stop and cut at a newline or a new template turn",
    )
    lid_languages: str = opt(
        "all",
        choices=LID_SCOPES,
        role=EVALUATION,
        doc="off-target errors: language ID over every language lingua knows (all: finds Spanish for Catalan) | the run's languages and the paper's 13 (run)",
    )
    lid_accuracy: str = opt(
        "low",
        choices=LID_ACCURACY,
        role=EVALUATION,
        doc="lingua's accuracy mode: high (about 1.3 GB and seconds to load for all languages) | low (trigrams, about 0.1 GB)",
    )
    off_target_rule: str = opt(
        "project",
        choices=OFF_TARGET_RULES,
        role=EVALUATION,
        doc="reference = both halves as the reference cuts them, an empty half judged English (what fastText lid.176 says of empty text) | project = under two words judged whole, an empty hypothesis never off-target",
    )
    select: str = opt(
        "mean",
        choices=SELECT_MODES,
        role=TRAINING,
        doc="checkpoint choice: mean = greedy (val_num_beams) on the last lang_pairs.val_size dev sentences per direction, the mean of per-direction scores (val/<bleu>/avg) | reference = the reference code's: num_beams and the whole continuation on the first val_size dev sentences, one corpus score over all directions pooled (val/<bleu>/pooled)",
    )
    monitor: Optional[str] = opt(
        None,
        role=TRAINING,
        varies_with="model",
        doc="metric that picks the best checkpoint; null = the one eval.select names (spbleu or bleu)",
    )
    score_before_training: bool = opt(
        True,
        role=TRAINING,
        doc="also score the model before finetuning on the validation subset (shows that finetuning helps)",
    )


@dataclass
class EvalEvalConfig(TrainEvalConfig):
    max_prompt_tokens: Optional[int] = opt(
        None, gt=0, role=EVALUATION, doc="keep only the last N prompt tokens (long k-shot prompts); null = keep all"
    )
    error_analysis: bool = opt(True, role=EVALUATION, doc="label every translation with the paper's error taxonomy")
    comet_model: Optional[str] = opt(
        None,
        role=EVALUATION,
        doc="COMET model, e.g. Unbabel/wmt22-comet-da (pip install 'mfti-lightning[comet]', GPU); null = no COMET",
    )
    score_before_training: bool = opt(False, role=TRAINING, doc="unused by mfti-eval")


@dataclass
class ProgressConfig:
    mode: str = opt(
        "auto",
        choices=PROGRESS_MODES,
        doc="training progress: auto = a rich bar in a terminal, plain log lines when stdout is not a TTY (SLURM .out files) | rich | plain | none",
    )
    every_n_steps: int = opt(50, ge=0, doc="plain lines: one every n optimizer steps (0 = time only) ...")
    every_s: float = opt(60.0, ge=0, doc="... or every this many seconds, whichever comes first")


# ---- roots -----------------------------------------------------------------------------------------------------
@dataclass
class CommonConfig:
    task_name: str = opt(MISSING, role=IGNORED, doc="train | eval: the first directory level of the outputs")
    seed: int = opt(42, role=TRAINING, doc="seed for model init, data sampling, shuffling and k-shot demonstrations")
    resume: str = opt(
        "auto",
        choices=RESUME_MODES,
        role=IGNORED,
        doc="auto: skip a completed run, resume an interrupted one from its newest checkpoint (mfti-eval: keep finished directions), else start fresh | never: refuse a run directory that already holds checkpoints or results",
    )
    trust_checkpoint: bool = opt(
        False,
        role=IGNORED,
        doc="false: every checkpoint read must hold only tensors and plain containers, as mfti-train writes them (torch.load weights_only=True); true: also load one whose pickle names other objects (unpickling it can run arbitrary code: only for a source you trust)",
    )
    sweep_name: str = opt(
        MISSING,
        role=IGNORED,
        doc="name of the sweep (W&B group, sweep directory); set it for every multirun you may want to re-run",
    )
    run_name: str = opt(MISSING, role=IGNORED, doc="human-readable run name made of the swept values (W&B run name)")
    run_slug: str = opt(
        MISSING,
        role=IGNORED,
        doc="the deterministic run directory: run_name made directory-safe, the seed, and a short hash of the run's identity (the keys of role training; for mfti-eval also evaluation), so a changed value never reuses another experiment's run directory",
    )
    trainer: TrainerConfig = opt(factory=TrainerConfig, doc="hardware and parallelism (conf/trainer)")
    model: ModelConfig = opt(factory=ModelConfig, doc="the model (conf/model)")
    data: DataConfig = opt(factory=DataConfig, doc="training data and evaluation sets (conf/data)")
    lang_pairs: LangPairsConfig = opt(factory=LangPairsConfig, doc="directions (conf/lang_pairs)")
    shots: ShotsConfig = opt(factory=ShotsConfig, resume=True, doc="k-shot demonstrations at evaluation (conf/shots)")
    num_examples: NumExamplesConfig = opt(
        factory=NumExamplesConfig, doc="training pairs per direction (conf/num_examples)"
    )
    template: TemplateConfig = opt(factory=TemplateConfig, doc="the instruction template (conf/template)")
    logger: Dict[str, Any] = opt(
        factory=lambda: {"name": "wandb"}, schema=LoggerConfig, role=IGNORED, doc="experiment logger (conf/logger)"
    )
    paths: PathsConfig = opt(factory=PathsConfig, role=IGNORED, doc="where things go (conf/paths)")
    # keys some configs add at the root, declared for their role (left out of the composed schema)
    hydra: Optional[Dict[str, Any]] = opt(None, optional_key=True, role=IGNORED, doc="Hydra's own settings")
    cluster: Optional[Dict[str, Any]] = opt(
        None,
        optional_key=True,
        role=IGNORED,
        doc="machine-local SLURM settings for the hydra/launcher=slurm_* presets (conf/local)",
    )
    debug: Any = opt(None, optional_key=True, role=IGNORED, doc="notes of a debugging preset")


@dataclass
class TrainConfig(CommonConfig):
    optim: OptimConfig = opt(factory=OptimConfig, doc="optimizer, batch sizes and training length")
    checkpoint: CheckpointConfig = opt(factory=CheckpointConfig, resume=True, doc="periodic and best checkpoints")
    eval: TrainEvalConfig = opt(
        factory=TrainEvalConfig, resume=True, doc="validation during training and the final test"
    )
    progress: ProgressConfig = opt(factory=ProgressConfig, role=IGNORED, doc="training progress output")
    train_directions: Any = opt(
        None,
        role=EVALUATION,
        doc="ICL runs (num_examples=n0): the training directions to partition the results by (seen / unseen ...): a list [de-en,...] or the run directory of the mFTI run they are compared with; null = no partitions",
    )


@dataclass
class EvalConfig(CommonConfig):
    ckpt_path: Optional[str] = opt(
        None,
        role=EVALUATION,
        doc="a training checkpoint to evaluate: a Lightning .ckpt (the base model comes from `model`, then its state dict is loaded) or a directory saved with save_pretrained (e.g. by mfti-export); null = evaluate `model` as it is",
    )
    split: str = opt(
        "devtest",
        choices=EVAL_SPLITS,
        role=EVALUATION,
        doc="FLORES split: devtest (the paper's test set; lang_pairs.test_size sentences from its start; metrics test/...) | dev (lang_pairs.val_size sentences from its end; metrics val/...)",
    )
    train_directions: Any = opt(
        "auto",
        role=EVALUATION,
        doc="training directions for the partitions: auto = those recorded in the checkpoint's run (results.json), else lang_pairs.train; or a list [de-en,...]; or none",
    )
    eval: EvalEvalConfig = opt(factory=EvalEvalConfig, resume=True, doc="generation and scoring")


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
def is_dataclass_type(tp) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def unwrap_optional(tp):
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


# ---- validation ------------------------------------------------------------------------------------------------
def format_value(v) -> str:
    """A value as YAML writes it: null, true, false."""
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def _allowed(f: dataclasses.Field) -> str:
    """The allowed values of a field, in words (``auto, never``; ``an integer > 0``; ``true, false``)."""
    meta, tp = f.metadata, unwrap_optional(f.type)
    choices = meta.get("choices")
    if choices is not None:
        choices = choices() if callable(choices) else choices
        return ", ".join(format_value(c) for c in choices)
    if tp is bool:
        return "true, false"
    if tp in (int, float):
        kind = "an integer" if tp is int else "a number"
        bound = f" > {meta['gt']}" if "gt" in meta else f" >= {meta['ge']}" if "ge" in meta else ""
        bound += f" and <= {meta['le']}" if "le" in meta else ""
        return kind + bound + (" (or null)" if tp is not f.type else "")
    return "a string" if tp is str else "any value"


def _value_ok(value, f: dataclasses.Field) -> bool:
    meta, tp = f.metadata, unwrap_optional(f.type)
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
    tp = unwrap_optional(f.type)
    return bool(
        f.metadata.get("choices") is not None
        or {"gt", "ge", "le", "schema"} & set(f.metadata)
        or tp in (int, float, bool)
        or is_dataclass_type(tp)
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
        tp = unwrap_optional(f.type)
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
        if is_dataclass_type(tp):
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
