"""The allowed values of the enumerated config keys, in one place (each with the code that consumes it). No torch.

Enumerated keys are plain ``str`` (not Enum): the code compares ``cfg.resume == "auto"`` and dumps configs to JSON.
The schema's fields name these tuples in ``choices=`` (:mod:`mfti_lightning.core.fields`).
"""

from mfti_lightning.core.families import FAMILIES
from mfti_lightning.core.languages import NAME_STYLES

RESUME_MODES = ("auto", "never")  # tasks.job.run_task
ACCELERATORS = ("cpu", "gpu", "cuda", "auto")  # train.trainer.build_trainer, tasks.evaluate._rank_main
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
EVAL_SPLITS = ("devtest", "dev")  # tasks.evaluate.SPLITS
BLEU_SETTINGS = ("auto", "lang_default", "flores101", "spm", "flores200")  # metrics.resolve_bleu
CORPUS_FORMATS = ("flores", "moses", "wikimatrix", "hf")  # corpora.iter_corpus
EXTRACTION_MODES = ("reference", "clean")  # generation.translate, template.extract
ENGINES = ("hf", "ctranslate2")  # eval.ct2_generation (ctranslate2: pip install 'mfti-lightning[ct2]')
CT2_COMPUTE_TYPES = (
    "auto",
    "float32",
    "int8",
    "float16",
    "bfloat16",
    "int8_float16",
)  # model.ct2_conversion.COMPUTE_TYPES
# analysis.LanguageIdentifier: every language lingua knows | the run's and the paper's | none (no lingua needed)
LID_SCOPES = ("all", "run", "none")
LID_ACCURACY = ("high", "low")  # lingua's modes: low = trigrams only (about 0.1 GB and 0.5 s to load for all)
SELECT_MODES = (
    "reference",
    "mean",
)  # train.module / tasks.train: the checkpoint choice (see schema_evaluation.TrainEvalConfig.select)
OFF_TARGET_RULES = ("reference", "project")  # analysis.halves: the reference's halves (empty = wrong) | project
ATTN_IMPLEMENTATIONS = ("eager", "sdpa")  # modeling.load_model (sdpa: model/xglm_sdpa.py for XGLM)
MODEL_FAMILIES = tuple(FAMILIES)  # core/families.py: LoRA targets, BOS, SDPA per family
LANG_NAME_STYLES = NAME_STYLES  # template.render_prefix, languages.name


def bleu_tokenizers() -> tuple:
    """Allowed ``eval.bleu_tokenize`` values: mfti's settings plus sacrebleu's tokenizers (sacrebleu is torch-free)."""
    from sacrebleu.metrics import BLEU

    return BLEU_SETTINGS + tuple(t for t in sorted(BLEU.TOKENIZERS) if t not in BLEU_SETTINGS)
