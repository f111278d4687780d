"""The config groups of what a run measures and where it writes: the ``eval`` node (validation, the final test,
mfti-eval's own settings), the experiment logger, the progress output and the paths (one dataclass per node of
``conf/``; the root is :mod:`mfti_lightning.core.schema`). No torch."""

from dataclasses import dataclass
from typing import Any, Optional

from mfti_lightning.core.choices import (
    CT2_COMPUTE_TYPES,
    ENGINES,
    EXTRACTION_MODES,
    LID_ACCURACY,
    LID_SCOPES,
    LOGGERS,
    OFF_TARGET_RULES,
    PROGRESS_MODES,
    SELECT_MODES,
    WANDB_CONSOLE,
    WANDB_MODES,
    bleu_tokenizers,
)
from mfti_lightning.core.fields import EVALUATION, TRAINING, config_field


@dataclass
class TrainEvalConfig:
    """``eval`` of an mfti-train config: validation during training and the final test."""

    val_every_n_steps: int = config_field(
        250,
        gt=0,
        role=TRAINING,
        doc="validation interval in optimizer steps (paper: a checkpoint every 250 steps, the best picked on dev)",
    )
    val_num_beams: int = config_field(
        1, gt=0, role=TRAINING, doc="beams for validation (greedy on lang_pairs.val_size dev sentences per direction)"
    )
    num_beams: int = config_field(4, gt=0, role=EVALUATION, doc="beams for the final test (paper: 4; 1 = greedy)")
    max_new_tokens: int = config_field(150, gt=0, role=EVALUATION, doc="generated tokens per sentence (paper: 150)")
    batch_tokens: Any = config_field(
        "auto",
        role=EVALUATION,
        doc="generation batches are built under this budget of (prompt + new tokens) x beams: a number > 0, or auto (the largest that fits the GPU's free memory; 4096 on CPU)",
    )
    engine: str = config_field(
        "hf",
        choices=ENGINES,
        role=EVALUATION,
        doc="the final test's decoder: hf (transformers generate) | ctranslate2 (pip install 'mfti-lightning[ct2]'; converted once per checkpoint into paths.cache_dir/ct2/)",
    )
    ct2_compute_type: str = config_field(
        "auto",
        choices=CT2_COMPUTE_TYPES,
        role=EVALUATION,
        doc="ctranslate2 only: auto (float32 on CPU, bfloat16 on CUDA) | float32 | int8 (CPU) | float16 | bfloat16 | int8_float16 (CUDA)",
    )
    bleu_tokenize: str = config_field(
        "auto",
        choices=bleu_tokenizers,
        role=EVALUATION,
        doc="sacrebleu tokenizer for BLEU: auto = spBLEU (flores101) when its SPM model is available, else the per-language default (13a; zh for Chinese; ko-mecab for Korean), named in the metric key",
    )
    extraction: str = config_field(
        "clean",
        choices=EXTRACTION_MODES,
        role=EVALUATION,
        doc="the hypothesis: reference = the whole continuation up to EOS or max_new_tokens (the reference code's; also scored cut after the fact as test_clean/...) | clean = stop and cut at a newline or a new template turn",
    )
    lid_languages: str = config_field(
        "all",
        choices=LID_SCOPES,
        role=EVALUATION,
        doc="off-target errors: language ID over every language lingua knows (all: finds Spanish for Catalan) | the run's languages and the paper's 13 (run) | none: no language ID, the off-target rule is skipped (no lingua needed)",
    )
    lid_accuracy: str = config_field(
        "low",
        choices=LID_ACCURACY,
        role=EVALUATION,
        doc="lingua's accuracy mode: high (about 1.3 GB and seconds to load for all languages) | low (trigrams, about 0.1 GB)",
    )
    off_target_rule: str = config_field(
        "project",
        choices=OFF_TARGET_RULES,
        role=EVALUATION,
        doc="reference = both halves as the reference cuts them, an empty half judged English (what fastText lid.176 says of empty text) | project = under two words judged whole, an empty hypothesis never off-target",
    )
    select: str = config_field(
        "mean",
        choices=SELECT_MODES,
        role=TRAINING,
        doc="checkpoint choice: mean = greedy (val_num_beams) on the last lang_pairs.val_size dev sentences per direction, the mean of per-direction scores (val/<bleu>/avg) | reference = the reference code's: num_beams and the whole continuation on the first val_size dev sentences, one corpus score over all directions pooled (val/<bleu>/pooled)",
    )
    monitor: Optional[str] = config_field(
        None,
        role=TRAINING,
        varies_with="model",
        doc="metric that picks the best checkpoint; null = the one eval.select names (spbleu or bleu)",
    )
    score_before_training: bool = config_field(
        True,
        role=TRAINING,
        doc="also score the model before finetuning on the validation subset (shows that finetuning helps)",
    )


@dataclass
class StandaloneEvalConfig(TrainEvalConfig):
    """``eval`` of an mfti-eval config: the final test's settings of a training plus what only a standalone
    evaluation has (prompt truncation, the error analysis, COMET)."""

    max_prompt_tokens: Optional[int] = config_field(
        None, gt=0, role=EVALUATION, doc="keep only the last N prompt tokens (long k-shot prompts); null = keep all"
    )
    error_analysis: bool = config_field(
        True, role=EVALUATION, doc="label every translation with the paper's error taxonomy"
    )
    comet_model: Optional[str] = config_field(
        None,
        role=EVALUATION,
        doc="COMET model, e.g. Unbabel/wmt22-comet-da (pip install 'mfti-lightning[comet]', GPU); null = no COMET",
    )
    score_before_training: bool = config_field(False, role=TRAINING, doc="unused by mfti-eval")


@dataclass
class LoggerConfig:
    """The known keys of ``logger`` (an open node: each logger has its own keys)."""

    name: str = config_field("wandb", choices=LOGGERS, doc="experiment logger")
    project: str = config_field("mfti-lightning", doc="wandb: project")
    entity: Optional[str] = config_field(None, doc="wandb: user or team; null = the API key's default entity")
    mode: str = config_field(
        "auto",
        choices=WANDB_MODES,
        doc="wandb: auto = online when an API key is configured and the server answers within network_check_timeout, else offline (upload later with wandb sync)",
    )
    network_check_timeout: float = config_field(
        3.0, ge=0, doc="wandb: seconds for the server check before going online (0 = skip it)"
    )
    init_timeout: float = config_field(
        60.0, gt=0, doc="wandb: seconds wandb.init may take online before falling back to offline"
    )
    console: str = config_field("auto", choices=WANDB_CONSOLE, doc="wandb: console capture")
    log_samples: int = config_field(
        3, ge=0, doc="wandb: sample translations per direction in the samples table (0 = none)"
    )


@dataclass
class ProgressConfig:
    mode: str = config_field(
        "auto",
        choices=PROGRESS_MODES,
        doc="training progress: auto = a rich bar in a terminal, plain log lines when stdout is not a TTY (SLURM .out files) | rich | plain | none",
    )
    every_n_steps: int = config_field(50, ge=0, doc="plain lines: one every n optimizer steps (0 = time only) ...")
    every_s: float = config_field(60.0, ge=0, doc="... or every this many seconds, whichever comes first")


@dataclass
class PathsConfig:
    output_root: str = config_field(
        "outputs",
        doc="root of the train/ and eval/ run and sweep directories (conf/paths: $MFTI_OUTPUT_ROOT, else outputs)",
    )
    cache_dir: str = config_field(
        "~/.cache/mfti-lightning",
        doc="built tiny models and prepared data, shared by every run on this machine (conf/paths: $MFTI_CACHE_DIR)",
    )
    corpora_dir: str = config_field(
        "data/corpora",
        doc="parallel corpora (WikiMatrix, MultiCCAligned, ...) for data=wikimatrix (conf/paths: $MFTI_CORPORA_DIR)",
    )
    output_dir: str = config_field("${hydra:runtime.output_dir}", doc="this run's directory (set by Hydra)")
