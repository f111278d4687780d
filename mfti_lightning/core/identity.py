"""What makes a run *the same experiment*: its identity, the short hash in its directory name, and the check that
a run directory is reused only for the same experiment. Torch-free.

Every key of the resolved config has one of four roles, declared on its schema field (``role=`` in
:mod:`mfti_lightning.core.schema`'s groups, read by :mod:`mfti_lightning.core.keys`; a key inherits its node's):

- ``ignored``: never changes a result (logging, progress, paths, resume policy, names, caches, workers);
- ``evaluation``: changes only the final evaluation of the trained model (beams, test directions, metrics,
  in-context shots at test time). A completed *training* run whose evaluation settings changed re-evaluates its
  best checkpoint without retraining; for an evaluation-only task (``mfti-eval``) they are the experiment;
- ``runtime``: the hardware layout (``trainer``): the same experiment on other hardware. Not in the directory
  hash (a sweep over ``trainer=cpu,gpu`` maps both jobs to one run directory, which is refused), but a run
  directory made under another trainer is never reused silently;
- ``training`` identity (model, data, template, optimisation, seed, validation that picks the checkpoint): it is
  hashed into ``run_slug`` (``${mfti_run_hash:}``), so a different value gets its own directory. A key the
  schema does not know (an extra root key) counts as training: it may change the result.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mfti_lightning.core import keys
from mfti_lightning.core.config import flatten
from mfti_lightning.core.errors import ConfigError
from mfti_lightning.core.fields import EVALUATION, IGNORED, RUNTIME, TRAINING
from mfti_lightning.core.results import RESULTS_FILE, read_results
from mfti_lightning.core.template import text_id

CLASSES = (TRAINING, EVALUATION, RUNTIME)
HASH_CHARS = 8


def matches(key: str, prefixes: tuple[str, ...]) -> bool:
    """A dotted key is one of ``prefixes`` or lies below one of them."""
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def classify(key: str) -> str | None:
    """``training`` / ``evaluation`` / ``runtime`` for a dotted config key, or None when it is ignored."""
    role = keys.role_of(key) or TRAINING
    return None if role == IGNORED else role


def _normalise(value, roots: dict[str, str]):
    """Paths under the machine's cache/corpora roots are written relative to them (``<cache_dir>/...``), so the
    identity of the tiny model or a corpus does not depend on $HOME or MFTI_CACHE_DIR."""
    if isinstance(value, str):
        for name, root in roots.items():
            if root and (value == root or value.startswith(root.rstrip("/") + "/")):
                return f"<{name}>" + value[len(root.rstrip("/")) :]
    return value


def identity(container: dict) -> dict[str, dict]:
    """``{"training": {key: value}, "evaluation": {...}, "runtime": {...}}`` of a resolved config (plain data)."""
    paths = container.get("paths") or {}
    roots = {k: str(paths[k]) for k in ("cache_dir", "corpora_dir") if isinstance(paths.get(k), str)}
    out: dict[str, dict] = {c: {} for c in CLASSES}
    for key, value in flatten(container).items():
        cls = classify(key)
        if cls is not None:
            out[cls][key] = _normalise(value, roots)
    return out


def hashed_keys(ident: dict[str, dict], task: str) -> dict:
    """The keys that name the run directory: training identity, plus the evaluation for an evaluation task."""
    hashed = dict(ident["training"])
    if task != "train":
        hashed.update(ident["evaluation"])
    return hashed


def digest(values: dict) -> str:
    blob = json.dumps(values, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:HASH_CHARS]


def config_part(cfg: DictConfig) -> dict:
    """The resolved config as plain data, without the ignored top-level nodes (of ``paths`` only the roots that
    :func:`identity` normalises). Safe inside the resolver and outside a Hydra run (``${hydra:...}`` unread)."""
    skip = set(keys.top_level(IGNORED))
    part = {}
    for key in cfg:
        if key in skip:
            continue
        value = cfg[key]
        part[str(key)] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    paths = cfg.get("paths")
    if paths is not None:
        part["paths"] = {k: paths.get(k) for k in ("cache_dir", "corpora_dir")}
    return part


def run_hash(*, _root_: DictConfig) -> str:
    """OmegaConf resolver ``${mfti_run_hash:}``: the short hash of the run's identity (see the module doc)."""
    return digest(hashed_keys(identity(config_part(_root_)), str(_root_.get("task_name", "train"))))


def ckpt_tag(path) -> str:
    """OmegaConf resolver ``${mfti_ckpt_tag:<path>}``: ``_<stem>-<hash of its absolute path>``, empty without one
    (the run directory of ``mfti-eval ckpt_path=...``)."""
    if path in (None, "", "None", "null"):
        return ""
    p = Path(str(path)).expanduser().resolve()
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", p.stem if p.suffix == ".ckpt" else p.name)[:40]
    return f"_{stem}-{hashlib.sha1(str(p).encode()).hexdigest()[:8]}"


def register_resolvers() -> None:
    """Register the run-directory resolvers (idempotent). Called by the ``hydra_plugins`` module, which Hydra
    imports before it composes any config, and by the entry points."""
    if not OmegaConf.has_resolver("mfti_run_hash"):
        OmegaConf.register_new_resolver("mfti_run_hash", run_hash)
    if not OmegaConf.has_resolver("mfti_ckpt_tag"):
        OmegaConf.register_new_resolver("mfti_ckpt_tag", ckpt_tag)
    if not OmegaConf.has_resolver("mfti_template_id"):
        OmegaConf.register_new_resolver("mfti_template_id", text_id)
    if not OmegaConf.has_resolver("mfti_config_help"):  # mfti-train --help (conf/hydra/default.yaml)
        OmegaConf.register_new_resolver("mfti_config_help", keys.config_help)


# ---- reusing a run directory ----------------------------------------------------------------------------------
def changed(old: dict, new: dict) -> list[tuple[str, object, object]]:
    """``[(key, old value, new value)]`` for every key of two flat dicts whose values differ (``<absent>``)."""
    return [
        (k, old.get(k, "<absent>"), new.get(k, "<absent>"))
        for k in sorted(set(old) | set(new))
        if old.get(k, "<absent>") != new.get(k, "<absent>")
    ]


def differences(old_container: dict, new_container: dict) -> dict[str, list[tuple[str, object, object]]]:
    """Per identity class, the keys whose value differs: ``[(key, old, new), ...]`` (``<absent>`` if missing)."""
    old, new = identity(old_container), identity(new_container)
    return {cls: diff for cls in CLASSES if (diff := changed(old[cls], new[cls]))}


def format_differences(diff: list[tuple[str, object, object]]) -> str:
    return "\n".join(f"  {k}: {a!r} (in the run dir) -> {b!r} (now)" for k, a, b in diff)


@dataclass
class Reuse:
    """What a job does with its run directory: ``new`` (nothing there), ``run`` (start or resume an unfinished
    run), ``skip`` (completed, same experiment) or ``reevaluate`` (completed, only evaluation settings changed)."""

    action: str
    existing: dict | None = None
    changed: list = field(default_factory=list)  # [(key, old, new)] of the evaluation settings that changed


def decide_reuse(run_dir: Path, cfg: DictConfig) -> Reuse:
    """How ``cfg`` may use ``run_dir``; raises ConfigError when the directory holds another experiment.

    Only a completed run is compared (an unfinished one is resumed under ``resume=auto``, whose checkpoints are
    checked against the training config separately). A completed run of the same experiment is skipped; one whose
    evaluation settings alone changed is re-evaluated from its best checkpoint; any other difference (possible
    with a hand-made ``run_slug`` or ``hydra.run.dir``, or another ``trainer``) is refused, naming every key.
    """
    try:
        existing = read_results(run_dir)
    except ValueError:
        existing = None
    if not existing:
        return Reuse("new")
    if str(cfg.resume) == "never":
        raise ConfigError(f"{run_dir} already holds a {RESULTS_FILE} and resume=never; pick another run dir.")
    if existing.get("status") != "completed":
        return Reuse("run", existing)
    diff = differences(existing.get("config") or {}, config_part(cfg))
    other = [d for cls in ("training", "runtime") for d in diff.get(cls, [])]
    if other:
        raise ConfigError(
            f"{run_dir} holds a completed run of another experiment; it differs in:\n{format_differences(other)}\n"
            "Its results are not this config's. Restore those values to reuse it; or run this config in its own "
            "directory (hydra.run.dir=<dir> for a single run, another sweep_name for a sweep: run_slug hashes the "
            f"experiment but not the trainer); or delete {run_dir} to start over."
        )
    if diff.get("evaluation"):
        best = existing.get("best_checkpoint")
        trained = str(cfg.get("task_name")) == "train" and (existing.get("directions") or {}).get("train")
        if trained and not (best and Path(best).exists()):
            raise ConfigError(
                f"{run_dir}: the evaluation settings changed ({', '.join(k for k, _, _ in diff['evaluation'])}) "
                f"but the run's best checkpoint {best or '(none recorded)'} is gone, so it cannot be re-evaluated. "
                "Evaluate its exported model instead (mfti-eval ckpt_path=<run dir>/hf ...), or delete the run "
                "directory to train again."
            )
        return Reuse("reevaluate", existing, diff["evaluation"])
    return Reuse("skip", existing)
