"""The run-directory layout: the one list of what a run directory holds (README "Where outputs go").

<run dir>/results.json                 RESULTS_FILE       the one results format (core.results)
         template.json                 TEMPLATE_FILE      the prompt template (core.template)
         training_config.json          TRAINING_CONFIG_FILE   what resume=auto compares (train.trainer)
         wandb_run_id.txt              RUN_ID_FILE        the W&B run id (track.wandb_run)
         tokenizer/                    TOKENIZER_DIR
         checkpoints/{periodic,best,damaged}/  CHECKPOINTS_DIR  (model.checkpoint_files)
         hf/                           HF_DIR             the best checkpoint exported (model.export)
         translations/<src>-<tgt>.jsonl  TRANSLATIONS_DIR (eval.decode_and_score)
         eval_state/<split>/           EVAL_STATE_DIR     finished directions of an evaluation
         val/step*.json                VAL_DIR            validation scores during training
         train_summary.json            TRAIN_SUMMARY_FILE  steps, losses, throughput (train.module)
         metrics_val_init.json         VAL_INIT_FILE      dev scores before finetuning
         previous_results/<n>.json     PREVIOUS_RESULTS_DIR  results of earlier evaluations (tasks.job)
         csv/metrics.csv               CURVE_DIR, CURVE_FILE  logger=csv: one curve across resumes (track.curves)
         failed_attempts/<n>.json      FAILED_ATTEMPTS_DIR   a failed or interrupted attempt on a completed run
                                                            (results.json keeps the completed result)
         lease.json                    LEASE_FILE         who holds the run directory now (core.lease)
         progress.json                 PROGRESS_FILE      where the job stands, for mfti status (core.progress_record)
         .hydra/                       HYDRA_DIR          the composed config, Hydra's, the overrides (tasks.job)
         <task>.log                                       the job's log (tasks.job)

Every path a run directory's records hold to its own files is relative to it (core.results), so a run directory
can be moved or copied and still evaluates, resumes and reports from its own files.

A sweep directory (``hydra.sweep.dir``) holds one run directory per job (``hydra.sweep.subdir``: its run_slug) and:

<sweep dir>/submissions.jsonl          SUBMISSIONS_FILE   every job of every submission, appended (launch.manifest)
           .submitit/<job id>/                            submitit's pickles and each task's <job id>_<rank>_log.out
           multirun.yaml                                  Hydra's primary config of the latest `mfti-train -m`
"""

from __future__ import annotations

RESULTS_FILE = "results.json"
TEMPLATE_FILE = "template.json"
TRAINING_CONFIG_FILE = "training_config.json"
RUN_ID_FILE = "wandb_run_id.txt"
TOKENIZER_DIR = "tokenizer"
CHECKPOINTS_DIR = "checkpoints"
HF_DIR = "hf"
TRANSLATIONS_DIR = "translations"
EVAL_STATE_DIR = "eval_state"
VAL_DIR = "val"
TRAIN_SUMMARY_FILE = "train_summary.json"
VAL_INIT_FILE = "metrics_val_init.json"
PREVIOUS_RESULTS_DIR = "previous_results"
FAILED_ATTEMPTS_DIR = "failed_attempts"
LEASE_FILE = "lease.json"
PROGRESS_FILE = "progress.json"
HYDRA_DIR = ".hydra"
CURVE_DIR = "csv"
CURVE_FILE = "metrics.csv"

SUBMISSIONS_FILE = "submissions.jsonl"

# not in a run directory: under paths.cache_dir, shared by every run that evaluates the same checkpoint
CT2_CACHE_DIR = "ct2"  # <cache_dir>/ct2/<key>/: a checkpoint converted for CTranslate2 (model.ct2_conversion)
