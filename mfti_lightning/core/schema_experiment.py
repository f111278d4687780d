"""The config groups of the experiment itself: the model, the training data and evaluation sets, the directions,
the instruction template, the k-shot demonstrations and the number of training pairs (one dataclass per node of
``conf/``; the root is :mod:`mfti_lightning.core.schema`). No torch."""

from dataclasses import dataclass
from typing import Any, List, Optional

from omegaconf import MISSING

from mfti_lightning.core.choices import (
    ATTN_IMPLEMENTATIONS,
    CORPUS_FORMATS,
    FLORES_LAYOUTS,
    FLORES_SPLITS,
    HF_LAYOUTS,
    LANG_NAME_STYLES,
    LOSS_ON,
    MODEL_DTYPES,
    MODEL_FAMILIES,
    OVERLONG,
    PEFT_METHODS,
)
from mfti_lightning.core.fields import EVALUATION, IGNORED, TRAINING, config_field


@dataclass
class TinyBuildConfig:
    vocab_size: int = config_field(4000, gt=0, doc="SentencePiece vocabulary of the built tokenizer")
    d_model: int = config_field(128, gt=0, doc="hidden size")
    ffn_dim: int = config_field(512, gt=0, doc="feed-forward size")
    num_layers: int = config_field(2, gt=0, doc="decoder layers")
    attention_heads: int = config_field(4, gt=0, doc="attention heads")
    max_position_embeddings: int = config_field(512, gt=0, doc="longest sequence")
    tokenizer_lines_per_language: int = config_field(
        400, gt=0, doc="FLORES lines per language to train the tokenizer on"
    )
    seed: int = config_field(0, doc="seed of the random init")


@dataclass
class LoraConfig:
    r: int = config_field(16, gt=0, doc="LoRA rank")
    alpha: int = config_field(32, gt=0, doc="LoRA scaling numerator")
    dropout: float = config_field(0.05, ge=0, doc="dropout on the LoRA path")
    target_modules: List[str] = config_field(factory=list, doc="wrapped layers; [] = the family's (core/families.py)")


@dataclass
class ShapeConfig:
    num_layers: int = config_field(2, gt=0, doc="decoder layers (FLOPs / GPU-hour estimates without loading the model)")
    d_model: int = config_field(128, gt=0, doc="hidden size")
    attention_heads: int = config_field(4, gt=0, doc="attention heads")
    ffn_dim: int = config_field(512, gt=0, doc="feed-forward size")
    vocab_size: int = config_field(4008, gt=0, doc="vocabulary size")
    kv_heads: Optional[int] = config_field(
        None, gt=0, doc="key/value heads (grouped-query attention); null = attention_heads"
    )
    ffn_matrices: int = config_field(2, gt=0, doc="weight matrices of the feed-forward block: 2 (GELU MLP), 3 (SwiGLU)")


@dataclass
class ModelConfig:
    name: str = config_field("tiny", role=TRAINING, doc="short name used in run names")
    name_or_path: str = config_field(MISSING, role=TRAINING, doc="hub name or local directory for from_pretrained")
    family: str = config_field(
        "xglm",
        choices=MODEL_FAMILIES,
        role=TRAINING,
        doc="architecture family: LoRA targets, BOS, SDPA (core/families.py)",
    )
    build: Optional[TinyBuildConfig] = config_field(
        None, role=TRAINING, doc="how to build a tiny model when name_or_path does not exist yet (tiny models only)"
    )
    dtype: str = config_field("float32", choices=MODEL_DTYPES, role=TRAINING, doc="dtype of the loaded weights")
    attn_implementation: str = config_field("sdpa", choices=ATTN_IMPLEMENTATIONS, role=TRAINING, doc="attention kernel")
    peft: Optional[str] = config_field(
        None,
        choices=PEFT_METHODS,
        role=TRAINING,
        doc="parameter-efficient finetuning: null | lora (pip install 'mfti-lightning[lora]'; merged on export)",
    )
    lora: LoraConfig = config_field(factory=LoraConfig, role=TRAINING, doc="LoRA settings (model.peft=lora)")
    shape: Optional[ShapeConfig] = config_field(
        None, role=IGNORED, doc="architecture numbers for FLOPs/MFU and GPU-hour estimates without loading the model"
    )


@dataclass
class LangSplitConfig:
    seen_both: List[str] = config_field(factory=list, doc="seen as source and as target")
    src_only: List[str] = config_field(factory=list, doc="seen only as source")
    tgt_only: List[str] = config_field(factory=list, doc="seen only as target")
    unseen: List[str] = config_field(factory=list, doc="never in the instruction data")


@dataclass
class LangPairsConfig:
    name: str = config_field("demo", role=TRAINING, doc="short name used in run names")
    languages: Optional[List[str]] = config_field(
        None, optional_key=True, role=TRAINING, doc="languages for the all / en_centric keywords"
    )
    split: Optional[LangSplitConfig] = config_field(
        None,
        optional_key=True,
        role=TRAINING,
        doc="the unseen experiment's language split: training directions are every (src, tgt) with src in seen_both+src_only and tgt in seen_both+tgt_only",
    )
    train: Any = config_field(
        MISSING, role=TRAINING, doc="training directions: a list [de-en, ...] or all | en_centric | split"
    )
    eval: Any = config_field(
        None,
        role=EVALUATION,
        resume=True,
        doc="evaluation directions: a list, a keyword, or null = the training directions",
    )
    val_size: Optional[int] = config_field(
        None,
        ge=0,
        role=TRAINING,
        resume=True,
        doc="FLORES dev sentences per direction for validation during training (from the end of dev); null = all",
    )
    test_size: Optional[int] = config_field(
        None,
        ge=0,
        role=EVALUATION,
        resume=True,
        doc="FLORES devtest sentences per direction for the final test (from its start); null = all",
    )


@dataclass
class TemplateConfig:
    name: str = config_field(MISSING, role=TRAINING, doc="template name (t1_translation_src_tgt, ...)")
    paper_id: Optional[int] = config_field(None, role=TRAINING, doc="number in the paper")
    short: str = config_field("", role=TRAINING, doc="short label for run names (t1)")
    prefix: str = config_field(
        MISSING,
        role=TRAINING,
        doc="the prompt with <srclang>, <tgtlang>, <input>; training text = prefix + target_separator + target + EOS",
    )
    shot_separator: str = config_field(" ", role=TRAINING, doc="between k-shot demonstrations")
    target_separator: str = config_field(" ", role=TRAINING, doc="between the prefix and the target")
    stop_markers: List[str] = config_field(
        factory=list,
        role=TRAINING,
        doc="text that starts a new template turn during generation; [] = derived from the prefix",
    )
    lang_names: str = config_field(
        "english",
        choices=LANG_NAME_STYLES,
        role=TRAINING,
        doc="<srclang>/<tgtlang>: English names (paper) | native | code",
    )
    factor: str = config_field(
        "",
        role=IGNORED,
        doc="what this template varies against its base (sweeps/template_space.yaml; a label for reports)",
    )


@dataclass
class ShotsConfig:
    k: int = config_field(
        0,
        ge=0,
        role=EVALUATION,
        doc="in-context demonstrations before each test prompt (0 = zero-shot; the paper's ICL baseline: 8)",
    )
    pool: str = config_field(
        "dev",
        choices=FLORES_SPLITS,
        role=EVALUATION,
        doc="FLORES split the demonstrations come from (the same direction, never the test sentence)",
    )
    seed: int = config_field(
        42, role=EVALUATION, doc="seed of the demonstration draw, per test sentence (conf/shots: ${seed})"
    )


@dataclass
class NumExamplesConfig:
    n: int = config_field(
        250, ge=0, role=TRAINING, doc="training pairs per direction (0 = no finetuning: the ICL baseline)"
    )
    allow_fewer: bool = config_field(
        False,
        role=TRAINING,
        doc="fewer pairs than n after filtering: a warning (the real count is recorded) instead of an error",
    )


@dataclass
class CorpusConfig:
    format: str = config_field(MISSING, choices=CORPUS_FORMATS, doc="corpus reader")
    root: Optional[str] = config_field(None, doc="flores: directory of a FLORES copy (null = shipped)")
    split: str = config_field("dev", doc="flores / hf: split to read")
    layout: Optional[str] = config_field(None, choices=HF_LAYOUTS, doc="flores / hf: file stems / config names")
    path: Optional[str] = config_field(None, doc="moses / wikimatrix: path with {pair}, {src}, {tgt}")
    name: Optional[str] = config_field(None, doc="hf: dataset name on the hub")
    min_score: Optional[float] = config_field(None, doc="wikimatrix: LASER margin threshold")


@dataclass
class FiltersConfig:
    max_len_ratio: Optional[float] = config_field(
        3.0, ge=0, role=TRAINING, doc="drop pairs whose character-length ratio exceeds this (0/null = off)"
    )
    max_tokens: Optional[int] = config_field(
        200,
        ge=0,
        role=TRAINING,
        doc="drop pairs with a side longer than this many whitespace tokens, characters/3 for zh/ja (0/null = off)",
    )
    dedup: bool = config_field(True, role=TRAINING, doc="drop duplicate pairs")
    exclude_eval: bool = config_field(
        True, role=TRAINING, doc="drop pairs whose source or target occurs in the validation or test sets"
    )


@dataclass
class NoiseConfig:
    misaligned: float = config_field(
        0.0,
        ge=0,
        le=1,
        role=TRAINING,
        doc="fraction of each direction's sampled pairs given the target of another sampled line (seeded; the data-quality sweep); 0 = clean",
    )


@dataclass
class DataConfig:
    corpora: List[Any] = config_field(
        factory=list, schema=CorpusConfig, role=TRAINING, doc="where training pairs come from (conf/data)"
    )
    flores_root: Optional[str] = config_field(
        None,
        role=TRAINING,
        doc="evaluation sets: a FLORES-101 or FLORES-200 directory ({dev,devtest}/<code>.{dev,devtest}); null = the shipped copy",
    )
    flores_layout: str = config_field(
        "flores101", choices=FLORES_LAYOUTS, role=TRAINING, doc="file stems of the evaluation sets"
    )
    max_length: int = config_field(256, gt=0, role=TRAINING, doc="tokens per training example (paper: 256)")
    loss_on: str = config_field(
        "full",
        choices=LOSS_ON,
        role=TRAINING,
        doc="full: loss on prompt and target (the reference code) | target: on the target only",
    )
    overlong: str = config_field(
        "drop",
        choices=OVERLONG,
        role=TRAINING,
        doc="an example longer than max_length: drop it | truncate_source (never cut the target)",
    )
    filters: FiltersConfig = config_field(factory=FiltersConfig, doc="pair filters")
    noise: NoiseConfig = config_field(
        factory=NoiseConfig, doc="controlled corruption of the sampled pairs (data quality)"
    )
    length_group_chunk: int = config_field(
        64,
        gt=0,
        role=TRAINING,
        doc="training batches are sorted by length inside shuffled chunks of this many batches, then shuffled",
    )
    num_workers: int = config_field(0, ge=0, role=IGNORED, doc="DataLoader workers")
    cache_dir: Optional[str] = config_field(
        None,
        role=IGNORED,
        doc="prepared (sampled + rendered) data is cached here, keyed by a hash of the data config; null = no cache",
    )
