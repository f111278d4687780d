"""Every input a job reads, checked cheaply before it runs: on the login node (the SLURM launcher and ``mfti-plan``,
through :func:`mfti_lightning.launch.sweep.check_job`) and in the job before the model is loaded
(:func:`mfti_lightning.tasks.checks.check_before_loading`). No torch here, and no import of the tasks, the sweep or
the launcher.

Checked, all problems at once (:func:`check_inputs` returns them all; :func:`require_inputs` raises
:class:`~mfti_lightning.core.errors.InputsError` with the list):

- a readable training corpus for every training direction when ``num_examples.n > 0``: the first spec of
  ``data.corpora`` that has files for the pair, whose first line parses (moses: both files open and decode;
  wikimatrix: ``score<TAB>src<TAB>tgt`` with a numeric score; flores: both files exist; hf: the hub is reachable);
- the FLORES files the run evaluates on and excludes from training (``data.flores_root``/``data.flores_layout``);
- the model: a directory with ``config.json``, or a hub name in the offline cache when the job runs offline
  (a model with a ``model.build`` block, the tiny model, is built on first use: a missing directory is fine);
- sacrebleu's FLORES SentencePiece model when ``eval.bleu_tokenize`` asks for spBLEU explicitly (``auto`` falls
  back to BLEU and needs nothing).

Line counts of pair files are not compared here (that reads the whole corpus); the reader does it while sampling.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from mfti_lightning.core.config import hub_offline
from mfti_lightning.core.directions import eval_directions, train_directions
from mfti_lightning.core.errors import ConfigError, DataError, InputsError, MftiError
from mfti_lightning.core.families import check_model_type
from mfti_lightning.data import corpora

SPBLEU_SETTINGS = ("flores101", "flores200", "spm")  # eval.bleu_tokenize values that need an SPM model


def node_environment(cfg) -> dict[str, str]:
    """The environment the job will run with: this process's, plus the ``export K=V`` lines of
    ``hydra.launcher.setup`` when the job goes through a SLURM launcher (HF_HUB_OFFLINE, HF_HOME, SACREBLEU ...).
    Inside the job (no ``hydra`` node in the task config) the setup has already been exported: this is os.environ."""
    from omegaconf import OmegaConf

    env = dict(os.environ)
    if "slurm" not in str(OmegaConf.select(cfg, "hydra.launcher._target_", default="") or "").lower():
        return env
    setup = OmegaConf.select(cfg, "hydra.launcher.setup", default=None) or []
    for line in OmegaConf.to_container(setup, resolve=True) if OmegaConf.is_config(setup) else setup:
        m = re.fullmatch(r"\s*export\s+([A-Za-z_][A-Za-z0-9_]*)=(.*?)\s*", str(line))
        if m:
            env[m.group(1)] = m.group(2).strip("'\"")
    return env


def is_offline(env: Mapping[str, str]) -> bool:
    """Whether the Hugging Face hub is off for a process with this environment (core.config.hub_offline)."""
    return hub_offline(env)


def require_inputs(cfg) -> None:
    """:func:`check_inputs` in the environment the job runs with; raises InputsError listing every problem."""
    env = node_environment(cfg)
    problems = check_inputs(cfg, is_offline(env), env)
    if problems:
        raise InputsError(problems)


def check_inputs(cfg, offline: bool, env: Mapping[str, str] | None = None) -> list[str]:
    """Every missing or unreadable input of one job (empty when all is there). ``offline``: the hub is off where
    the job runs; ``env``: that environment (HF_HOME / HF_HUB_CACHE / SACREBLEU), default this process's."""
    env = os.environ if env is None else env
    problems = []
    for check in (check_corpora, check_flores, check_model, check_spm):
        try:
            problems += check(cfg, offline, env)
        except MftiError as e:  # a config value that makes the check itself impossible
            problems.append(str(e))
    return list(dict.fromkeys(problems))


# ---- training corpora ------------------------------------------------------------------------------------
def _plain(node):
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def check_corpora(cfg, offline: bool, env: Mapping[str, str]) -> list[str]:
    """One problem per training direction without a readable corpus (nothing to check when num_examples.n=0)."""
    if cfg.num_examples.n <= 0:
        return []
    specs = [dict(_plain(s)) for s in cfg.data.corpora]
    if not specs:
        return ["data.corpora is empty: give at least one training corpus (see conf/data/*.yaml)."]
    for i, s in enumerate(specs):
        corpora.check_spec(s, i)
    problems, first_lines, missing = [], {}, 0
    for src, tgt in train_directions(cfg.lang_pairs):
        spec = next((s for s in specs if corpora.corpus_available(s, src, tgt)), None)
        if spec is None:
            tried = ", ".join(corpora.describe_spec(s, src, tgt) for s in specs)
            hint = (
                ""
                if missing
                else (
                    " Put the files there (paths.corpora_dir, e.g. in conf/local/default.yaml), "
                    "add a corpus for the pair to data.corpora, or remove the direction from "
                    "lang_pairs.train."
                )
            )
            missing += 1
            problems.append(f"training corpus for {src}-{tgt}: not found (tried {tried}).{hint}")
            continue
        if spec["format"] == "hf":
            if offline:
                problems.append(
                    f"training corpus for {src}-{tgt}: format hf ({spec.get('name')}) needs the Hugging "
                    "Face hub, but the job runs with HF_HUB_OFFLINE=1: point data.corpora at local files "
                    "(format flores with root, moses or wikimatrix)."
                )
            continue
        for path in corpora.corpus_files(spec, src, tgt):
            if path not in first_lines:  # de-en and en-de read the same files
                first_lines[path] = first_line_problem(path, spec["format"])
            if first_lines[path]:
                problems.append(f"training corpus for {src}-{tgt}: {first_lines[path]}")
    return problems


def first_line_problem(path: Path, fmt: str) -> str | None:
    """Why the first line of a corpus file cannot be read in its format (None when it can)."""
    try:
        line = next(iter(corpora.iter_lines(path)), None)
    except DataError as e:
        return str(e)
    except (OSError, EOFError) as e:  # unreadable, truncated or not really compressed
        return f"{path}: cannot be read ({type(e).__name__}: {e})."
    if line is None:
        return f"{path} is empty."
    if fmt == "wikimatrix":
        parts = line.split("\t")
        if len(parts) != 3:
            return f"{path}:1: expected score<TAB>src<TAB>tgt, got {len(parts)} field(s): not a WikiMatrix TSV."
        try:
            float(parts[0])
        except ValueError:
            return f"{path}:1: score {parts[0]!r} is not a number: not a WikiMatrix TSV."
    return None


# ---- evaluation sets -------------------------------------------------------------------------------------
def flores_needs(cfg) -> dict[tuple[str, str], str]:
    """``{(split, code): why}`` for every FLORES file the job reads: devtest (test) of the eval languages, dev
    (validation, when training), the k-shot pool split, and dev + devtest of every language of the run when
    evaluation sentences are excluded from training."""
    n, k = cfg.num_examples.n, cfg.shots.k
    lp = cfg.lang_pairs
    evals, trains = eval_directions(lp), train_directions(lp) if n > 0 else []
    needs: dict[tuple[str, str], str] = {}
    for src, tgt in evals:
        for code in (src, tgt):
            needs.setdefault(("devtest", code), f"test set of {src}-{tgt}")
            if n > 0:
                needs.setdefault(("dev", code), f"validation set of {src}-{tgt}")
            if k > 0:
                needs.setdefault((cfg.shots.pool, code), f"{k}-shot pool of {src}-{tgt}")
    if n > 0 and cfg.data.filters.exclude_eval:
        for src, tgt in trains:
            for code in (src, tgt):
                for split in ("dev", "devtest"):
                    needs.setdefault((split, code), f"evaluation sentences excluded from training {src}-{tgt}")
    return needs


def check_flores(cfg, offline: bool, env: Mapping[str, str]) -> list[str]:
    """One problem per missing FLORES file (or one for a FLORES root that is not a directory)."""
    data = cfg.data
    root, layout = data.get("flores_root"), data.get("flores_layout") or "flores101"
    problems = []
    for (split, code), why in sorted(flores_needs(cfg).items()):
        if split not in ("dev", "devtest"):
            raise ConfigError(f"shots.pool={split!r}: use dev or devtest.")
        try:
            path = corpora.flores_file(root, split, code, layout)
        except DataError as e:  # the root is not a directory, or the language is not in the layout
            problems.append(f"FLORES: {e}")
            continue
        if not path.is_file():
            problems.append(
                f"FLORES {split} for {code} ({why}): {path} not found. Set data.flores_root to a "
                f"{layout} copy laid out as <root>/{{dev,devtest}}/<code>.{{dev,devtest}} (for FLORES-101: "
                "`mfti-prefetch data.flores_root=<dir>` downloads it)."
            )
    return problems


# ---- model and metric assets -----------------------------------------------------------------------------
def hub_cache_dir(env: Mapping[str, str]) -> Path:
    """The Hugging Face hub cache of a process with this environment."""
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"])
    home = env.get("HF_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache", "huggingface")
    return Path(home) / "hub"


def family_problems(model, config_json: Path) -> list[str]:
    """The ``model_type`` in the model's config.json belongs to ``model.family`` (core/families.py)."""
    try:
        model_type = json.loads(config_json.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return []  # unreadable here: from_pretrained reports it
    try:
        check_model_type(str(model.get("family", "xglm")), model_type, str(model.name_or_path))
    except ConfigError as e:
        return [str(e)]
    return []


def check_model(cfg, offline: bool, env: Mapping[str, str]) -> list[str]:
    """The model directory, or the hub model in the offline cache; nothing for a model built on first use."""
    model = cfg.model
    path = str(model.name_or_path)
    p = Path(path).expanduser()
    if p.is_dir():
        if (p / "config.json").exists():
            return family_problems(model, p / "config.json")
        if model.get("build"):
            return []
        return [f"model.name_or_path={path} is a directory without config.json: not a model."]
    if model.get("build"):
        return []  # the tiny model: built into name_or_path on first use
    parts = path.split("/")
    if path.startswith(("/", "./", "../", "~")) or len(parts) > 2 or not all(parts):
        return [f"model.name_or_path={path} does not exist (a local directory with config.json, or a hub name)."]
    if not offline:
        return []
    cache = hub_cache_dir(env)
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(path, "config.json", cache_dir=cache)
    except Exception:
        found = None
    if isinstance(found, str):
        return family_problems(model, Path(found))
    return [
        f"model {path!r}: the job runs offline (HF_HUB_OFFLINE=1) and it is not in the hub cache {cache}. On a "
        f"machine with network run `HF_HOME={cache.parent} mfti-prefetch model.name_or_path={path}` (or "
        f"`huggingface-cli download {path}`), or set model.name_or_path=<local directory>."
    ]


def spm_tokenizer(setting: str) -> str | None:
    """The FLORES SentencePiece model (flores101 / flores200) an explicit ``eval.bleu_tokenize`` needs, else None."""
    setting = str(setting)
    if setting == "flores200":
        return "flores200"
    if setting in SPBLEU_SETTINGS:
        return "flores101"
    return None


def check_spm(cfg, offline: bool, env: Mapping[str, str]) -> list[str]:
    """sacrebleu's FLORES SPM model, when eval.bleu_tokenize names spBLEU (auto needs nothing: it falls back)."""
    from mfti_lightning.eval import metrics

    setting = cfg.eval.bleu_tokenize
    tok = spm_tokenizer(setting)
    if tok is None:
        return []
    root = Path(env["SACREBLEU"]) if env is not os.environ and env.get("SACREBLEU") else metrics.sacrebleu_dir()
    path = metrics.spm_path(tok, root)
    if path.exists():
        return []
    return [
        f"eval.bleu_tokenize={setting} needs sacrebleu's {tok} SentencePiece model, which is not at {path}: on a "
        f"machine with network run `SACREBLEU={root} mfti-prefetch eval.bleu_tokenize={tok}` (or use "
        "eval.bleu_tokenize=auto, which reports BLEU without it)."
    ]
